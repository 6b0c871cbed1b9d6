"""End to end: real hikari RESTBot + lightbulb on 127.0.0.1, signed interactions from the
fake Discord, the kernel's dispatcher and plugins behind them."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

EPHEMERAL = 64
MESSAGE_CREATE, DEFERRED_CREATE, MESSAGE_UPDATE = 4, 5, 7
OTHER_USER = "100000000000000002"


def buttons(message):
    return [c for row in message.get("components") or [] for c in row["components"]]


def button(message, label):
    return next(b for b in buttons(message) if b.get("label") == label)


async def test_a_quick_command_is_answered_directly(bot):
    result = await bot.discord.invoke(bot.url, "demo echo", {"text": "hi", "count": 2})
    assert result.initial["type"] == MESSAGE_CREATE
    assert result.message["content"] == "hi hi"
    assert not result.message["flags"] & EPHEMERAL


async def test_a_slow_command_is_deferred_then_followed_up(bot):
    result = await bot.discord.invoke(bot.url, "demo slow")
    assert result.initial["type"] == DEFERRED_CREATE
    assert result.latency < 2.5  # the answer came before Discord's 3 s
    message = await bot.discord.wait_for(
        lambda: result.message if result.message["content"] == "slow done" else None
    )
    assert message["content"] == "slow done"


async def test_pages_turn_with_the_arrows(bot):
    result = await bot.discord.invoke(bot.url, "demo pages")
    message = result.message
    assert message["content"] == "page 1"
    assert button(message, "◀")["disabled"] is True
    click = await bot.discord.click(bot.url, message, button(message, "▶")["custom_id"])
    assert click.initial["type"] == MESSAGE_UPDATE
    message = bot.discord.messages[message["id"]]
    assert message["content"] == "page 2"
    assert button(message, "2/3")
    await bot.discord.click(bot.url, message, button(message, "▶")["custom_id"])
    message = bot.discord.messages[message["id"]]
    assert message["content"] == "page 3"
    assert button(message, "▶")["disabled"] is True


async def test_only_the_invoker_can_confirm(bot):
    task = asyncio.create_task(bot.discord.invoke(bot.url, "demo wipe"))
    result = await task
    prompt = result.message
    assert "destructive" in prompt["content"]
    confirm = button(prompt, "Confirm")["custom_id"]
    refused = await bot.discord.click(bot.url, prompt, confirm, user_id=OTHER_USER)
    assert refused.initial["type"] == MESSAGE_CREATE
    assert refused.initial["data"]["flags"] & EPHEMERAL
    assert "Only <@100000000000000001>" in refused.initial["data"]["content"]
    assert "wiped" not in str(result.followups)

    await bot.discord.click(bot.url, prompt, confirm)
    await bot.discord.wait_for(lambda: any(f.get("content") == "wiped" for f in result.followups))
    assert "Confirmed by <@100000000000000001>" in bot.discord.messages[prompt["id"]]["content"]
    assert buttons(bot.discord.messages[prompt["id"]]) == []


async def test_a_modal_submission_reaches_the_plugin(bot):
    result = await bot.discord.invoke(bot.url, "demo form")
    assert result.modal["title"] == "Tell me"
    submitted = await bot.discord.submit_modal(bot.url, result.modal["custom_id"], {"name": "Ada"})
    assert submitted.message["content"] == "hello Ada"


async def test_output_too_long_for_a_message_becomes_a_file(bot):
    result = await bot.discord.invoke(bot.url, "demo dump")
    message = result.message
    assert len(message["content"]) <= 2000
    assert "reply.txt" in message["content"]
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "reply.txt"
    assert bot.discord.attachment_data(attachment).count(b"line of output") == 1000


async def test_a_plugin_notification_arrives_as_a_dm(bot):
    result = await bot.discord.invoke(bot.url, "demo notify")
    assert result.message["content"] == "sent you a DM"
    assert await bot.frontend.deliver_notifications() == 1
    (dm,) = bot.discord.dm_messages("100000000000000001")
    assert dm["content"] == "psst, only for you"
    assert await bot.frontend.deliver_notifications() == 0  # delivered once


async def test_an_unknown_command_gets_an_ephemeral_error(bot):
    known = await bot.discord.invoke(bot.url, "demo echo", {"text": "x"})
    payload = copy.deepcopy(known.payload)
    payload.update(id=bot.discord.snowflake(), token="fake-interaction-" + secrets.token_hex(8))
    payload["data"].update(id=bot.discord.snowflake(), name="ghost", options=[])
    result = await bot.discord.deliver_raw(bot.url, payload)
    assert result.initial["type"] == MESSAGE_CREATE
    assert result.initial["data"]["flags"] & EPHEMERAL
    assert "/ghost is not a ClusterCord command" in result.initial["data"]["content"]


async def test_a_quick_answer_travels_in_the_http_reply(bot):
    result = await bot.discord.invoke(bot.url, "demo echo", {"text": "fast"})
    assert result.status == 200
    assert json.loads(result.body)["data"]["content"] == "fast"
    assert result.message["content"] == "fast"
    assert not [r for r in bot.discord.requests if result.token in r.path]  # no callback


async def test_rate_limited_then_answered(bot):
    # A slow command is deferred through the callback endpoint, which says 429 first.
    bot.discord.fail_next(r"/interactions/.*/callback", status=429, retry_after=0.1)
    result = await bot.discord.invoke(bot.url, "demo slow")
    await bot.discord.wait_for(lambda: (result.message or {}).get("content") == "slow done")
    statuses = [r.status for r in bot.discord.requests if r.path.endswith("/callback")]
    assert statuses[-2:] == [429, 200]


async def test_a_server_error_is_retried(bot):
    bot.discord.fail_next(r"/webhooks/.*/messages/@original", status=502, method="PATCH")
    result = await bot.discord.invoke(bot.url, "demo slow")
    await bot.discord.wait_for(lambda: result.message["content"] == "slow done")


@pytest.mark.parametrize("how", ["forged", "stale"])
async def test_forged_and_stale_signatures_get_401(bot, how):
    result = await bot.discord.invoke(bot.url, "demo echo", {"text": "x"}, **{how: True})
    assert result.status == 401
    assert (
        result.body.decode()
        == {"forged": "invalid request signature", "stale": "stale request signature"}[how]
    )
    assert result.initial is None


async def test_progress_edits_one_message_at_a_bounded_rate(bot):
    result = await bot.discord.invoke(bot.url, "demo progress")
    await bot.discord.wait_for(lambda: result.message["content"] == "copied 5 files")
    edits = [r for r in bot.discord.requests if r.method == "PATCH" and result.token in r.path]
    # Five progress steps 50 ms apart, at most one edit per 100 ms, plus the final answer.
    assert 1 <= len(edits) <= 4
    assert result.followups == []


async def test_an_ephemeral_command_answers_privately(bot):
    result = await bot.discord.invoke(bot.url, "demo secret")
    assert result.initial["data"]["flags"] & EPHEMERAL
    assert result.message["content"] == "the secret is 42"


async def test_out_of_range_option_is_a_clear_ephemeral_error(bot):
    result = await bot.discord.invoke(bot.url, "demo echo", {"text": "x", "count": 9}, strict=False)
    assert result.initial["data"]["flags"] & EPHEMERAL
    assert "count: 9 is above the maximum 3" in result.message["content"]


async def test_autocomplete_uses_the_plugins_hook(bot):
    result = await bot.discord.autocomplete(bot.url, "plugin info", focused="name", value="de")
    assert {"name": "demo", "value": "demo"} in [
        {"name": c["name"], "value": c["value"]} for c in result.choices
    ]
