"""Output read through a real terminal emulator (pyte, a VT100/VT220 model): what the
transcript, search and the text export show is what a terminal displayed.

Line-oriented output comes out line by line as each line is ended (carriage returns,
backspaces, erasing and cursor moves applied, as on screen). A full-screen program (``top``,
``vim``, ``less``: the alternate screen, ``ESC [ ? 1049 h``) comes out as screens: each
time its output settles (the end of a frame of output) with the display changed, the whole
display is one block of lines, so its text replays and is searchable as it was seen.

The emulator is as wide as the widest line could be (long lines are not wrapped, the
transcript keeps them whole); full-screen programs address cells by position, so the extra
columns stay blank.
"""

from __future__ import annotations

import re
from typing import Any

import pyte

from clustercord_builtins.terminal.ansi import strip_ansi

WIDE = 2048
"""Columns of the model: lines up to this long are kept whole."""
_SGR = re.compile(r"\x1b\[[0-9;:]*m")  # colours and attributes: nothing to lay out
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # all but the line feed
_LONE_CR = re.compile("\r(?!\n)")  # a carriage return that does not end a line
_C0 = bytes([*range(0x0A), *range(0x0B, 0x20), 0x7F])  # _CONTROL's, but the C1 ones


def _has_control(text: str) -> bool:
    """``_CONTROL.search(text)``, at less than half its cost on a 32 KB frame (Python's
    regex engine tests a class a character at a time): the C0 controls and DEL are bytes
    of their own in UTF-8, which ``bytes.translate`` deletes at C speed; the C1 ones are
    after a 0xC2 byte (then the regex tells)."""
    data = text.encode("utf-8", "surrogatepass")
    if b"\xc2" in data:
        return bool(_CONTROL.search(text))
    return len(data.translate(None, _C0)) != len(data)


_ALTERNATE = frozenset(mode << 5 for mode in (47, 1047, 1049))  # pyte shifts private modes


class _Screen(pyte.Screen):  # type: ignore[misc]
    """A pyte screen that hands over each line as a line feed ends it (outside the
    alternate screen)."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.done: list[str] = []

    def row(self, y: int) -> str:
        cells = self.buffer[y]
        if not cells:
            return ""
        return "".join(cells[x].data for x in range(max(cells) + 1)).rstrip()

    def select_graphic_rendition(self, *attrs: int, private: bool = False) -> None:
        # pyte 0.8 hands ``CSI > 4 ; 2 m`` (xterm's modifyOtherKeys, which vim sends) here
        # with ``private``; it sets no colour.
        if not private:
            super().select_graphic_rendition(*attrs)

    @property
    def alternate(self) -> bool:
        return bool(self.mode & _ALTERNATE)

    def linefeed(self) -> None:
        if not self.alternate:
            self.done.append(self.row(self.cursor.y))
        super().linefeed()

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        was = self.alternate
        super().set_mode(*modes, **kwargs)
        if self.alternate and not was:
            self.erase_in_display(2)  # a fresh screen to draw on, as a terminal gives
            self.cursor_position()

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        was = self.alternate
        super().reset_mode(*modes, **kwargs)
        if was and not self.alternate:
            self.erase_in_display(2)  # the program's screen is gone; the shell goes on
            self.cursor_position()


class Terminal:
    """``feed`` returns the lines completed (and the screens a full-screen program drew);
    ``pending`` is the unfinished line."""

    def __init__(self, lines: int = 24) -> None:
        self._screen = _Screen(WIDE, max(2, lines))
        self._stream = pyte.Stream(self._screen)
        self._shown: list[str] | None = None  # the last screen handed over
        self._line = ""  # an unfinished line of plain text, not given to the emulator yet

    def feed_text(self, text: str) -> str:
        """What :meth:`feed` completes, as one text: each line ended by a line feed, trailing
        blanks perhaps kept (the search index reads it: its trigrams hold those of the lines
        :meth:`feed` would give). Most output costs no work per line this way."""
        screen = self._screen
        fresh = screen.cursor.x == 0 and not screen.row(screen.cursor.y)
        if not screen.alternate and fresh and not ("\r" in text and _LONE_CR.search(text)):
            # Every carriage return ends a line: dropping each is replacing "\r\n" by "\n",
            # at a tenth of its cost on text beyond Latin-1 (a 32 KB frame: 16 µs, not 140).
            plain = text.replace("\r", "") if "\r" in text else text
            plain = _SGR.sub("", plain) if "\x1b" in plain else plain
            if not _has_control(plain):
                joined = self._line + plain  # the quick path of feed, without its split
                end = joined.rfind("\n") + 1
                self._line = joined[end:]
                return joined[:end]
        lines = self.feed(text)
        return "\n".join(lines) + "\n" if lines else ""

    def feed(self, text: str) -> list[str]:
        screen = self._screen
        text = text.replace("\r\n", "\n")
        plain = _SGR.sub("", text)
        fresh = screen.cursor.x == 0 and not screen.row(screen.cursor.y)  # nothing to overtype
        if not screen.alternate and not _CONTROL.search(plain) and fresh:
            # Most output: lines of text and colours, nothing that moves the cursor but
            # line ends. Read as the emulator would, without its cost per character; the
            # unfinished line is kept as text until something needs the emulator.
            lines = (self._line + plain).split("\n")
            self._line = lines.pop()
            return [line.rstrip() for line in lines]
        if self._line:
            self._stream.feed(self._line)
            self._line = ""
        try:
            self._stream.feed(text.replace("\n", "\r\n"))
        except Exception:
            # Output is whatever a program printed (or a hostile one): the text stays
            # readable, without the layout, and the emulator starts afresh.
            self._stream = pyte.Stream(screen)
            screen.done += [line.rstrip() for line in strip_ansi(text).split("\n")[:-1]]
        done, screen.done = screen.done, []
        if screen.alternate:
            display = [screen.row(y) for y in range(screen.lines)]
            while display and not display[-1]:
                display.pop()
            if display != self._shown and any(display):
                done += display
                self._shown = display
        else:
            self._shown = None
        return done

    @property
    def pending(self) -> str:
        screen = self._screen
        if self._line:
            return self._line.rstrip()
        return "" if screen.alternate else screen.row(screen.cursor.y)
