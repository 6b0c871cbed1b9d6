"""The audit log: append-only and chained, in the kernel table ``_audit``.

Every row carries ``prev_hash`` (the previous row's ``hash``; 64 zeros for the first) and
``hash``, computed over ``prev_hash`` and the canonical JSON of the row's other columns,
by the row's chain version (column ``chain``):

- **2, keyed** (every row written since the log became keyed): HMAC-SHA256 with the audit
  key, a secret kept outside the database: ``audit.key`` beside it (mode 0600, created once
  with O_EXCL semantics, never replaced; a missing key over a keyed log is an error that
  says what is lost, see :class:`AuditKeyError`). Whoever can write the database but not
  read the key cannot recompute the chain after an edit. A key of its own, not one derived
  from the data key (``secret.key`` or ``CLUSTERCORD_SECRET_KEY``, possibly a passphrase):
  changing the data key must not orphan the log, and the log's key never needs rotating.
- **1, unkeyed** (rows of a log written before keying existed): sha256 without a key. They
  keep verifying the old way. The key file records from which seq rows must be keyed
  (``keyed_from``), so keyed rows cannot be re-chained as old ones.

SQLite triggers refuse UPDATE and DELETE, so the kernel itself cannot rewrite history by
mistake; someone who bypasses them breaks the chain, and :meth:`AuditLog.verify` names the
rows. Rows removed at the end are seen through SQLite's AUTOINCREMENT counter; if that is
rewound too, through the head file ``audit.head`` (last seq and its MAC, itself MACed,
fsynced after commits in two alternating slots, see :class:`HeadFile`; it may lag up to
:data:`HEAD_INTERVAL` behind, never run ahead) and through an anchor an operator keeps
elsewhere (``clustercord audit anchor``).

A call of plugin code is written in two rows: an *intent* (``result="started"``, no
duration), committed before the plugin runs, and its result, whose ``intent_seq`` names the
intent. An intent with no result (the process was killed midway) is a warning of
:meth:`AuditLog.verify`, not tampering.

Secrets never reach the table: options are masked by :func:`mask_secrets` and the
message by :func:`mask_text` before a row is hashed and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypedDict, Unpack

from clustercord.storage import Database, fsync
from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import AuditCheck

log = logging.getLogger("clustercord.audit")

MASK = "••••••"
GENESIS = "0" * 64
STARTED = "started"
RESULTS = ("ok", "error", "denied", "cancelled", STARTED)
"""``started``: the intent row written before a call of plugin code (see the module doc)."""
CHAIN_UNKEYED = 1
CHAIN_KEYED = 2
KEY_FILE = "audit.key"
HEAD_FILE = "audit.head"
ANCHOR_PREFIX = "clustercord-audit-anchor"
HEAD_SLOT = 256
"""Bytes per slot of the head file (two slots)."""
_META_SCOPE = META_SCOPE = "_audit"
"""The kernel's own ``_kv`` scope for the key id (a plugin's scope is its name: no ``_``)."""
HEAD_INTERVAL = 0.02
"""Seconds between two writes of the head file by the group writer (coalesced meanwhile)."""

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
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),  # GitHub
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"\b[sr]k_live_[0-9A-Za-z]{16,}"),  # Stripe
    re.compile(r"\b[MN][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}"),  # Discord
    # A value given to a telltale key: only the value goes (``password=********``).
    re.compile(
        r"\b(?:password|passwd|pwd|secret|token|api[_-]?key|client[_-]?secret)"
        r"\s*[=:]\s*(?P<secret>[^\s,;&'\"]{3,})",
        re.I,
    ),
    re.compile(r"://[^/\s:@]+:(?P<secret>[^/\s@]+)@"),  # a password in a URL
)

# Hashed, in this order; seq is included so a row cannot be moved. Chain version 1.
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
# Chain version 2 also covers the intent link and the version itself.
_HASHED_KEYED = (*_HASHED, "intent_seq", "chain")
_COLUMNS = (*_HASHED, "intent_seq", "chain", "prev_hash", "hash")

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
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    """The match masked; of a pattern with a ``secret`` group, only that group."""
    if "secret" not in match.re.groupindex or match.start("secret") < 0:
        return MASK
    start, end = match.start("secret") - match.start(), match.end("secret") - match.start()
    return match.group()[:start] + MASK + match.group()[end:]


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
    """The unkeyed hash of a chain-1 row (as stored or exported, options parsed) given its
    ``prev_hash``: what anyone can recompute, so only old rows are checked this way."""
    body = {name: row.get(name) for name in _HASHED}
    return hashlib.sha256((row["prev_hash"] + canonical_json(body)).encode()).hexdigest()


def row_mac(row: Mapping[str, Any], key: AuditKey) -> str:
    """The HMAC-SHA256 of a chain-2 row given its ``prev_hash``, with the audit key."""
    body = {name: row.get(name) for name in _HASHED_KEYED}
    return key.mac(row["prev_hash"] + canonical_json(body))


# -- the key ------------------------------------------------------------------------
class AuditKeyError(CommandError):
    """The audit key is missing over a keyed log, unreadable, or not the log's key."""


