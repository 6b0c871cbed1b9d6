"""Nothing stored is lost when the process dies, and nothing is left half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

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
