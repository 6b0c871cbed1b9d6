"""Nothing stored is lost when the process dies, and nothing is left half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from clustercord.services.audit import AuditLog
from clustercord.storage import Database

WRITER = textwrap.dedent("""
    import sys
    from clustercord.services.audit import AuditLog
    from clustercord.storage import Database

    database = Database(sys.argv[1])
    audit = AuditLog(database)
    blob = "x" * 20000  # large rows: a kill lands inside a write more often
    for i in range(1_000_000):
        with database.transaction():
            database.kv_set("test", f"key-{i}", {"i": i, "blob": blob})
            audit.record(f"write {i}", actor="writer", options={"i": i})
        print(i, flush=True)  # printed only after the commit returned
""")


def test_kill_during_writes_loses_no_committed_row_and_leaves_no_partial_one(tmp_path):
    path = tmp_path / "clustercord.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    committed = -1
    for line in writer.stdout:
        committed = int(line)
        if committed >= 150:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    database = Database(path)
    assert database.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = database.kv_keys("test")
    # Every row reported committed is there; at most the one in flight is extra.
    assert len(stored) in (committed + 1, committed + 2)
    assert database.kv_get("test", f"key-{committed}")["i"] == committed
    audit = AuditLog(database).verify()
    # The kv row and the audit row were one transaction: both or neither.
    assert audit.ok, audit.problems
    assert audit.count == len(stored)


OPENER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from clustercord.storage import Database, write_atomic

    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # every process opens at the same instant
    database = Database(sys.argv[1])
    for i in range(10):
        database.db["things"].create({"n": int}, pk="n", if_not_exists=True)
        database.kv_set("test", sys.argv[3], i)
        write_atomic(Path(sys.argv[1]).with_name("shared.json"), sys.argv[3] * 1000)
""")


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    """Two ``clustercord run`` started together on a fresh data directory used to fail with
    "database is locked" (both turning the new file into WAL) or trip over one temporary file."""
    for trial in range(5):
        path = tmp_path / f"trial-{trial}" / "clustercord.db"
        path.parent.mkdir()
        start = str(time.time() + 1.5)
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), start, name],
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in "abcd"
        ]
        errors = [run.communicate(timeout=60)[1] for run in runs]
        assert [run.returncode for run in runs] == [0] * 4, errors
        database = Database(path)
        assert sorted(database.kv_keys("test")) == ["a", "b", "c", "d"]
        shared = (path.parent / "shared.json").read_text()
        assert shared in {name * 1000 for name in "abcd"}  # one writer's whole file
        assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []


MIGRATOR = textwrap.dedent("""
    import sys, time
    from clustercord.storage import Database

    start = float(sys.argv[2])
    database = Database(sys.argv[1])
    time.sleep(max(0.0, start - time.time()))  # every process migrates at the same instant

    def create():
        database.db["games"].create({"name": str}, pk="name", if_not_exists=True)

    def add_column():  # not re-runnable: a second ADD COLUMN is an error
        database.db["games"].add_column("players", int)
        database.kv_set("ran", sys.argv[3], True)

    print(database.migrate("plugin:games", [(1, create), (2, add_column)]))
""")


def test_processes_migrating_at_once_run_each_step_once(tmp_path):
    """Two kernels started together on a fresh data directory both read schema version 0,
    and the second ran every step again once the first had committed: "duplicate column
    name" and a plugin that would not start (seen with two ``clustercord run`` at once)."""
    for trial in range(5):
        path = tmp_path / f"trial-{trial}" / "clustercord.db"
        path.parent.mkdir()
        Database(path).close()
        start = str(time.time() + 1.5)
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATOR, str(path), start, name],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in "abcd"
        ]
        results = [run.communicate(timeout=60) for run in runs]
        assert [run.returncode for run in runs] == [0] * 4, [err for _, err in results]
        applied = sorted(v for out, _ in results for v in json.loads(out))
        assert applied == [1, 2], results  # each step run by one process only
        assert len(Database(path).kv_keys("ran")) == 1  # the column added exactly once
