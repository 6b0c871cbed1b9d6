"""The audit log: keyed chain, tamper detection, append-only triggers and secret masking.

The chain's own checks; the key, the head file, anchors, intents and old-format logs are in
test_audit_keyed.py."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from clustercord.services.audit import (
    GENESIS,
    MASK,
    AuditKey,
    AuditLog,
    mask_secrets,
    mask_text,
    row_mac,
    verify_rows,
)
from clustercord.storage import Database

from .conftest import MISMATCH, Clock, raw

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
# A fake key block, split so that secret scanners do not take this file for a leak.
_MARK = "RSA " + "PRIVATE KEY-----"
PEM = f"-----BEGIN {_MARK}\nMIIEowIBAAKCAQEA\nabcdef==\n-----END {_MARK}"


def fill(audit: AuditLog, count: int = 5) -> list[dict]:
    return [
        audit.record(
            f"pod restart {n}",
            actor="u-alice",
            plugin="pods",
            cluster="prod",
            namespace="web",
            options={"name": f"web-{n}"},
            duration_ms=12,
        )
        for n in range(1, count + 1)
    ]


def test_rows_are_chained_and_verify(audit: AuditLog) -> None:
    rows = fill(audit)
    assert rows[0]["seq"] == 1
    assert rows[0]["prev_hash"] == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
        assert after["seq"] == before["seq"] + 1
    result = audit.verify()
    assert (result.ok, result.count, result.head, result.problems) == (
        True,
        5,
        rows[-1]["hash"],
        [],
    )


def test_the_returned_row_is_the_stored_row(audit: AuditLog) -> None:
    row = audit.record("ns list", actor="u-bob", result="denied", message="missing role")
    assert list(audit.iter_rows()) == [row]
    assert row["options"] == {}
    assert row["duration_ms"] is None


def test_an_empty_log_verifies(audit: AuditLog) -> None:
    result = audit.verify()
    assert (result.ok, result.count, result.head) == (True, 0, None)


def test_update_and_delete_are_refused(audit: AuditLog) -> None:
    fill(audit, 2)
    conn = audit._database.conn
    with pytest.raises(sqlite3.DatabaseError, match="audit log is append-only"):
        conn.execute("UPDATE _audit SET actor = 'u-mallory' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="audit log is append-only"):
        conn.execute("DELETE FROM _audit WHERE seq = 2")
    assert [row["actor"] for row in audit.iter_rows()] == ["u-alice", "u-alice"]
    assert audit.verify().ok


def test_an_edit_behind_the_triggers_back_is_named_by_seq(path: Path, audit: AuditLog) -> None:
    fill(audit)
    raw(path, "UPDATE _audit SET actor = 'u-mallory' WHERE seq = 3")
    result = AuditLog(Database(path)).verify()
    assert not result.ok
    assert result.problems == [MISMATCH.format(3)]


def test_an_edit_with_a_mac_under_the_right_key_breaks_the_link_to_the_next_row(
    path: Path, audit: AuditLog
) -> None:
    # Only someone holding the key gets this far; the next row still names the old MAC.
    rows = fill(audit)
    forged = {**rows[2], "options": {"name": "something-else"}}
    assert audit.key is not None
    raw(
        path,
        f"UPDATE _audit SET options = '{json.dumps(forged['options'])}', "
        f"hash = '{row_mac(forged, audit.key)}' WHERE seq = 3",
    )
    problems = audit.verify().problems
    assert problems == ["seq 4: prev_hash does not match seq 3 (row removed or reordered)"]


def test_a_deleted_middle_row_is_detected(path: Path, audit: AuditLog) -> None:
    fill(audit)
    raw(path, "DELETE FROM _audit WHERE seq = 3")
    result = audit.verify()
    assert not result.ok
    assert result.count == 4
    assert any(p.startswith("seq 4: gap") and "seq 3 missing" in p for p in result.problems)
    assert "seq 4: prev_hash does not match seq 2 (row removed or reordered)" in result.problems


def test_deleted_rows_at_the_end_are_detected(path: Path, audit: AuditLog) -> None:
    fill(audit)
    raw(path, "DELETE FROM _audit WHERE seq >= 4")
    assert audit.verify().problems == [
        "rows after seq 3 are missing: the log had reached seq 5",
        "rows after seq 3 are missing: audit.head records that the log reached seq 5 "
        "(rows deleted at the end)",
    ]
    # Appending afterwards does not paper over the hole.
    audit.record("pod list", actor="u-alice")
    problems = audit.verify().problems
    assert any(p.startswith("seq 6: gap") for p in problems)


def test_the_chain_continues_across_reopening(path: Path) -> None:
    rows = fill(AuditLog(Database(path), clock=Clock()), 2)
    reopened = AuditLog(Database(path), clock=Clock(1_800_000_000.0))
    row = reopened.record("pod list", actor="u-bob")
    assert row["seq"] == 3
    assert row["prev_hash"] == rows[-1]["hash"]
    assert reopened.verify().ok


def test_an_unknown_result_is_refused(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="cancelled"):
        audit.record("pod list", actor="u", result="failed")


def test_a_misspelt_field_is_refused_and_nothing_stored(audit: AuditLog) -> None:
    with pytest.raises(TypeError, match="'namspace'"):
        audit.record("pod list", actor="u", namspace="prod")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'namspace'"):
        asyncio.run(audit.arecord("pod list", actor="u", namspace="prod"))  # type: ignore[call-arg]
    assert audit.verify().count == 0


def test_record_and_arecord_store_the_same_row(audit: AuditLog) -> None:
    fields = {"plugin": "kube", "cluster": "prod", "namespace": "web", "duration_ms": 12}
    fields |= {"options": {"token": "t0k3n"}, "result": "error", "message": f"bad {JWT}"}
    sync = audit.record("pod delete", actor="u-alice", **fields)
    async_ = asyncio.run(audit.arecord("pod delete", actor="u-alice", **fields))
    different = {"seq", "ts", "prev_hash", "hash"}
    assert {k: v for k, v in sync.items() if k not in different} == {
        k: v for k, v in async_.items() if k not in different
    }
    assert sync["options"] == {"token": MASK} and JWT not in sync["message"]
    assert sync["duration_ms"] == 12.0 and audit.verify().ok


# -- secrets --------------------------------------------------------------------------
def test_secrets_are_masked_and_never_exported(audit: AuditLog) -> None:
    audit.add_patterns([r"acme_[a-z0-9]{12}"])
    audit.record(
        "registry login",
        actor="u-alice",
        plugin="registry",
        options={
            "user": "alice",
            "password": "hunter2-hunter2",
            "note": f"use Authorization with {JWT} please",
            "webhook": "https://x.example/hook?k=acme_abcdef123456",
            "nested": {"API-Key": "k-1234567890", "hosts": ["a", JWT]},
            "pin": "4711",
        },
        secret_names=["pin"],
        message=f"logged in with token {JWT}",
    )
    [row] = audit.iter_rows()
    options = row["options"]
    assert options["user"] == "alice"
    assert options["password"] == MASK
    assert options["note"] == f"use Authorization with {MASK} please"
    assert options["webhook"] == f"https://x.example/hook?k={MASK}"
    assert options["nested"] == {"API-Key": MASK, "hosts": ["a", MASK]}
    assert options["pin"] == MASK
    assert row["message"] == f"logged in with token {MASK}"

    out = io.StringIO()
    assert audit.export(out) == 1
    [entry] = [json.loads(line) for line in out.getvalue().splitlines()]
    # The MACs are hex under a random key: "4711" may turn up in them by chance.
    exported = json.dumps({k: v for k, v in entry.items() if k not in ("hash", "prev_hash")})
    for secret in ("hunter2", JWT, "acme_abcdef123456", "k-1234567890", "4711"):
        assert secret not in exported
    assert audit.verify().ok


def test_export_is_json_lines_that_verify_offline(audit: AuditLog) -> None:
    rows = fill(audit, 4)
    out = io.StringIO()
    audit.export(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == rows
    assert verify_rows(lines, key=audit.key).ok
    # Without the key an export can be read, never vouched for.
    assert verify_rows(lines).problems == ["seq 1-4: 4 keyed rows not checked: no audit key"]
    assert not verify_rows(lines, key=AuditKey.ephemeral()).ok
    lines[1]["namespace"] = "kube-system"
    assert verify_rows(lines, key=audit.key).problems == [MISMATCH.format(2)]

    tail = io.StringIO()
    assert audit.export(tail, since_seq=2) == 2
    assert [json.loads(line)["seq"] for line in tail.getvalue().splitlines()] == [3, 4]


def test_plugin_records_carry_the_plugin_name(audit: AuditLog) -> None:
    audit.for_plugin("backup").record(
        "snapshot", actor="u-alice", details={"volume": "db", "token": "s3cr3t"}
    )
    [row] = audit.iter_rows()
    assert row["action"] == "backup:snapshot"
    assert row["plugin"] == "backup"
    assert row["options"] == {"volume": "db", "token": MASK}


def test_builtin_value_patterns() -> None:
    text = f"key {PEM} then Authorization: Bearer abc.def-123 and AKIAABCDEFGHIJKLMNOP and {JWT}."
    masked = mask_text(text)
    assert masked == f"key {MASK} then Authorization: {MASK} and {MASK} and {MASK}."


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "DB_PASSWORD",
        "passwd",
        "client-secret",
        "ssh_key",
        "apiKey",
        "aws_credentials",
        "kubeconfig",
    ],
)
def test_secret_looking_names_are_masked(name: str) -> None:
    assert mask_secrets({name: "value", "replicas": 3}) == {name: MASK, "replicas": 3}


def test_plain_values_are_left_alone() -> None:
    options = {"name": "web-1", "replicas": 3, "labels": ["app=web"], "dry_run": None}
    assert mask_secrets(options) == options
    assert mask_text("scaled web to 3 replicas") == "scaled web to 3 replicas"


def test_an_invalid_plugin_pattern_is_named(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match=r"'acme_\['"):
        audit.add_patterns(["acme_["])
