"""The kernel's one SQLite database (sqlite-utils), and the per-plugin stores on it.

Durability: WAL journal with ``synchronous=FULL``, so a committed transaction
survives the process being killed at any instant (and a power cut); a write
interrupted midway is rolled back on the next open, never half-applied.
Kernel tables start with ``_``; a plugin's tables are ``<plugin>__<name>``.

At rest: the database file (and its ``-wal``/``-shm``, which SQLite creates with the
database's mode) is created 0600 and tightened to 0600 when opened if looser;
:func:`secure_data_dir` does the same for the data directory (0700), the key files and the
files directory (0700, its files 0600) at the kernel's start.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from clustercord_sdk.errors import CommandError

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
log = logging.getLogger("clustercord.kernel")

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
KEY_FILES = ("secret.key", "audit.key", "audit.head")
"""Files of the data directory that hold or guard a secret (mode 0600)."""


def tighten(path: Path, mode: int) -> bool:
    """Make ``path`` no more open than ``mode`` (owner only); True if it was looser. A
    symbolic link is left alone (its target is not ours to change)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & ~mode & 0o777:
        return False
    os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
    log.warning(
        "%s was mode %04o, readable or writable by others: now %04o",
        path,
        stat.S_IMODE(info.st_mode),
        stat.S_IMODE(info.st_mode) & mode,
    )
    return True


def private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700 (made with its parents if missing)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    tighten(path, PRIVATE_DIR)
    return path


def secure_data_dir(data_dir: Path, files_dir: Path | None = None) -> None:
    """At start: the data directory 0700; the database, its WAL and shared memory, and the
    key files 0600; the files directory (console output files) 0700 and the files in it
    0600. Whatever was looser is tightened and logged."""
    private_dir(data_dir)
    for name in ("clustercord.db", "clustercord.db-wal", "clustercord.db-shm", *KEY_FILES):
        tighten(data_dir / name, PRIVATE_FILE)
    if files_dir is not None:
        private_dir(files_dir)
        for root, dirs, files in os.walk(files_dir):
            for name in dirs:
                tighten(Path(root) / name, PRIVATE_DIR)
            for name in files:
                tighten(Path(root) / name, PRIVATE_FILE)


def fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory after a rename or create in it) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path: Path, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` with ``data`` all at once: readers see the old file or the new one,
    never half of one, and a crash leaves no half file. The temporary file's name is this
    process's own, so two processes writing the same file at once do not trip each other."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync(path.parent)


class _Tables(sqlite_utils.Database):
    """sqlite-utils over the kernel's connection, its transactions taking the write lock first.

    sqlite-utils wraps ``create``, ``insert_all``, ``upsert`` and the like in
    :meth:`atomic`, a deferred ``BEGIN``: it reads, then asks for the write lock, and when
    another process wrote in between SQLite answers "database is locked" at once instead of
    waiting the busy timeout (two ``clustercord run`` on a fresh data directory failed so).
    Here the outermost one is the kernel's ``BEGIN IMMEDIATE``, which waits its turn; a
    nested one stays a savepoint, as in sqlite-utils."""

    def __init__(self, conn: sqlite3.Connection, transaction: Callable[[], Any]) -> None:
        super().__init__(conn)
        self._transaction = transaction

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        with self._transaction(), super().atomic():
            yield self


class SchemaTooNew(CommandError):
    """Stored data at a schema version above what this code knows (a downgrade)."""


class Database:
    """A connection to ``clustercord.db`` shared by the kernel's services.

    sqlite3 connections are used from the event loop thread and from worker
    threads, so writes are serialised by a lock and ``check_same_thread`` is off.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it: SQLite gives the WAL and shm files the
            # database's mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
            for suffix in ("", "-wal", "-shm"):
                tighten(Path(f"{self.path}{suffix}"), PRIVATE_FILE)
        self.lock = threading.RLock()
        self._depth = 0
        # Two processes opening a new database at once race on turning it into WAL and on
        # its first tables, and SQLite answers "database is locked" without waiting: the
        # first open of each process takes turns on a lock file beside the database.
        with self._opening():
            self.conn = self.connect()
            self.db = _Tables(self.conn, self.transaction)
            self.db.table("_kv").create(
                {"scope": str, "key": str, "value": str}, pk=("scope", "key"), if_not_exists=True
            )
            self.db.table("_migrations").create(
                {"scope": str, "version": int}, pk="scope", if_not_exists=True
            )

    @contextmanager
    def _opening(self) -> Iterator[None]:
        if str(self.path) == ":memory:":
            yield
            return
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by closing, and by death (kill -9)
            yield
        finally:
            os.close(fd)

    def connect(self) -> sqlite3.Connection:
        """A new connection with the durability settings above (autocommit: transactions
        are explicit). The kernel's shared one is :attr:`conn`; a writer thread may open
        its own, so that its commits wait on the disk without holding the event loop."""
        conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One atomic unit: everything inside commits together or not at all."""
        with self.lock:
            outermost = self._depth == 0
            if outermost:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self._depth -= 1
                if outermost:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self.conn.execute("COMMIT")

    # -- key/value, scoped ---------------------------------------------------------
    def kv_get(self, scope: str, key: str, default: Any = None) -> Any:
        row = self.conn.execute(
            "SELECT value FROM _kv WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def kv_set(self, scope: str, key: str, value: Any) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO _kv(scope, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value",
                (scope, key, json.dumps(value, sort_keys=True)),
            )

    def kv_delete(self, scope: str, key: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM _kv WHERE scope = ? AND key = ?", (scope, key))

    def kv_keys(self, scope: str, prefix: str = "") -> list[str]:
        rows = self.conn.execute(
            "SELECT key FROM _kv WHERE scope = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (scope, len(prefix), prefix),
        )
        return [row[0] for row in rows]

    # -- migrations ----------------------------------------------------------------
    def migrate(self, scope: str, steps: Iterable[tuple[int, Callable[[], None]]]) -> list[int]:
        """Run the steps above the recorded version for ``scope``, each atomically. Data at
        a version above every step known here was written by newer code: refused, never
        guessed at (:class:`SchemaTooNew`).

        The version is read again inside each step's write transaction: two processes
        starting on one data directory at once both see version 0 first, and the second,
        once it holds the lock, must find the step done rather than run it twice (an
        ``ADD COLUMN`` twice is an error)."""
        steps = sorted(steps, key=lambda pair: pair[0])
        known = steps[-1][0] if steps else 0
        self._refuse_newer(scope, self._version(scope), known)
        applied = []
        for version, step in steps:
            if version <= self._version(scope):
                continue
            with self.transaction():
                current = self._version(scope)
                self._refuse_newer(scope, current, known)
                if version <= current:
                    continue
                step()
                self.conn.execute(
                    "INSERT INTO _migrations(scope, version) VALUES (?, ?) "
                    "ON CONFLICT(scope) DO UPDATE SET version = excluded.version",
                    (scope, version),
                )
            applied.append(version)
        return applied

    def _version(self, scope: str) -> int:
        row = self.conn.execute(
            "SELECT version FROM _migrations WHERE scope = ?", (scope,)
        ).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _refuse_newer(scope: str, current: int, known: int) -> None:
        if current > known:
            raise SchemaTooNew(
                f"{scope}: the stored data is at schema version {current}, newer than this "
                f"code knows ({known}): it was written by a newer version; run that version "
                "or restore a backup made before the upgrade (clustercord backup list)"
            )


class PluginStore:
    """The :class:`clustercord_sdk.services.Store` of one plugin."""

    def __init__(self, database: Database, plugin: str, sealer: Any = None) -> None:
        self._database = database
        self.plugin = plugin
        self.sealer = sealer
        """The plugin's :class:`~clustercord_sdk.services.Sealer` (also ``ctx.sealer``), for
        code that holds only the store; ``None`` on a store without a data key."""
        self._prefix = plugin.replace("-", "_") + "__"

    def get(self, key: str, default: Any = None) -> Any:
        return self._database.kv_get(self.plugin, key, default)

    def set(self, key: str, value: Any) -> None:
        self._database.kv_set(self.plugin, key, value)

    def delete(self, key: str) -> None:
        self._database.kv_delete(self.plugin, key)

    def keys(self, prefix: str = "") -> list[str]:
        return self._database.kv_keys(self.plugin, prefix)

    def table(self, name: str) -> sqlite_utils.db.Table:
        if not _TABLE_NAME.match(name):
            raise ValueError(f"table name {name!r}: letters, digits and _ only")
        return self._database.db.table(self._prefix + name)

    def query(
        self, sql: str, params: Mapping[str, Any] | Iterable[Any] = ()
    ) -> list[dict[str, Any]]:
        """Read-only SQL over the plugin's own tables, named without the prefix."""
        own = {
            name[len(self._prefix) :]: name
            for name in self._database.db.table_names()
            if name.startswith(self._prefix)
        }
        conn = sqlite3.connect(f"file:{self._database.path}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            # Expose only this plugin's tables, under their short names.
            conn.set_authorizer(_read_only_authorizer(set(own.values())))
            for short, full in own.items():
                conn.execute(f'CREATE TEMP VIEW "{short}" AS SELECT * FROM "{full}"')
            return [dict(row) for row in conn.execute(sql, params)]
        finally:
            conn.close()

    def transaction(self) -> Any:
        return self._database.transaction()


def _read_only_authorizer(allowed: set[str]) -> Callable[..., int]:
    def authorize(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
        # A read outside the plugin's tables is refused, even one that names no column:
        # ``count(*)`` reports its table with no database name, and would tell row counts.
        if action == sqlite3.SQLITE_READ and dbname != "temp" and arg1 not in allowed:
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION):
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_CREATE_TEMP_VIEW,) and dbname == "temp":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_INSERT and dbname == "temp":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and dbname == "temp":
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize
