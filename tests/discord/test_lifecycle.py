"""End to end, each test with an interaction server of its own: restarts, expiry,
token lifetime, access policy, allowlist, plugins enabled and disabled."""

from __future__ import annotations

import asyncio

from tests.discord.conftest import demo_plugin, start_bot
from tests.discord.test_interactions import EPHEMERAL, button


async def test_a_button_still_works_after_a_restart(fresh_bot, clustercord_harness):
    """A new kernel over the same data directory, a new interaction server: the old
    message's button still reaches the plugin."""
    discord = fresh_bot.discord
    result = await discord.invoke(fresh_bot.url, "demo button")
    message = result.message
    await fresh_bot.server.close()
    clustercord_harness.close()
    restarted = await start_bot(discord, clustercord_harness)
    try:
        click = await discord.click(restarted.url, message, button(message, "Go")["custom_id"])
        assert click.message["content"] == "went 42 for <@100000000000000001>"
    finally:
        await restarted.server.close()


async def test_an_expired_button_says_so(fake_discord, clustercord_harness, tmp_path):
    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    running = await start_bot(fake_discord, clustercord_harness, component_ttl=0.3)
    try:
        result = await fake_discord.invoke(running.url, "demo button")
        await asyncio.sleep(0.4)
        click = await fake_discord.click(
            running.url, result.message, button(result.message, "Go")["custom_id"]
        )
        assert click.initial["data"]["flags"] & EPHEMERAL
        assert "expired" in click.initial["data"]["content"]
    finally:
        await running.server.close()


async def test_work_past_the_token_lifetime_continues_as_a_bot_message(
    fake_discord, clustercord_harness, tmp_path
):
    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    # The token is treated as valid for 60.5 s minus the 60 s safety margin.
    running = await start_bot(fake_discord, clustercord_harness, token_lifetime=60.5)
    try:
        await fake_discord.invoke(running.url, "demo slow")
        await fake_discord.wait_for(
            lambda: any(
                m["content"] == "slow done"
                for m in fake_discord.channel_messages(fake_discord.channel_id)
            )
        )
        posted = [r for r in fake_discord.requests if r.path.startswith("/channels/")]
        assert posted and posted[-1].method == "POST"
    finally:
        await running.server.close()


async def test_role_ids_go_through_the_access_policy(fake_discord, clustercord_harness, tmp_path):
    from dataclasses import replace

    from clustercord.config import AccessConfig

    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    clustercord_harness.settings = replace(
        clustercord_harness.settings,
        access=AccessConfig(roles={"555": ("demo:*",)}, default="deny"),
    )
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        denied = await fake_discord.invoke(running.url, "demo echo", {"text": "x"})
        assert denied.initial["data"]["flags"] & EPHEMERAL
        assert "your roles do not allow /demo echo" in denied.message["content"]
        allowed = await fake_discord.invoke(
            running.url, "demo echo", {"text": "x"}, role_ids=["555"]
        )
        assert allowed.message["content"] == "x"

        # A button is no way around the policy: who clicks must be allowed the command.
        shown = await fake_discord.invoke(running.url, "demo button", role_ids=["555"])
        go = button(shown.message, "Go")["custom_id"]
        outsider = await fake_discord.click(running.url, shown.message, go, user_id="3")
        assert outsider.initial["data"]["flags"] & EPHEMERAL
        assert "your roles do not allow /demo button" in outsider.initial["data"]["content"]
        member = await fake_discord.click(
            running.url, shown.message, go, user_id="3", role_ids=["555"]
        )
        assert member.message["content"] == "went 42 for <@3>"
    finally:
        await running.server.close()


async def test_a_server_outside_the_allowlist_is_refused(
    fake_discord, clustercord_harness, tmp_path
):
    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    running = await start_bot(fake_discord, clustercord_harness, allowed_guilds=frozenset({"1"}))
    try:
        result = await fake_discord.invoke(running.url, "demo echo", {"text": "x"})
        assert result.initial["data"]["flags"] & EPHEMERAL
        assert "not enabled on this server" in result.message["content"]
    finally:
        await running.server.close()


async def test_disabling_a_plugin_removes_its_commands(fresh_bot):
    bot = fresh_bot
    await bot.harness.kernel.manager.disable("demo", by="test")
    names = lambda: [c["name"] for c in bot.discord.commands(bot.discord.guild_id)]  # noqa: E731
    await bot.discord.wait_for(lambda: "demo" not in names())
    assert "plugin" in names()
    await bot.harness.kernel.manager.enable("demo", by="test")
    await bot.discord.wait_for(lambda: "demo" in names())
