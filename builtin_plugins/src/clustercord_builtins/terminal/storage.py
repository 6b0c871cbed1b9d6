"""Recordings in the plugin's own tables: metadata in columns, the events as one
compressed blob, retention rules, and the log of who viewed what.

At rest the blob is compressed (Zstandard), then sealed with the plugin's
:class:`~clustercord_sdk.services.Sealer` (the kernel's, derived from its data key): the
database file holds neither the output nor its compressed stream. Rows stored before
sealing (a bare gzip stream) and blobs compressed with gzip before Zstandard (sealed or
not) are still read, told apart by their first bytes; a store without a sealer (a unit
test's) stores the bare Zstandard frame.

Every write is one statement or one ``atomic()`` block on the kernel's SQLite database
(WAL, ``synchronous=FULL``): a recording is stored whole or not at all, even if the
process dies halfway.
"""

from __future__ import annotations

import builtins
import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import zstandard

from clustercord_builtins.terminal import search_index
from clustercord_builtins.terminal.formats import searchable_text, timeline
from clustercord_builtins.terminal.recording import Recording, SessionInfo
from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import Sealer

RECORDINGS = "recordings"
RETENTION = "retention"
INPUT = "input_rules"
VIEWS = "views"
DAY = 86400.0
MAX_DAYS = 3650


def create_tables(store: Any) -> None:
    """The plugin's tables (idempotent): usable as a ``storage_migrations`` step. The
    columns are spelt out, not taken from the dataclasses: a migration must not change."""
    store.table(RECORDINGS).create(
        {
            "id": str,
            "user": str,
            "cluster": str,
            "namespace": str,
            "pod": str,
            "container": str,
            "command": str,
            "started": float,
            "duration": float,
            "exit_code": int,
            "commands_count": int,
            "size": int,
            "redactions": int,
            "width": int,
            "height": int,
            "data": bytes,
        },
        pk="id",
        if_not_exists=True,
    )
    recordings = store.table(RECORDINGS)
    recordings.create_index(["started"], if_not_exists=True)
    recordings.create_index(["user", "started"], if_not_exists=True)
    # An empty string is "any": SQLite would let two NULL keys of one scope coexist.
    store.table(RETENTION).create(
        {"cluster": str, "namespace": str, "days": int, "by": str, "at": float},
        pk=("cluster", "namespace"),
        if_not_exists=True,
    )
    store.table(VIEWS).create(
        {"id": int, "session": str, "user": str, "action": str, "at": float},
        pk="id",
        if_not_exists=True,
    )
    store.table(VIEWS).create_index(["session", "at"], if_not_exists=True)


def create_input_rules(store: Any) -> None:
    store.table(INPUT).create(
        {"cluster": str, "namespace": str, "record": int, "by": str, "at": float},
        pk=("cluster", "namespace"),
        if_not_exists=True,
    )


MIGRATIONS = [(1, create_tables), (2, search_index.create), (3, create_input_rules)]


@dataclass
class Summary(SessionInfo):
    """A stored recording without its events: what lists and access checks need."""

    duration: float
    exit_code: int | None
    commands_count: int
    size: int
    """Bytes the events take in storage (compressed)."""
    redactions: int


_SUMMARY_COLUMNS = ", ".join(f.name for f in fields(Summary))


@dataclass
class Match:
    session: str
    time: float
    text: str
    command_index: int | None
    """Index in the recording's ``commands`` of the command the line belongs to (0-based);
    None for output before the first command."""


_PACKED = ("events", "commands")
"""The fields of a recording stored in its blob (``data``); the others have columns."""


