"""Private notifications (credentials sent by DM) are sealed at rest in the outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clustercord.secretbox import SecretBox
from clustercord.services.notifications import OutboxNotifier
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import Reply

SECRET = "hunter2-but-much-longer-0123456789"


def on_disk(folder: Path, needle: str) -> list[str]:
    """Names of files under ``folder`` (database, WAL, journal) holding ``needle``."""
    return [p.name for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.fixture
def outbox(tmp_path):
    database = Database(tmp_path / "data" / "clustercord.db")
    return OutboxNotifier(database, secrets=lambda: SecretBox.from_settings(tmp_path / "data", {}))


async def test_a_private_notification_is_sealed_then_deleted_once_delivered(outbox, tmp_path):
    await outbox.notify(Reply(text=f"password: ||{SECRET}||", ephemeral=True), user="42")
    await outbox.notify(Reply(text="the nightly backup finished"), channel="7")
    data = tmp_path / "data"
    assert on_disk(data, SECRET) == []
    assert on_disk(data, "nightly backup")  # only private payloads pay for sealing

    private, public = outbox.pending()
    assert Reply.from_dict(json.loads(private["reply"])).text == f"password: ||{SECRET}||"
    assert private["user"] == "42" and private["sealed"] is True
    assert "sealed" not in public

    outbox.delivered(private["id"])
    outbox.delivered(public["id"])
    assert outbox.pending() == []
    rows = list(outbox.database.db["_outbox"].rows)
    # The private row is gone; the public one stays as a delivery record.
    assert [r["id"] for r in rows] == [public["id"]] and rows[0]["delivered_at"]
    assert on_disk(data, SECRET) == []


def notifier(database: Database, key_dir: Path) -> OutboxNotifier:
    return OutboxNotifier(database, secrets=lambda: SecretBox.from_settings(key_dir, {}))


async def test_a_row_sealed_under_another_key_is_kept_and_the_rest_still_delivered(
    tmp_path, caplog
):
    database = Database(tmp_path / "data" / "clustercord.db")
    before = notifier(database, tmp_path / "old-key")
    await before.notify(Reply(text=f"old password: {SECRET}", ephemeral=True), user="42")
    # The secret key changed (a new data directory key, say); the outbox goes on.
    after = notifier(database, tmp_path / "new-key")
    await after.notify(Reply(text="new password: s3cr3t-rotated", ephemeral=True), user="43")

    (readable,) = after.pending()
    assert Reply.from_dict(json.loads(readable["reply"])).text == "new password: s3cr3t-rotated"
    after.delivered(readable["id"])
    after.pending()  # polled again: the bad row is not logged a second time

    (stuck,) = database.db["_outbox"].rows  # kept, not deleted: nothing stored is lost
    assert stuck["user"] == "42" and stuck["delivered_at"] is None
    assert after.unreadable == {stuck["id"]}
    reports = [r.getMessage() for r in caplog.records if r.name == "clustercord.kernel"]
    assert reports == [
        f"notification {stuck['id']} is kept but not delivered: a stored secret cannot be "
        "decrypted: CLUSTERCORD_SECRET_KEY or secret.key is not the key it was stored with"
    ]
    assert SECRET not in caplog.text and stuck["reply"][10:40] not in caplog.text

    # With the old key back, the kept notification is delivered after all.
    (recovered,) = before.pending()
    assert Reply.from_dict(json.loads(recovered["reply"])).text == f"old password: {SECRET}"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda sealed: sealed[:-6] + "AAAAAA", "not the key it was stored with"),
        (lambda sealed: sealed[:20] + "é" + sealed[21:], "its sealed payload is corrupt"),
        (lambda sealed: "{not json", "its payload is not a JSON notification"),
        (lambda sealed: '{"text": "hi", "cards": [7]}', "its payload is not a JSON notification"),
        (lambda sealed: "[1, 2]", "its payload is not a JSON notification"),
    ],
    ids=["tampered", "not-ascii", "not-json", "not-a-reply", "not-an-object"],
)
async def test_a_corrupt_row_is_skipped_and_kept(outbox, caplog, damage, reason):
    await outbox.notify(Reply(text=f"password: {SECRET}", ephemeral=True), user="42")
    await outbox.notify(Reply(text="the nightly backup finished"), channel="7")
    table = outbox.database.db["_outbox"]
    bad, good = (row["id"] for row in table.rows_where(order_by="id"))
    table.update(bad, {"reply": damage(table.get(bad)["reply"])})

    assert [row["id"] for row in outbox.pending()] == [good]
    outbox.delivered(good)
    assert outbox.pending() == []
    assert table.get(bad)["delivered_at"] is None
    (report,) = [r.getMessage() for r in caplog.records if r.name == "clustercord.kernel"]
    assert report.startswith(f"notification {bad} is kept but not delivered: ")
    assert reason in report and SECRET not in caplog.text


async def test_without_a_secret_box_a_private_notification_is_refused_not_stored(tmp_path):
    outbox = OutboxNotifier(Database(tmp_path / "clustercord.db"))
    with pytest.raises(CommandError, match="no secret box"):
        await outbox.notify(Reply(text=SECRET, ephemeral=True), user="42")
    assert outbox.pending() == []
