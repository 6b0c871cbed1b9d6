"""Steering a live replay from the console's keyboard: the chat's buttons as keys.

A replay in chat has buttons (pause, resume, faster, back, stop); a terminal has keys. While
a replay plays on the console and its input is a terminal, the terminal is put in cbreak
mode (each key read as it is pressed, not echoed; Ctrl-C still interrupts) and the event
loop reads the keys: space pauses and resumes, ``f`` plays faster, ``b`` goes back, ``q``
stops. The terminal's mode is restored when the replay ends, however it ends. Without a
terminal (a script, a pipe) nothing is read: the replay simply plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from clustercord_builtins.terminal.session import Replay

HELP = "Space pauses and resumes, f plays faster, b goes back 10 s, q stops."


def act(replay: Replay, keys: str) -> None:
    """What ``keys`` (as read) do to ``replay``."""
    for key in keys:
        if key == " " and replay.paused:
            replay.resume()
        elif key == " ":
            replay.pause()
        elif key in "fF+":
            replay.faster()
        elif key in "bB":
            replay.rewind()
        elif key in "qQ":
            replay.stop()


@contextlib.contextmanager
def steered_by_keys(replay: Replay, stream: TextIO | None = None) -> Iterator[bool]:
    """Read keys for ``replay`` while in the block; yields whether keys are read (the
    input is a terminal)."""
    stream = sys.stdin if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by something without one
        fd = -1
    if fd < 0 or not os.isatty(fd):
        yield False
        return
    import termios
    import tty

    before: Any = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def read() -> None:
        try:
            keys = os.read(fd, 64)
        except OSError:
            loop.remove_reader(fd)
            return
        act(replay, keys.decode(errors="replace"))

    tty.setcbreak(fd)
    loop.add_reader(fd, read)
    try:
        yield True
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, before)
