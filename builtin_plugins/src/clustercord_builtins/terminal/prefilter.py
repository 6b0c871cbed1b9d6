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
  and 32 hex digits (the hex rule): Hyperscan finds runs of 20, and Python tells those
  apart by the windows of 20 it reports (:meth:`Prefilter.lines`, :func:`_random_run`);
* escape codes: a line holding one is judged on its text without them (as the rules read
  it), and reported only if that text has something of the above, a known secret or a
  prompt.

Python ignoring case matches ``ſ`` to ``s``, ``ı``/``İ`` to ``i`` and the Kelvin sign to
``k``, which Hyperscan does not: a block holding one of those is left to the Python path.
Without the ``hyperscan`` package (it has wheels for Linux on x86-64 only), :func:`load`
returns None and the Python path does all the work, with the same result.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from clustercord_builtins.terminal import rules
from clustercord_builtins.terminal.ansi import strip_codes

FOLDED = ("\u0130", "\u0131", "\u017f", "\u212a")
"""Characters that Python's case-insensitive matching (and :func:`.rules.fold`) takes for
an ASCII letter."""
_RUN_CHARS = "[A-Za-z0-9+/_-]"
_WINDOW = 20  # rules.BASE64_MIN: the shortest random string judged

_LITERAL, _ESCAPE, _FOLD, _RUN = 0, 1, 2, 3  # what a pattern's match means (its id's kind)
_LITERAL_BIT, _ESCAPE_BIT, _RUN_BIT = 1 << _LITERAL, 1 << _ESCAPE, 1 << _RUN
_HEX_BIT = 1 << 4  # a run of 20 hex digits: perhaps 32 (the hex rule's)
_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _patterns() -> list[tuple[bytes, int, int]]:
    """``(expression, flags, kind)`` of every pattern."""
    import hyperscan

    caseless = hyperscan.HS_FLAG_CASELESS
    words = sorted({*rules.NEEDED, "kind", "data", "-----begin"})
    found = [(_exact(word), caseless, _LITERAL) for word in words]
    # Runs of 20 of base64's alphabet (a hex run of 32 is one too): which have an upper-case
    # letter or 32 hex digits is told in Python, from the windows of 20 found. Hyperscan
    # telling it (a minimum length, which needs where a match starts) took half the scan.
    found += [(f"{_RUN_CHARS}{{{_WINDOW}}}".encode(), 0, _RUN)]
    found += [(_exact(c), 0, _ESCAPE) for c in ("\x1b", "\x9b", "\x07")]
    found += [(_exact(c), 0, _FOLD) for c in FOLDED]
    return found


