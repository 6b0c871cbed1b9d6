"""The keyed audit chain: the key outside the database, chain versions, the head file,
anchors, re-chaining by someone without the key, and intent rows without a result."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from clustercord.services.audit import (
    GENESIS,
    HEAD_FILE,
    HEAD_SLOT,
    KEY_FILE,
    AuditKey,
    AuditKeyError,
    AuditLog,
    Head,
    canonical_json,
    format_anchor,
    parse_anchor,
    row_hash,
    row_mac,
)
from clustercord.storage import Database

from .conftest import MISMATCH, raw


def fill(audit: AuditLog, count: int = 5) -> list[dict]:
    return [
        audit.record(f"pod restart {n}", actor="u-alice", plugin="pods", options={"n": n})
        for n in range(1, count + 1)
    ]


def reopen(path: Path, **kwargs) -> AuditLog:
    return AuditLog(Database(path), **kwargs)


def recorded_head(path: Path) -> Head:
    log = reopen(path)
    assert log._head_file is not None
    head, problem = log._head_file.read()
    assert head is not None, problem
    return head


def rechain(path: Path, digest) -> None:
    """Recompute every row's hash from the first, as an attacker with the database only
    can: ``digest(row) -> (chain, hash)``; one row edited first."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS _audit_no_update")
    conn.execute("UPDATE _audit SET actor = 'u-mallory' WHERE seq = 2")
    columns = [c[1] for c in conn.execute("PRAGMA table_info(_audit)")]
    prev = GENESIS
    for values in conn.execute("SELECT * FROM _audit ORDER BY seq").fetchall():
        row = dict(zip(columns, values, strict=True))
        row["options"] = json.loads(row["options"])
        row["prev_hash"] = prev
        chain, prev = digest(row)
        conn.execute(
            "UPDATE _audit SET prev_hash = ?, hash = ?, chain = ? WHERE seq = ?",
            (row["prev_hash"], prev, chain, row["seq"]),
        )
    conn.commit()
    conn.close()


# -- the key --------------------------------------------------------------------------
def test_the_key_is_a_private_file_beside_the_database_and_rows_are_keyed(
    path: Path, audit: AuditLog
) -> None:
    rows = fill(audit, 2)
    key_file = path.parent / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["keyed_from"] == 1
    assert audit.key is not None and audit.key.secret.hex() not in path.read_bytes().hex()
    assert all(row["chain"] == 2 for row in rows)
    # The MAC is the keyed one, not the sha256 anyone can recompute.
    assert rows[0]["hash"] == row_mac(rows[0], audit.key) != row_hash(rows[0])
    assert reopen(path).verify().ok


def test_a_missing_key_over_a_keyed_log_is_an_error_naming_the_file(
    path: Path, audit: AuditLog
) -> None:
    fill(audit, 3)
    (path.parent / KEY_FILE).unlink()
    with pytest.raises(AuditKeyError) as raised:
        reopen(path)  # the kernel's start: no new key over a keyed log
    message = str(raised.value)
    assert str(path.parent / KEY_FILE) in message
    assert "keyed entries (seq 1-3)" in message and "never verified" in message
    assert "Restore audit.key from a backup" in message
    assert not (path.parent / KEY_FILE).exists()
    # `clustercord audit verify` (create_key=False) reports it instead of raising.
    result = reopen(path, create_key=False).verify()
    assert not result.ok
    assert result.problems[0] == message
    assert result.problems[1] == "seq 1-3: 3 keyed rows not checked: no audit key"


def test_a_missing_key_with_only_the_head_file_left_is_still_an_error(
    path: Path, audit: AuditLog
) -> None:
    fill(audit, 2)
    raw(path, "DELETE FROM _audit")  # truncated, and the key removed as well
    (path.parent / KEY_FILE).unlink()
    with pytest.raises(AuditKeyError, match=r"audit\.head exists"):
        reopen(path)


