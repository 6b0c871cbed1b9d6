"""Which lines of a block of output the redactor has work on, in one pass of Hyperscan.

The redactor releases lines that nothing could act on as they are, many at once (see
:meth:`.redaction.StreamRedactor._look`); telling which those are took a few Python regex
passes over every character, the most of a bulk stream's cost. Hyperscan (a multi-pattern
engine made for this) runs all of them in one pass over the block's bytes, at gigabytes a
second; only the lines it reports go through the exact Python rules.

What it looks for is a superset of what any rule, the structure or a private key acts on,
so a line it does not report is one the exact path would leave as it is:

* each literal a rule cannot match without (:data:`.rules.NEEDED`), ``kind``, ``data`` and
  ``-----begin``, ignoring case;
* 20 characters of base64's alphabet with an upper-case letter among them (a random
  base64 string has one, :func:`.rules._random_base64`; so has a Discord token's start),
  and 32 hex digits (the hex rule);
* escape codes: a line holding one is judged on its text without them (as the rules read
  it), and reported only if that text has something of the above, a known secret or a
  prompt.

Python ignoring case matches ``ſ`` to ``s``, ``ı``/``İ`` to ``i`` and the Kelvin sign to
``k``, which Hyperscan does not: a block holding one of those is left to the Python path.
Without the ``hyperscan`` package (it has wheels for Linux on x86-64 only), :func:`load`
returns None and the Python path does all the work, with the same result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from clustercord_builtins.terminal import rules
from clustercord_builtins.terminal.ansi import strip_codes

FOLDED = ("\u0130", "\u0131", "\u017f", "\u212a")
"""Characters that Python's case-insensitive matching (and :func:`.rules.fold`) takes for
an ASCII letter."""
_RUN = "[A-Za-z0-9+/_-]"
_WINDOW = 20  # rules.BASE64_MIN: the shortest random string judged

_LITERAL, _ESCAPE, _FOLD = 0, 1, 2  # what a pattern's match means (its id's kind)


def _patterns() -> list[tuple[bytes, int, int, int]]:
    """``(expression, flags, minimum length, kind)`` of every pattern."""
    import hyperscan

    caseless = hyperscan.HS_FLAG_CASELESS
    words = sorted({*rules.NEEDED, "kind", "data", "-----begin"})
    found = [(_exact(word), caseless, 0, _LITERAL) for word in words]
    # 20 or more characters of base64's alphabet, one of them upper case: a minimum length
    # (which needs where a match starts) rather than the 20 places the letter can be in a
    # window of 20, which took a quarter of a second to compile.
    upper_run = f"{_RUN}*[A-Z]{_RUN}*".encode()
    found += [(upper_run, hyperscan.HS_FLAG_SOM_LEFTMOST, _WINDOW, _LITERAL)]
    found += [(b"[0-9a-fA-F]{32}", 0, 0, _LITERAL)]
    found += [(_exact(c), 0, 0, _ESCAPE) for c in ("\x1b", "\x9b", "\x07")]
    found += [(_exact(c), 0, 0, _FOLD) for c in FOLDED]
    return found


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate too (text from a chat can hold one): a substring
    of the text is a substring of these bytes, and only then."""
    return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _exact(text: str) -> bytes:
    """A pattern of ``text``'s UTF-8 bytes, each spelt in hex (nothing to escape)."""
    return "".join(f"\\x{b:02x}" for b in text.encode()).encode()


