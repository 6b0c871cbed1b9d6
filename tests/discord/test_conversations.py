"""Plugins hold conversations in Discord threads (capability ``conversations``), end to end
through real hikari and lightbulb against the fake Discord; and the fake pages channel
history the way Discord does, which the conversation's reading relies on."""

from __future__ import annotations

import aiohttp
import pytest

from clustercord_sdk.errors import CommandError
from tests.discord.conftest import start_bot
from tests.discord.test_interactions import EPHEMERAL

CHAT = """
async def run(ctx):
    conversations = ctx.plugin.require("conversations")
    chat = await conversations.open("chat with you", for_invocation=ctx.invocation)
    await chat.send("What is your name?")
    answer = await chat.receive(timeout=5)
    if answer is None:
        return "nobody answered"
    await chat.send(f"Hello {answer.text}")
    await chat.close()
    return f"chatted with <@{answer.user_id}> in <#{chat.id}>"
"""


def chat_plugin(make_plugin, *, capabilities=("conversations",)):
    """Added as a builtin: a third-party plugin asking for a capability awaits an admin."""
    return make_plugin(
        "chat",
        manifest={"capabilities": list(capabilities)},
        modules={"commands": CHAT},
    )


def threads_named(discord, name):
    return [c for c in discord.channels.values() if c.get("name") == name]


async def test_a_plugin_asks_in_a_thread_and_reads_the_answer(
    fake_discord, clustercord_harness, make_plugin
):
    clustercord_harness.add_plugin(chat_plugin(make_plugin), builtin=True)
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        result = await fake_discord.invoke(running.url, "chat")
        thread = (
            await fake_discord.wait_for(lambda: threads_named(fake_discord, "chat with you"))
        )[0]
        assert thread["parent_id"] == fake_discord.channel_id
        await fake_discord.wait_for(lambda: fake_discord.channel_messages(thread["id"]))
        await fake_discord.post_user_message(thread["id"], "Ada", user_id="7")

        await fake_discord.wait_for(lambda: "chatted" in (result.message or {}).get("content", ""))
        assert result.message["content"] == f"chatted with <@7> in <#{thread['id']}>"
        contents = [m["content"] for m in fake_discord.channel_messages(thread["id"])]
        assert contents == ["What is your name?", "Ada", "Hello Ada"]
    finally:
        await running.server.close()


async def test_without_the_capability_the_plugin_gets_a_clear_error(
    fake_discord, clustercord_harness, make_plugin
):
    clustercord_harness.add_plugin(chat_plugin(make_plugin, capabilities=()), builtin=True)
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        result = await fake_discord.invoke(running.url, "chat")
        assert "needs the 'conversations' capability" in result.message["content"]
        assert not threads_named(fake_discord, "chat with you")
    finally:
        await running.server.close()


async def test_a_conversation_from_a_dm_is_refused_clearly(
    fake_discord, clustercord_harness, make_plugin
):
    clustercord_harness.add_plugin(chat_plugin(make_plugin), builtin=True)
    # Registered globally (no guilds): only global commands can be used in DMs.
    running = await start_bot(fake_discord, clustercord_harness, guilds=())
    try:
        result = await fake_discord.invoke(running.url, "chat", dm=True)
        assert "threads cannot open in DMs" in result.message["content"]
        assert result.message["flags"] & EPHEMERAL or result.initial["data"]["flags"] & EPHEMERAL
    finally:
        await running.server.close()


async def test_the_console_holds_a_conversation_as_a_prefixed_sub_session(
    clustercord_harness, make_plugin, tmp_path
):
    import io

    from rich.console import Console

    from clustercord.frontends.console import ConsoleRenderer

    clustercord_harness.add_plugin(chat_plugin(make_plugin), builtin=True)
    kernel = await clustercord_harness.start()
    out = io.StringIO()
    renderer = ConsoleRenderer(Console(file=out, width=80), tmp_path, stdin=io.StringIO("Ada\n"))
    kernel.conversations.register("console", renderer.open_conversation)

    result = await clustercord_harness.run("/chat")
    assert result.text == "chatted with <@console> in <#chat with you>"
    assert "[chat with you] What is your name?" in out.getvalue()
    assert "[chat with you] Hello Ada" in out.getvalue()

    chat = renderer.conversation("again", user_id="console")
    assert await chat.receive(timeout=1) is None  # end of input: nobody is typing
    await chat.close()
    with pytest.raises(CommandError, match="closed"):
        await chat.send("too late")


async def test_a_front_end_without_conversations_is_a_clear_error(clustercord_harness, make_plugin):
    clustercord_harness.add_plugin(chat_plugin(make_plugin), builtin=True)
    await clustercord_harness.start()  # nothing registered a console opener
    result = await clustercord_harness.run("/chat")
    assert not result.ok
    assert "the console front end cannot hold a conversation" in result.text


@pytest.mark.asyncio(loop_scope="module")  # the shared bot lives on the module loop
async def test_channel_history_pages_like_discord(bot):
    """``after`` pages forward from a message, ``before`` backward, ``limit`` caps a page;
    each answer is newest first."""
    discord, rest = bot.discord, bot.server.bot.rest
    channel = discord.add_channel(name="history")["id"]
    posted = [await discord.post_user_message(channel, f"m{n}", user_id="7") for n in range(6)]
    ids = [int(m["id"]) for m in posted]

    after = await rest.fetch_messages(int(channel), after=ids[1]).limit(2)
    assert [m.content for m in after] == ["m2", "m3"]
    before = await rest.fetch_messages(int(channel), before=ids[4]).limit(3)
    assert [m.content for m in before] == ["m3", "m2", "m1"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {discord.bot_token}"}) as http:
        url = f"{discord.api_url}/channels/{channel}/messages"
        async with http.get(url, params={"limit": "2"}) as newest:
            assert [m["content"] for m in await newest.json()] == ["m5", "m4"]
        before = len(discord.violations)
        async with http.get(url, params={"limit": "101"}) as too_many:
            assert too_many.status == 400
        del discord.violations[before:]  # the refusal was the point, not a bot bug
