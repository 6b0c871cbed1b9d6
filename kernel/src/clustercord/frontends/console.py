"""The console front end: run typed commands, render Replies with rich, ask there.

:class:`ConsoleFrontend` is the façade ``clustercord run``, the console REPL and the
testing kit's harness share: it turns a command line into an Invocation, hands it to the
kernel's dispatcher, and shows what comes back on a :class:`ConsoleSurface` (a
:class:`ConsoleRenderer` on a terminal; the harness records instead).

The console cannot click buttons or hold an attachment, so it shows what a
Discord user would see in the closest terminal form: panels for cards, tables,
a line listing the actions, and files saved to a directory with their path.
Plugin text is always shown literally (never as rich markup), so a ``[`` in a
pod name cannot restyle or hide output, and passes
:func:`~clustercord.frontends.inert.inert` first: an escape sequence in a pod name, an
option value or an API error is shown as ``\x1b[2J``, never played by the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.pretty import Pretty
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress
from rich.prompt import Confirm, Prompt
from rich.style import Style
from rich.table import Table as RichTable
from rich.text import Text

from clustercord.frontends.inert import inert, inert_reply
from clustercord.frontends.tables import fit
from clustercord.policy import CONSOLE_USER
from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import CommandError, UsageError
from clustercord_sdk.reply import Card, Confirmation, File, Modal, Progress, Reply, Table
from clustercord_sdk.services import Message

__all__ = [
    "ConsoleConversation",
    "ConsoleFrontend",
    "ConsoleRenderer",
    "ConsoleSurface",
    "is_only_progress",
    "local_attachment",
    "reply_to_json",
    "safe_file_name",
]

EPHEMERAL_NOTE = "(only you can see this)"
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_NAME_AND_SUFFIXES = re.compile(r"(.+?)((?:\.[A-Za-z0-9]{1,5})*)\Z", re.DOTALL)
_MAX_NAME_BYTES = 200


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def reply_to_json(reply: Reply) -> str:
    """The reply as JSON for ``--json`` output and scripts (files as base64).

    JSON escapes C0 controls itself; DEL, C1 controls and bidirectional overrides are
    escaped too (``\\u009b``), so the text is the same for a parser and inert on a terminal.
    """
    text = json.dumps(reply.to_dict(), indent=2, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def safe_file_name(name: str) -> str:
    """A file name that stays inside the target directory and works on any filesystem.

    Plugins choose attachment names; a name like ``../../.bashrc`` must not
    escape ``files_dir``, so only the last path component is kept.
    """
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE_CHARS.sub("_", base).strip()
    if base.strip(".") == "":
        base = "file"
    while len(base.encode()) > _MAX_NAME_BYTES:
        base = base[:-1]
    return base


def is_only_progress(reply: Reply) -> bool:
    """Whether ``reply`` only moves the progress bar (anything else in it is a result, and a
    live view's buttons are kept). The one place the console decides it."""
    return reply.progress is not None and reply == Reply(progress=reply.progress)


def local_attachment(value: str) -> File:
    """An attachment option in the console is a path to a local file."""
    path = Path(value).expanduser()
    try:
        return File(name=path.name, data=path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {value}: {exc.strerror}") from None


class ConsoleSurface(Protocol):
    """Where a console command's replies go and its questions are put."""

    def render(self, reply: Reply) -> None: ...

    async def ask(self, confirmation: Confirmation, assume_yes: bool) -> bool: ...

    async def fill(self, modal: Modal) -> dict[str, str] | None: ...


class ConsoleFrontend:
    """The console front end for one person at the keyboard (``clustercord run``, the
    console, the testing kit's harness): a command line becomes an Invocation for the
    kernel's dispatcher; replies, confirmations and forms go to ``surface``.

    ``user_id`` defaults to the local operator (:data:`~clustercord.policy.CONSOLE_USER`);
    ``--as`` acts as a Discord user, whose access policy applies. With ``interim`` false,
    intermediate replies are dropped (``--json``: stdout carries only the final reply).
    Pending approvals are delivered by the kernel's door after every command.
    """

    def __init__(
        self,
        kernel: Any,
        surface: ConsoleSurface,
        *,
        user_id: str | None = None,
        roles: Iterable[str] = (),
        cluster: str | None = None,
        yes: bool = False,
        interim: bool = True,
        frontend: str = "console",
    ) -> None:
        self.kernel = kernel
        self.surface = surface
        self.user_id = user_id or CONSOLE_USER
        self.roles = frozenset(r.strip() for r in roles if r.strip())
        self.cluster = cluster
        self.yes = yes
        self.interim = interim
        self.frontend = frontend

    def invocation(self, path: tuple[str, ...], options: dict[str, Any]) -> Invocation:
        return Invocation(
            user_id=self.user_id,
            command=path,
            options=options,
            roles=self.roles,
            cluster=self.cluster,
            frontend=self.frontend,
        )

    async def run_line(self, line: str) -> Any:
        """Parse and run one typed line (``/cmd sub opt:value``); a bad line raises
        :class:`~clustercord_sdk.errors.UsageError`."""
        from clustercord.frontends.commandline import parse_command_line

        path, options = parse_command_line(line)
        return await self.run(path, options)

    async def run(self, path: tuple[str, ...], options: dict[str, Any]) -> Any:
        """Run one command and return its :class:`~clustercord.dispatcher.Outcome`:
        confirmations are asked on the surface, forms filled there in place, interim
        replies shown (when ``interim``). The final reply is the caller's to :meth:`show`."""

        async def send(reply: Reply) -> None:
            if self.interim:
                self.surface.render(reply)

        async def ask(confirmation: Confirmation) -> bool:
            return bool(await self.surface.ask(confirmation, self.yes))

        return await self.kernel.dispatcher.dispatch(
            self.invocation(path, options),
            send=send,
            ask=ask,
            attachments=local_attachment,
            fill=self.surface.fill,
        )

    def show(self, reply: Reply) -> None:
        self.surface.render(reply)


class ConsoleRenderer:
    """Draws Replies on one rich Console and keeps the state of the progress bar."""

    def __init__(self, console: Console, files_dir: Path, stdin: TextIO | None = None) -> None:
        self.console = console
        self.files_dir = Path(files_dir)
        self._stdin = stdin
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    # -- replies ---------------------------------------------------------------

    def render(self, reply: Reply) -> None:
        """Print a reply; a progress-only reply moves the progress bar instead."""
        if is_only_progress(reply):
            assert reply.progress is not None
            self.progress(reply.progress)
            return
        # Anything else is a result: the bar has done its job and would be in the way.
        self.finish()
        self._render(inert_reply(reply))

    def _render(self, reply: Reply) -> None:
        c = self.console
        printed = False
        if reply.ephemeral:
            c.print(Text(EPHEMERAL_NOTE, style="dim"))
        if reply.text:
            if reply.error:
                c.print(Text("Error: " + reply.text, style="bold red"))
            else:
                c.print(Text(reply.text))
            printed = True
        for card in reply.cards:
            c.print(self._card(card))
            printed = True
        for table in reply.tables:
            self._print_table(table)
            printed = True
        for index, page in enumerate(reply.pages, start=1):
            c.rule(Text(f"Page {index}/{len(reply.pages)}"))
            self._render(page)
            printed = True
        actions = self._actions(reply)
        if actions is not None:
            c.print(actions)
            printed = True
        if reply.modal is not None:
            c.print(self._modal(reply.modal))
            printed = True
        if reply.confirmation is not None:
            c.print(self._prompt_text(reply.confirmation))
            printed = True
        if reply.progress is not None:
            c.print(Text(_progress_line(reply.progress), style="dim"))
            printed = True
        for file in reply.files:
            self._save(file)
            printed = True
        if not printed and reply.data is not None:
            # A reply made only for scripts still deserves a readable answer.
            c.print(Pretty(reply.data))

    def _card(self, card: Card) -> Panel:
        parts: list[RenderableType] = []
        if card.description:
            parts.append(Text(card.description))
        if card.fields:
            grid = RichTable.grid(padding=(0, 2))
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column()
            for item in card.fields:
                grid.add_row(Text(item.name), Text(item.value))
            parts.append(grid)
        if card.url:
            parts.append(Text(inert(card.url), style="dim underline"))
        if card.image:
            parts.append(Text(f"[image: {inert(card.image)}]", style="dim"))
        if card.footer:
            # In the body, not the border: a border subtitle is cut to the panel's width.
            parts.append(Text(card.footer, style="dim"))
        return Panel(
            Group(*parts) if parts else Text(""),
            title=Text(card.title, style="bold") if card.title else None,
            title_align="left",
            border_style=_style_or_none(card.color) or "none",
            expand=False,
        )

    def _print_table(self, table: Table) -> None:
        """A table whose names stay whole: fitted to the terminal's width, or at full
        width when the output is not a terminal (piped, redirected: nothing is cut)."""
        width = self.console.width if self.console.is_terminal else None
        fitted = fit(table, width, _rich_overhead)
        out = RichTable(
            title=Text(table.title, style="bold") if table.title else None,
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        for name, size in zip(fitted.columns, fitted.widths, strict=True):
            out.add_column(Text(name), no_wrap=True, min_width=size, max_width=size)
        for row in fitted.rows:
            out.add_row(*(Text(cell) for cell in row))
        needed = sum(fitted.widths) + _rich_overhead(len(fitted.widths))
        with _at_least(self.console, max(needed, len(table.title or ""))):
            self.console.print(out)
        note = fitted.hidden_note(width)
        if note is not None:
            self.console.print(Text(f"{note} (a wider terminal or --json shows them)", "dim"))

    def _actions(self, reply: Reply) -> Text | None:
        items: list[str] = []
        for button in reply.buttons:
            label = f"{inert(button.emoji)} {button.label}" if button.emoji else button.label
            if button.url:
                label += f" <{inert(button.url)}>"
            if button.disabled:
                label += " (disabled)"
            items.append(f"[{label}]")
        for select in reply.selects:
            choices = ", ".join(o.label for o in select.options)
            items.append(f"{select.placeholder or 'choose'}: {choices}")
        if not items:
            return None
        return Text("Actions (not clickable here): " + "  ".join(items), style="dim")

    def _modal(self, modal: Modal) -> Group:
        lines: list[RenderableType] = [Text(f"Form: {modal.title}", style="bold")]
        for item in modal.inputs:
            line = Text(f"  • {item.label} ({item.name})")
            if item.required:
                line.append(" required", style="yellow")
            if item.placeholder:
                line.append(f" — {item.placeholder}", style="dim")
            lines.append(line)
        return Group(*lines)

    def _save(self, file: File) -> Path:
        """Write an attachment without ever overwriting: ``a.txt``, ``a-1.txt``, …"""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        name = safe_file_name(file.name)
        match = _NAME_AND_SUFFIXES.match(name)
        stem, suffix = (match.group(1), match.group(2)) if match else (name, "")
        counter = 0
        while True:
            candidate = self.files_dir / (f"{stem}-{counter}{suffix}" if counter else name)
            try:
                # O_EXCL creates atomically, so two writers cannot clobber each other; 0600:
                # what a reply carries (a report, a recording) is the operator's alone.
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(file.data)
                break
            except FileExistsError:
                counter += 1
        line = Text(f"Saved {candidate} ({len(file.data)} bytes)")
        if file.description:
            line.append(f" — {file.description}", style="dim")
        # soft_wrap keeps the path on one line so it can be copied.
        self.console.print(line, soft_wrap=True)
        return candidate

    # -- progress --------------------------------------------------------------

    def progress(self, p: Progress) -> None:
        """Show or advance the one progress bar; it finishes itself at 100 %.

        On a non-terminal console (pipes, captured output) nothing is drawn:
        a bar redrawn into a log file is only noise.
        """
        description = inert(p.label or "Working")
        if self.console.is_terminal:
            if self._bar is None:
                self._bar = RichProgress(
                    SpinnerColumn(),
                    TextColumn("{task.description}", markup=False),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=self.console,
                    transient=True,
                )
                self._bar.start()
                self._task = self._bar.add_task(description, total=p.total)
            assert self._task is not None
            self._bar.update(
                self._task, completed=p.current, total=p.total, description=description
            )
        if p.total is not None and p.current >= p.total:
            self.finish()

    def finish(self) -> None:
        """Remove the progress bar (a no-op when none is shown)."""
        if self._bar is not None:
            self._bar.stop()
        self._bar = None
        self._task = None

    # -- confirmation ----------------------------------------------------------

    async def ask(self, confirmation: Confirmation, assume_yes: bool) -> bool:
        """Ask yes/no; ``--yes`` answers for the user, and a script without it gets No."""
        self.finish()
        prompt = self._prompt_text(confirmation)
        if assume_yes:
            self.console.print(prompt)
            self.console.print(Text("yes (--yes)", style="dim"))
            return True
        stdin = self._stdin if self._stdin is not None else sys.stdin
        if stdin is None or not _isatty(stdin):
            self.console.print(prompt)
            self.console.print(
                Text("Not confirmed: pass --yes to confirm non-interactively", style="yellow")
            )
            return False
        try:
            # A blocking read in a thread keeps the event loop (and watchers) running.
            # stream=None lets rich use input(), which keeps line editing.
            return await asyncio.to_thread(
                Confirm.ask, prompt, console=self.console, default=False, stream=self._stdin
            )
        except EOFError:
            self.console.print(Text("Not confirmed", style="yellow"))
            return False

    async def fill(self, modal: Modal) -> dict[str, str] | None:
        """Answer a form with one prompt per input; secret inputs are read without echo.

        Without a terminal (a script) nothing can be typed: the form is shown and ``None``
        returned, so the command stops with nothing done.
        """
        self.finish()
        # Labels and title shown inert; names and prefilled values are the plugin's own.
        shown = inert_reply(Reply(modal=modal)).modal
        assert shown is not None
        modal = shown
        stdin = self._stdin if self._stdin is not None else sys.stdin
        if stdin is None or not _isatty(stdin):
            self.console.print(self._modal(modal))
            self.console.print(Text("Not filled in: this needs a terminal", style="yellow"))
            return None
        self.console.print(Text(f"Form: {modal.title}", style="bold"))
        fields: dict[str, str] = {}
        try:
            for item in modal.inputs:
                label = Text(item.label + ("" if item.required else " (optional)"))
                # rich's password prompt uses getpass: nothing is echoed or kept in history.
                answer = await asyncio.to_thread(
                    Prompt.ask,
                    label,
                    console=self.console,
                    password=item.secret,
                    default=item.value or "",
                    show_default=not item.secret
                    and bool(item.value)
                    and inert(item.value or "") == item.value,
                    stream=self._stdin,
                )
                fields[item.name] = answer
        except EOFError:
            self.console.print(Text("Not filled in", style="yellow"))
            return None
        return fields

    def conversation(self, title: str, *, user_id: str) -> ConsoleConversation:
        """A plugin's conversation on the console (capability ``conversations``)."""
        return ConsoleConversation(self, title, user_id)

    async def open_conversation(
        self, plugin: str, title: str, invocation: Any, *, private: bool = False
    ) -> ConsoleConversation:
        """The opener to register with ``kernel.conversations`` for the ``console`` (one
        user: every conversation is as private as it gets)."""
        return self.conversation(title, user_id=invocation.user_id)

    @staticmethod
    def _prompt_text(confirmation: Confirmation) -> Text:
        style = "bold red" if confirmation.danger else "bold"
        return Text(inert(confirmation.prompt), style=style)


class ConsoleConversation:
    """What a Discord thread is on the console: a sub-session whose lines carry
    ``[title]``, read line by line from the console's input.

    The console has one person at its keyboard, so every line read is theirs
    (``user_id``); end of input ends the conversation (``receive`` returns ``None``).
    A line being typed when ``receive`` times out is read by the next ``receive``.
    """

    def __init__(self, renderer: ConsoleRenderer, title: str, user_id: str) -> None:
        self.renderer = renderer
        self.title = title
        self.user_id = user_id
        self.closed = False
        self._count = 0
        self._reading: asyncio.Future[str] | None = None

    @property
    def id(self) -> str:
        return self.title

    async def send(self, reply: Reply | str) -> str:
        if self.closed:
            raise CommandError(f"the conversation {self.title!r} is closed")
        reply = Reply(text=reply) if isinstance(reply, str) else reply
        prefix = Text(f"[{inert(self.title)}] ", style="bold cyan")
        if reply == Reply(text=reply.text, ephemeral=reply.ephemeral) and reply.text:
            self.renderer.console.print(prefix + Text(inert(reply.text)))
        else:
            self.renderer.console.print(prefix)
            self.renderer.render(reply)
        self._count += 1
        return f"{self.title}:{self._count}"

    async def receive(self, timeout: float = 60.0) -> Message | None:
        if self.closed:
            return None
        if self._reading is None:
            stdin = self.renderer._stdin if self.renderer._stdin is not None else sys.stdin
            prompt = Text(f"[{inert(self.title)}] > ", style="bold cyan")
            self.renderer.console.print(prompt, end="")
            # A blocking read in a thread keeps the event loop running.
            self._reading = asyncio.ensure_future(asyncio.to_thread(stdin.readline))
        try:
            line = await asyncio.wait_for(asyncio.shield(self._reading), timeout)
        except TimeoutError:
            return None
        self._reading = None
        if not line:
            return None  # end of input
        self._count += 1
        return Message(self.user_id, line.rstrip("\n"), f"{self.title}:{self._count}")

    async def close(self) -> None:
        self.closed = True


@contextlib.contextmanager
def _at_least(console: Console, width: int) -> Iterator[None]:
    """The console at least ``width`` wide for a moment (``print(width=)`` cannot widen it)."""
    before = console.width
    console.width = max(before, width)
    try:
        yield
    finally:
        console.width = before


def _rich_overhead(columns: int) -> int:
    """Padding and edges of a ``box.SIMPLE_HEAD`` table around ``columns`` columns."""
    return 3 * columns + 1


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _style_or_none(color: str | None) -> Style | None:
    """Card colours come from plugins (``#ff8800``, ``red``); ignore what rich can't parse."""
    if not color:
        return None
    try:
        return Style.parse(color)
    except Exception:
        return None


def _progress_line(p: Progress) -> str:
    label = p.label or "Progress"
    if p.total:
        fraction = p.fraction or 0.0
        return f"{label}: {p.current:g}/{p.total:g} ({fraction:.0%})"
    return f"{label}: {p.current:g}"