def encode(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate too (text from a chat can hold one): a substring
    of the text is a substring of these bytes, and only then."""
    return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _chars(data: bytes, places: list[int]) -> list[int]:
    """Byte offsets (ascending, each where a character starts) in ``data`` as offsets in
    the text it encodes."""
    chars, byte, char = [], 0, 0
    for place in places:
        char += len(_text(data[byte:place]))
        byte = place
        chars.append(char)
    return chars


def _exact(text: str) -> bytes:
    """A pattern of ``text``'s UTF-8 bytes, each spelt in hex (nothing to escape)."""
    return "".join(f"\\x{b:02x}" for b in text.encode()).encode()


class Prefilter:
    """One compiled database, shared: a scan holds a lock (Hyperscan's scratch space is
    one scan's at a time), a few microseconds per block."""

    def __init__(self) -> None:
        import hyperscan

        patterns = _patterns()
        self._kinds = [kind for _, _, kind in patterns]
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[p for p, _, _ in patterns],
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=[f for _, f, _ in patterns],
        )
        self._terminated = hyperscan.ScanTerminated
        self._lock = threading.Lock()

    def lines(
        self,
        chunk: str,
        extra: Callable[[str], bool],
        dropped: list[tuple[int, str]] | None = None,
        data: bytes | None = None,
        runs_extra: Callable[[str], bool] | None = None,
    ) -> list[int] | None:
        """Where the lines of ``chunk`` (whole lines) that need work start, ascending; None
        when the block is the Python path's (a character Hyperscan cannot fold). A line
        with escape codes needs work if its text without them has what the patterns look
        for, or ``extra(text)`` says so (a known secret, a prompt). ``dropped``, if given,
        gets ``(start, text without codes)`` of each line with escape codes left out: a
        secret learned later may be in one (see :meth:`.StreamRedactor._drain`). ``data``:
        ``chunk`` encoded by :func:`encode`, if the caller has it. A line with a run of 20
        of base64's alphabet that is not random (a path) needs work if ``runs_extra(text)``
        says so (a known secret holding such a run: only such a line can hold one)."""
        data = encode(chunk) if data is None else data
        matches: list[tuple[int, int]] = []

        def on(id: int, start: int, end: int, flags: int, context: Any) -> None:
            matches.append((end, id))

        with self._lock:
            self._db.scan(data, match_event_handler=on)
        kinds = self._kinds
        if any(kinds[id] == _FOLD for _, id in matches):
            return None
        matches.sort()
        found: list[list[int]] = []  # [start, end, kinds found (bits)] of each line matched
        line_end = -1  # of the line being looked at
        for end, id in matches:
            if end > line_end:  # a match on a line after the last one
                start = data.rfind(b"\n", 0, end - 1) + 1
                line_end = data.find(b"\n", end - 1)
                line_end = len(data) if line_end < 0 else line_end
                found.append([start, line_end, 0])
            line = found[-1]
            kind = kinds[id]
            if kind != _RUN:
                line[2] |= 1 << kind
            elif not line[2] & _LITERAL_BIT:
                # A run of 20 ends here (one match for each place a run of more ends): an
                # upper-case letter in one makes its run random; 32 hex digits are looked
                # for only on a line with a window of nothing else.
                window = data[end - _WINDOW : end]
                if window.lower() != window:
                    line[2] |= _LITERAL_BIT
                elif not window.strip(_HEX_DIGITS):
                    line[2] |= _HEX_BIT | _RUN_BIT
                else:
                    line[2] |= _RUN_BIT
        starts: list[int] = []  # byte offsets of the lines that need work
        colour: list[int] = []  # lines with nothing but escape codes (or plain runs) found
        runs: list[int] = []  # lines with nothing but runs that are not random
        for start, end, bits in found:
            if bits & _LITERAL_BIT or (bits & _HEX_BIT and _HEX_RUN.search(data, start, end)):
                starts.append(start)
            elif bits & _ESCAPE_BIT:
                colour.append(start)
            else:
                runs.append(start)
        if runs and runs_extra is not None:
            texts = _plains(data, runs, strip=False)
            if runs_extra("\n".join(texts)):
                more = [s for s, text in zip(runs, texts, strict=True) if runs_extra(text)]
                starts = sorted([*starts, *more])
        left: list[tuple[int, str]] = []  # the coloured lines left out, with their text
        if colour:
            # Coloured lines are judged on their text without the codes: all of a block's
            # at once (most have nothing), one by one only if the block has something.
            plains = _plains(data, colour)
            if self._needs("\n".join(plains), extra):
                needs = [self._needs(p, extra) for p in plains]
                starts = sorted([*starts, *(s for s, n in zip(colour, needs, strict=True) if n)])
                left = [(s, p) for s, p, n in zip(colour, plains, needs, strict=True) if not n]
            else:
                left = list(zip(colour, plains, strict=True))
        if left and not chunk.isascii():  # (most output is: a byte is a character)
            wanted = sorted({*starts, *(s for s, _ in left)})  # one pass over the block
            place = dict(zip(wanted, _chars(data, wanted), strict=True))
            starts = [place[s] for s in starts]
            left = [(place[s], p) for s, p in left]
        elif not chunk.isascii():
            starts = _chars(data, starts)
        if dropped is not None:
            dropped += left
        return starts

    def _needs(self, plain: str, extra: Callable[[str], bool]) -> bool:
        """Whether ``plain`` (text without escape codes) has what calls for work."""
        if extra(plain):
            return True
        found = False
        kinds = self._kinds
        runs = False

        def on(id: int, start: int, end: int, flags: int, context: Any) -> bool:
            nonlocal found, runs
            if kinds[id] == _RUN:
                runs = True  # to be told by the run itself
                return False
            found = True
            return True  # one is enough: stop

        data = encode(plain)
        with self._lock:
            try:
                self._db.scan(data, match_event_handler=on)
            except self._terminated:
                pass
        return found or (runs and _random_run(data))


def _plains(data: bytes, starts: list[int], *, strip: bool = True) -> list[str]:
    """The lines at ``starts`` (byte offsets in ``data``), their escape codes removed (as
    the rules read them) unless not ``strip``: decoded and stripped all at once (no code
    holds a line end)."""
    lines = []
    for start in starts:
        end = data.find(b"\n", start)
        lines.append(data[start : len(data) if end < 0 else end])
    text = _text(b"\n".join(lines))
    return (strip_codes(text) if strip else text).split("\n")


