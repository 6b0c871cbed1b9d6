"""Approval requests carry Approve/Deny buttons in Discord; a press takes the same path as
`/approval approve id:`, so only admins (per ``[access]``) can decide, end to end through
real hikari and lightbulb against the fake Discord."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.discord.conftest import start_bot
from tests.discord.test_interactions import EPHEMERAL, button

ADMIN = "100000000000000077"
MEMBER = "100000000000000088"


@pytest.fixture
async def approvals_bot(fake_discord, clustercord_harness):
    from clustercord.config import AccessConfig

    clustercord_harness.add_builtins(["approvals"])
    clustercord_harness.settings = replace(
        clustercord_harness.settings, access=AccessConfig(admins=frozenset({f"user:{ADMIN}"}))
    )
    running = await start_bot(fake_discord, clustercord_harness)
    yield running
    await running.server.close()


def request(bot, summary="scale web to 3"):
    kernel = bot.harness.kernel
    return kernel.approvals.request("demo", "scale", summary, requested_by=MEMBER)


async def test_only_an_admin_can_press_approve(approvals_bot):
    discord, approvals = approvals_bot.discord, approvals_bot.harness.kernel.approvals
    pending = request(approvals_bot)
    # Anyone may list the requests; the buttons come with the list.
    listed = await discord.invoke(approvals_bot.url, "approval list", user_id=MEMBER)
    approve = button(listed.message, f"Approve {pending.id}")["custom_id"]

    refused = await discord.click(approvals_bot.url, listed.message, approve, user_id=MEMBER)
    assert refused.initial["data"]["flags"] & EPHEMERAL
    assert "🚫" in refused.initial["data"]["content"]
    assert "approval approve" in refused.initial["data"]["content"]
    assert approvals.get(pending.id).status == "pending"

    pressed = await discord.click(approvals_bot.url, listed.message, approve, user_id=ADMIN)
    await discord.wait_for(lambda: "is approved" in (pressed.message or {}).get("content", ""))
    decided = approvals.get(pending.id)
    assert (decided.status, decided.decided_by) == ("approved", ADMIN)
    assert f"{pending.id} (demo: scale web to 3) is approved" in pressed.message["content"]


async def test_deny_is_a_decision_too_and_a_second_press_changes_nothing(approvals_bot):
    discord, approvals = approvals_bot.discord, approvals_bot.harness.kernel.approvals
    pending = request(approvals_bot, "delete the cache")
    listed = await discord.invoke(approvals_bot.url, "approval list", user_id=ADMIN)
    deny = button(listed.message, f"Deny {pending.id}")["custom_id"]
    approve = button(listed.message, f"Approve {pending.id}")["custom_id"]

    denied = await discord.click(approvals_bot.url, listed.message, deny, user_id=ADMIN)
    await discord.wait_for(lambda: "is denied" in (denied.message or {}).get("content", ""))
    late = await discord.click(approvals_bot.url, listed.message, approve, user_id=ADMIN)
    await discord.wait_for(lambda: late.message or late.initial)
    assert approvals.get(pending.id).status == "denied"


async def test_a_button_naming_another_plugins_command_is_refused(
    fake_discord, clustercord_harness, make_plugin
):
    """A plugin cannot borrow a laxer policy (or dodge one) by naming someone else's
    command: the press is refused and its action never runs."""
    sneaky = make_plugin(
        "sneaky",
        modules={
            "commands": """
from clustercord_sdk.reply import Button, Reply

def run(ctx):
    return Reply(text="press", buttons=[
        Button("Go", action="commands:go", command="approval approve")])

def go(ctx):
    return "went"
"""
        },
    )
    clustercord_harness.add_builtins(["approvals"])
    clustercord_harness.add_plugin(sneaky)
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        shown = await fake_discord.invoke(running.url, "sneaky")
        click = await fake_discord.click(
            running.url, shown.message, button(shown.message, "Go")["custom_id"]
        )
        assert click.initial["data"]["flags"] & EPHEMERAL
        assert "not a command of its plugin" in click.initial["data"]["content"]
        assert all(m["content"] != "went" for m in fake_discord.messages.values())
    finally:
        await running.server.close()


DEPLOYER = """
def run(ctx):
    approval = ctx.plugin.approvals.request("scale", "scale web to 3", requested_by=ctx.user_id)
    return f"asked for approval {approval.id}"
"""


async def test_a_new_request_is_posted_to_the_alerts_channel_with_buttons(
    fake_discord, clustercord_harness, make_plugin
):
    from clustercord.config import AccessConfig

    clustercord_harness.add_builtins(["approvals"])
    clustercord_harness.add_plugin(make_plugin("deployer", modules={"commands": DEPLOYER}))
    clustercord_harness.settings = replace(
        clustercord_harness.settings, access=AccessConfig(admins=frozenset({f"user:{ADMIN}"}))
    )
    running = await start_bot(
        fake_discord, clustercord_harness, alerts_channel=fake_discord.channel_id
    )
    try:
        asked = await fake_discord.invoke(running.url, "deployer", user_id=MEMBER)
        approval_id = asked.message["content"].removeprefix("asked for approval ")
        assert await running.frontend.deliver_notifications() == 1
        (alert,) = [
            m
            for m in fake_discord.channel_messages(fake_discord.channel_id)
            if m["content"].startswith("⏳ Approval")
        ]
        assert alert["content"] == (
            f"⏳ Approval {approval_id} requested by <@{MEMBER}>: deployer: scale web to 3"
        )
        approve = button(alert, f"Approve {approval_id}")["custom_id"]
        # The requester is no admin: the button refuses them too.
        refused = await fake_discord.click(running.url, alert, approve, user_id=MEMBER)
        assert refused.initial["data"]["flags"] & EPHEMERAL
        pressed = await fake_discord.click(running.url, alert, approve, user_id=ADMIN)
        await fake_discord.wait_for(
            lambda: "is approved" in (pressed.message or {}).get("content", "")
        )
        assert running.harness.kernel.approvals.get(approval_id).status == "approved"
    finally:
        await running.server.close()
