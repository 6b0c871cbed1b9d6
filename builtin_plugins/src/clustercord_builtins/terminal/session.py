"""Running a recorded session: one command line, or a shell held in a conversation.

Output goes through the :class:`~.recording.Recorder` before anyone sees it, so what the
chat shows is what the recording keeps: secrets masked in both, never in clear in either.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from clustercord_builtins.terminal.ansi import strip_ansi
from clustercord_builtins.terminal.recording import Recorder, Recording
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import code_block

CHAT_CHUNK = 1900
"""Characters of output per chat message: Discord's 2,000 less the code fence."""

POST_EVERY = 1.0
"""Seconds between output messages in a thread: Discord allows about five messages per
five seconds in a channel, and a shell can print far faster."""

QUIET = 0.3
"""Seconds without output after which a held, unfinished line is shown."""

TERMINAL_SIZE = (100, 30)

IDLE_LIMIT = 2.0
"""Seconds a pause of the recording lasts at most in a live replay (asciinema's
``idle_time_limit``): nobody wants to watch someone think for a minute."""

REPLAY_TICK = 0.05
"""Seconds between looks at a live replay's buttons while it waits."""

# Typed alone on a line, these reach the shell as the control character a terminal sends.
CONTROL_KEYS = {"^C": "\x03", "^D": "\x04", "^Z": "\x1a", "^\\": "\x1c"}


def chunks(text: str, size: int = CHAT_CHUNK) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, at line ends where possible."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = size if cut <= 0 else cut + 1
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


class ChatOutput:
    """Output on its way to a conversation: gathered, then posted at a bounded rate."""

    def __init__(self, post: Callable[[str], Awaitable[Any]], every: float = POST_EVERY) -> None:
        self._post = post
        self._every = every
        self._pending = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, text: str) -> None:
        if text:
            self._pending += text
            self._wake.set()

    async def __aenter__(self) -> ChatOutput:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._post_pending()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._post_pending()
            await asyncio.sleep(self._every)

    async def _post_pending(self) -> None:
        text, self._pending = strip_ansi(self._pending).strip("\n"), ""
        for piece in chunks(text):
            if piece.strip():
                await self._post(code_block(piece))


async def run_command(
    kubernetes: Any, recorder: Recorder, target: dict[str, Any], timeout: float
) -> tuple[Recording, bool]:
    """Run the recorder's command to its end (or ``timeout``); the recording, and whether
    the command was cut off."""
    session = await kubernetes.exec(target["pod"], recorder.command, **_where(target))
    timed_out = False
    async with session:
        try:
            async with asyncio.timeout(timeout):
                async for _stream, data in session:
                    recorder.output(data)
        except TimeoutError:
            timed_out = True
    return recorder.finish(None if timed_out else session.exit_code), timed_out


async def run_shell(
    kubernetes: Any,
    recorder: Recorder,
    target: dict[str, Any],
    conversation: Any,
    *,
    owner: str,
    idle_timeout: float,
    post_every: float = POST_EVERY,
) -> tuple[Recording, str]:
    """A shell whose input is what ``owner`` writes in ``conversation``, one line per
    message, and whose output is posted back; the recording and why it ended."""
    session = await kubernetes.exec(
        target["pod"], recorder.command, stdin=True, tty=True, **_where(target)
    )
    cols, rows = TERMINAL_SIZE
    async with session, ChatOutput(conversation.send, post_every) as chat:
        await session.resize(cols, rows)
        recorder.resize(cols, rows)

        async def pump() -> None:
            while True:
                try:
                    chunk = await session.read(timeout=QUIET)
                except TimeoutError:
                    # A prompt or a "[y/N]" question ends without a newline: the redactor
                    # releases what it safely can once output goes quiet, the rest (masked
                    # if it could be a secret) after a short while of quiet.
                    chat.add(recorder.flush())
                    continue
                if chunk is None:
                    break
                chat.add(recorder.output(chunk[1]))
            chat.add(recorder.flush(give_up=True))  # the output ended: nothing more is coming

        output = asyncio.create_task(pump())
        ended = "the shell exited"
        try:
            while not output.done():
                message = asyncio.create_task(conversation.receive(timeout=idle_timeout))
                await asyncio.wait({output, message}, return_when=asyncio.FIRST_COMPLETED)
                if not message.done():
                    message.cancel()
                    break
                typed = message.result()
                if typed is None:
                    ended = f"nothing was typed for {idle_timeout:g} s"
                    break
                if typed.user_id != owner:
                    continue  # only the session's owner types into it
                line = typed.text
                keys = CONTROL_KEYS.get(line.strip(), line + "\n")
                recorder.input(keys)
                await session.write(keys)
        finally:
            if not output.done():
                await session.close()
            with contextlib.suppress(asyncio.CancelledError, CommandError):
                await output
    return recorder.finish(session.exit_code), ended


def _where(target: dict[str, Any]) -> dict[str, Any]:
    return {k: target[k] for k in ("namespace", "cluster", "container")}


class Replay:
    """A live replay's state, shared by its loop and the buttons that steer it.

    Replays are found by id through a registry in memory: a replay lives exactly as long as
    the command that plays it (``with Replay(...)``), so a restart simply ends it.
    """

    _running: dict[str, Replay] = {}

    def __init__(self, viewer: str, speed: float) -> None:
        self.id = secrets.token_hex(4)
        self.viewer = viewer
        self.speed = speed
        self.paused = False
        self.stopped = False
        self.rewound = False  # the loop goes back, then clears it
        self._changed = False  # the view is to be redrawn

    @classmethod
    def running(cls, replay_id: str) -> Replay | None:
        return cls._running.get(replay_id)

    def __enter__(self) -> Replay:
        Replay._running[self.id] = self
        return self

    def __exit__(self, *exc: object) -> None:
        Replay._running.pop(self.id, None)

    def pause(self) -> None:
        self.paused, self._changed = True, True

    def resume(self) -> None:
        self.paused, self._changed = False, True

    def faster(self) -> None:
        self.speed, self._changed = min(self.speed * 2, 64.0), True

    def rewind(self) -> None:
        self.rewound, self._changed = True, True

    def stop(self) -> None:
        self.stopped = True

    async def wait(self, seconds: float) -> float | None:
        """Let ``seconds`` of the recording pass at the current speed; time stands still
        while paused. Returns the time still to wait when the viewer changed something
        (redraw the view, then wait again); ``None`` once waited, or stopped."""
        remaining = seconds
        while (remaining > 0 or self.paused) and not self.stopped:
            if self._changed:
                self._changed = False
                return remaining
            playing, speed = not self.paused, self.speed
            step = min(REPLAY_TICK, remaining / speed) if playing else REPLAY_TICK
            await asyncio.sleep(step)
            if playing:  # the time this step played, at the speed it played at
                remaining -= step * speed
        return None
