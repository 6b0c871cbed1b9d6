"""`/terminal open` end to end: real hikari and lightbulb against the fake Discord, a shell in a
sandbox pod held in a thread (each message a typed line, output posted back at a bounded rate,
secrets masked), recorded; the session is then offered by autocomplete to its owner only."""

from __future__ import annotations

import pytest

from clustercord_builtins.terminal.storage import Recordings
from tests.discord.conftest import sandbox_bot

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
