"""Shared by the audit log's tests (``from .conftest import Clock, MISMATCH, raw``): a clock
a test steps, the log on a database file of its own, and tampering with that file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustercord.services.audit import AuditLog
from clustercord.storage import Database

MISMATCH = "seq {}: MAC mismatch (row edited, or the chain recomputed without the key)"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "clustercord.db"


@pytest.fixture
def audit(path: Path) -> Iterator[AuditLog]:
    log = AuditLog(Database(path), clock=Clock())
    yield log
    log.close()  # the writer thread arecord starts


def raw(path: Path, *statements: str, params: list[tuple] | None = None) -> None:
    """Tamper with the file directly, triggers dropped, as someone with the file could."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS _audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS _audit_no_delete")
    for index, statement in enumerate(statements):
        conn.execute(statement, (params or [()] * len(statements))[index])
    conn.commit()
    conn.close()
