"""``clustercord backup create|list|restore``: the command line of :mod:`clustercord.backups`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

KEY_WARNING = (
    "keep the data key ({key}) and the audit key (audit.key) somewhere else too: a backup "
    "does not hold them, and without the data key its sealed rows (uploaded kubeconfigs, "
    "recordings, plugins' sealed values) cannot be read"
)


def add_parser(sub: Any) -> None:
    backup = sub.add_parser("backup", help="back up the database, list backups, restore one")
    actions = backup.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="a consistent copy now (safe while ClusterCord runs)")
    listing = actions.add_parser("list", help="the backups in the data directory")
    listing.add_argument("--json", action="store_true")
    restore = actions.add_parser(
        "restore", help="replace the database with a backup (ClusterCord must be stopped)"
    )
    restore.add_argument("backup", type=Path, help="a backup file (see: clustercord backup list)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from clustercord import backups
    from clustercord.secretbox import ENV_KEY, KEY_FILE

    key = f"{settings.data_dir / KEY_FILE} or {ENV_KEY}"
    if args.action == "create":
        from clustercord.storage import Database

        database = Database(settings.database_path)
        try:
            info = backups.create_backup(database, settings.data_dir)
        finally:
            database.close()
        print(f"backup written: {info.path} ({_size(info.size)}, audit seq {info.audit_seq})")
        print(f"note: {KEY_WARNING.format(key=key)}", file=sys.stderr)
        return 0
    if args.action == "list":
        found = backups.list_backups(settings.data_dir)
        if args.json:
            print(json.dumps([info.to_dict() for info in found], indent=2))
        for info in [] if args.json else found:
            sealed = ", sealed rows: needs the data key" if info.sealed else ""
            print(f"{info.path.name}  {_size(info.size)}  audit seq {info.audit_seq}{sealed}")
        if not found and not args.json:
            print(f"no backups in {settings.data_dir / backups.BACKUP_DIR}")
        return 0
    return _restore(args.backup, settings)


def _restore(source: Path, settings: Any) -> int:
    from clustercord import backups, instance
    from clustercord.services.audit import AuditLog
    from clustercord.storage import Database

    lock = instance.alone(
        settings.data_dir, "stop every ClusterCord process of this directory before a restore"
    )
    try:
        done = backups.restore_backup(settings.data_dir, settings.database_path, source.resolve())
        database = Database(settings.database_path)
        try:
            log = AuditLog(database)
            log.record(
                "backup restore",
                actor=f"cli:{getpass.getuser()}",
                options={k: v for k, v in done.items() if k != "restored"} | {"from": source.name},
                message="the log before this row is the backup's; replaced_head is where it was",
            )
            log.close()
        finally:
            database.close()
    finally:
        lock.release()
    print(f"restored {source.name} (audit seq {done['audit_seq']})")
    if done["safety_backup"]:
        print(f"the database it replaced is kept as {done['safety_backup']}")
    return 0


def _size(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 1_048_576 else f"{size / 1024:.0f} kB"
