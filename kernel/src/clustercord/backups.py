"""Backups of the database, restoring one, and refusing to run a database newer than us.

A backup is a copy of ``clustercord.db`` made with SQLite's online backup API (consistent
while the kernel keeps writing), kept 0600 in ``<data dir>/backups/``. What a backup does
*not* hold is the data key (``secret.key`` or ``CLUSTERCORD_SECRET_KEY``) and the audit key
(``audit.key``): rows sealed with the data key (uploaded kubeconfigs, recordings, plugins'
sealed values) are unreadable without it, so creating a backup says so, and restoring one
checks that the keys of this data directory are the ones the backup was written with.

Restoring replaces the database while no ClusterCord process uses the directory
(:func:`clustercord.instance.alone`), after a safety backup of the current one, and records
itself in the audit log with the head it replaced: a restore is a legitimate truncation of
the log, and the log says so instead of looking tampered with.

Upgrades: the kernel records its version in the database at every start. A database last
written by a newer kernel is refused (its tables may mean something this kernel does not
know); a database written by an older one is backed up before anything migrates it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from clustercord import __version__
from clustercord.secretbox import KEY_SCOPE, current_key_id
from clustercord.services.audit import (
    HEAD_FILE,
    META_SCOPE,
    HeadFile,
    last_counted_seq,
    read_key,
    read_rows,
    verify_rows,
)
from clustercord.storage import PRIVATE_FILE, Database, fsync, private_dir
from clustercord_sdk.errors import CommandError

BACKUP_DIR = "backups"
KERNEL_SCOPE = "_kernel"
"""The ``_kv`` scope of the kernel's own facts (the version that last ran)."""


class BackupError(CommandError):
    """A backup cannot be made or restored; nothing was changed."""


class NewerDatabase(CommandError):
    """The database was last written by a newer ClusterCord."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created: float
    size: int
    kernel_version: str | None
    audit_seq: int
    sealed: bool
    """Whether rows sealed with the data key are in it (lost without that key)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "created": self.created,
            "size": self.size,
            "kernel_version": self.kernel_version,
            "audit_seq": self.audit_seq,
            "sealed": self.sealed,
        }


def backup_dir(data_dir: Path) -> Path:
    return private_dir(data_dir / BACKUP_DIR)


def create_backup(database: Database, data_dir: Path, label: str = "manual") -> BackupInfo:
    """A consistent copy of ``database`` in ``<data dir>/backups/``, written to a temporary
    name, fsynced and renamed: a crash leaves no half backup under a backup's name."""
    now = time.time()  # milliseconds in the name: names sort as the backups were made
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"
    folder = backup_dir(data_dir)
    target = folder / f"clustercord-{stamp}-{label}.db"
    for n in range(1, 100):
        if not target.exists():
            break
        target = folder / f"clustercord-{stamp}-{label}-{n}.db"
    partial = target.with_suffix(".db.partial")
    os.close(os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE))
    try:
        copy = sqlite3.connect(str(partial))
        try:
            with database.lock:  # a page-consistent copy, even mid-write
                database.conn.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
        fsync(partial)
        partial.rename(target)
        fsync(folder)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return describe(target)


def describe(path: Path) -> BackupInfo:
    """What a backup holds, read without changing it; :class:`BackupError` if it is not a
    whole ClusterCord database."""
    if not path.is_file():
        raise BackupError(f"no backup at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be opened: {exc}") from None
    try:
        checked = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if checked != "ok":
            raise BackupError(f"{path} is damaged (SQLite integrity check: {checked})")
        if not (_has_table(conn, "_kv") and _has_table(conn, "_migrations")):
            raise BackupError(f"{path} is not a ClusterCord database")
        version = _kv(conn, KERNEL_SCOPE, "version")
        logged = _has_table(conn, "_audit")
        seq = conn.execute("SELECT max(seq) FROM _audit").fetchone()[0] if logged else 0
        sealed = _kv(conn, KEY_SCOPE, "key_id") is not None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from None
    finally:
        conn.close()
    stat = path.stat()
    return BackupInfo(path, stat.st_mtime, stat.st_size, version, int(seq or 0), sealed)


def list_backups(data_dir: Path) -> list[BackupInfo]:
    folder = data_dir / BACKUP_DIR
    found = []
    for path in sorted(folder.glob("clustercord-*.db")) if folder.is_dir() else []:
        try:
            found.append(describe(path))
        except BackupError:
            continue  # a damaged file is not offered as a backup
    return found


def newest(data_dir: Path, label: str) -> float | None:
    """When the newest backup labelled ``label`` was made (its file's time), if any."""
    times = [p.stat().st_mtime for p in (data_dir / BACKUP_DIR).glob(f"clustercord-*-{label}*.db")]
    return max(times, default=None)