@dataclass(frozen=True)
class AuditKey:
    """The secret that keys the chain, and the seq from which rows must be keyed."""

    secret: bytes = field(repr=False)
    keyed_from: int
    path: Path | None = None

    @classmethod
    def ephemeral(cls) -> AuditKey:
        """A key for an in-memory database (nothing to keep)."""
        return cls(secrets.token_bytes(32), 1)

    def mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    @property
    def key_id(self) -> str:
        """Names the key without revealing it (kept in the database to spot a swapped key)."""
        return self.mac("clustercord audit key id")[:16]


def read_key(path: Path) -> AuditKey | None:
    """The key stored at ``path``; ``None`` when there is no such file."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditKeyError(f"audit key {path}: {exc.strerror}") from None
    if path.stat().st_mode & 0o077:
        raise AuditKeyError(f"audit key {path} is readable by others; run: chmod 600 {path}")
    try:
        data = json.loads(text)
        return AuditKey(bytes.fromhex(data["key"]), int(data["keyed_from"]), path)
    except (ValueError, KeyError, TypeError):
        raise AuditKeyError(
            f"audit key {path} is damaged (not what ClusterCord wrote): restore it from the "
            "backup of the data directory"
        ) from None


def create_key(path: Path, keyed_from: int, now: float) -> AuditKey:
    """A new key file, mode 0600, unless one exists (then that one): written whole to a
    temporary file and fsynced, then hard-linked into place, so two kernels starting
    together keep one key and nobody reads half a key."""
    body = {
        "version": 1,
        "key": secrets.token_hex(32),
        "keyed_from": keyed_from,
        "created": now,
        "note": "ClusterCord audit key: back it up with the data directory; never replace it",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(body, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    key = read_key(path)
    assert key is not None
    return key


def missing_key_message(path: Path, keyed: tuple[int, int] | None, head: bool) -> str:
    """What is lost when the key is gone, and how to get it back."""
    what = (
        f"the audit log has keyed entries (seq {keyed[0]}-{keyed[1]})"
        if keyed
        else f"the log was keyed ({path.with_name(HEAD_FILE).name} exists)"
        if head
        else "the log was keyed"
    )
    return (
        f"audit key {path} is missing, but {what}: without the key they can still be read "
        "and exported, but never verified, and no entry can be chained after them. Restore "
        f"{path.name} from a backup of the data directory (mode 0600, beside "
        f"{path.with_name('clustercord.db').name}). ClusterCord does not make a new key "
        "over a keyed log: that would hide any edit made meanwhile."
    )


# -- the head, kept outside the database ----------------------------------------------
@dataclass(frozen=True)
class Head:
    """A point of the chain: a row's seq and MAC (``hash``), and its time."""

    seq: int
    hash: str
    ts: float | None = None


def format_anchor(head: Head) -> str:
    """One line an operator keeps elsewhere (``clustercord audit anchor``)."""
    return f"{ANCHOR_PREFIX} seq={head.seq} mac={head.hash} time={_iso(head.ts)}"


def parse_anchor(line: str) -> Head:
    """The head an anchor line names; ValueError saying what is wrong with it."""
    parts = line.split()
    if not parts or parts[0] != ANCHOR_PREFIX:
        raise ValueError(f"an anchor starts with {ANCHOR_PREFIX!r} (from clustercord audit anchor)")
    fields = dict(part.partition("=")[::2] for part in parts[1:])
    try:
        seq = int(fields["seq"])
        mac = fields["mac"]
    except (KeyError, ValueError):
        raise ValueError("an anchor needs seq=<number> and mac=<hex>") from None
    if not re.fullmatch(r"[0-9a-f]{64}", mac):
        raise ValueError("the anchor's mac is not 64 hex digits")
    when = fields.get("time", "-")
    try:
        ts = None if when == "-" else datetime.fromisoformat(when).timestamp()
    except ValueError:
        raise ValueError(f"the anchor's time {when!r} is not an ISO time") from None
    return Head(seq, mac, ts)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


class HeadFile:
    """``audit.head``: the last committed seq and its MAC, MACed with the audit key.

    Two fixed slots of :data:`HEAD_SLOT` bytes, written in turn in place (the older one is
    overwritten, then fsynced): an interrupted write damages only the slot being written
    and the other still holds the previous head, so a reader always finds a whole one. As
    atomic as a rename, without a new inode and a journal commit per write (about ten
    times cheaper). A slot whose MAC does not match is ignored; none valid is tampering."""

    def __init__(self, path: Path, key: AuditKey) -> None:
        self.path = path
        self.key = key
        self._lock = threading.Lock()
        self._written = 0

    def _mac(self, head: Head) -> str:
        return self.key.mac(f"head {head.seq} {head.hash} {head.ts!r}")

    def _slot(self, data: bytes) -> Head | None:
        """The head in one slot, if whole and MACed with our key."""
        try:
            fields = json.loads(data)
            head = Head(int(fields["seq"]), str(fields["hash"]), fields.get("ts"))
            signature = str(fields["mac"])
        except (ValueError, KeyError, TypeError):
            return None
        return head if hmac.compare_digest(signature, self._mac(head)) else None

    def _slots(self, data: bytes) -> tuple[list[Head | None], int]:
        """Each slot's head (``None``: empty or not valid), and how many are damaged."""
        heads: list[Head | None] = []
        damaged = 0
        for start in range(0, len(data), HEAD_SLOT):
            chunk = data[start : start + HEAD_SLOT].strip()
            head = self._slot(chunk) if chunk else None
            damaged += bool(chunk) and head is None
            heads.append(head)
        return heads, damaged

    def read(self) -> tuple[Head | None, str | None]:
        """The recorded head, or a problem with the file (``None, None``: no file)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"{self.path.name} is unreadable: {exc.strerror}"
        heads, damaged = self._slots(data)
        valid = [head for head in heads if head is not None]
        if not valid:
            if damaged:
                return None, f"{self.path.name} was altered (its MAC does not match the audit key)"
            return None, None
        return max(valid, key=lambda head: head.seq), None

    def write(self, head: Head) -> None:
        """Record ``head`` (committed) unless a later one is recorded already: the file may
        lag behind the log, never run ahead of it."""
        with self._lock:
            if head.seq <= self._written:
                return
            created = not self.path.exists()
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _lock_file(descriptor)  # another process appending to the same log
                heads, _ = self._slots(os.pread(descriptor, 2 * HEAD_SLOT, 0))
                seqs = [(h.seq if h is not None else -1) for h in (*heads, None, None)[:2]]
                if max(seqs) >= head.seq:
                    self._written = max(seqs)
                    return
                body = {"seq": head.seq, "hash": head.hash, "ts": head.ts, "mac": self._mac(head)}
                line = json.dumps(body).encode()
                slot = 0 if seqs[0] <= seqs[1] else 1
                os.pwrite(descriptor, line.ljust(HEAD_SLOT - 1) + b"\n", slot * HEAD_SLOT)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if created:
                _fsync_directory(self.path.parent)
            self._written = head.seq


def _lock_file(descriptor: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: the in-process lock only
        return
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # released when the descriptor is closed


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform opens directories
        fsync(directory)


# -- verifying ----------------------------------------------------------------------
@dataclass
class VerifyResult:
    ok: bool
    count: int
    head: str | None
    """The MAC (hash) of the last row: see ``clustercord audit anchor`` to keep it elsewhere."""
    problems: list[str] = field(default_factory=list)
    """Tampering: the log is not what was written."""
    warnings: list[str] = field(default_factory=list)
    """Not tampering: a call started with no result recorded (the process ended?)."""
    last_seq: int = 0


def describe_action(action: str) -> str:
    """A row's action as a person reads it: ``/template deploy``, ``component x:y``."""
    first = action.split(" ", 1)[0]
    if first in ("component", "form", "job") or ":" in first:
        return action
    return f"/{action}"