ZSTD_LEVEL = 6
"""Measured on 4 MB of kubectl logs packed: 7.8x smaller at 5.7 ms/MB, where gzip -6 (the
level used before) made 7.3x at 9.1 ms/MB; level 3 is faster (1.9 ms/MB) but 6.9x, 9 is
8.4x at 9-12 ms/MB. Every level packs with a window as long as the recording and
long-distance matching (:func:`pack`): output printed again is stored once."""
ZSTD_LEVEL_LARGE = 1
"""The level of a recording of :data:`LARGE` bytes or more: on 10 and 100 MB of logs, 7.2x
smaller at 1.2 ms/MB (level 6: 7.8x at 5.3 ms/MB, a fifth of all the CPU of recording
such a stream; level 3: 6.9x at 1.8 ms/MB). A bulk stream (``kubectl logs``, ``cat``) is
recorded at about asciinema's CPU this way, still five times smaller than its ``.cast``."""
LARGE = 8_000_000
WINDOW_LOG_MAX = 27
"""128 MB: Zstandard's decoders refuse a longer window unless told to accept one."""


_LAYOUT = b"CCR2\n"
"""The first bytes of a payload laid out as :func:`pack` does: a JSON line of the events'
times, codes and lengths and of the commands, then the events' text, one after the other.
A payload without them is the JSON document of before (``{"events": [...], ...}``)."""


def pack(rec: Recording, *, level: int | None = None) -> bytes:
    """``rec``'s events and commands, compressed. The events' text is not written as JSON
    strings (escaping every line end and colour code took a third of the packing time, and
    the escapes compressed worse) but as itself after a JSON line of where each one ends.
    A lone surrogate (typed in a chat) has no UTF-8 of its own: ``surrogatepass`` writes
    it as the three bytes UTF-8 would give it, and reading takes them back the same way.
    Zstandard is deterministic: the same recording always packs to the same bytes. The
    level (unless given) is :data:`ZSTD_LEVEL`, or :data:`ZSTD_LEVEL_LARGE` from
    :data:`LARGE` bytes on; reading does not depend on it."""
    texts = [data for _, _, data in rec.events]
    head = {"events": [[t, code, len(data)] for t, code, data in rec.events]}
    head["commands"] = rec.commands
    line = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    # Each text encoded and handed to the compressor as it is: joining the texts first, or
    # their bytes (a copy of them all), took a third more. The frame says its size, as a
    # frame compressed in one call does.
    parts = [_LAYOUT, line.encode("utf-8", "surrogatepass"), b"\n"]
    parts += [text.encode("utf-8", "surrogatepass") for text in texts]
    size = sum(len(part) for part in parts)
    if level is None:
        level = ZSTD_LEVEL if size < LARGE else ZSTD_LEVEL_LARGE
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        source_size=size,
        # Repeated output (the spec's deduplication): a screen, a listing or a log printed
        # again long after is stored as a reference to the first copy. The levels' own
        # windows (0.5-8 MB) forget it; long-distance matching over a window as long as the
        # recording (at most 128 MB, what every decoder accepts) remembers it. Sampling one
        # position in 1,024 and matching 256 bytes at least finds repeats of a few KB on,
        # at 0.1-0.2 ms/MB (the defaults: 0.7 ms/MB, for repeats nobody would notice).
        window_log=min(WINDOW_LOG_MAX, max(10, (size - 1).bit_length())),
        enable_ldm=True,
        ldm_hash_rate_log=10,
        ldm_min_match=256,
        write_checksum=True,
    )
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj(size)
    return b"".join([*(compressor.compress(part) for part in parts), compressor.flush()])


def unpack(blob: bytes, sealer: Sealer | None = None) -> dict[str, Any]:
    """The payload of a stored blob, ``{"events": [[t, code, data], ...], "commands":
    [...]}``: sealed (opened with ``sealer``) or bare (a row stored before recordings were
    sealed, or by a store without a sealer); inside, a Zstandard frame or a gzip stream
    (packed before Zstandard, as a JSON document)."""
    blob = bytes(blob)
    if not blob.startswith((_GZIP, _ZSTD)):
        if sealer is None:
            raise CommandError("this recording is sealed and this store has no sealer to open it")
        blob = sealer.open(blob)
    if blob.startswith(_ZSTD):
        data = zstandard.ZstdDecompressor().decompress(blob)
    elif blob.startswith(_GZIP):
        data = gzip.decompress(blob)
    else:
        raise CommandError("this recording's data is neither Zstandard nor gzip: damaged?")
    if not data.startswith(_LAYOUT):
        payload: dict[str, Any] = json.loads(data)
        return payload
    line, _, body = data[len(_LAYOUT) :].partition(b"\n")
    head = json.loads(line.decode("utf-8", "surrogatepass"))
    text = body.decode("utf-8", "surrogatepass")
    events, at = [], 0
    for t, code, length in head["events"]:
        events.append([t, code, text[at : at + length]])
        at += length
    if at != len(text):
        raise CommandError("this recording's data is cut short or too long: damaged?")
    return {"events": events, "commands": head["commands"]}


