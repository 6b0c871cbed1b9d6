"""`/terminal` in Discord, end to end: real hikari and lightbulb against the fake Discord over a
homelab sandbox. A shell held in a thread (each message a typed line, output posted back at a
bounded rate, secrets masked), recorded and offered by autocomplete to its owner only; the
Playback button (the owner's, privately, in pages); an asciicast download; a live replay in one
edited message that its buttons steer."""

from __future__ import annotations

import asyncio
import json

import pytest

from clustercord_builtins.terminal.storage import Recordings
from tests.discord.conftest import sandbox_bot
from tests.discord.test_interactions import EPHEMERAL, button

OWNER = "100000000000000081"
OTHER = "100000000000000082"
SECRET = "Tr0ub4dor-and-3"


@pytest.fixture
async def bot(fake_discord, clustercord_harness, sandbox_cluster):
    identity = {OWNER: "admin", OTHER: "admin"}
    async with sandbox_bot(
        fake_discord, clustercord_harness, sandbox_cluster, ["terminal"], identity
    ) as running:
        yield running


def thread_text(discord, thread_id):
    return "\n".join(m["content"] for m in discord.channel_messages(thread_id))


async def shows(discord, thread_id, text):
    """Wait until ``text`` is in the thread; on a timeout, the thread is the error."""
    try:
        await discord.wait_for(lambda: text in thread_text(discord, thread_id))
    except TimeoutError:
        raise AssertionError(f"{text!r} never showed:\n{thread_text(discord, thread_id)}") from None


async def test_a_shell_in_a_thread_is_typed_into_recorded_and_offered_to_its_owner(bot):
    discord = bot.discord
    pod = bot.sandbox.kubectl("get", "pods", "-n", "home", "-o", "name").stdout.split()[0][4:]
    result = await discord.invoke(
        bot.url, "terminal open", {"pod": pod, "namespace": "home"}, user_id=OWNER
    )
    threads = await discord.wait_for(
        lambda: [c for c in discord.channels.values() if pod in (c.get("name") or "")]
    )
    thread = threads[0]["id"]
    await shows(discord, thread, "Each message you write here")
    # A private thread by default, the opener added to it, nobody able to invite others.
    assert threads[0]["type"] == 12 and threads[0]["thread_metadata"]["invitable"] is False
    assert discord.thread_members[thread] == {OWNER}

    await discord.post_user_message(thread, "echo hello-from-$((6*7))", user_id=OWNER)
    await shows(discord, thread, "hello-from-42")
    # A question without a newline still shows once output goes quiet.
    await discord.post_user_message(thread, "printf 'Cont%s? [y/N] ' inue", user_id=OWNER)
    await shows(discord, thread, "Continue? [y/N]")
    # Someone else's message in the thread is not typed into the owner's shell.
    await discord.post_user_message(thread, "echo intruder-$((1+1))", user_id=OTHER)
    await discord.post_user_message(thread, f"export API_TOKEN={SECRET}", user_id=OWNER)
    await discord.post_user_message(thread, "echo token is $API_TOKEN", user_id=OWNER)
    await shows(discord, thread, "token is")
    await discord.post_user_message(thread, "exit", user_id=OWNER)

    await discord.wait_for(lambda: "ended" in (result.message or {}).get("content", ""))
    bot_output = "\n".join(
        m["content"] for m in discord.channel_messages(thread) if m.get("author", {}).get("bot")
    )
    assert "intruder-2" not in bot_output
    assert SECRET not in bot_output, bot_output  # the shell's echo and output, masked
    session = result.message["content"].split("`")[1]

    recording = Recordings(bot.harness.plugin("terminal").context.store).get(session)
    assert recording.user == OWNER and recording.pod == pod
    assert recording.commands[:2] == ["echo hello-from-$((6*7))", "printf 'Cont%s? [y/N] ' inue"]
    assert "exit" in recording.commands and not any("intruder" in c for c in recording.commands)
    assert SECRET not in str(recording.to_dict())
    assert recording.exit_code == 0

    offered = await discord.autocomplete(
        bot.url, "terminal playback", focused="session", value="", user_id=OWNER
    )
    assert [c["value"] for c in offered.choices] == [session]
    assert pod in offered.choices[0]["name"]
    hidden = await discord.autocomplete(
        bot.url, "terminal playback", focused="session", value="", user_id=OTHER
    )
    assert hidden.choices == []


