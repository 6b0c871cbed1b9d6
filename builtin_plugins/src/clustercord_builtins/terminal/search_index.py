"""The search index of recordings: SQLite FTS5 over keyed hashes of their text's trigrams.

A recording is sealed at rest (see :mod:`.storage`); an index holding its words would undo
that. So each session is one FTS5 row of the keyed hashes (AES-256 under a random key, kept
sealed in the plugin's store, cut to 20 bits: see :meth:`SearchIndex._hashes`) of the
lower-cased trigrams of its transcript:
commands and output lines, as search reads them. A query of three characters or more asks
for the sessions holding all its trigrams' hashes (an index look-up); those candidates are
then opened and their lines checked for the query itself, so the answer is exactly the
substring search of before, only without opening every recording. A shorter query (``ls``)
has no trigram: it scans, as before. Collisions of the hashes only add candidates.

What keeps it small (a typical session's index was once larger than its output):

- the FTS5 table is contentless (``content=''``) with ``detail=none``: it keeps which
  sessions hold a token and nothing else, not the tokens' text a second time (column
  sizes are kept: without them SQLite cannot scan the table, which ``iterdump`` does);
- removing a session from a contentless index takes the tokens it was given (SQLite 3.40
  has no ``contentless_delete``), so those are kept beside it, in :data:`TOKENS`, as the
  gaps between the sorted hashes, compressed: a few bytes each instead of a line of text;
- in a trigram that is not all digits, every ASCII digit counts as ``0`` (``a7f`` and
  ``a3f`` are one token): hex ids, times and counters make most of a log's distinct
  trigrams. A query is folded the same way, so every session that holds it is still a
  candidate, only a few more are read; the trigrams inside a run of digits (``404``,
  ``8080``) keep their exact digits, so a number is still looked up by its own.
"""

from __future__ import annotations

import secrets
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

import zstandard
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import Sealer

INDEX = "search"
TOKENS = "search_tokens"
KEY = "search_key"
GRAM = 3
MAX_QUERY_GRAMS = 8
"""Trigrams of a long query looked up at most (spread over it): enough to narrow it down."""
HASH_BITS = 20
"""Bits of a token (of its keyed hash): a session of a few thousand distinct trigrams holds a
trigram it does not have about once in 400 (a candidate read for nothing), and two of a
query's trigrams about once in 150,000; a token's gap to the next fits in two bytes."""
_FOLD = str.maketrans("123456789", "000000000")


def create(store: Any) -> None:
    """The index's tables (idempotent). An index not of this layout (see
    :func:`is_current`: the earlier one, which stored its tokens' text a second time, or
    one left without its tokens or key) is dropped first: it is then empty, and the caller
    indexes every recording again."""
    table = store.table(INDEX)
    db, name = table.db, table.name
    if not is_current(store, set(db.table_names())):
        db.execute(f"DROP TABLE IF EXISTS [{name}]")
        db.execute(f"DROP TABLE IF EXISTS [{store.table(TOKENS).name}]")
    db.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS [{name}] USING fts5("
        "grams, content='', detail=none, tokenize='ascii')"
    )
    store.table(TOKENS).create({"id": int, "tokens": bytes}, pk="id", if_not_exists=True)
    store.table(KEY).create({"id": int, "key": bytes}, pk="id", if_not_exists=True)


def is_current(store: Any, names: set[str]) -> bool:
    """Whether the index of this layout is in place (``names``: the database's tables);
    if not, :func:`create` makes it and every recording is indexed again."""
    index = store.table(INDEX).name
    return (
        index in names
        and store.table(TOKENS).name in names
        and store.table(KEY).name in names
        and f"{index}_content" not in names
    )


