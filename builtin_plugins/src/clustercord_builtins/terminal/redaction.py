"""Masking secrets in terminal output before anything stores, shows or exports it.

One engine serves both entry points: :class:`StreamRedactor` gets output in arbitrary
chunks and releases lines once nothing later can change how they are masked;
:meth:`Redactor.redact` is the same engine fed everything at once. So a secret split
across frames is masked exactly as if it had arrived whole.

What is held back, and for how long:

* the unfinished last line (a secret may still be arriving). A line longer than the window
  is cut at a space near the window's end, at the same place whatever the chunking;
* the values of a ``data:`` block whose object's ``kind`` is not known yet: ``kubectl get
  secret -o yaml`` prints ``data`` before ``kind``. They are masked if ``kind: Secret``
  follows, or if no kind comes before the object ends or the window fills (fail closed);
  a ``kind: ConfigMap`` releases them unchanged.

Output going quiet (:meth:`StreamRedactor.flush`) does not end anything: the stream's state
(objects, blocks, keys) stays, and of the unfinished line only the part before anything a
rule or the structure could act on is released, cut at a space; the rest waits for the line's
end, or for :data:`HOLD` seconds of quiet, after which it is released masked conservatively
(as if the line had ended, and its last word masked if it could be a secret). When the line
ends, the part already released is not released again. Only :meth:`StreamRedactor.end`
(the session is over) treats the unfinished line as complete.

A private key needs no holding: from its ``BEGIN`` line on, every line of key material is
masked as it comes (one finding per key), until ``END`` or a line that is not key material.

Findings carry a hash prefix of each secret (never the secret): enough to tell that two
sessions leaked the same one.

Most output needs no work: while nothing is under way, whole lines with nothing in them that
a rule or the structure looks for are released as they are, many at once, and the same as
line by line (see :meth:`StreamRedactor._drain`).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clustercord_builtins.terminal import prefilter as _prefilter
from clustercord_builtins.terminal import rules
from clustercord_builtins.terminal.ansi import ESCAPE, plain_with_origins
from clustercord_builtins.terminal.rules import Hit

WINDOW = 8192
"""Characters held back at most: of an unfinished line, or of lines awaiting a ``kind``."""
LOOK = 1 << 16
"""Characters of whole lines told apart at once into those that need work and the rest (see
:meth:`StreamRedactor._look`): a 32 KB frame in one go."""
KNOWN_MIN = 6
"""Characters a secret needs to be masked again wherever it shows up later."""
_ESCAPES = ("\x1b", "\x9b", "\x07")  # what starts (or ends) an escape sequence
_ESCAPE_CHAR = re.compile("[" + "".join(_ESCAPES) + "]")
HOLD = 0.5
"""Seconds an idle stream keeps back what could still be (or complete) a secret before it
releases it, masked conservatively."""
PROMPTS_KEPT = 8
MASK = "*" * 12
PREFIXED_MASK = "*" * 15  # after a kept prefix: ``sk_live_***************``, as in the spec

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"\s*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: .*)?\s*")
_CERT_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*CERTIFICATE(?: REQUEST)?-----")
_CERT_END = re.compile(r"-----END (?:[A-Z0-9]+ )*CERTIFICATE(?: REQUEST)?-----")
# ``key: value`` in YAML, ``"key": value,`` in JSON; a list item's ``- `` counts as indent.
_KEY_LINE = re.compile(
    r"^(?P<indent> *)(?P<dash>- +)?(?P<q>[\"']?)(?P<key>[A-Za-z0-9_./-]+)(?P=q) *:"
    r"(?: +(?P<value>.*?))? *,? *$"
)
_CLOSER = re.compile(r"^ *[}\]] *,? *$")
# What the structure and private keys act on besides what the rules look for, all folded.
_NOTEWORTHY = re.compile(rules.any_of([*rules.NEEDED, "kind", "data", "-----begin"]))


@dataclass(frozen=True)
class Finding:
    """A masked secret: which rule, where in the input, and a hash prefix of it."""

    rule: str
    start: int
    end: int
    fingerprint: str


def fingerprint(secret: str) -> str:
    # surrogatepass: typed text can hold a lone surrogate, which UTF-8 cannot
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def mask_for(keep: str) -> str:
    return keep + PREFIXED_MASK if keep else MASK


@dataclass
class _Line:
    text: str  # as received, terminator included
    offset: int  # of its first character in everything fed
    plain: str  # without escape codes and terminator: what the rules read
    origins: list[int] | None  # where each character of plain is in text (None: the same)
    hits: list[Hit] = field(default_factory=list)
    if_secret: list[Hit] = field(default_factory=list)  # applied if kind: Secret follows
    closes: list[int] = field(default_factory=list)  # the private keys (groups) it ends
    skip: int = 0  # characters of text released before the line ended (an idle flush)

    @classmethod
    def of(cls, text: str, offset: int) -> _Line:
        if not any(code in text for code in _ESCAPES):
            return cls(text, offset, text.rstrip("\r\n"), None)  # no escape codes: most lines
        plain, origins = plain_with_origins(text)
        return cls(text, offset, plain.rstrip("\r\n"), origins)

    def span(self, hit: Hit) -> tuple[int, int]:
        """Where ``hit`` (over ``plain``) is in ``text``."""
        if self.origins is None:
            return hit.start, hit.end
        return self.origins[hit.start], self.origins[hit.end - 1] + 1


@dataclass
class _Block:
    """Lines indented below ``data:``/``stringData:`` (or below ``password: |``)."""

    indent: int
    rule: str
    secret: bool | None  # None: the object's kind is not known yet
    entries: int | None = None  # indent of its ``key: value`` lines


class StreamRedactor:
    """Redacts output that arrives in pieces; see the module's docstring.

    ``"".join(feed(c) for c in chunks) + end()`` is the same text whatever the chunks,
    with calls of :meth:`flush` (output went quiet) anywhere in between, as long as no
    :data:`HOLD` seconds pass. :meth:`end` ends the stream as if it were complete.
    """

    def __init__(
        self,
        *,
        window: int = WINDOW,
        hold: float = HOLD,
        clock: Callable[[], float] = time.monotonic,
        prefilter: _prefilter.Prefilter | bool | None = True,
    ) -> None:
        """``prefilter``: where lines need work is told by Hyperscan (True: the shared
        one, if the package is there) or by Python's regex engine (None or False): the
        same lines released the same way, only the cost differs."""
        self.window = window
        self._prefilter = _prefilter.load() if prefilter is True else prefilter or None
        self.hold = hold
        self._clock = clock
        self._released = 0  # characters of the unfinished line (the tail) already released
        self._quiet_since: float | None = None  # when an idle flush first kept something
        # Prompts seen when the user typed (see note_prompt): a secret printed without a
        # newline ends up glued to the next one, ``Xk9!pq2Lw/ # ``, with nothing else to tell.
        self._prompts: list[str] = []
        self.findings: list[Finding] = []
        self._tail = ""
        self._offset = 0
        self._held: list[_Line] = []
        self._held_size = 0
        self._pending = False  # the held lines wait for a kind
        self._block: _Block | None = None
        self._awaiting: int | None = None  # indent of the object whose kind decides
        self._kinds: dict[int, str] = {}  # kind of the objects open, by their key indent
        self._key: int | None = None  # the private key being read
        self._keys = 0
        self._groups: dict[int, list[Any]] = {}  # key -> [start, end, sha256 of its lines]
        self._certificate = False
        self._mask_all: str | None = None  # the echo awaited while masking whole lines
        # Secrets already masked in this stream (or typed by the user), in memory only: a
        # value seen once as ``API_TOKEN=...`` is masked wherever it shows up later, bare.
        self._known: set[str] = set()
        self._learned: list[str] = []  # the same, in the order learned
        # The same values, for telling which a text holds in one pass (Hyperscan's): those
        # holding a run of base64's alphabet in a finder of their own (see _look).
        self._known_finder = _prefilter.known_secrets() if self._prefilter else None
        self._run_finder = _prefilter.known_secrets(small=64) if self._prefilter else None

    @property
    def held(self) -> int:
        """Characters received but not released yet."""
        return len(self._tail) - self._released + self._held_size

    def mask_all(self, on: bool, *, echo: str = "") -> None:
        """Mask every line from now on whole (``on``), or stop. For the output of a command
        that prints a bare secret (see :func:`.rules.reveals_secret`); a first line ending
        with ``echo`` (the terminal echoing the command) stays. Switch right after a flush,
        so that it applies from a line's start."""
        self._mask_all = echo if on else None

    def learn(self, secrets: Iterable[str]) -> None:
        """Mask these values from now on wherever they appear (secrets found elsewhere, such
        as in what the user typed). Values shorter than :data:`KNOWN_MIN` are ignored: a
        short word would mask ordinary text."""
        fresh = {s for s in (x.strip() for x in secrets) if len(s) >= KNOWN_MIN} - self._known
        self._known.update(fresh)
        self._learned += sorted(fresh)
        if self._known_finder is not None and self._run_finder is not None:
            for value in sorted(fresh):
                runs = _prefilter.has_run(value) and "\n" not in value
                (self._run_finder if runs else self._known_finder).add(value)

    def note_prompt(self) -> None:
        """The user is typing: the unfinished line is the shell's prompt (``/ # ``). Kept
        (a few, in memory only) to recognise output glued to the next prompt."""
        plain = strip_escapes(self._tail)
        if not (0 < len(plain) <= 80) or plain in self._prompts or not plain.rstrip():
            return
        if plain.rstrip()[-1] not in "$#%>" or self._glued_hits(plain):
            return  # not a shell prompt, or one with output glued to it
        self._prompts = [*self._prompts, plain][-PROMPTS_KEPT:]

    def feed(self, text: str) -> str:
        self._tail += text
        return self._drain(final=False)

    def flush(self, *, give_up: bool = False) -> str:
        """Output went quiet: release what nothing later can change. What could still be (or
        complete) a secret is kept until its line ends or :data:`HOLD` seconds of quiet (or
        ``give_up``) pass; then it is released masked conservatively."""
        out = self._drain(final=False)
        if not self.held:
            self._quiet_since = None
            return out
        now = self._clock()
        if self._quiet_since is None:
            self._quiet_since = now
        if give_up or now - self._quiet_since >= self.hold:
            self._quiet_since = None
            return out + self._give_up()
        return out + self._release_safe()

    def end(self) -> str:
        """The stream is over: the unfinished line is complete, whatever is open ends."""
        out = self._drain(final=True)
        if self._pending:
            self._decide(True)
            out += self._release()
        self._end_key(None)
        self._block, self._awaiting, self._kinds, self._certificate = None, None, {}, False
        self._quiet_since = None
        return out

    # -- idle: the unfinished line ------------------------------------------------------
    def _safe_to_split(self) -> bool:
        """Whether a line's start can be judged without its end: nothing is held for a
        kind, and no block, key or whole-line masking would take the line whole."""
        return not (
            self._held or self._block or self._key is not None or self._mask_all is not None
        )

    def _release_safe(self) -> str:
        """Of the unfinished line, what is before the first place a rule, the structure or
        a known secret could act on (cut at a space: a word may go on), plus a secret glued
        to a known prompt, masked (nothing after it can change that)."""
        if not self._safe_to_split():
            return ""
        tail, skip = self._tail, self._released
        line = _Line.of(tail, self._offset)
        glued = self._glued_hits(line.plain)
        start = max([skip, *(line.span(h)[1] for h in glued)])
        rest = tail[start:]
        limit = min(self._marks(rest), default=len(rest))
        limit = min(limit, self._known_prefix_at_end(rest))
        cut = start + max(rest.rfind(c, 0, limit) for c in " \t\r") + 1
        if glued and cut <= start:
            cut = start  # the mask alone
        elif cut <= skip:
            return ""
        line.hits = glued
        return self._render(line, skip=skip, stop=cut)

    def _marks(self, text: str) -> list[int]:
        """Where ``text`` holds something that rules, structure or known secrets act on."""
        folded = rules.fold(text)
        marks = [
            m.start() for p in (_NOTEWORTHY, rules.RUN, _ESCAPE_CHAR) for m in p.finditer(folded)
        ]
        marks += [i for known in self._known_in(text) for i in _occurrences(text, known)]
        return marks

    def _known_prefix_at_end(self, text: str) -> int:
        """Where ``text`` ends with the start of a known secret holding a space (one without
        shows as the last word, which is held anyway); ``len(text)`` if it does not."""
        for known in self._known:
            if " " in known:
                for size in range(len(known) - 1, 0, -1):
                    if text.endswith(known[:size]):
                        return len(text) - size
        return len(text)

    def _give_up(self) -> str:
        """Quiet long enough: release everything held, masked as if the unfinished line had
        ended, and its last word too if it could be a secret (a value may still be coming,
        or it is a bare secret with nothing around to tell)."""
        out = ""
        if self._pending:
            self._decide(True)
            out = self._release()
        tail, skip = self._tail, self._released
        if len(tail) <= skip:
            return out
        line = _Line.of(tail, self._offset)
        plain = line.plain
        hits = rules.detect(plain, entropy_rules=not self._certificate)
        hits += self._known_hits(plain) + self._glued_hits(plain)
        first = len(plain) - len(plain.lstrip())
        if (self._block or self._key is not None or self._mask_all is not None) and plain.strip():
            hits.append(Hit("command-output", first, len(plain.rstrip())))
        word = re.search(r"\S+$", plain)
        masked = any(h.end >= word.end() for h in hits) if word else True
        if word and not masked and _could_be_secret(word.group()):
            hits.append(Hit("held-token", word.start(), word.end()))
        line.hits = hits
        return out + self._render(line, skip=skip, stop=len(tail))

    def _glued_hits(self, plain: str) -> list[Hit]:
        """A secret-looking word that a line starts with, glued to a known prompt: what
        ``... | base64 -d`` prints when the value has no newline."""
        hits = []
        for prompt in self._prompts:
            begin = 0  # the line's start, or the end of a prompt (no echo between)
            for at in _occurrences(plain, prompt):
                word = plain[begin:at]
                if word and _could_be_secret(word) and not any(c.isspace() for c in word):
                    hits.append(Hit("bare-secret", begin, at))
                begin = at + len(prompt)
        return hits

    # -- cutting the input into lines -----------------------------------------------
    def _drain(self, *, final: bool) -> str:
        """Process the input line by line, as far as it goes (to its end if ``final``);
        what is released. While nothing is under way, whole lines that need no work (see
        :meth:`_look`) are released as they are, many at once."""
        tail, at, out = self._tail, 0, []
        marks: list[int] = []  # where lines need work, up to where it looked (ascending)
        dropped: list[tuple[int, str]] = []  # coloured lines passed over, with their text
        looked = next_mark = known = 0
        try:
            while at < len(tail):
                if self._quiet() and at >= self._released:
                    if at >= looked:
                        dropped = []
                        marks = self._look(tail, at, dropped)
                        looked, next_mark, known = marks.pop(), 0, len(self._learned)
                    elif len(self._learned) != known:  # a secret was learned: where is it?
                        fresh, known = self._learned[known:], len(self._learned)
                        more = _places_of(fresh, tail, at, looked, dropped)
                        if more:
                            marks, next_mark = sorted([*marks[next_mark:], *more]), 0
                    while next_mark < len(marks) and marks[next_mark] < at:
                        next_mark += 1
                    stop = marks[next_mark] if next_mark < len(marks) else looked
                    end = tail.rfind("\n", at, stop) + 1
                    if end > at:
                        out.append(tail[at:end])
                        self._offset += end - at
                        at = end
                        continue
                cut = self._cut(tail, at, final)
                if cut is None:
                    break
                out.append(self._process(tail[at:cut], skip=max(0, self._released - at)))
                at = cut
                self._quiet_since = None  # a line ended: output is flowing
        finally:  # the rest, cut once (not once a line: a frame holds hundreds)
            self._tail = tail[at:]
            self._released = max(0, self._released - at)
        return "".join(out)

    def _quiet(self) -> bool:
        """Whether nothing is under way that a line could continue: no lines held, no
        block, object or key open, no masking of whole lines."""
        return not (
            self._held
            or self._block
            or self._awaiting is not None
            or self._kinds
            or self._key is not None
            or self._certificate
            or self._mask_all is not None
        )

    def _look(self, tail: str, at: int, dropped: list[tuple[int, str]]) -> list[int]:
        """Where, in the whole lines from ``at`` on (up to :data:`LOOK` characters of them,
        stopping before a line longer than the window), something calls for work while
        nothing is under way: escape codes, known secrets, what the rules or the structure
        look for. The last item is where those lines end. ``dropped`` gets the coloured
        lines the prefilter passed over (see :meth:`.Prefilter.lines`), placed in ``tail``.
        One look a frame, not one a window: each costs a few scans and encodings."""
        window, limit, end = self.window, min(len(tail), at + LOOK), at
        while end < limit:
            newline = tail.rfind("\n", end, min(end + window, limit))
            if newline < 0:
                break
            end = newline + 1
        if end <= at:
            return [at]
        chunk = tail[at:end]
        passed: list[tuple[int, str]] = []
        data = found = None
        if self._prefilter:
            data = _prefilter.encode(chunk)  # once, for both scans
            found = self._prefilter.lines(
                chunk, self._holds_known, passed, data, runs_extra=self._holds_run_known
            )
        dropped += [(at + start, plain) for start, plain in passed]
        if found is not None:
            marks = found
        else:
            folded = rules.fold(chunk)  # as long as chunk: the places are the same
            patterns = (_NOTEWORTHY, rules.RUN, _ESCAPE_CHAR)
            marks = [m.start() for pattern in patterns for m in pattern.finditer(folded)]
        # A secret holding a run of 20 of base64's alphabet is on a line the prefilter found
        # a run on (those it did not report were asked about them): only the others are
        # looked for in all of the block.
        known = self._known_in(chunk, data, runs=found is None)
        marks += [i for value in known for i in _occurrences(chunk, value)]
        marks += [i for prompt in self._prompts for i in _occurrences(chunk, prompt)]
        return [at + mark for mark in sorted(marks)] + [end]

    def _holds_known(self, plain: str) -> bool:
        """Whether ``plain`` holds a known secret or a prompt (what :meth:`_look` marks
        besides what the rules look for)."""
        return bool(self._known_in(plain)) or any(p in plain for p in self._prompts)

    def _cut(self, tail: str, at: int, final: bool) -> int | None:
        """Where the line from ``at`` ends; None if it may go on."""
        window = self.window
        newline = tail.find("\n", at, at + window)
        if newline >= 0:
            return newline + 1
        if len(tail) - at > window:
            low, high = at + window // 2, at + window
            space = max(tail.rfind(c, low, high) for c in " \t\r")
            return space + 1 if space >= 0 else high
        if final:
            return len(tail)
        return None

    # -- one line ---------------------------------------------------------------------
    def _process(self, text: str, skip: int = 0) -> str:
        line = _Line.of(text, self._offset)
        line.skip = min(skip, len(text))
        self._offset += len(text)
        self._held.append(line)
        self._held_size += len(text)
        self._structure(line)
        self._private_key(line)
        line.hits += rules.detect(line.plain, entropy_rules=not self._certificate)
        line.hits += self._known_hits(line.plain)
        if self._prompts:
            line.hits += self._glued_hits(line.plain)
        if self._mask_all is not None and line.plain.strip():
            echoed = self._mask_all and line.plain.rstrip().endswith(self._mask_all)
            if not echoed:
                start = len(line.plain) - len(line.plain.lstrip())
                line.hits.append(Hit("command-output", start, len(line.plain.rstrip())))
            self._mask_all = ""  # only the first line can be the echo
        if self._pending and self._held_size > self.window:
            self._decide(True)
        return "" if self._pending else self._release()

    def _known_hits(self, plain: str) -> list[Hit]:
        """Every occurrence of a known secret in ``plain`` (of each, left to right, not
        overlapping itself)."""
        return [
            Hit("known-secret", at, at + len(known))
            for known in self._known_in(plain)
            for at in _occurrences(plain, known)
        ]

    def _known_in(self, text: str, data: bytes | None = None, *, runs: bool = True) -> list[str]:
        """The known secrets that ``text`` holds: one Hyperscan pass for them all (see
        :class:`.prefilter.KnownSecrets`), or a substring test each (a fraction of a
        nanosecond a character, where a Python pattern of them all would take hundreds).
        ``data``: ``text`` as :func:`.prefilter.encode` gives it, if the caller has it.
        ``runs=False``: not those holding a run of 20 of base64's alphabet (see _look)."""
        if self._known_finder is not None and self._run_finder is not None:
            found = self._known_finder.held_in(text, data)
            return found + self._run_finder.held_in(text, data) if runs else found
        return [known for known in self._known if known in text]

    def _holds_run_known(self, text: str) -> bool:
        """Whether ``text`` (lines with a run of base64's alphabet that the prefilter did
        not report) holds a known secret that itself holds such a run."""
        return self._run_finder is not None and bool(self._run_finder.held_in(text))

    def _structure(self, line: _Line) -> None:
        """Follow YAML/JSON nesting: ``data:`` blocks, their object's ``kind``, and block
        values of secret keys."""
        plain = line.plain
        stripped = plain.strip()
        if stripped in ("---", "..."):  # a new YAML document
            self._kinds.clear()
            if self._pending:
                self._decide(True)
            self._block = None
            return
        indent = len(plain) - len(plain.lstrip(" "))
        key = _KEY_LINE.match(plain)
        key_indent = indent + len(key.group("dash") or "") if key else indent
        closed_here = False
        if self._block:
            block = self._block
            if not stripped or indent > block.indent:
                hits = self._block_hits(block, line, indent, key)
                (line.if_secret if block.secret is None else line.hits).extend(hits)
                return
            self._block = None
            if block.secret is None:
                self._awaiting = block.indent
            closed_here = bool(_CLOSER.match(plain)) and indent == block.indent
        if stripped and self._awaiting is not None and not closed_here:
            level = self._awaiting
            dash = bool(key and key.group("dash"))
            if key and key_indent == level and key.group("key") == "kind" and not dash:
                self._decide(_unquote(key.group("value") or "") == "Secret")
            elif indent < level or (indent == level and not key) or dash:
                self._decide(True)  # the object ended without saying its kind
        if not stripped:
            return
        # What ends here no longer tells the kind of what comes next: deeper objects after a
        # key line, and the object itself after a new list item, a brace or a shell prompt.
        drop = indent + 1 if key and not key.group("dash") else key_indent
        self._kinds = {i: k for i, k in self._kinds.items() if i < drop}
        if not key:
            return
        name, value = key.group("key"), _unquote(key.group("value") or "")
        if name == "kind":
            self._kinds[key_indent] = value
        elif name in ("data", "stringData") and value in ("", "{"):
            kind = self._kinds.get(key_indent)
            if kind is None:
                if self._pending:
                    self._decide(True)
                self._pending, self._awaiting = True, None
                self._block = _Block(key_indent, "kubernetes-secret", None)
            elif kind == "Secret":
                self._block = _Block(key_indent, "kubernetes-secret", True)
        elif rules.is_secret_key(name) and rules.is_block_header(value):
            self._block = _Block(key_indent, "secret-block", True)

    def _block_hits(
        self, block: _Block, line: _Line, indent: int, key: re.Match[str] | None
    ) -> list[Hit]:
        plain = line.plain
        if not plain.strip():
            return []
        if block.entries is None:
            block.entries = indent
        if indent == block.entries and key and block.rule == "kubernetes-secret":
            value = key.group("value") or ""
            if not value or rules.is_block_header(value) or value in ("{", "["):
                return []
            start = key.start("value")
            end = key.end("value")
            if value[0] in "\"'" and value[-1] == value[0] and len(value) > 1:
                start, end = start + 1, end - 1
            return [Hit(block.rule, start, end)]
        return [Hit(block.rule, indent, len(plain.rstrip()))]  # a continuation line

    def _decide(self, secret: bool) -> None:
        for line in self._held:
            if secret:
                line.hits += line.if_secret
            line.if_secret = []
        if self._block and self._block.secret is None:
            self._block.secret = secret
        self._pending, self._awaiting = False, None

    def _private_key(self, line: _Line) -> None:
        plain = line.plain
        if self._key is None and not self._certificate and "-----BEGIN" not in plain:
            return  # nothing begins, nothing is under way
        if self._certificate:
            self._certificate = not _CERT_END.search(plain)
        elif _CERT_BEGIN.search(plain) and not _CERT_END.search(plain):
            self._certificate = True
        at = 0
        if self._key is not None:
            end = _PEM_END.search(plain)
            if end:
                self._key_hit(line, 0, end.start())
                self._end_key(line)
                at = end.end()
            elif _PEM_BODY.fullmatch(plain):
                self._key_hit(line, 0, len(plain))
                return
            else:
                self._end_key(line)  # a truncated key: what follows is something else
        for begin in _PEM_BEGIN.finditer(plain, at):
            self._keys += 1
            self._key = self._keys
            end = _PEM_END.search(plain, begin.end())
            self._key_hit(line, begin.end(), end.start() if end else len(plain))
            if not end:
                return
            self._end_key(line)

    def _key_hit(self, line: _Line, start: int, end: int) -> None:
        text = line.plain[start:end]
        start += len(text) - len(text.lstrip())
        end -= len(text) - len(text.rstrip())
        if end > start:
            line.hits.append(Hit("private-key", start, end, group=self._key))

    def _end_key(self, line: _Line | None) -> None:
        if self._key is None:
            return
        if line is None:
            self._finish_group(self._key)
        else:
            line.closes.append(self._key)
        self._key = None

    # -- releasing ----------------------------------------------------------------------
    def _release(self) -> str:
        out = "".join(self._render(line) for line in self._held)
        self._held, self._held_size = [], 0
        return out

    def _render(self, line: _Line, *, skip: int | None = None, stop: int | None = None) -> str:
        """The line masked, from ``skip`` (what an idle flush released already: a secret
        reaching into it is masked from there) to ``stop`` (the rest of an unfinished
        line stays unreleased; ``_released`` moves to it)."""
        skip = line.skip if skip is None else skip
        pieces = []
        at = skip
        for hit in _merge(line.hits):
            start, end = line.span(hit)
            if end <= skip or (stop is not None and start >= stop):
                continue  # released already (masked then), or not released yet
            secret = line.plain[hit.start : hit.end]
            # Escape codes inside the secret stay, so colours reset as they would have.
            codes = "".join(ESCAPE.findall(line.text[max(start, skip) : end]))
            keep = hit.keep if start >= skip else ""
            pieces += [line.text[at : max(start, skip)], mask_for(keep), codes]
            at = end
            self._found(hit, line.offset + start, line.offset + end, secret)
        if stop is None:
            pieces.append(line.text[at:])
            for key in line.closes:
                self._finish_group(key)
        else:
            pieces.append(line.text[at:stop])
            self._released = max(stop, at)
        return "".join(pieces)

    def _found(self, hit: Hit, start: int, end: int, secret: str) -> None:
        if hit.group is None:
            self.learn([secret])
            self.findings.append(Finding(hit.rule, start, end, fingerprint(secret)))
            return
        group = self._groups.setdefault(hit.group, [start, end, hashlib.sha256()])
        group[1] = end
        group[2].update(secret.encode("utf-8", "surrogatepass"))

    def _finish_group(self, key: int) -> None:
        group = self._groups.pop(key, None)
        if group:
            start, end, digest = group
            self.findings.append(Finding("private-key", start, end, digest.hexdigest()[:12]))