class Prefilter:
    """One compiled database, shared: a scan holds a lock (Hyperscan's scratch space is
    one scan's at a time), a few microseconds per block."""

    def __init__(self) -> None:
        import hyperscan

        patterns = _patterns()
        self._kinds = [kind for _, _, _, kind in patterns]
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        least = hyperscan.HS_EXT_FLAG_MIN_LENGTH
        self._db.compile(
            expressions=[p for p, _, _, _ in patterns],
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=[f for _, f, _, _ in patterns],
            # (flags, min_offset, max_offset, min_length, edit_distance, hamming_distance)
            ext=[(least if n else 0, 0, 0, n, 0, 0) for _, _, n, _ in patterns],
        )
        self._terminated = hyperscan.ScanTerminated
        self._lock = threading.Lock()

    def lines(self, chunk: str, extra: Callable[[str], bool]) -> list[int] | None:
        """Where the lines of ``chunk`` (whole lines) that need work start, ascending; None
        when the block is the Python path's (a character Hyperscan cannot fold). A line
        with escape codes needs work if its text without them has what the patterns look
        for, or ``extra(text)`` says so (a known secret, a prompt)."""
        data = _utf8(chunk)
        matches: list[tuple[int, int]] = []

        def on(id: int, start: int, end: int, flags: int, context: Any) -> None:
            matches.append((end, id))

        with self._lock:
            self._db.scan(data, match_event_handler=on)
        kinds = self._kinds
        if any(kinds[id] == _FOLD for _, id in matches):
            return None
        matches.sort()
        starts: list[int] = []  # byte offsets of the lines that need work
        colour: list[int] = []  # of those, the ones with nothing but escape codes found
        line_end = -1  # of the line being looked at
        for end, id in matches:
            if end > line_end:  # a match on a line after the last one
                start = data.rfind(b"\n", 0, end - 1) + 1
                line_end = data.find(b"\n", end - 1)
                line_end = len(data) if line_end < 0 else line_end
                starts.append(start)
                colour.append(start)
            if kinds[id] != _ESCAPE and colour and colour[-1] == starts[-1]:
                colour.pop()
        if colour:
            # Coloured lines are judged on their text without the codes: all of a block's
            # at once (most have nothing), one by one only if the block has something.
            plains = [self._plain(data, start) for start in colour]
            if self._needs("\n".join(plains), extra):
                drop = {s for s, p in zip(colour, plains, strict=True) if not self._needs(p, extra)}
            else:
                drop = set(colour)
            starts = [start for start in starts if start not in drop]
        if chunk.isascii():  # most output: a byte is a character
            return starts
        places, byte, char = [], 0, 0
        for start in starts:
            char += len(_text(data[byte:start]))
            byte = start
            places.append(char)
        return places

    @staticmethod
    def _plain(data: bytes, start: int) -> str:
        """The line at ``start``, its escape codes removed (as the rules read it)."""
        end = data.find(b"\n", start)
        return strip_codes(_text(data[start : len(data) if end < 0 else end]))

    def _needs(self, plain: str, extra: Callable[[str], bool]) -> bool:
        """Whether ``plain`` (text without escape codes) has what calls for work."""
        if extra(plain):
            return True
        found = False

        def on(id: int, start: int, end: int, flags: int, context: Any) -> bool:
            nonlocal found
            found = True
            return True  # one is enough: stop

        with self._lock:
            try:
                self._db.scan(_utf8(plain), match_event_handler=on)
            except self._terminated:
                pass
        return found


_shared: list[Prefilter | None] = []
_shared_lock = threading.Lock()


def load() -> Prefilter | None:
    """The prefilter (compiled once, on first use), or None without ``hyperscan``."""
    with _shared_lock:
        if not _shared:
            try:
                _shared.append(Prefilter())
            except ImportError:
                _shared.append(None)
        return _shared[0]


class KnownSecrets:
    """Which of a growing set of values (the secrets a stream has masked, to mask again
    wherever they show up) a text holds. A substring test each costs a pass over the text
    per value: with the thousands a long stream learns, that was the most of its cost.
    So they are compiled into Hyperscan literal databases, one pass each for all: a main
    one (compiled again whenever the values past it outnumber an eighth of those in it:
    each value is compiled about nine times in all, 15 µs each) and a tail of those past
    it (compiled again every :data:`SMALL` new values: small, so cheap to compile); only
    the newest few, fewer than :data:`SMALL`, are tested one by one. (With the main
    database alone, a stream that had learned 1,700 secrets tested up to 200 one by one on
    each text: a third of its recording's CPU.)"""

    SMALL = 16

    def __init__(self) -> None:
        import hyperscan

        self._hyperscan = hyperscan
        self._values: list[str] = []
        self._seen: set[str] = set()
        self._db: Any = None
        self._compiled = 0  # the first this many values are in the main database
        self._tail: Any = None  # values[_compiled:_tail_end], when there are
        self._tail_end = 0
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value not in self._seen:
            self._seen.add(value)
            self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Any:
        return iter(self._values)

    def held_in(self, text: str) -> list[str]:
        values = self._values
        if len(values) - self._compiled > max(self.SMALL, self._compiled // 8):
            self._db, self._compiled = self._compile(values), len(values)
            self._tail, self._tail_end = None, len(values)
        elif len(values) - self._tail_end >= self.SMALL:
            self._tail, self._tail_end = self._compile(values[self._compiled :]), len(values)
        found = [value for value in values[self._tail_end :] if value in text]
        if not text:
            return found
        data = None
        for db, first in ((self._db, 0), (self._tail, self._compiled)):
            if db is None:
                continue
            ids: set[int] = set()

            def on(id: int, start: int, end: int, flags: int, context: Any) -> None:
                ids.add(id)  # noqa: B023 - called during this very scan

            data = _utf8(text) if data is None else data
            with self._lock:
                db.scan(data, match_event_handler=on)
            found += [values[first + id] for id in sorted(ids)]
        return found

    def _compile(self, values: list[str]) -> Any:
        hs = self._hyperscan
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(
            expressions=[_utf8(v) for v in values],
            ids=list(range(len(values))),
            elements=len(values),
            flags=hs.HS_FLAG_SINGLEMATCH,  # which values, not where: once is enough
            literal=True,
        )
        return db


def known_secrets() -> KnownSecrets | None:
    """A fresh :class:`KnownSecrets`, or None without ``hyperscan``."""
    return KnownSecrets() if load() is not None else None