class SearchIndex:
    def __init__(self, store: Any, sealer: Sealer | None) -> None:
        self._db = store.table(INDEX).db
        self._name = store.table(INDEX).name
        self._tokens = store.table(TOKENS).name
        self._store, self._sealer = store, sealer
        self._cipher: Any = None  # made on first use: reading a recording needs no key
        if not list(store.table(KEY).rows_where("id = 1")):
            _key(store, sealer)  # made now, sealed if this store can

    def grams(self, text: str) -> set[int]:
        """The hashed trigrams of ``text`` (lower-cased), as index tokens."""
        text = text.lower()
        return self._hashes({text[i : i + GRAM] for i in range(len(text) - GRAM + 1)})

    def put(self, row: int, lines: Iterable[str]) -> None:
        """Index the recording of row ``row`` (the index row has the same rowid: a search
        joins on it)."""
        tokens = sorted(self._hashes(distinct_grams(lines)))
        self._db.execute(
            f"INSERT INTO [{self._name}] (rowid, grams) VALUES (?, ?)", [row, _text(tokens)]
        )
        self._db.execute(
            f"INSERT OR REPLACE INTO [{self._tokens}] (id, tokens) VALUES (?, ?)",
            [row, pack_tokens(tokens)],
        )

    def remove(self, row: int) -> None:
        """Take row ``row`` out of the index: a contentless FTS5 table is told the very
        tokens it was given (else its index would hold stray entries)."""
        found = self._db.execute(
            f"SELECT tokens FROM [{self._tokens}] WHERE id = ?", [row]
        ).fetchone()
        if found is None:
            return
        self._db.execute(
            f"INSERT INTO [{self._name}] ([{self._name}], rowid, grams) VALUES ('delete', ?, ?)",
            [row, _text(unpack_tokens(found[0]))],
        )
        self._db.execute(f"DELETE FROM [{self._tokens}] WHERE id = ?", [row])

    def match(self, query: str) -> str | None:
        """The FTS5 expression of sessions that may hold ``query``; None when it is too
        short to have a trigram (scan instead)."""
        tokens = sorted(self.grams(query))
        if not tokens:
            return None
        step = max(1, len(tokens) // MAX_QUERY_GRAMS)
        return " ".join(f'"{t:05x}"' for t in tokens[::step][:MAX_QUERY_GRAMS])

    @property
    def table(self) -> str:
        return self._name

    def _hashes(self, grams: Iterable[str]) -> set[int]:
        """The tokens of ``grams`` (digits folded): each trigram's UTF-8 bytes (at most 12;
        ``surrogatepass``: a lone surrogate typed in a chat has none of its own) padded
        with zeros to one AES block, all of them encrypted in one call (ECB: each block on
        its own, which is what a keyed hash of each is), the first 20 bits of each block.
        AES under a secret key is a pseudorandom function as HMAC-SHA256 was, and a few
        thousand trigrams take 0.4 ms instead of 7 (a call each). Padding keeps trigrams
        apart: UTF-8 read from the start gives back the three characters, and only them."""
        folded = {g if g.isascii() and g.isdigit() else g.translate(_FOLD) for g in grams}
        blocks = b"".join([g.encode("utf-8", "surrogatepass").ljust(16, b"\0") for g in folded])
        if self._cipher is None:
            self._cipher = Cipher(algorithms.AES(_key(self._store, self._sealer)), modes.ECB())
        encryptor = self._cipher.encryptor()
        out = encryptor.update(blocks) + encryptor.finalize()
        shift = 32 - HASH_BITS
        return {int.from_bytes(out[at : at + 4]) >> shift for at in range(0, len(out), 16)}


def _text(tokens: Iterable[int]) -> str:
    return " ".join(f"{t:05x}" for t in tokens)


_ZSTD_TOKENS = 3
_WIDTHS = {b"H": 0xFFFF, b"I": 0xFFFFFFFF}
"""How the gaps are stored, by the blob's first byte: 16 bits each when all fit (nearly always
for a session of a hundred distinct trigrams or more), else 32."""


def pack_tokens(tokens: list[int]) -> bytes:
    """Sorted tokens as the gaps between them (small numbers, mostly below 2**10), in the
    narrowest array that holds them all, compressed."""
    gaps = [b - a for a, b in zip([0, *tokens], tokens, strict=False)]
    code = b"H" if max(gaps, default=0) <= _WIDTHS[b"H"] else b"I"
    array_ = array(code.decode(), gaps)
    if _BIG_ENDIAN:  # pragma: no cover - stored little-endian whatever the machine
        array_.byteswap()
    return code + zstandard.ZstdCompressor(level=_ZSTD_TOKENS).compress(array_.tobytes())


def unpack_tokens(blob: bytes) -> list[int]:
    blob = bytes(blob)
    gaps = array(blob[:1].decode())
    gaps.frombytes(zstandard.ZstdDecompressor().decompress(blob[1:]))
    if _BIG_ENDIAN:  # pragma: no cover
        gaps.byteswap()
    return list(accumulate(gaps))


_BIG_ENDIAN = array("H", [1]).tobytes()[0] != 1


def _key(store: Any, sealer: Sealer | None) -> bytes:
    """The index's AES-256 key: made once, stored sealed (in clear only in a store without a
    sealer, a unit test's)."""
    table = store.table(KEY)
    rows = list(table.rows_where("id = 1"))
    if rows:
        stored = bytes(rows[0]["key"])
        key = sealer.open(stored) if sealer is not None else stored
        if len(key) != 32:  # sealed, and this store has no sealer to open it
            raise CommandError("the search index's key is sealed and this store has no sealer")
        return key
    key = secrets.token_bytes(32)
    table.insert({"id": 1, "key": sealer.seal(key) if sealer is not None else key}, replace=True)
    return key


def distinct_grams(lines: Iterable[str]) -> set[str]:
    """The lower-cased trigrams of each of ``lines`` (none across two), each once.

    A recording of megabytes holds millions of trigrams but a few thousand distinct ones:
    they are told apart first, over all the text at once, and only those few are hashed.
    Lower-casing the lines joined is the same as one by one (a line end is not a cased
    letter, so even Greek final sigma reads the same); a trigram holding the joining line
    end is no line's and is dropped. (So numpy reads the lines as they come, not joined:
    a copy of all the text less.)"""
    pieces = list(lines)
    triples = _distinct_numpy(pieces) if _np is not None else None
    if triples is None:  # no numpy, or an alphabet too large for its table
        text = "\n".join(pieces).lower()
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


def _distinct_numpy(pieces: list[str]) -> set[tuple[str, str, str]] | None:
    """The distinct trigrams of ``pieces`` joined by line ends, lower-cased, as character
    triples (those holding a joining line end perhaps left out), or None when
    its alphabet has more than :data:`_ALPHABET_MAX` characters (then ``zip`` does it).
    Each character gets a small number (the rank of its lower case among the lower cases
    met so far: lower-casing by table, without a pass over the text); each trigram is then
    one number, ``(a * n + b) * n + c``, and a table of booleans marks those present, all
    at C speed, a block at a time (arrays of a few megabytes, however long the recording).
    One pass: a block with characters not met before ranks them first (and widens the
    table if they outnumber its ``n``), which a first pass over all the text for its
    alphabet (``numpy.bincount``) once did, at a third of the cost."""
    if sum(len(piece) for piece in pieces) < _SMALL:
        return None
    assert _np is not None
    np = _np
    chars: list[str] = []  # the lower cases met, by rank
    ranks: dict[str, int] = {}
    rank = np.full(0x110000, -1, dtype=np.int32)  # of each code point met
    n = 0  # the table's width: ranks below it
    seen = np.zeros(0, dtype=bool)
    for block in _blocks(pieces):
        points = _points(block)
        ranked = np.take(rank, points)
        if ranked.min() < 0:  # characters not met before
            for point in np.unique(points[ranked < 0]).tolist():
                low = chr(point).lower()
                if len(low) != 1 or point == 0x3A3:
                    # İ lowers to two characters, capital sigma by its context: no table
                    # for those; lower-cased first, the text has neither.
                    lowered = [piece.lower() for piece in pieces]
                    return _distinct_numpy(lowered) if lowered != pieces else None
                if low not in ranks:
                    ranks[low] = len(chars)
                    chars.append(low)
                rank[point] = ranks[low]
            if len(chars) > _ALPHABET_MAX:
                return None
            if len(chars) > n:
                seen, n = _widen(seen, n, min(_ALPHABET_MAX, len(chars) + 16))
            ranked = np.take(rank, points)
        codes = ranked[:-2] * (n * n)  # in place from here: no temporary per step
        codes += ranked[1:-1] * n
        codes += ranked[2:]
        seen[codes] = True
    found = np.flatnonzero(seen)
    return {(chars[c // (n * n)], chars[c // n % n], chars[c % n]) for c in found.tolist()}


def _widen(seen: Any, n: int, wider: int) -> tuple[Any, int]:
    """The table of trigrams present, ``n`` wide, as one ``wider`` wide."""
    assert _np is not None
    found = _np.flatnonzero(seen)
    table = _np.zeros(wider**3, dtype=bool)  # n**3 < 2**31
    if n:
        a, b, c = found // (n * n), found // n % n, found % n
        table[(a * wider + b) * wider + c] = True
    return table, wider


_BLOCK = 1 << 16


def _blocks(pieces: list[str]) -> Iterator[str]:
    """``pieces`` (joined by line ends) in blocks of three characters or more, each trigram
    in one but those holding a joining line end: a piece of a few kilobytes as it is, a
    larger one in blocks overlapping by two characters, small ones joined."""
    group: list[str] = []
    size = 0
    for piece in pieces:
        if len(piece) < _BLOCK // 8:
            group.append(piece)
            size += len(piece) + 1
            if size < _BLOCK:
                continue
            piece = "\n".join(group)
            group, size = [], 0
        for at in range(0, max(1, len(piece) - 2), _BLOCK):
            block = piece[at : at + _BLOCK + 2] if len(piece) > _BLOCK + 2 else piece
            if len(block) >= 3:
                yield block
    if size >= 3:
        yield "\n".join(group)


def _points(block: str) -> Any:
    """The code points of ``block``: read from UTF-16 (a quarter of the cost of UTF-32 for
    most text) unless it holds a character beyond 0xFFFF (a pair of UTF-16 units, where
    each other character, a lone surrogate too, is one unit: its code point)."""
    assert _np is not None
    units = _np.frombuffer(block.encode("utf-16-le", "surrogatepass"), dtype=_np.uint16)
    if len(units) != len(block):  # a pair of units for a character (a lone one is itself)
        return _np.frombuffer(block.encode("utf-32-le", "surrogatepass"), dtype=_np.uint32)
    return units
