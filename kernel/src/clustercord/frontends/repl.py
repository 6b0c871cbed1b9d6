"""The interactive console: a prompt with history and completion of commands and options.

The REPL only reads lines and hands them to ``dispatch_line``; parsing, running
and rendering stay with the caller, so the REPL and ``clustercord run`` behave
the same. Commands come from a callable asked at every prompt, so enabling a
plugin makes its commands completable straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clustercord.frontends.commandline import split_option, tokenize
from clustercord.frontends.inert import inert

CommandWords = Callable[[], list[dict[str, Any]]]
"""Returns ``[{"path": "plugin config", "description": ..., "options": [...]}, ...]``."""

EXIT_WORDS = frozenset({"exit", "quit"})
HELP_WORDS = frozenset({"help", "?"})
PROMPT = "clustercord> "


def _path_of(command: dict[str, Any]) -> list[str]:
    return str(command.get("path", "")).split()


def _quote(value: str) -> str:
    """Quote a completed value only when the command line parser would need it."""
    if value and not any(ch.isspace() or ch in "'\"\\" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CommandCompleter(Completer):
    """Completes command words, then ``option:`` names, then an option's choices."""

    def __init__(self, command_words: CommandWords) -> None:
        self.command_words = command_words

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor.lstrip()
        raw = _raw_last_word(before)  # what a completion replaces; "" after a space
        head = before[: len(before) - len(raw)]
        slash = before.startswith("/")
        done = tokenize(head.removeprefix("/"), partial=True)
        current_words = tokenize(raw if head else raw.removeprefix("/"), partial=True)
        current = current_words[0].text if current_words else ""

        path: list[str] = []
        given: set[str] = set()
        for word in done:
            option = split_option(word.text)
            if option is not None:
                given.add(option[0])
            elif not given:
                path.append(word.text)

        commands = self.command_words()
        command = next((c for c in commands if _same(_path_of(c), path)), None)
        option = split_option(current)
        if option is not None:
            if command is not None:
                yield from self._choices(command, option[0], option[1], raw)
            return
        if not given:
            prefix = "/" if slash and not path else ""
            yield from self._path_words(commands, path, current, raw, prefix)
        if command is not None:
            yield from self._option_names(command, given, current, raw)

    def _path_words(
        self,
        commands: list[dict[str, Any]],
        path: list[str],
        partial: str,
        raw: str,
        prefix: str,
    ) -> Iterator[Completion]:
        depth = len(path)
        found: dict[str, str] = {}
        for command in commands:
            words = _path_of(command)
            if len(words) <= depth or not _same(words[:depth], path):
                continue
            word = words[depth]
            if not word.lower().startswith(partial.lower()):
                continue
            if len(words) == depth + 1:
                found[word] = str(command.get("description") or "")
            else:
                found.setdefault(word, "")
        for word, meta in sorted(found.items()):
            if not meta:
                meta = _subcommands_meta(commands, [*path, word])
            yield Completion(prefix + word, start_position=-len(raw), display_meta=meta)

    def _option_names(
        self, command: dict[str, Any], given: set[str], partial: str, raw: str
    ) -> Iterator[Completion]:
        for option in command.get("options") or []:
            name = str(option.get("name", ""))
            if not name or name in given or not name.lower().startswith(partial.lower()):
                continue
            meta = str(option.get("description") or "")
            if option.get("required"):
                meta = f"(required) {meta}".strip()
            yield Completion(name + ":", start_position=-len(raw), display_meta=meta)

    def _choices(
        self, command: dict[str, Any], name: str, partial: str, raw: str
    ) -> Iterator[Completion]:
        option = next((o for o in command.get("options") or [] if str(o.get("name")) == name), None)
        if option is None:
            return
        meta = str(option.get("description") or "")
        for choice in option.get("choices") or []:
            value = str(choice)
            if value.lower().startswith(partial.lower()):
                yield Completion(
                    f"{name}:{_quote(value)}",
                    start_position=-len(raw),
                    display=value,
                    display_meta=meta,
                )