def has_run(value: str) -> bool:
    """Whether ``value`` holds 20 characters of base64's alphabet in a row: then a line
    holding it has a run the prefilter finds (see :meth:`Prefilter.lines`)."""
    return bool(_TEXT_RUN.search(value))


_TEXT_RUN = re.compile(f"{_RUN_CHARS}{{{_WINDOW}}}")


def _random_run(line: bytes) -> bool:
    """Whether ``line`` has a run of base64's alphabet that the prefilter reports: 20
    characters or more with an upper-case letter among them, or 32 hex digits. Hyperscan
    finds runs of 20 (at a fraction of the cost of telling these apart itself, which needs
    where a match starts); the few lines with one are told here."""
    if line.lower() == line:  # no upper case (a path, a hex id): 32 hex digits or nothing
        return bool(_HEX_RUN.search(line))
    return any(run.lower() != run or _HEX_RUN.search(run) for run in _BASE64_RUN.findall(line))


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{20,}")
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{32}")


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
    So they are compiled into Hyperscan literal databases, one pass each for all, kept as
    a binary counter is: every :data:`SMALL` new values make a database, and two of the
    same size are compiled again as one; so the sizes halve from the oldest to the newest
    (a dozen databases for thousands of values), and each value is compiled about
    log2(values / SMALL) times, 10-15 µs each. Only the newest few, fewer than
    :data:`SMALL`, are tested one by one. (A main database compiled again at each eighth
    of growth, and a tail compiled again every 16 values, compiled each value some fifteen
    times: a sixth of a long recording's CPU.)"""

    SMALL = 8

    def __init__(self, small: int | None = None) -> None:
        """``small``: :data:`SMALL` for this one (more, for values looked for in small
        texts only: each tested one by one costs less there)."""
        import hyperscan

        self._small = small or self.SMALL

        self._hyperscan = hyperscan
        self._values: list[str] = []
        self._seen: set[str] = set()
        self._dbs: list[tuple[int, int, Any]] = []  # (first value, how many, database)
        self._compiled = 0  # the first this many values are in the databases
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value not in self._seen:
            self._seen.add(value)
            self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Any:
        return iter(self._values)

    def held_in(self, text: str, data: bytes | None = None) -> list[str]:
        """The values ``text`` holds (``data``: ``text`` encoded by :func:`encode`, if the
        caller has it)."""
        values = self._values
        if len(values) - self._compiled >= self._small:
            self._grow()
        found = [value for value in values[self._compiled :] if value in text]
        if not text or not self._dbs:
            return found
        data = encode(text) if data is None else data
        for first, _, db in self._dbs:
            ids: set[int] = set()

            def on(id: int, start: int, end: int, flags: int, context: Any) -> None:
                ids.add(id)  # noqa: B023 - called during this very scan

            with self._lock:
                db.scan([data], match_event_handler=on)
            found += [values[first + id] for id in sorted(ids)]
        return found

    def _grow(self) -> None:
        """The values not compiled yet as a database; then the newest two as one while
        they are the same size (the newer one is never larger)."""
        values, dbs = self._values, self._dbs
        first = self._compiled
        dbs.append((first, len(values) - first, self._compile(values[first:])))
        self._compiled = len(values)
        while len(dbs) > 1 and dbs[-1][1] >= dbs[-2][1]:
            (first, older, _), (_, newer, _) = dbs.pop(-2), dbs.pop()
            count = older + newer
            dbs.append((first, count, self._compile(values[first : first + count])))

    def _compile(self, values: list[str]) -> Any:
        hs = self._hyperscan
        # Vectored mode (a list of buffers, here one): it scans as block mode does, but
        # block mode took up to a third of a second to compile some sets of a few dozen
        # literals (measured: 16 keys, 346 ms block, 0.5 ms vectored).
        db = hs.Database(mode=hs.HS_MODE_VECTORED)
        db.compile(
            expressions=[encode(v) for v in values],
            ids=list(range(len(values))),
            elements=len(values),
            flags=hs.HS_FLAG_SINGLEMATCH,  # which values, not where: once is enough
            literal=True,
        )
        return db


def known_secrets(small: int | None = None) -> KnownSecrets | None:
    """A fresh :class:`KnownSecrets`, or None without ``hyperscan``."""
    return KnownSecrets(small) if load() is not None else None
