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

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

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
class AuditLog:
    """The kernel's audit log; plugins append through :meth:`for_plugin`."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock
        self._patterns: list[re.Pattern[str]] = []
        with database.transaction():
            for statement in _SCHEMA:
                database.conn.execute(statement)

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

    def record(
        self,
        action: str,
        *,
        actor: str,
        plugin: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        options: Mapping[str, Any] | None = None,
        result: str = "ok",
        message: str | None = None,
        duration_ms: float | None = None,
        secret_names: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Append one row and return it as stored."""
        if result not in RESULTS:
            raise ValueError(f"audit result {result!r}: use one of {', '.join(RESULTS)}")
        # Normalised to what SQLite gives back, so the hash recomputes identically.
        row: dict[str, Any] = {
            "ts": float(self._clock()),
            "actor": str(actor),
            "action": str(action),
            "plugin": plugin,
            "cluster": cluster,
            "namespace": namespace,
            "options": json.loads(
                canonical_json(mask_secrets(options, secret_names, self._patterns))
            ),
            "result": result,
            "message": None if message is None else mask_text(str(message), self._patterns),
            "duration_ms": None if duration_ms is None else float(duration_ms),
        }
        conn = self._database.conn
        with self._database.transaction():
            last = conn.execute("SELECT seq, hash FROM _audit ORDER BY seq DESC LIMIT 1").fetchone()
            # Continue from the AUTOINCREMENT counter, so rows removed from the end
            # leave a visible gap instead of being silently re-used.
            row["seq"] = max(last[0] if last else 0, self._counter()) + 1
            row["prev_hash"] = last[1] if last else GENESIS
            row["hash"] = row_hash(row)
            stored = {**row, "options": canonical_json(row["options"])}
            conn.execute(
                f"INSERT INTO _audit({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [stored[name] for name in _COLUMNS],
            )
        return {name: row[name] for name in _COLUMNS}

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
        return verify_rows(self.iter_rows(), expected_last_seq=self._counter())

    def _counter(self) -> int:
        row = self._database.conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = '_audit'"
        ).fetchone()
        return int(row[0]) if row else 0


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
