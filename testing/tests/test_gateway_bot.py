"""A real hikari GatewayBot with lightbulb 3 starts against the fake Discord's gateway,
registers its commands and answers an interaction delivered as INTERACTION_CREATE."""

from __future__ import annotations

import asyncio

import hikari
import lightbulb

from clustercord_testing.discord_reference import COMMANDS
from clustercord_testing.fake_discord import FakeDiscord


async def test_a_gateway_bot_starts_registers_and_answers(fake_discord: FakeDiscord) -> None:
    bot = hikari.GatewayBot(
        fake_discord.bot_token,
        rest_url=fake_discord.api_url,
        banner=None,
        logs=None,
        intents=hikari.Intents.GUILDS,
    )
    client = lightbulb.client_from_app(bot)
    for command in COMMANDS:
        client.register(command, guilds=[hikari.Snowflake(fake_discord.guild_id)])
    bot.subscribe(hikari.StartingEvent, client.start)
    await asyncio.wait_for(bot.start(check_for_updates=False), 10)
    try:
        assert len(fake_discord.gateway_sessions) == 1
        identify = fake_discord.gateway_sessions[0].identify
        assert identify["intents"] == hikari.Intents.GUILDS
        assert {c["name"] for c in fake_discord.commands(fake_discord.guild_id)} == {
            "ping",
            "echo",
            "slow",
        }
        result = await fake_discord.invoke(None, "echo", {"text": "over the gateway"})
        assert result.message is not None
        assert result.message["content"] == "over the gateway"
    finally:
        await bot.close()
    assert fake_discord.gateway_sessions == []