def prune(data_dir: Path, keep: int, label: str) -> list[Path]:
    """Delete all but the ``keep`` newest backups labelled ``label`` (scheduled ones)."""
    mine = sorted((data_dir / BACKUP_DIR).glob(f"clustercord-*-{label}*.db"))
    gone = mine[: max(len(mine) - keep, 0)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


def restore_backup(
    data_dir: Path, database_path: Path, source: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Put ``source`` in place of the database. The caller holds the directory alone.

    Refused, changing nothing, when the backup is damaged or not ours, was written by a
    newer kernel, was sealed with another data key, or its audit log does not verify with
    this directory's audit key."""
    info = describe(source)
    _refuse_newer(info.kernel_version, f"the backup {source.name}")
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        sealed_with = _kv(conn, KEY_SCOPE, "key_id")
        audit_key_id = _kv(conn, META_SCOPE, "key_id")
        logged = _has_table(conn, "_audit")
        rows = list(read_rows(conn)) if logged else []
        counter = last_counted_seq(conn) if logged else 0
    finally:
        conn.close()
    if sealed_with is not None:
        have = current_key_id(data_dir, env)
        if have != sealed_with:
            now = "no data key" if have is None else f"data key {have}"
            raise BackupError(
                f"{source.name} holds data sealed with data key {sealed_with} "
                f"(uploaded kubeconfigs, recordings, plugins' sealed values) but this "
                f"directory has {now}: put the matching secret.key in {data_dir} (or set "
                "CLUSTERCORD_SECRET_KEY) first; nothing was changed"
            )
    audit_key = read_key(data_dir / "audit.key")
    if rows:
        if audit_key is None or (audit_key_id is not None and audit_key.key_id != audit_key_id):
            raise BackupError(
                f"{source.name}'s audit log was written with audit key {audit_key_id}, which "
                f"is not {data_dir / 'audit.key'}: restore that key first; nothing was changed"
            )
        checked = verify_rows(rows, expected_last_seq=counter, key=audit_key)
        if not checked.ok:
            raise BackupError(
                f"{source.name}'s audit log does not verify: {'; '.join(checked.problems[:3])}"
            )
    replaced = None
    if database_path.exists():
        current = Database(database_path)
        try:
            replaced = create_backup(current, data_dir, "before-restore")
        finally:
            current.close()
    previous_head = _head(data_dir, audit_key)
    incoming = database_path.with_name(database_path.name + ".restoring")
    os.close(os.open(incoming, os.O_RDWR | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE))
    shutil.copyfile(source, incoming)  # into the 0600 file made above: it keeps its mode
    fsync(incoming)
    # The old database's WAL would be replayed into the new one: it goes first. Its
    # content is in the safety backup above (the backup API reads through the WAL).
    for suffix in ("-wal", "-shm"):
        Path(f"{database_path}{suffix}").unlink(missing_ok=True)
    incoming.replace(database_path)
    fsync(database_path.parent)
    # A restore shortens the log on purpose: the head file, which never goes back, is
    # started again, and the restore row (written by the caller) names what it replaced.
    (data_dir / HEAD_FILE).unlink(missing_ok=True)
    return {
        "restored": str(source),
        "audit_seq": info.audit_seq,
        "kernel_version": info.kernel_version,
        "safety_backup": str(replaced.path) if replaced else None,
        "replaced_head": previous_head,
    }


def check_version(database: Database) -> str | None:
    """At start: refuse a database last written by a newer kernel; record ours. Returns the
    version that ran before when it was older (an upgrade: the caller backs up first)."""
    before = database.kv_get(KERNEL_SCOPE, "version")
    _refuse_newer(before, f"the database {database.path}")
    if before == __version__:
        return None
    return before or "unversioned"  # written before versions were recorded


def holds_data(database: Database) -> bool:
    """Whether the database holds anything beyond the bookkeeping of a fresh one."""
    return (
        database.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
            "AND name NOT IN ('_kv', '_migrations') AND name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        > 0
    )


def record_version(database: Database) -> None:
    database.kv_set(KERNEL_SCOPE, "version", __version__)


def _refuse_newer(version: str | None, what: str) -> None:
    if version is None:
        return
    try:
        newer = Version(version) > Version(__version__)
    except InvalidVersion:
        newer = True  # not a version we wrote: never guess
    if newer:
        raise NewerDatabase(
            f"{what} was written by ClusterCord {version}, newer than this one "
            f"({__version__}): its data may mean what this version does not know. Run "
            f"{version} or newer, or restore a backup made before the upgrade "
            "(clustercord backup list)"
        )


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _head(data_dir: Path, key: Any) -> dict[str, Any] | None:
    if key is None:
        return None
    head, _ = HeadFile(data_dir / HEAD_FILE, key).read()
    return None if head is None else {"seq": head.seq, "hash": head.hash}


def _kv(conn: sqlite3.Connection, scope: str, key: str) -> Any:
    row = conn.execute("SELECT value FROM _kv WHERE scope = ? AND key = ?", (scope, key)).fetchone()
    return None if row is None else json.loads(row[0])
