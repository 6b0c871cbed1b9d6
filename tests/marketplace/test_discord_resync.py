"""Discord sees an installed plugin's commands without a restart, and loses a removed one's."""

from __future__ import annotations

import pytest

from tests.discord.conftest import start_bot

pytestmark = pytest.mark.slow


async def test_install_and_remove_resync_discords_commands(
    fake_discord, market_harness, market, wheels
):
    market.publish(wheels["hello-0.1.0"])
    bot = await start_bot(fake_discord, market_harness)
    try:

        def names() -> list[str]:
            return [c["name"] for c in fake_discord.commands(fake_discord.guild_id)]

        await fake_discord.wait_for(lambda: "plugin" in names())
        assert "hello" not in names()
        assert (await market_harness.run("/plugin browse")).ok  # fetches the index
        offered = await fake_discord.autocomplete(
            bot.url, "plugin install", focused="name", value="he"
        )
        assert [c["value"] for c in offered.choices] == ["hello"]
        assert (await market_harness.run("/plugin install name:hello")).ok
        await fake_discord.wait_for(lambda: "hello" in names())
        answer = await fake_discord.invoke(bot.url, "hello", {"name": "Ada"})
        assert "Hello, Ada!" in str(answer.message or answer.initial)
        assert (await market_harness.run("/plugin remove name:hello")).ok
        await fake_discord.wait_for(lambda: "hello" not in names())
    finally:
        await bot.server.close()
