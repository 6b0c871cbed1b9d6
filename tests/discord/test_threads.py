"""The thread conversation primitive against the fake Discord: send into a thread, receive
what users type there."""

from __future__ import annotations

import pytest

from clustercord.frontends.discord.render import Renderer
from clustercord.frontends.discord.threads import Threads
from clustercord_sdk.reply import Reply

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_conversation_in_a_thread(bot):
    threads = Threads(bot.server.bot)
    renderer = Renderer(bot.frontend.store.minter("demo"), user_id="1")
    conversation = await threads.open(
        bot.discord.channel_id, "terminal: web-1", renderer, first="Starting a session"
    )
    thread = bot.discord.channels[str(conversation.thread_id)]
    assert thread["name"] == "terminal: web-1"
    await conversation.send(Reply(text="$ ", cards=[]))
    assert await conversation.receive(timeout=0.05, poll=0.05) is None

    await bot.discord.post_user_message(str(conversation.thread_id), "ls -la", user_id="7")
    await bot.discord.post_user_message(str(conversation.thread_id), "pwd", user_id="8")
    first = await conversation.receive(timeout=2, poll=0.05)
    second = await conversation.receive(timeout=2, poll=0.05)
    assert (first.user_id, first.text) == ("7", "ls -la")
    assert (second.user_id, second.text) == ("8", "pwd")
    contents = [m["content"] for m in bot.discord.channel_messages(str(conversation.thread_id))]
    assert contents == ["$ ", "ls -la", "pwd"]


async def test_a_message_written_while_the_bot_posts_is_still_received(bot):
    """A terminal posts output while its user types: sending must not skip what came in."""
    threads = Threads(bot.server.bot)
    renderer = Renderer(bot.frontend.store.minter("demo"), user_id="1")
    conversation = await threads.open(bot.discord.channel_id, "typing while printing", renderer)
    thread = str(conversation.thread_id)
    assert await conversation.receive(timeout=0.05, poll=0.05) is None

    await bot.discord.post_user_message(thread, "echo typed-first", user_id="7")
    await conversation.send("output printed after it")
    received = await conversation.receive(timeout=2, poll=0.05)
    assert received is not None and received.text == "echo typed-first"
    assert await conversation.receive(timeout=0.1, poll=0.05) is None  # not its own output
