"""Terminal escape sequences: removing them, and reading output as the screen showed it.

Redaction looks at text with the escapes removed (a colour code between ``password:`` and
its value must not hide the value), yet masks the original: :func:`plain_with_origins`
keeps, for every visible character, where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ESCAPE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]                 # CSI: colours, cursor moves, erasing
    | \x9b[0-?]*[ -/]*[@-~]                 # the same with the 8-bit introducer
    | \x1b[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)  # OSC (window title), DCS, APC strings
    | \x1b[ #%()*+\-./][0-~]                # character sets and line attributes
    | \x1b[0-~]                             # two-character escapes (keypad modes, save cursor)
    """,
    re.VERBOSE,
)
# For redaction, strings such as a window title are text: shells put the last command line
# in the title, ``PGPASSWORD=...`` included. Only their introducer and terminator go.
_CODES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b[ #%()*+\-./][0-~]|\x1b[0-~]|\x07"
)
CSI = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])")
# Controls that draw nothing (a lone ESC too); Screen interprets \t \n \r \b.
_INVISIBLE = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]")


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences (colours, cursor moves, titles)."""
    return ESCAPE.sub("", text)


def strip_codes(text: str) -> str:
    """``text`` as redaction reads it: :func:`plain_with_origins` without the origins."""
    return _CODES.sub("", text)


def plain_with_origins(text: str) -> tuple[str, list[int]]:
    """``text`` without escape sequences, and for each of its characters the index it had
    in ``text``; one more entry, ``len(text)``, makes the end of a span easy to map."""
    plain: list[str] = []
    origins: list[int] = []
    at = 0
    for match in _CODES.finditer(text):
        plain.append(text[at : match.start()])
        origins.extend(range(at, match.start()))
        at = match.end()
    plain.append(text[at:])
    origins.extend(range(at, len(text)))
    origins.append(len(text))
    return "".join(plain), origins


class Screen:
    """Output read as a terminal would show it, line by line, simplified: carriage return,
    backspace, tab and erase-in-line apply to the current line; other escapes are dropped
    (a full-screen program comes out as the text it drew, in order).

    ``feed`` returns the lines completed by a newline; ``pending`` is the unfinished one.
    """

    def __init__(self) -> None:
        self._cells: list[str] = []
        self._col = 0

    def feed(self, text: str) -> list[str]:
        done: list[str] = []
        at = 0
        for match in ESCAPE.finditer(text):
            self._write(text[at : match.start()], done)
            self._escape(match.group())
            at = match.end()
        self._write(text[at:], done)
        return done

    @property
    def pending(self) -> str:
        return "".join(self._cells).rstrip()

    def _write(self, text: str, done: list[str]) -> None:
        for char in _INVISIBLE.sub("", text):
            if char == "\n":
                done.append(self.pending)
                self._cells, self._col = [], 0
            elif char == "\r":
                self._col = 0
            elif char == "\b":
                self._col = max(0, self._col - 1)
            elif char == "\t":
                self._put(" " * (8 - self._col % 8))
            else:
                self._put(char)

    def _put(self, chars: str) -> None:
        for char in chars:
            if self._col < len(self._cells):
                self._cells[self._col] = char
            else:
                self._cells.extend(" " * (self._col - len(self._cells)))
                self._cells.append(char)
            self._col += 1

    def _escape(self, sequence: str) -> None:
        match = CSI.fullmatch(sequence)
        if not match:
            return
        params, final = match.groups()
        number = int(params) if params.isdigit() else 0
        if final == "K":  # erase in line: 0 to the end, 1 to the cursor, 2 all of it
            if number == 0:
                del self._cells[self._col :]
            elif number == 1:
                self._cells[: self._col] = " " * min(self._col, len(self._cells))
            else:
                self._cells = []
        elif final == "C":
            self._col += max(number, 1)
        elif final == "D":
            self._col = max(0, self._col - max(number, 1))
        elif final == "G":
            self._col = max(number, 1) - 1


def screen_lines(text: str) -> Iterator[str]:
    """Every line of ``text`` as the screen showed it, the unfinished last one included."""
    screen = Screen()
    yield from screen.feed(text)
    if screen.pending:
        yield screen.pending