def _merge(hits: list[Hit]) -> list[Hit]:
    """Overlapping hits as one, named after the one starting first (the more telling rule
    when they start together)."""
    merged: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, h.priority, -h.end)):
        if merged and hit.start < merged[-1].end:
            last = merged[-1]
            if hit.end > last.end:
                merged[-1] = Hit(last.rule, last.start, hit.end, last.keep, last.group)
        else:
            merged.append(hit)
    return merged


def _could_be_secret(word: str) -> bool:
    """Whether a word with nothing around it could be a password or token: long enough,
    and mixing cases, or letters with digits and symbols (not a word, number, path or
    pod name)."""
    if len(word) < 8 or word.count("/") > 1:
        return False
    lower, upper = bool(_LOWER.search(word)), bool(_UPPER.search(word))
    digit = any(c.isdigit() for c in word)
    symbol = bool(_SYMBOL.search(word))
    return (lower or upper) and (digit or symbol) and ((lower and upper) or symbol)


_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")
_SYMBOL = re.compile(r"[!#$%^&*?@+=~]")


def strip_escapes(text: str) -> str:
    return plain_with_origins(text)[0] if _ESCAPE_CHAR.search(text) else text


def _places_of(
    fresh: list[str], tail: str, at: int, end: int, dropped: list[tuple[int, str]]
) -> list[int]:
    """Where, in the lines of ``tail`` from ``at`` to ``end`` (looked at already), newly
    learned secrets ``fresh`` call for work: where each is, and the coloured lines passed
    over whose text holds one. What looking again would add, without its scans."""
    chunk = tail[at:end]
    places = [at + i for value in fresh for i in _occurrences(chunk, value)]
    places += [start for start, plain in dropped if start >= at and any(v in plain for v in fresh)]
    return places


def _occurrences(text: str, part: str) -> Iterator[int]:
    """Where ``part`` is in ``text``, left to right, not overlapping itself."""
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + len(part))


def _unquote(value: str) -> str:
    return value.strip().strip("\"'")


class Redactor:
    """Masks every secret in a complete text (the stream engine fed it in one piece)."""

    def __init__(self, *, window: int = WINDOW, known: Iterable[str] = ()) -> None:
        self.window = window
        self.known = list(known)

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        stream = StreamRedactor(window=self.window)
        stream.learn(self.known)
        out = stream.feed(text) + stream.end()
        return out, stream.findings