def verify_rows(
    rows: Iterable[Mapping[str, Any]],
    expected_last_seq: int = 0,
    *,
    key: AuditKey | None = None,
    heads: Sequence[tuple[str, Head]] = (),
) -> VerifyResult:
    """Check a chain of rows in seq order (the table, or an export read back).

    ``key`` checks the keyed rows (without it they are reported unchecked); ``heads`` are
    points the log must still contain unchanged, each with the name of where it was kept
    (the head file, an anchor)."""
    problems: list[str] = []
    warnings: list[str] = []
    count, prev_seq, prev_hash, prev_chain = 0, 0, GENESIS, CHAIN_UNKEYED
    unchecked: list[int] = []
    started: dict[int, tuple[str, float]] = {}
    wanted = {head.seq: head for _, head in heads}
    found: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        count += 1
        seq = row["seq"]
        chain = row.get("chain") or CHAIN_UNKEYED
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
        if chain == CHAIN_KEYED:
            if key is None:
                unchecked.append(seq)
            elif not hmac.compare_digest(row_mac(row, key), str(row["hash"])):
                problems.append(
                    f"seq {seq}: MAC mismatch (row edited, or the chain recomputed without the key)"
                )
        elif chain == CHAIN_UNKEYED:
            if prev_chain == CHAIN_KEYED or (key is not None and seq >= key.keyed_from):
                problems.append(
                    f"seq {seq}: an unkeyed row where the log is keyed"
                    + (f" (since seq {key.keyed_from})" if key is not None else "")
                    + ": the chain was recomputed without the key"
                )
            elif row_hash(row) != row["hash"]:
                problems.append(f"seq {seq}: hash mismatch (row edited)")
        else:
            problems.append(f"seq {seq}: unknown chain version {chain!r}")
        if row.get("result") == STARTED:
            started[seq] = (str(row.get("action")), float(row.get("ts") or 0))
        elif row.get("intent_seq") is not None:
            started.pop(row["intent_seq"], None)
        if seq in wanted:
            found[seq] = row
        prev_seq, prev_hash, prev_chain = seq, row["hash"], chain
    if unchecked:
        span = f"seq {unchecked[0]}" + (f"-{unchecked[-1]}" if len(unchecked) > 1 else "")
        problems.append(f"{span}: {len(unchecked)} keyed rows not checked: no audit key")
    if expected_last_seq > prev_seq:
        problems.append(
            f"rows after seq {prev_seq} are missing: the log had reached seq {expected_last_seq}"
        )
    if key is not None and key.keyed_from - 1 > prev_seq:
        problems.append(
            f"rows after seq {prev_seq} are missing: the log had reached seq "
            f"{key.keyed_from - 1} when its key was made (rows removed, table truncated?)"
        )
    for where, head in heads:
        problems += _head_problems(where, head, found.get(head.seq), prev_seq)
    for seq, (action, ts) in started.items():
        warnings.append(
            f"seq {seq}: {describe_action(action)} started at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(ts))}, no result recorded "
            "(the process ended?)"
        )
    return VerifyResult(
        ok=not problems,
        count=count,
        head=prev_hash if count else None,
        problems=problems,
        warnings=warnings,
        last_seq=prev_seq,
    )


def _head_problems(
    where: str, head: Head, row: Mapping[str, Any] | None, last_seq: int
) -> list[str]:
    if head.seq == 0:
        return []
    if head.seq > last_seq:
        return [
            f"rows after seq {last_seq} are missing: {where} records that the log reached "
            f"seq {head.seq} (rows deleted at the end)"
        ]
    if row is None:
        return [f"seq {head.seq}, recorded in {where}, is missing (row removed)"]
    if not hmac.compare_digest(str(row["hash"]), head.hash):
        return [
            f"seq {head.seq}: its MAC differs from the one recorded in {where} (the row or "
            "the chain before it was rewritten)"
        ]
    if head.ts is not None and abs(float(row.get("ts") or 0) - head.ts) > 1e-5:
        return [f"seq {head.seq}: its time differs from the one recorded in {where}"]
    return []


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
    intent_seq: int | None
    """In a result row: the seq of its intent row (``result="started"``)."""
    secret_names: Iterable[str]
    """Option names to mask besides those that look secret (see :func:`looks_secret`)."""


