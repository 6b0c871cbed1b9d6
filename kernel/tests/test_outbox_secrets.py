"""Private notifications (credentials sent by DM) are sealed at rest in the outbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clustercord.kernel import OutboxNotifier
from clustercord.secretbox import SecretBox
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


async def test_a_sealed_notification_under_another_key_is_a_clear_error(tmp_path):
    database = Database(tmp_path / "data" / "clustercord.db")
    first = OutboxNotifier(database, secrets=lambda: SecretBox.from_settings(tmp_path / "a", {}))
    await first.notify(Reply(text=SECRET, ephemeral=True), user="42")
    other = OutboxNotifier(database, secrets=lambda: SecretBox.from_settings(tmp_path / "b", {}))
    with pytest.raises(CommandError, match="not the key it was stored with"):
        other.pending()


async def test_without_a_secret_box_a_private_notification_is_refused_not_stored(tmp_path):
    outbox = OutboxNotifier(Database(tmp_path / "clustercord.db"))
    with pytest.raises(CommandError, match="no secret box"):
        await outbox.notify(Reply(text=SECRET, ephemeral=True), user="42")
    assert outbox.pending() == []