def test_another_key_is_refused(path: Path, audit: AuditLog) -> None:
    fill(audit, 1)
    key_file = path.parent / KEY_FILE
    data = json.loads(key_file.read_text())
    key_file.write_text(json.dumps({**data, "key": "11" * 32}))
    with pytest.raises(AuditKeyError, match="not the key this audit log was written with"):
        reopen(path)


def test_a_key_readable_by_others_is_refused(path: Path, audit: AuditLog) -> None:
    (path.parent / KEY_FILE).chmod(0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        reopen(path)


def test_verify_never_makes_a_key(path: Path) -> None:
    log = reopen(path, create_key=False)
    assert log.verify().ok and log.key is None
    assert not (path.parent / KEY_FILE).exists()


# -- re-chaining without the key --------------------------------------------------------
def test_rechaining_with_the_old_unkeyed_algorithm_is_detected(path: Path, audit: AuditLog) -> None:
    fill(audit)
    rechain(path, lambda row: (1, row_hash(row)))
    problems = reopen(path).verify().problems
    unkeyed = [p for p in problems if "an unkeyed row where the log is keyed (since seq 1)" in p]
    assert len(unkeyed) == 5
    assert any("audit.head" in p for p in problems)


@pytest.mark.parametrize(
    "guess",
    [
        lambda row: hashlib.sha256((row["prev_hash"] + canonical_json(row)).encode()).hexdigest(),
        lambda row: row_mac(row, AuditKey(b"\0" * 32, 1)),
        lambda row: row_mac(row, AuditKey(b"clustercord", 1)),
    ],
    ids=["sha256", "zero-key", "guessed-key"],
)
def test_rechaining_with_a_guessed_key_is_detected(path: Path, audit: AuditLog, guess) -> None:
    fill(audit)
    rechain(path, lambda row: (2, guess(row)))
    result = reopen(path).verify()
    assert [p for p in result.problems if "MAC mismatch" in p] == [
        MISMATCH.format(seq) for seq in range(1, 6)
    ]
    assert "seq 5: its MAC differs from the one recorded in audit.head" in " ".join(result.problems)


# -- the head file ------------------------------------------------------------------------
def test_the_head_file_is_written_atomically_and_lags_never_leads(
    path: Path, audit: AuditLog
) -> None:
    rows = fill(audit, 3)
    head_file = path.parent / HEAD_FILE
    assert recorded_head(path) == Head(3, rows[-1]["hash"], rows[-1]["ts"])
    assert stat.S_IMODE(head_file.stat().st_mode) == 0o600
    # Two slots, written in turn: the previous head survives a torn write of the next.
    slots = head_file.read_bytes()
    assert len(slots) == 2 * HEAD_SLOT
    assert {json.loads(slots[:HEAD_SLOT])["seq"], json.loads(slots[HEAD_SLOT:])["seq"]} == {2, 3}
    head_file.write_bytes(slots[:HEAD_SLOT] + b"{garbage" + slots[HEAD_SLOT + 8 :])
    assert recorded_head(path).seq in (2, 3) and reopen(path).verify().ok

    async def burst() -> None:
        await asyncio.gather(*(audit.arecord(f"cmd {n}", actor="u") for n in range(20)))

    asyncio.run(burst())
    audit.close()  # the head thread writes the last head before it stops
    assert recorded_head(path).seq == 23


def test_the_head_file_is_not_written_before_the_callers_transaction_commits(
    path: Path, audit: AuditLog
) -> None:
    fill(audit, 1)
    database = audit._database
    with pytest.raises(RuntimeError), database.transaction():
        audit.record("rolled back", actor="u")
        raise RuntimeError
    assert recorded_head(path).seq == 1
    assert audit.verify().ok


def test_deleted_tail_and_rewound_counter_are_caught_by_the_head_file(
    path: Path, audit: AuditLog
) -> None:
    fill(audit)
    raw(
        path,
        "DELETE FROM _audit WHERE seq >= 4",
        "UPDATE sqlite_sequence SET seq = 3 WHERE name = '_audit'",
    )
    assert reopen(path).verify().problems == [
        "rows after seq 3 are missing: audit.head records that the log reached seq 5 "
        "(rows deleted at the end)"
    ]


def test_an_altered_head_file_is_reported(path: Path, audit: AuditLog) -> None:
    fill(audit)
    head_file = path.parent / HEAD_FILE
    head_file.write_bytes(head_file.read_bytes().replace(b'"seq": 5', b'"seq": 9'))
    head_file.write_bytes(head_file.read_bytes().replace(b'"seq": 4', b'"seq": 9'))
    assert reopen(path).verify().problems == [
        "audit.head was altered (its MAC does not match the audit key)"
    ]


def test_truncation_is_detected(path: Path, audit: AuditLog) -> None:
    fill(audit)
    raw(path, "DELETE FROM _audit", "DELETE FROM sqlite_sequence WHERE name = '_audit'")
    result = reopen(path).verify()
    assert result.count == 0
    assert result.problems == [
        "rows after seq 0 are missing: audit.head records that the log reached seq 5 "
        "(rows deleted at the end)"
    ]


def test_a_dropped_table_is_detected(path: Path, audit: AuditLog) -> None:
    fill(audit)
    raw(path, "DROP TABLE _audit")
    assert "the log reached seq 5" in reopen(path).verify().problems[0]


# -- anchors ----------------------------------------------------------------------------
def test_an_anchor_round_trips_and_verifies(path: Path, audit: AuditLog) -> None:
    assert format_anchor(audit.head()).startswith("clustercord-audit-anchor seq=0 ")
    rows = fill(audit)
    line = format_anchor(audit.head())
    assert line.startswith(f"clustercord-audit-anchor seq=5 mac={rows[-1]['hash']} time=")
    anchor = parse_anchor(line)
    assert anchor == Head(5, rows[-1]["hash"], pytest.approx(rows[-1]["ts"]))
    fill(audit, 2)  # the log goes on: the anchored head is still in it
    assert audit.verify(anchor=anchor).ok


def test_an_anchor_catches_what_the_head_file_cannot(path: Path, audit: AuditLog) -> None:
    fill(audit)
    anchor = parse_anchor(format_anchor(audit.head()))
    # Tail deleted, counter rewound, and the head file removed too.
    raw(
        path,
        "DELETE FROM _audit WHERE seq >= 4",
        "UPDATE sqlite_sequence SET seq = 3 WHERE name = '_audit'",
    )
    (path.parent / HEAD_FILE).unlink()
    log = reopen(path)
    assert log.verify().ok  # nothing else can tell
    assert log.verify(anchor=anchor).problems == [
        "rows after seq 3 are missing: the anchor records that the log reached seq 5 "
        "(rows deleted at the end)"
    ]


def test_an_anchor_names_a_rewritten_row(path: Path, audit: AuditLog) -> None:
    fill(audit)
    anchor = parse_anchor(format_anchor(audit.head()))
    raw(path, "UPDATE _audit SET hash = ? WHERE seq = 5", params=[("ab" * 32,)])
    problems = reopen(path).verify(anchor=anchor).problems
    assert (
        "seq 5: its MAC differs from the one recorded in the anchor (the row or the chain "
        "before it was rewritten)"
    ) in problems


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("seq=1 mac=00", "starts with"),
        ("clustercord-audit-anchor seq=x mac=" + "0" * 64, "seq=<number>"),
        ("clustercord-audit-anchor seq=1 mac=abc", "64 hex digits"),
        ("clustercord-audit-anchor seq=1 mac=" + "0" * 64 + " time=yesterday", "ISO time"),
    ],
)
def test_a_bad_anchor_line_is_refused(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_anchor(line)


# -- intents ----------------------------------------------------------------------------
def test_an_intent_without_a_result_is_a_warning_not_tampering(audit: AuditLog) -> None:
    audit.record("template deploy", actor="console:u", plugin="templates")
    intent = audit.record(
        "template deploy", actor="console:u", plugin="templates", result="started"
    )
    assert intent["duration_ms"] is None
    answered = audit.record("pod list", actor="console:u", result="started")
    audit.record("pod list", actor="console:u", intent_seq=answered["seq"], duration_ms=3)
    job = audit.record("job backup:run", actor="kernel:scheduler", result="started")
    result = audit.verify()
    assert result.ok and result.problems == []
    assert result.warnings == [
        "seq 2: /template deploy started at 2023-11-14 22:13:24 UTC, no result recorded "
        "(the process ended?)",
        f"seq {job['seq']}: job backup:run started at 2023-11-14 22:13:29 UTC, no result "
        "recorded (the process ended?)",
    ]


def test_the_intent_link_is_covered_by_the_mac(path: Path, audit: AuditLog) -> None:
    started = audit.record("pod list", actor="u", result="started")
    audit.record("pod list", actor="u", intent_seq=started["seq"])
    raw(path, "UPDATE _audit SET intent_seq = NULL WHERE seq = 2")
    assert reopen(path).verify().problems == [MISMATCH.format(2)]


# -- a log written before keying ----------------------------------------------------------
OLD_SCHEMA = """CREATE TABLE _audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, plugin TEXT, cluster TEXT, namespace TEXT, options TEXT NOT NULL,
    result TEXT NOT NULL, message TEXT, duration_ms REAL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"""


def old_format_log(path: Path, count: int = 3) -> list[dict]:
    """A database as the unkeyed version wrote it: no chain column, sha256 chain."""
    conn = sqlite3.connect(path)
    conn.execute(OLD_SCHEMA)
    prev, rows = GENESIS, []
    for n in range(1, count + 1):
        row = {
            "seq": n,
            "ts": 1_600_000_000.0 + n,
            "actor": "u-old",
            "action": f"old {n}",
            "plugin": None,
            "cluster": "prod",
            "namespace": None,
            "options": {"n": n},
            "result": "ok",
            "message": None,
            "duration_ms": 1.0,
            "prev_hash": prev,
        }
        row["hash"] = prev = row_hash(row)
        conn.execute(
            "INSERT INTO _audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [*(row[k] for k in list(row)[:7]), json.dumps(row["options"])]
            + [row[k] for k in ("result", "message", "duration_ms", "prev_hash", "hash")],
        )
        rows.append(row)
    conn.commit()
    conn.close()
    return rows


def test_an_old_format_log_still_verifies_and_goes_on_keyed(path: Path) -> None:
    old = old_format_log(path)
    before = reopen(path, create_key=False)  # `audit verify` right after the upgrade
    assert before.verify().ok and before.key is None
    log = reopen(path)
    assert log.key is not None and log.key.keyed_from == 4
    new = log.record("pod list", actor="u-new")
    assert (new["seq"], new["chain"], new["prev_hash"]) == (4, 2, old[-1]["hash"])
    rows = list(log.iter_rows())
    assert [row["chain"] for row in rows] == [1, 1, 1, 2]
    result = reopen(path).verify()
    assert (result.ok, result.count) == (True, 4)


def test_an_edited_old_row_is_still_named(path: Path) -> None:
    old_format_log(path)
    reopen(path).record("pod list", actor="u-new")
    raw(path, "UPDATE _audit SET actor = 'u-mallory' WHERE seq = 2")
    assert reopen(path).verify().problems == ["seq 2: hash mismatch (row edited)"]


def test_old_rows_truncated_after_keying_are_detected_by_the_key_file(path: Path) -> None:
    old_format_log(path)
    reopen(path).close()  # keyed from seq 4, no keyed row yet
    (path.parent / HEAD_FILE).unlink(missing_ok=True)
    raw(path, "DELETE FROM _audit", "DELETE FROM sqlite_sequence")
    assert reopen(path).verify().problems == [
        "rows after seq 0 are missing: the log had reached seq 3 when its key was made "
        "(rows removed, table truncated?)"
    ]