def _subcommands_meta(commands: list[dict[str, Any]], path: list[str]) -> str:
    """For a group word (``plugin``), list what follows it, since it has no description."""
    depth = len(path)
    subs = sorted(
        {
            _path_of(c)[depth]
            for c in commands
            if len(_path_of(c)) > depth and _same(_path_of(c)[:depth], path)
        }
    )
    return "subcommands: " + ", ".join(subs) if subs else ""


def _same(a: list[str], b: list[str]) -> bool:
    return [w.lower() for w in a] == [w.lower() for w in b]


def _raw_last_word(text: str) -> str:
    """The raw (still quoted) text of the last word, which a completion replaces."""
    raw_starts = [0]
    quote: str | None = None
    escaped = False
    for index, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            raw_starts.append(index + 1)
    return text[raw_starts[-1] :]


def print_help(console: Console, commands: list[dict[str, Any]]) -> None:
    """Print the available commands; optional options are shown in brackets."""
    table = Table(title="Commands", title_justify="left")
    table.add_column("Command", no_wrap=True, style="bold")
    table.add_column("Options")
    table.add_column("Description")
    for command in sorted(commands, key=lambda c: str(c.get("path", ""))):
        options = " ".join(
            f"{o.get('name')}:" if o.get("required") else f"[{o.get('name')}:]"
            for o in command.get("options") or []
        )
        table.add_row(
            Text(inert("/" + str(command.get("path", "")))),
            Text(inert(options)),
            Text(inert(str(command.get("description") or ""))),
        )
    console.print(table)
    console.print(
        Text(
            "Type a command like /plugin config name:demo (Tab completes); "
            "options in [brackets] are optional; exit or Ctrl-D leaves.",
            style="dim",
        )
    )


async def run_repl(
    dispatch_line: Callable[[str], Awaitable[None]],
    command_words: CommandWords,
    history_path: Path,
    console: Console,
    *,
    prompt: str = PROMPT,
    piped: TextIO | None = None,
) -> None:
    """Read lines until ``exit``/``quit``/Ctrl-D and hand each one to ``dispatch_line``.

    Ctrl-C at the prompt clears the line; Ctrl-C while a command runs cancels
    that command and returns to the prompt instead of ending the session.
    ``piped``: a stream that is not a terminal (a script fed to the console): its lines
    are read as they are, each shown once after the prompt, with no editor that would
    echo them a second time and no history kept.
    """
    if piped is not None:
        read = _piped_reader(piped, console, prompt)
    else:
        history_path = Path(history_path)
        history_path.parent.mkdir(parents=True, exist_ok=True)
        session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history_path)),
            completer=CommandCompleter(command_words),
            complete_while_typing=True,
        )
        read = functools.partial(session.prompt_async, prompt)
    while True:
        try:
            line = await read()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if line.lower() in EXIT_WORDS:
            break
        if line.lower() in HELP_WORDS:
            print_help(console, command_words())
            continue
        await _run_interruptible(dispatch_line(line), console)


def _piped_reader(stream: TextIO, console: Console, prompt: str) -> Callable[[], Awaitable[str]]:
    async def read() -> str:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            raise EOFError
        if line.strip():
            console.print(Text(prompt + inert(line.strip()), style="dim"))
        return line

    return read


async def _run_interruptible(work: Awaitable[None], console: Console) -> None:
    """Run one command so that Ctrl-C cancels it, not the whole REPL."""
    task = asyncio.ensure_future(work)
    with _cancel_on_sigint(task):
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the REPL itself is being cancelled: let it stop
            console.print(Text("Interrupted", style="yellow"))
        except Exception as exc:  # the caller should have handled it; keep the REPL alive
            console.print(Text(inert(f"Error: {exc}"), style="bold red"))


@contextlib.contextmanager
def _cancel_on_sigint(task: asyncio.Future[None]) -> Iterator[None]:
    """Route SIGINT to ``task.cancel`` and restore the previous handler afterwards."""
    loop = asyncio.get_running_loop()
    try:
        previous = signal.getsignal(signal.SIGINT)
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):
        yield  # not the main thread or not supported (Windows): default behaviour
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        # remove_signal_handler resets to Python's default handler, not the one before.
        signal.signal(signal.SIGINT, previous)