def flags(result):
    return (result.initial.get("data") or {}).get("flags", 0) | (result.message or {}).get(
        "flags", 0
    )


async def test_playback_button_and_download(bot):
    discord = bot.discord
    pod = bot.sandbox.kubectl("get", "pods", "-n", "media", "-o", "name").stdout.split()[0][4:]
    ran = await discord.invoke(
        bot.url,
        "terminal exec",
        {"pod": pod, "namespace": "media", "command": "seq 1 45"},
        user_id=OWNER,
    )
    await discord.wait_for(lambda: "exit 0" in (ran.message or {}).get("content", ""))
    session = ran.message["content"].split("`")[1]
    playback = button(ran.message, "Playback")["custom_id"]

    refused = await discord.click(bot.url, ran.message, playback, user_id=OTHER)
    await discord.wait_for(lambda: refused.message is not None)
    assert flags(refused) & EPHEMERAL
    assert f"no recording '{session}' of yours" in refused.message["content"]

    shown = await discord.click(bot.url, ran.message, playback, user_id=OWNER)
    await discord.wait_for(lambda: "Replaying session" in (shown.message or {}).get("content", ""))
    assert flags(shown) & EPHEMERAL
    assert "[00:00] 1\n" in shown.message["content"]
    assert button(shown.message, "▶")  # 46 lines, 20 a page

    downloaded = await discord.invoke(
        bot.url, "terminal download", {"session": session, "version": 3}, user_id=OWNER
    )
    await discord.wait_for(lambda: (downloaded.message or {}).get("attachments"))
    assert flags(downloaded) & EPHEMERAL
    (attachment,) = downloaded.message["attachments"]
    assert attachment["filename"] == f"{session}.cast"
    lines = discord.attachment_data(attachment).decode().splitlines()
    assert json.loads(lines[0])["version"] == 3
    assert json.loads(lines[-1])[1:] == ["x", "0"]  # the exit status closes a v3 recording


async def test_a_live_replay_edits_one_message_and_its_buttons_steer_it(bot):
    discord = bot.discord
    pod = bot.sandbox.kubectl("get", "pods", "-n", "media", "-o", "name").stdout.split()[0][4:]
    line = "for i in $(seq 1 30); do echo tick-$i; sleep 0.2; done"
    ran = await discord.invoke(
        bot.url, "terminal exec", {"pod": pod, "namespace": "media", "command": line}, user_id=OWNER
    )
    await discord.wait_for(lambda: "exit 0" in (ran.message or {}).get("content", ""), 20)
    session = ran.message["content"].split("`")[1]

    live = await discord.invoke(
        bot.url, "terminal playback", {"session": session, "speed": 1}, user_id=OWNER
    )
    content = lambda: (live.message or {}).get("content", "")  # noqa: E731
    await discord.wait_for(lambda: "tick-2" in content() and "Replay 1x" in content())
    assert flags(live) & EPHEMERAL

    async def press(label):
        pressed = await discord.click(
            bot.url, live.message, button(live.message, label)["custom_id"], user_id=OWNER
        )
        await discord.wait_for(lambda: pressed.message is not None)
        return pressed.message["content"]

    assert await press("Pause") == "⏸️ Paused."
    await discord.wait_for(lambda: "Replay 1x, paused" in content())
    frozen = content()
    await asyncio.sleep(0.6)  # paused: the replay does not move on
    assert content() == frozen
    assert await press("Back 10 s") == "⏪ Back 10 s."  # to the start: nothing shown yet
    await discord.wait_for(lambda: "tick-" not in content() and "paused" in content())
    assert await press("Faster") == "⏩ 2x."
    await discord.wait_for(lambda: "Replay 2x, paused" in content())
    assert await press("Resume") == "▶️ Playing."
    await discord.wait_for(lambda: "Replay 2x" in content() and "paused" not in content())
    await discord.wait_for(lambda: "tick-1\n" in content())  # played again from the start

    assert await press("Stop") == "🛑 Stopping."
    await discord.wait_for(lambda: "Replay stopped" in content())
    assert "tick-30" not in content()
    # The edits came at a bounded rate: far fewer than the lines replayed.
    edits = [r for r in discord.requests if r.method == "PATCH" and "/messages/" in r.path]
    assert 2 <= len(edits) <= 20
