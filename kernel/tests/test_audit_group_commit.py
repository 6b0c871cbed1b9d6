"""Audit rows appended from the event loop: group commit keeps the chain and durability."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from clustercord.services.audit import AuditLog
from clustercord.storage import Database


def test_concurrent_appends_are_chained_in_call_order_and_committed(tmp_path: Path) -> None:
    path = tmp_path / "cc.db"
    audit = AuditLog(Database(path))
    seen_by_another_connection: list[int] = []

    async def append(n: int) -> dict:
        row = await audit.arecord(f"cmd {n}", actor="u-alice", options={"token": "s3cret"})
        # Returned only after COMMIT: a separate connection already sees the row.
        other = sqlite3.connect(path)
        seen_by_another_connection.append(
            other.execute("SELECT count(*) FROM _audit WHERE seq = ?", (row["seq"],)).fetchone()[0]
        )
        other.close()
        return row

    async def main() -> list[dict]:
        return await asyncio.gather(*(append(n) for n in range(60)))

    try:
        rows = asyncio.run(main())
        audit.record("sync in between", actor="u-bob")
        more = asyncio.run(main())
    finally:
        audit.close()

    assert [r["action"] for r in rows] == [f"cmd {n}" for n in range(60)]
    assert [r["seq"] for r in rows + more] == [*range(1, 61), *range(62, 122)]
    assert seen_by_another_connection == [1] * 120
    assert all(r["options"] == {"token": "••••••"} for r in rows)
    result = AuditLog(Database(path)).verify()
    assert result.ok, result.problems
    assert result.count == 121


def test_a_rejected_row_fails_only_its_caller(tmp_path: Path) -> None:
    audit = AuditLog(Database(tmp_path / "cc.db"))

    async def main() -> list:
        return await asyncio.gather(
            audit.arecord("fine", actor="u"),
            audit.arecord("bad", actor="u", result="maybe"),
            return_exceptions=True,
        )

    try:
        fine, bad = asyncio.run(main())
    finally:
        audit.close()
    assert fine["seq"] == 1
    assert isinstance(bad, ValueError) and "maybe" in str(bad)
    assert audit.verify().count == 1
