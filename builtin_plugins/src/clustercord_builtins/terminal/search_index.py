"""The search index of recordings: SQLite FTS5 over keyed hashes of their text's trigrams.

A recording is sealed at rest (see :mod:`.storage`); an index holding its words would undo
that. So each session is one FTS5 row of the hashes (HMAC-SHA256 with a random key, kept
sealed in the plugin's store, cut to 32 bits) of the lower-cased trigrams of its transcript:
commands and output lines, as search reads them. A query of three characters or more asks
for the sessions holding all its trigrams' hashes (an index look-up); those candidates are
then opened and their lines checked for the query itself, so the answer is exactly the
substring search of before, only without opening every recording. A shorter query (``ls``)
has no trigram: it scans, as before. Collisions of the 32-bit hashes only add candidates.

``detail=none``: the index keeps which sessions hold a token, not where (the lines are
checked anyway), the smallest FTS5 index there is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from clustercord_sdk.services import Sealer

INDEX = "search"
KEY = "search_key"
GRAM = 3
MAX_QUERY_GRAMS = 8
"""Trigrams of a long query looked up at most (spread over it): enough to narrow it down."""


def create(store: Any) -> None:
    db = store.table(INDEX).db
    name = store.table(INDEX).name
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS [{name}] USING fts5("
        "session UNINDEXED, grams, detail=none, tokenize='ascii')"
    )
    store.table(KEY).create({"id": int, "key": bytes}, pk="id", if_not_exists=True)


class SearchIndex:
    def __init__(self, store: Any, sealer: Sealer | None) -> None:
        self._db = store.table(INDEX).db
        self._name = store.table(INDEX).name
        self._key = _key(store, sealer)

    def grams(self, text: str) -> set[str]:
        """The hashed trigrams of ``text`` (lower-cased), as index tokens."""
        text = text.lower()
        return {self._hash(text[i : i + GRAM]) for i in range(len(text) - GRAM + 1)}

    def put(self, session: str, row: int, lines: Iterable[str]) -> None:
        """Index ``session``, whose recording is row ``row`` (the index row has the same
        rowid: a search never reads the index's own columns back, which would read every
        candidate's hashes)."""
        tokens = {self._hash(gram) for gram in distinct_grams(lines)}
        self._db.execute(
            f"INSERT OR REPLACE INTO [{self._name}] (rowid, session, grams) VALUES (?, ?, ?)",
            [row, session, " ".join(sorted(tokens))],
        )

    def remove(self, row: int) -> None:
        self._db.execute(f"DELETE FROM [{self._name}] WHERE rowid = ?", [row])

    def match(self, query: str) -> str | None:
        """The FTS5 expression of sessions that may hold ``query``; None when it is too
        short to have a trigram (scan instead)."""
        tokens = sorted(self.grams(query))
        if not tokens:
            return None
        step = max(1, len(tokens) // MAX_QUERY_GRAMS)
        return " ".join(f'"{t}"' for t in tokens[::step][:MAX_QUERY_GRAMS])

    @property
    def table(self) -> str:
        return self._name

    def _hash(self, gram: str) -> str:
        data = gram.encode("utf-8", "surrogatepass")  # a lone surrogate typed in a chat
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()[:8]


def _key(store: Any, sealer: Sealer | None) -> bytes:
    """The index's HMAC key: made once, stored sealed (in clear only in a store without a
    sealer, a unit test's)."""
    table = store.table(KEY)
    rows = list(table.rows_where("id = 1"))
    if rows:
        stored = bytes(rows[0]["key"])
        return sealer.open(stored) if sealer is not None else stored
    key = secrets.token_bytes(32)
    table.insert({"id": 1, "key": sealer.seal(key) if sealer is not None else key}, replace=True)
    return key


def distinct_grams(lines: Iterable[str]) -> set[str]:
    """The lower-cased trigrams of each of ``lines`` (none across two), each once.

    A recording of megabytes holds millions of trigrams but a few thousand distinct ones:
    they are told apart first, over all the text at once, and only those few are hashed.
    Lower-casing the lines joined is the same as one by one (a line end is not a cased
    letter, so even Greek final sigma reads the same); a trigram holding the joining line
    end is no line's and is dropped."""
    text = "\n".join(lines)
    triples = _distinct_numpy(text) if _np is not None else None
    if triples is None:  # no numpy, or an alphabet too large for its table
        text = text.lower()
        triples = set(zip(text, text[1:], text[2:], strict=False))
    return {a + b + c for a, b, c in triples if "\n" not in (a, b, c)}


try:  # optional: the same answer, about fifty times faster on a large recording
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is a dependency; kept working without
    _np = None

_ALPHABET_MAX = 400
"""Distinct characters of a text handled by the numpy path: a table of this many cubed
booleans (64 MB at most) marks the trigrams present."""
_SMALL = 4096
"""Characters below which the plain Python path is as quick."""


def _distinct_numpy(text: str) -> set[tuple[str, str, str]] | None:
    """The distinct trigrams of ``text`` lower-cased, as character triples, or None when
    its alphabet has more than :data:`_ALPHABET_MAX` characters (then ``zip`` does it).
    Each character gets a small number (the rank of its lower case in the text's alphabet:
    lower-casing by table, without a pass over the text); each trigram is then one number,
    ``(a * n + b) * n + c``, and a table of booleans marks those present, all at C speed,
    a block at a time (arrays of a few megabytes, however long the recording)."""
    if len(text) < _SMALL:
        return None
    if "\u03a3" in text or "\u0130" in text:
        # Capital sigma lowers by its context, and İ to two characters: no table for those.
        text = text.lower()
    present = sorted({int(c) for block in _blocks(text) for c in _present(block)})
    lowered = [chr(c).lower() for c in present]
    if any(len(low) != 1 for low in lowered):  # another that lowers to two characters
        text = text.lower()
        present = sorted({int(c) for block in _blocks(text) for c in _present(block)})
        lowered = [chr(c) for c in present]
    chars = sorted(set(lowered))
    n = len(chars)
    if n > _ALPHABET_MAX:
        return None
    assert _np is not None
    index = {char: i for i, char in enumerate(chars)}
    rank = _np.zeros(present[-1] + 1, dtype=_np.int32)  # n**3 < 2**31
    rank[present] = _np.array([index[low] for low in lowered], dtype=_np.int32)
    seen = _np.zeros(n**3, dtype=bool)
    for block in _blocks(text):
        ranks = rank[_points(block)]
        codes = ranks[:-2] * (n * n)  # in place from here: no temporary per step
        codes += ranks[1:-1] * n
        codes += ranks[2:]
        seen[codes] = True
    found = _np.flatnonzero(seen)
    return {(chars[c // (n * n)], chars[c // n % n], chars[c % n]) for c in found.tolist()}


_BLOCK = 1 << 20


def _blocks(text: str) -> Iterator[str]:
    """``text`` in blocks overlapping by two characters: each trigram is in one."""
    for at in range(0, max(1, len(text) - 2), _BLOCK):
        yield text[at : at + _BLOCK + 2]


def _points(block: str) -> Any:
    assert _np is not None
    return _np.frombuffer(block.encode("utf-32-le"), dtype=_np.uint32)


def _present(block: str) -> Any:
    assert _np is not None
    return _np.flatnonzero(_np.bincount(_points(block)))