class AuditLog:
    """The kernel's audit log; plugins append through :meth:`for_plugin`.

    The key is ``audit.key`` beside the database (made on first use when the log has no
    keyed rows yet); ``create_key=False`` (``clustercord audit``) never makes one, and
    reports a missing key from :meth:`verify` instead of raising."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], float] = time.time,
        *,
        key: AuditKey | None = None,
        create_key: bool = True,
    ) -> None:
        self._database = database
        self._clock = clock
        self._patterns: list[re.Pattern[str]] = []
        with database.transaction():
            for statement in _SCHEMA:
                database.conn.execute(statement)
            present = {row[1] for row in database.conn.execute("PRAGMA table_info(_audit)")}
            for column, declaration in _ADDED_COLUMNS:
                if column not in present:  # a log written before keying: its rows are chain 1
                    database.conn.execute(f"ALTER TABLE _audit ADD COLUMN {declaration}")
        memory = str(database.path) == ":memory:"
        self.key_path = None if memory else database.path.parent / KEY_FILE
        self.head_path = None if memory else database.path.parent / HEAD_FILE
        self.key_problem: str | None = None
        if key is None:
            key = AuditKey.ephemeral() if memory else self._load_key(create_key)
        self.key = key
        self._head_file = (
            HeadFile(self.head_path, key) if key is not None and self.head_path else None
        )
        self._writer = _GroupWriter(
            database, key, on_commit=self._committed if self._head_file else None
        )

    def _load_key(self, create: bool) -> AuditKey | None:
        assert self.key_path is not None and self.head_path is not None
        conn = self._database.conn
        key = read_key(self.key_path)
        if key is None:
            keyed = conn.execute(
                "SELECT min(seq), max(seq) FROM _audit WHERE chain = ?", (CHAIN_KEYED,)
            ).fetchone()
            keyed = None if keyed[0] is None else (int(keyed[0]), int(keyed[1]))
            if keyed is not None or self.head_path.exists():
                message = missing_key_message(self.key_path, keyed, self.head_path.exists())
                if create:
                    raise AuditKeyError(message)
                self.key_problem = message
                return None
            if not create:
                return None
            key = create_key(self.key_path, _next_seq(conn), float(self._clock()))
        known = self._database.kv_get(_META_SCOPE, "key_id")
        if known is None and create:
            self._database.kv_set(_META_SCOPE, "key_id", key.key_id)
        elif known is not None and known != key.key_id:
            raise AuditKeyError(
                f"audit key {self.key_path} is not the key this audit log was written with "
                f"(key id {key.key_id}, the log's is {known}): restore the original "
                f"{KEY_FILE} from the backup of the data directory"
            )
        return key

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
            _append(self._database.conn, [row], self._require_key())
        if self._head_file is not None and not self._database.conn.in_transaction:
            self._committed(Head(row["seq"], row["hash"], row["ts"]))  # not before the commit
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
        self._require_key()
        await self._writer.append(row)
        return {name: row[name] for name in _COLUMNS}

    def close(self) -> None:
        """Stop the writer thread (after the batch in flight) and close its connection."""
        self._writer.close()

    def _require_key(self) -> AuditKey:
        if self.key is None:
            raise AuditKeyError(self.key_problem or f"audit key {self.key_path} is missing")
        return self.key

    def _committed(self, head: Head) -> None:
        """After a commit: record the head outside the database (best effort: a head file
        that lags behind only narrows what it proves)."""
        assert self._head_file is not None
        try:
            self._head_file.write(head)
        except OSError as exc:
            log.warning("audit: cannot write %s: %s", self._head_file.path, exc)

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
        intent_seq = fields.get("intent_seq")
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
            "intent_seq": None if intent_seq is None else int(intent_seq),
        }

    def iter_rows(self, since_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Rows after ``since_seq`` in order, options parsed (as hashed)."""
        return read_rows(self._database.conn, since_seq)

    def export(self, stream: IO[str], since_seq: int = 0) -> int:
        """Write rows as JSON lines; returns how many. An export can be checked with
        :func:`verify_rows` on its parsed lines (and the key, for keyed rows)."""
        count = 0
        for row in self.iter_rows(since_seq):
            stream.write(canonical_json(row) + "\n")
            count += 1
        return count

    def head(self) -> Head:
        """The last row's seq, MAC and time (seq 0 for an empty log)."""
        row = self._database.conn.execute(
            "SELECT seq, hash, ts FROM _audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return Head(0, GENESIS, None) if row is None else Head(int(row[0]), row[1], row[2])

    def verify(self, anchor: Head | None = None) -> VerifyResult:
        """Check the chain, the key's ``keyed_from``, the head file and ``anchor``."""
        heads: list[tuple[str, Head]] = []
        extra: list[str] = []
        if self.key_problem:
            extra.append(self.key_problem)
        if self._head_file is not None:
            recorded, problem = self._head_file.read()
            if problem:
                extra.append(problem)
            if recorded is not None:
                heads.append((HEAD_FILE, recorded))
        if anchor is not None:
            heads.append(("the anchor", anchor))
        result = verify_rows(
            self.iter_rows(),
            expected_last_seq=_counter(self._database.conn),
            key=self.key,
            heads=heads,
        )
        result.problems[:0] = extra
        result.ok = not result.problems
        return result


def read_rows(conn: sqlite3.Connection, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """The log's rows after ``since_seq`` from any connection to a ClusterCord database (the
    kernel's, or a backup's), in order, options parsed (as hashed)."""
    cursor = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM _audit WHERE seq > ? ORDER BY seq", (since_seq,)
    )
    for values in cursor:
        row = dict(zip(_COLUMNS, values, strict=True))
        try:
            row["options"] = json.loads(row["options"]) if row["options"] else {}
        except ValueError:
            pass  # left as text: verify_rows() reports the row as edited
        yield row


def last_counted_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever given out (deleted rows included): truncation shows against it."""
    return _counter(conn)


def _counter(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_audit'").fetchone()
    return int(row[0]) if row else 0


def _next_seq(conn: sqlite3.Connection) -> int:
    last = conn.execute("SELECT max(seq) FROM _audit").fetchone()[0] or 0
    return max(int(last), _counter(conn)) + 1


def _append(conn: sqlite3.Connection, rows: list[dict[str, Any]], key: AuditKey) -> Head:
    """Chain and insert ``rows`` in order (keyed); the caller holds a write transaction on
    ``conn``. Returns the new head."""
    last = conn.execute("SELECT seq, hash FROM _audit ORDER BY seq DESC LIMIT 1").fetchone()
    # Continue from the AUTOINCREMENT counter, so rows removed from the end
    # leave a visible gap instead of being silently re-used.
    seq = max(last[0] if last else 0, _counter(conn))
    prev_hash = last[1] if last else GENESIS
    for row in rows:
        seq += 1
        row["seq"], row["prev_hash"], row["chain"] = seq, prev_hash, CHAIN_KEYED
        row["hash"] = prev_hash = row_mac(row, key)
        stored = {**row, "options": canonical_json(row["options"])}
        conn.execute(_INSERT, [stored[name] for name in _COLUMNS])
    return Head(seq, prev_hash, rows[-1]["ts"] if rows else None)


_INSERT = f"INSERT INTO _audit({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class _GroupWriter:
    """Group commit: rows queued while a batch is being written go into the next batch.

    One thread, with its own connection (a file database; an in-memory one is shared
    under the database lock), writes each batch in one transaction, so a burst of N
    commands costs one fsync per batch rather than N fsyncs on the event loop. Each
    caller's future resolves only after its batch's COMMIT returned: durability is
    unchanged. Batches are queued and written in call order, so the chain order is
    the order of the ``append`` calls. The head file is written after the callers are
    answered, by the same thread before the next batch.
    """

    def __init__(
        self,
        database: Database,
        key: AuditKey | None,
        on_commit: Callable[[Head], None] | None = None,
    ) -> None:
        self._database = database
        self._key = key
        self._on_commit = on_commit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        # The head file has a thread of its own, so a batch never waits for it, and it
        # writes at most every HEAD_INTERVAL seconds, the latest head (fsyncs compete).
        self._head_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-head")
        self._head_lock = threading.Lock()
        self._latest: Head | None = None
        self._head_busy = False
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
                    head = await loop.run_in_executor(
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
                    self._record_head(head)
        finally:
            self._flushing = False

    def _commit(self, rows: list[dict[str, Any]]) -> Head:
        """In the writer thread: one transaction, one fsync, for the whole batch."""
        assert self._key is not None
        if str(self._database.path) == ":memory:":
            with self._database.transaction():
                return _append(self._database.conn, rows, self._key)
        if self._conn is None:
            self._conn = self._database.connect()
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            head = _append(self._conn, rows, self._key)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return head

    def _record_head(self, head: Head) -> None:
        if self._on_commit is None:
            return
        with self._head_lock:
            if self._latest is None or head.seq > self._latest.seq:
                self._latest = head
            if self._head_busy:
                return
            self._head_busy = True
        self._head_executor.submit(self._write_heads)

    def _write_heads(self) -> None:
        """In the head thread: the latest head now, then again after HEAD_INTERVAL if more
        committed meanwhile (so a lone command's head is written at once, a burst's
        coalesced); until nothing is left, so closing writes the last head."""
        assert self._on_commit is not None
        while True:
            with self._head_lock:
                head, self._latest = self._latest, None
                if head is None:
                    self._head_busy = False
                    return
            try:
                self._on_commit(head)
            except Exception:  # never leave the head thread stuck "busy"
                log.exception("audit: the head file was not written")
            time.sleep(HEAD_INTERVAL)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._head_executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AuditReader:
    """The :class:`clustercord_sdk.services.AuditReader` of ``audit-read`` plugins: the log
    read-only, one entry per call (see the Protocol), and :meth:`AuditLog.verify`."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def _where(
        self,
        since_seq: int,
        upto_seq: int | None,
        since_ts: float | None,
        plugin: str | None,
        actor: str | None,
        result: str | None,
    ) -> tuple[str, list[Any]]:
        clauses, params = ["seq > ?"], [int(since_seq)]
        if upto_seq is not None:
            clauses.append("seq <= ?")
            params.append(int(upto_seq))
        if since_ts is not None:
            clauses.append("ts >= ?")
            params.append(float(since_ts))
        if plugin:
            clauses.append("plugin = ?")
            params.append(plugin)
        if actor:
            clauses.append("(actor = ? OR substr(actor, instr(actor, ':') + 1) = ?)")
            params += [actor, actor]
        if result:
            clauses.append("result = ?")
            params.append(result)
        # An intent answered by a result (up to upto_seq) is that result's entry.
        answered = "SELECT intent_seq FROM _audit WHERE intent_seq IS NOT NULL"
        if upto_seq is not None:
            answered += " AND seq <= ?"
            params.append(int(upto_seq))
        clauses.append(f"NOT (result = '{STARTED}' AND seq IN ({answered}))")
        return " AND ".join(clauses), params

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        database = self._log._database
        with database.lock:  # not inside another thread's transaction on the shared connection
            return database.conn.execute(sql, params).fetchall()

    def _row(self, values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(_COLUMNS, values, strict=True))
        try:
            row["options"] = json.loads(row["options"]) if row["options"] else {}
        except ValueError:
            pass  # left as text: verify() reports the row as edited
        return row

    def rows(
        self,
        *,
        since_seq: int = 0,
        upto_seq: int | None = None,
        since_ts: float | None = None,
        plugin: str | None = None,
        actor: str | None = None,
        result: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where, params = self._where(since_seq, upto_seq, since_ts, plugin, actor, result)
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM _audit WHERE {where} "
            "ORDER BY seq DESC LIMIT ? OFFSET ?"
        )
        found = self._select(sql, [*params, max(0, int(limit)), max(0, int(offset))])
        return [self._row(values) for values in found]

    def count(
        self,
        *,
        since_seq: int = 0,
        upto_seq: int | None = None,
        since_ts: float | None = None,
        plugin: str | None = None,
        actor: str | None = None,
        result: str | None = None,
    ) -> int:
        where, params = self._where(since_seq, upto_seq, since_ts, plugin, actor, result)
        return int(self._select(f"SELECT count(*) FROM _audit WHERE {where}", params)[0][0])

    def entry(self, seq: int) -> dict[str, Any] | None:
        found = self._select(f"SELECT {', '.join(_COLUMNS)} FROM _audit WHERE seq = ?", [int(seq)])
        return self._row(found[0]) if found else None

    def head_seq(self) -> int:
        return self._log.head().seq

    def verify(self) -> AuditCheck:
        with self._log._database.lock:
            found = self._log.verify()
        return AuditCheck(
            ok=found.ok,
            count=found.count,
            head=found.head,
            problems=list(found.problems),
            warnings=list(found.warnings),
            last_seq=found.last_seq,
        )


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
# Added to the table of a log written before keying (and to a new one, the same way):
# its rows read back as chain 1 and keep verifying unkeyed.
_ADDED_COLUMNS = (
    ("intent_seq", "intent_seq INTEGER"),
    ("chain", f"chain INTEGER NOT NULL DEFAULT {CHAIN_UNKEYED}"),
)
