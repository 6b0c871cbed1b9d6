"""Buttons in a plugin's notification route back to that plugin: the outbox remembers who
notified (a migration adds the column and keeps the rows already queued)."""

from __future__ import annotations

import json
import sqlite3

from tests.discord.conftest import start_bot
from tests.discord.test_interactions import button

PAGER = """
from clustercord_sdk.reply import Button, Reply

async def run(ctx):
    await ctx.plugin.notifier.notify(
        Reply(text="disk 91% on node-2", buttons=[Button("Ack", action="commands:ack", value=2)]),
        channel=ctx.invocation.channel_id,
    )
    return "paged"

def ack(ctx, value):
    return f"node-{value} acknowledged by <@{ctx.user_id}>"
"""


async def test_a_button_in_a_notification_reaches_the_plugin(
    fake_discord, clustercord_harness, make_plugin
):
    clustercord_harness.add_plugin(make_plugin("pager", modules={"commands": PAGER}))
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        await fake_discord.invoke(running.url, "pager")
        assert await running.frontend.deliver_notifications() == 1
        alert = next(
            m
            for m in fake_discord.channel_messages(fake_discord.channel_id)
            if m["content"] == "disk 91% on node-2"
        )
        click = await fake_discord.click(
            running.url, alert, button(alert, "Ack")["custom_id"], user_id="5"
        )
        assert click.message["content"] == "node-2 acknowledged by <@5>"
    finally:
        await running.server.close()


def test_rows_queued_before_the_plugin_column_are_kept(tmp_path):
    from clustercord.services.notifications import OutboxNotifier
    from clustercord.storage import Database

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE _outbox (id INTEGER PRIMARY KEY, created_at FLOAT, channel TEXT, "
        "user TEXT, reply TEXT, delivered_at FLOAT)"
    )
    old.execute(
        "INSERT INTO _outbox (created_at, channel, user, reply) VALUES (1.0, '9', NULL, ?)",
        (json.dumps({"text": "queued before the upgrade"}),),
    )
    old.commit()
    old.close()

    database = Database(path)
    try:
        outbox = OutboxNotifier(database)
        (row,) = outbox.pending()
        assert json.loads(row["reply"]) == {"text": "queued before the upgrade"}
        assert row["plugin"] is None
        OutboxNotifier(database)  # a second start migrates nothing again
        assert [r["id"] for r in outbox.pending()] == [row["id"]]
    finally:
        database.close()
