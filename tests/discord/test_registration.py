"""Commands registered from the builtin plugins' manifests, in both modes, and every builtin
command answered with payloads Discord would accept."""

from __future__ import annotations

import base64
import json

from clustercord.frontends.discord.commands import lightbulb_commands, registration_json
from tests.discord.conftest import discord_settings, start_bot

# Fields Discord adds to a command it stores.
ADDED = {"id", "application_id", "version", "guild_id", "dm_permission", "integration_types"}

SAMPLE = {3: "x", 4: 1, 5: True, 6: "100000000000000009", 7: None, 8: "200000000000000009", 10: 1.0}


def leaves(command, path=()):
    path = (*path, command["name"])
    subs = [o for o in command.get("options") or [] if o["type"] in (1, 2)]
    if not subs:
        yield path, command.get("options") or []
    for sub in subs:
        yield from leaves(sub, path)


async def test_every_builtin_command_registers_and_answers(fake_discord, clustercord_harness):
    clustercord_harness.add_builtins()
    bot = await start_bot(fake_discord, clustercord_harness)
    try:
        registered = fake_discord.commands(fake_discord.guild_id)
        plan = bot.frontend.plan
        assert plan.rejected == []
        assert sorted(c["name"] for c in registered) == sorted(plan.owners)

        async def unused(*_):
            return None

        # What `clustercord discord commands --json` prints is what Discord received.
        printed = await registration_json(lightbulb_commands(plan.payloads, unused, unused))
        printed = json.loads(json.dumps(printed))
        stored = {c["name"]: {k: v for k, v in c.items() if k not in ADDED} for c in registered}
        for command in printed:
            for key, value in command.items():
                if key in stored[command["name"]]:
                    assert _same(value, stored[command["name"]][key]), (command["name"], key)

        answered = 0
        for command in registered:
            for path, options in leaves(command):
                if any(o["type"] == 11 and o.get("required") for o in options):
                    continue  # the fake Discord cannot attach files to a command yet
                values = {
                    o["name"]: sample(o) for o in options if o.get("required") and o["type"] != 7
                }
                result = await fake_discord.invoke(bot.url, " ".join(path), values)
                assert result.status < 300 and result.initial is not None, path
                answered += 1
        assert answered >= 15
    finally:
        await bot.server.close()


def sample(option):
    """A value Discord would let a user give for ``option``."""
    if option.get("choices"):
        return option["choices"][0]["value"]
    if option["type"] == 3:
        return "x" * max(1, option.get("min_length", 1))
    return SAMPLE[option["type"]]


def _same(ours, theirs):
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return all(_same(v, theirs[k]) for k, v in ours.items() if k in theirs)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_same, ours, theirs))
    return str(ours) == str(theirs)


async def test_gateway_mode_registers_the_commands(clustercord_harness, tmp_path):
    """As far as the fake goes: the gateway bot's REST client syncs the commands."""
    from clustercord.frontends.discord.app import DiscordFrontend
    from clustercord.frontends.discord.server import gateway_bot
    from clustercord_testing.fake_discord import FakeDiscord
    from tests.discord.conftest import demo_plugin

    # A gateway bot reads its application id from the token, as Discord's tokens carry it.
    application_id = "123456789012345678"
    token = base64.b64encode(application_id.encode()).decode() + ".GxYzAb.fake-secret"
    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    kernel = await clustercord_harness.start()
    async with FakeDiscord(application_id=application_id, bot_token=token) as discord:
        settings = discord_settings(discord)
        bot = gateway_bot(settings)
        bot.rest.start()
        try:
            frontend = DiscordFrontend(kernel, bot, settings)
            await frontend.start()
            (demo,) = discord.commands(discord.guild_id)
            assert demo["name"] == "demo"
            assert [o["name"] for o in demo["options"]][:3] == ["echo", "slow", "pages"]
            await frontend.stop()
        finally:
            await bot.rest.close()
        assert discord.violations == []
