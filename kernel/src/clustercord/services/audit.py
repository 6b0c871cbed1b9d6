"""The audit log: append-only and hash-chained, in the kernel table ``_audit``.

Every row carries ``prev_hash`` (the previous row's ``hash``; 64 zeros for the first)
and ``hash`` = sha256(prev_hash + canonical JSON of the row's other columns). SQLite
triggers refuse UPDATE and DELETE, so the kernel itself cannot rewrite history by
mistake; someone who bypasses them (drops the triggers, edits the file) breaks the
chain, and :meth:`AuditLog.verify` names the rows. Removing rows at the end is seen
through SQLite's AUTOINCREMENT counter, unless that is edited too: keep an exported
``head`` elsewhere to be sure of the tail.

Secrets never reach the table: options are masked by :func:`mask_secrets` and the
message by :func:`mask_text` before a row is hashed and stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, TypedDict, Unpack

from clustercord.storage import Database

MASK = "••••••"
GENESIS = "0" * 64
RESULTS = ("ok", "error", "denied", "cancelled")

SECRET_NAME_PARTS = (
    "token",
    "password",
    "passwd",
    "secret",
    "key",
    "apikey",
    "api_key",
    "credential",
    "kubeconfig",
)
BUILTIN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),  # JWT
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S
    ),
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]+", re.I),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
)

# Hashed, in this order; seq is included so a row cannot be moved.
_HASHED = (
    "seq",
    "ts",
    "actor",
    "action",
    "plugin",
    "cluster",
    "namespace",
    "options",
    "result",
    "message",
    "duration_ms",
)
_COLUMNS = (*_HASHED, "prev_hash", "hash")

Patterns = Iterable[str | re.Pattern[str]]


# -- masking ------------------------------------------------------------------------
def compile_patterns(patterns: Patterns) -> list[re.Pattern[str]]:
    """Compile regex strings, with a ValueError naming a pattern that is not valid."""
    compiled = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            compiled.append(pattern)
            continue
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError(f"secret pattern {pattern!r} is not a valid regex: {exc}") from exc
    return compiled


def mask_text(text: str, patterns: Patterns = ()) -> str:
    """``text`` with every match of a built-in or given secret pattern replaced by the mask."""
    for pattern in (*BUILTIN_PATTERNS, *compile_patterns(patterns)):
        text = pattern.sub(MASK, text)
    return text


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def mask_secrets(
    options: Mapping[str, Any] | None,
    secret_names: Iterable[str] = (),
    patterns: Patterns = (),
) -> dict[str, Any]:
    """A copy of ``options`` safe to store: secret values masked, at any depth.

    A key is secret when declared so (``secret_names``) or when its name contains a
    telltale word (token, password, key, ...). Over-masking an innocent ``sort-key``
    is the price of never storing a real one.
    """
    declared = {_normal(name) for name in secret_names}
    compiled = compile_patterns(patterns)

    def mask(value: Any, key: str | None) -> Any:
        if (
            key is not None
            and value is not None
            and (_normal(key) in declared or looks_secret(key))
        ):
            return MASK
        if isinstance(value, str):
            return mask_text(value, compiled)
        if isinstance(value, Mapping):
            return {str(k): mask(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [mask(item, None) for item in value]
        return value

    return {str(k): mask(v, str(k)) for k, v in (options or {}).items()}


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


# -- hashing ------------------------------------------------------------------------
def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(row: Mapping[str, Any]) -> str:
    """The hash of a row (as stored or exported, options parsed) given its ``prev_hash``."""
    body = {name: row.get(name) for name in _HASHED}
    return hashlib.sha256((row["prev_hash"] + canonical_json(body)).encode()).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head: str | None
    """The hash of the last row: record it elsewhere to detect a truncated tail later."""
    problems: list[str] = field(default_factory=list)


def verify_rows(rows: Iterable[Mapping[str, Any]], expected_last_seq: int = 0) -> VerifyResult:
    """Check a chain of rows in seq order (the table, or an export read back)."""
    problems: list[str] = []
    count, prev_seq, prev_hash = 0, 0, GENESIS
    for row in rows:
        count += 1
        seq = row["seq"]
        if seq != prev_seq + 1:
            first_missing = prev_seq + 1
            missing = (
                f"seq {first_missing}"
                if first_missing == seq - 1
                else f"seqs {first_missing}-{seq - 1}"
            )
            problems.append(f"seq {seq}: gap in seq numbers, {missing} missing (row removed)")
        if row["prev_hash"] != prev_hash:
            before = f"seq {prev_seq}" if prev_seq else "the start of the log"
            problems.append(
                f"seq {seq}: prev_hash does not match {before} (row removed or reordered)"
            )
        if row_hash(row) != row["hash"]:
            problems.append(f"seq {seq}: hash mismatch (row edited)")
        prev_seq, prev_hash = seq, row["hash"]
    if expected_last_seq > prev_seq:
        problems.append(
            f"rows after seq {prev_seq} are missing: the log had reached seq {expected_last_seq}"
        )
    return VerifyResult(
        ok=not problems, count=count, head=prev_hash if count else None, problems=problems
    )


# -- the log ------------------------------------------------------------------------
class AuditFields(TypedDict, total=False):
    """The optional columns of :meth:`AuditLog.record` and :meth:`AuditLog.arecord`."""

    plugin: str | None
    cluster: str | None
    namespace: str | None
    options: Mapping[str, Any] | None
    """Masked by :func:`mask_secrets` before the row is hashed."""
    result: str
    """One of :data:`RESULTS`; ``"ok"`` when left out."""
    message: str | None
    """Masked by :func:`mask_text` before the row is hashed."""
    duration_ms: float | None
    secret_names: Iterable[str]
    """Option names to mask besides those that look secret (see :func:`looks_secret`)."""


class AuditLog:
    """The kernel's audit log; plugins append through :meth:`for_plugin`."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock
        self._patterns: list[re.Pattern[str]] = []
        with database.transaction():
            for statement in _SCHEMA:
                database.conn.execute(statement)
        self._writer = _GroupWriter(database)

    def add_patterns(self, patterns: Patterns) -> None:
        """Mask these regexes too from now on (plugins' ``secret_patterns``)."""
        self._patterns.extend(compile_patterns(patterns))

    @property
    def patterns(self) -> list[re.Pattern[str]]:
        return list(self._patterns)

    def mask_text(self, text: str) -> str:
        return mask_text(text, self._patterns)

    def for_plugin(self, plugin: str) -> PluginAudit:
        return PluginAudit(self, plugin)

    def record(self, action: str, *, actor: str, **fields: Unpack[AuditFields]) -> dict[str, Any]:
        """Append one row, committed (or part of the caller's transaction), and return it
        as stored. Blocks on the fsync: from the event loop, prefer :meth:`arecord`.

        ``fields`` are the optional columns, see :class:`AuditFields`."""
        row = self._prepare(action, actor, fields)
        with self._database.transaction():
            _append(self._database.conn, [row])
        return {name: row[name] for name in _COLUMNS}

    async def arecord(
        self, action: str, *, actor: str, **fields: Unpack[AuditFields]
    ) -> dict[str, Any]:
        """:meth:`record` without blocking the event loop: returns once the row is committed.

        Rows appended concurrently are committed together by one writer thread, in one
        transaction (one fsync per batch instead of one per row), chained in the order
        the calls were made.
        """
        row = self._prepare(action, actor, fields)
        await self._writer.append(row)
        return {name: row[name] for name in _COLUMNS}

    def close(self) -> None:
        """Stop the writer thread (after the batch in flight) and close its connection."""
        self._writer.close()

    def _prepare(self, action: str, actor: str, fields: AuditFields) -> dict[str, Any]:
        """A validated, masked row without its place in the chain (seq and hashes)."""
        unknown = sorted(set(fields) - set(AuditFields.__annotations__))
        if unknown:
            raise TypeError(f"audit record: unexpected keyword argument {unknown[0]!r}")
        result = fields.get("result", "ok")
        if result not in RESULTS:
            raise ValueError(f"audit result {result!r}: use one of {', '.join(RESULTS)}")
        options = mask_secrets(
            fields.get("options"), fields.get("secret_names", ()), self._patterns
        )
        message = fields.get("message")
        duration_ms = fields.get("duration_ms")
        # Normalised to what SQLite gives back, so the hash recomputes identically.
        return {
            "ts": float(self._clock()),
            "actor": str(actor),
            "action": str(action),
            "plugin": fields.get("plugin"),
            "cluster": fields.get("cluster"),
            "namespace": fields.get("namespace"),
            "options": json.loads(canonical_json(options)),
            "result": result,
            "message": None if message is None else mask_text(str(message), self._patterns),
            "duration_ms": None if duration_ms is None else float(duration_ms),
        }

    def iter_rows(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Rows after ``since_seq`` in order, options parsed (as hashed)."""
        cursor = self._database.conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM _audit WHERE seq > ? ORDER BY seq", (since_seq,)
        )
        for values in cursor:
            row = dict(zip(_COLUMNS, values, strict=True))
            try:
                row["options"] = json.loads(row["options"]) if row["options"] else {}
            except ValueError:
                pass  # left as text: verify() reports the row as edited
            yield row

    def export(self, stream: IO[str], since_seq: int = 0) -> int:
        """Write rows as JSON lines; returns how many. An export can be checked with
        :func:`verify_rows` on its parsed lines."""
        count = 0
        for row in self.iter_rows(since_seq):
            stream.write(canonical_json(row) + "\n")
            count += 1
        return count

    def verify(self) -> VerifyResult:
        return verify_rows(self.iter_rows(), expected_last_seq=_counter(self._database.conn))


def _counter(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_audit'").fetchone()
    return int(row[0]) if row else 0


def _append(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """Chain and insert ``rows`` in order; the caller holds a write transaction on ``conn``."""
    last = conn.execute("SELECT seq, hash FROM _audit ORDER BY seq DESC LIMIT 1").fetchone()
    # Continue from the AUTOINCREMENT counter, so rows removed from the end
    # leave a visible gap instead of being silently re-used.
    seq = max(last[0] if last else 0, _counter(conn))
    prev_hash = last[1] if last else GENESIS
    for row in rows:
        seq += 1
        row["seq"], row["prev_hash"] = seq, prev_hash
        row["hash"] = prev_hash = row_hash(row)
        stored = {**row, "options": canonical_json(row["options"])}
        conn.execute(_INSERT, [stored[name] for name in _COLUMNS])


_INSERT = f"INSERT INTO _audit({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class _GroupWriter:
    """Group commit: rows queued while a batch is being written go into the next batch.

    One thread, with its own connection (a file database; an in-memory one is shared
    under the database lock), writes each batch in one transaction, so a burst of N
    commands costs one fsync per batch rather than N fsyncs on the event loop. Each
    caller's future resolves only after its batch's COMMIT returned: durability is
    unchanged. Batches are queued and written in call order, so the chain order is
    the order of the ``append`` calls.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def append(self, row: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((row, future))
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush(loop))  # a reference: not collected
        # Shielded: a caller that gives up does not take the row out of its batch.
        await asyncio.shield(future)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await loop.run_in_executor(
                        self._executor, self._commit, [row for row, _ in batch]
                    )
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flushing = False

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        """In the writer thread: one transaction, one fsync, for the whole batch."""
        if str(self._database.path) == ":memory:":
            with self._database.transaction():
                _append(self._database.conn, rows)
            return
        if self._conn is None:
            self._conn = self._database.connect()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            _append(self._conn, rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PluginAudit:
    """The :class:`clustercord_sdk.services.Audit` of one plugin: rows carry its name."""

    def __init__(self, log: AuditLog, plugin: str) -> None:
        self._log = log
        self.plugin = plugin

    def record(
        self,
        action: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        result: str = "ok",
    ) -> None:
        self._log.record(
            f"{self.plugin}:{action}",
            actor=actor,
            plugin=self.plugin,
            options=details,
            result=result,
        )


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS _audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        plugin TEXT,
        cluster TEXT,
        namespace TEXT,
        options TEXT NOT NULL,
        result TEXT NOT NULL,
        message TEXT,
        duration_ms REAL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    """CREATE TRIGGER IF NOT EXISTS _audit_no_update BEFORE UPDATE ON _audit
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS _audit_no_delete BEFORE DELETE ON _audit
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
)