_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"  # a Zstandard frame's magic number, little-endian 0xFD2FB528


class Recordings:
    """The recordings of one plugin store."""

    def __init__(
        self,
        store: Any,
        *,
        clock: Callable[[], float] = time.time,
        sealer: Sealer | None = None,
    ) -> None:
        self.store = store
        # The kernel's store carries the plugin's sealer (the same as ``ctx.sealer``).
        self.sealer: Sealer | None = sealer or getattr(store, "sealer", None)
        self._clock = clock
        self._table = store.table(RECORDINGS)
        self._db = self._table.db
        # Made on first use too, so the class works without the migration having run
        # (autocompletion builds one per keystroke: one query when all is in place).
        names = set(self._db.table_names())
        if not {store.table(t).name for t in (RECORDINGS, RETENTION, VIEWS)} <= names:
            create_tables(store)
        if store.table(INPUT).name not in names:
            create_input_rules(store)
        indexed = search_index.is_current(store, names)
        if not indexed:
            search_index.create(store)
        self._index = search_index.SearchIndex(store, self.sealer)
        if not indexed:  # recordings stored before the index (or its layout): indexed once
            with self._db.atomic():
                for row in self._select("id", "", [], limit=None):
                    rec = self.get(row["id"])
                    rowid = self._rowid(row["id"])
                    if rec is not None and rowid is not None:
                        self._index.put(rowid, _lines(rec))

    # -- recordings -------------------------------------------------------------------
    def save(self, rec: Recording) -> Summary:
        """Store ``rec``, replacing an earlier version of the same id."""
        blob = pack(rec)
        if self.sealer is not None:
            blob = self.sealer.seal(blob)
        # A column for each field (``command`` as JSON) but those in the blob, and the two
        # counts a summary shows without opening it.
        row = {f.name: getattr(rec, f.name) for f in fields(rec) if f.name not in _PACKED}
        row |= {
            "command": json.dumps(rec.command),
            "commands_count": len(rec.commands),
            "size": len(blob),
            "data": blob,
        }
        with self._db.atomic():  # the recording and its index entry, or neither
            old = self._rowid(rec.id)
            if old is not None:
                self._index.remove(old)
            self._table.insert(row, replace=True)
            rowid = self._rowid(rec.id)
            assert rowid is not None  # inserted just above, in this transaction
            self._index.put(rowid, _lines(rec))
        return _load(Summary, row)

    def get(self, id: str) -> Recording | None:
        rows = self._select("*", "id = ?", [id], limit=1)
        if not rows:
            return None
        payload = unpack(rows[0]["data"], self.sealer)
        return _load(
            Recording,
            rows[0],
            events=[(t, code, data) for t, code, data in payload["events"]],
            commands=payload["commands"],
        )

    def summary(self, id: str) -> Summary | None:
        rows = self._select(_SUMMARY_COLUMNS, "id = ?", [id], limit=1)
        return _load(Summary, rows[0]) if rows else None

    def list(
        self,
        *,
        user: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        limit: int = 25,
    ) -> builtins.list[Summary]:
        """Newest first."""
        where, params = _filters(user=user, cluster=cluster, namespace=namespace)
        return [_load(Summary, r) for r in self._select(_SUMMARY_COLUMNS, where, params, limit)]

    def ids(
        self, prefix: str = "", *, user: str | None = None, limit: int = 25
    ) -> builtins.list[Summary]:
        """For autocompletion: recordings whose id starts with ``prefix`` or whose pod's
        name contains it, newest first."""
        where, params = _filters(user=user)
        typed = prefix.strip().lower()
        if typed:
            clause = "(substr(id, 1, ?) = ? OR instr(lower(pod), ?) > 0)"
            where = f"{where} AND {clause}" if where else clause
            params += [len(typed), typed, typed]
        return [_load(Summary, r) for r in self._select(_SUMMARY_COLUMNS, where, params, limit)]

    def search(
        self,
        query: str,
        *,
        session: str | None = None,
        user: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Match]:
        """Lines of transcripts (commands and output, escape sequences removed) containing
        ``query``, any case; newest sessions first, in order within one."""
        needle = query.strip().lower()
        if not needle:
            return []
        where, params = _filters(user=user, id=session)
        # Sessions that may hold it, from the index (all of them for a query too short to
        # have a trigram); each is then opened and read line by line.
        expression = self._index.match(needle)
        if expression is not None:
            table = self._index.table
            clause = f"rowid IN (SELECT rowid FROM [{table}] WHERE [{table}] MATCH ?)"
            where = f"{where} AND {clause}" if where else clause
            params = [*params, expression]
        matches: builtins.list[Match] = []
        sql = f"SELECT id FROM [{self._table.name}]" + (f" WHERE {where}" if where else "")
        # Read as they are opened (newest first): a common word's first matches come from
        # the newest few of thousands of candidates.
        candidates = self._db.conn.execute(sql + " ORDER BY started DESC, id", params)
        for (id,) in candidates:
            rec = self.get(id)
            if rec is None:  # deleted meanwhile
                continue
            for t, text, command in timeline(rec):
                if needle in text.lower():
                    matches.append(Match(rec.id, t, text, command))
                    if len(matches) >= limit:
                        return matches
        return matches

    def delete(self, id: str) -> bool:
        with self._db.atomic():
            row = self._rowid(id)
            if row is not None:
                self._index.remove(row)
            cursor = self._db.execute(f"DELETE FROM [{self._table.name}] WHERE id = ?", [id])
        return bool(cursor.rowcount > 0)

    # -- retention ----------------------------------------------------------------------
    def set_retention(
        self, days: int, *, cluster: str | None = None, namespace: str | None = None, by: str
    ) -> None:
        """Keep recordings of a scope ``days`` days (1 to 3650); ``None`` is any cluster
        or namespace. A second rule for the same scope replaces the first."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}")
        self.store.table(RETENTION).insert(
            {
                "cluster": cluster or "",
                "namespace": namespace or "",
                "days": days,
                "by": by,
                "at": self._clock(),
            },
            replace=True,
        )

    def clear_retention(self, *, cluster: str | None = None, namespace: str | None = None) -> bool:
        table = self.store.table(RETENTION)
        sql = f"DELETE FROM [{table.name}] WHERE cluster = ? AND namespace = ?"
        return bool(self._db.execute(sql, [cluster or "", namespace or ""]).rowcount > 0)

    def retention(self) -> builtins.list[dict[str, Any]]:
        """The rules, most specific first: ``{cluster, namespace, days, by, at}``."""
        rules = [
            {**row, "cluster": row["cluster"] or None, "namespace": row["namespace"] or None}
            for row in self.store.table(RETENTION).rows
        ]
        return sorted(
            rules, key=lambda r: (_specificity(r), r["cluster"] or "", r["namespace"] or "")
        )

    def expire(self, now: float | None = None, *, default_days: int | None = None) -> int:
        """Delete the recordings older than their rule allows; how many. The rule of a
        recording is the most specific that matches: cluster and namespace, then namespace,
        then cluster, then the global one, else ``default_days`` (None: kept)."""
        now = self._clock() if now is None else now
        rules = {(r["cluster"] or "", r["namespace"] or ""): r["days"] for r in self.retention()}
        expired = []
        for row in self._select("id, cluster, namespace, started", "", [], limit=None):
            days = next(
                (
                    rules[scope]
                    for scope in (
                        (row["cluster"], row["namespace"]),
                        ("", row["namespace"]),
                        (row["cluster"], ""),
                        ("", ""),
                    )
                    if scope in rules
                ),
                default_days,
            )
            if days is not None and row["started"] + days * DAY < now:
                expired.append(row["id"])
        with self._db.atomic():
            for id in expired:
                row = self._rowid(id)
                if row is not None:
                    self._index.remove(row)
                self._db.execute(f"DELETE FROM [{self._table.name}] WHERE id = ?", [id])
        return len(expired)

    # -- whether input is recorded, by cluster and namespace ---------------------------
    def set_input_recording(
        self, record: bool, *, cluster: str | None = None, namespace: str | None = None, by: str
    ) -> None:
        """Record what users type in ``cluster``/``namespace`` sessions or not (``None`` is
        any); a second rule for the same scope replaces the first."""
        if not isinstance(record, bool):
            raise ValueError(f"record must be true or false, not {record!r}")
        self.store.table(INPUT).insert(
            {
                "cluster": cluster or "",
                "namespace": namespace or "",
                "record": int(record),
                "by": by,
                "at": self._clock(),
            },
            replace=True,
        )

    def input_rules(self) -> builtins.list[dict[str, Any]]:
        """The rules, most specific first: ``{cluster, namespace, record, by, at}``."""
        rules = [
            {
                **row,
                "cluster": row["cluster"] or None,
                "namespace": row["namespace"] or None,
                "record": bool(row["record"]),
            }
            for row in self.store.table(INPUT).rows
        ]
        return sorted(
            rules, key=lambda r: (_specificity(r), r["cluster"] or "", r["namespace"] or "")
        )

    def records_input(self, cluster: str, namespace: str, default: bool) -> bool:
        """Whether a session in ``cluster``/``namespace`` records input: the most specific
        rule (as for retention), else ``default`` (the plugin's ``record_input``)."""
        rules = {
            (r["cluster"] or "", r["namespace"] or ""): r["record"] for r in self.input_rules()
        }
        for scope in ((cluster, namespace), ("", namespace), (cluster, ""), ("", "")):
            if scope in rules:
                return bool(rules[scope])
        return default

    # -- who viewed what ----------------------------------------------------------------
    def record_view(self, session: str, user: str, action: str) -> None:
        """Append to the access log; entries are never changed nor deleted (they outlive
        the recording they are about)."""
        self.store.table(VIEWS).insert(
            {"session": session, "user": user, "action": action, "at": self._clock()}
        )

    def views(self, session: str) -> builtins.list[dict[str, Any]]:
        table = self.store.table(VIEWS)
        rows = table.rows_where("session = ?", [session], order_by="at, id")
        return [{k: row[k] for k in ("session", "user", "action", "at")} for row in rows]

    # -- helpers --------------------------------------------------------------------------
    def _rowid(self, id: str) -> int | None:
        found = self._db.execute(
            f"SELECT rowid FROM [{self._table.name}] WHERE id = ?", [id]
        ).fetchone()
        return None if found is None else int(found[0])

    def _select(
        self, columns: str, where: str, params: builtins.list[Any], limit: int | None
    ) -> builtins.list[dict[str, Any]]:
        sql = f"SELECT {columns} FROM [{self._table.name}]"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY started DESC, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cursor = self._db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _lines(rec: Recording) -> Iterator[str]:
    """What the index reads of a recording: its transcript's lines (search reads them),
    in blocks (see :func:`.formats.searchable_text`)."""
    return searchable_text(rec)


def _filters(**equal: str | None) -> tuple[str, list[Any]]:
    given = {column: value for column, value in equal.items() if value is not None}
    return " AND ".join(f"{column} = ?" for column in given), list(given.values())


def _specificity(rule: dict[str, Any]) -> int:
    return {(True, True): 0, (False, True): 1, (True, False): 2}.get(
        (bool(rule["cluster"]), bool(rule["namespace"])), 3
    )


_Loaded = TypeVar("_Loaded", Summary, Recording)


def _load(cls: type[_Loaded], row: dict[str, Any], **packed: Any) -> _Loaded:
    """A ``cls`` from a row of the recordings table: each field from the column of its
    name (``command`` is JSON there), but those ``packed`` in the blob, given apart."""
    columns = {f.name: row[f.name] for f in fields(cls) if f.name in row}
    return cls(**columns | packed | {"command": json.loads(row["command"])})
