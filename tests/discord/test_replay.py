"""Replayed interactions: each interaction id is answered at most once.

A captured signed request stays valid for the whole timestamp window; POSTed again it must
run nothing (no second call, no second audit row), also after a restart of the kernel on
the same data directory. The memory of ids is bounded: ids older than the window go.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from clustercord.frontends.discord.replay import InteractionMemory
from clustercord.storage import Database
from tests.discord.conftest import start_bot

COUNT = """
def run(ctx):
    calls = (ctx.store.get("calls") or 0) + 1
    ctx.store.set("calls", calls)
    return f"call {calls}"
"""


def counter(make_plugin):
    return make_plugin("count", modules={"commands": COUNT})


def record_signed(discord):
    """Keep every (body, headers) the fake Discord signs: what an eavesdropper captures."""
    captured: list[tuple[bytes, dict[str, str]]] = []
    sign = discord.sign

    def recording(body, **kwargs):
        headers = sign(body, **kwargs)
        captured.append((body, headers))
        return headers

    discord.sign = recording
    return captured


async def post(url, body, headers):
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


def calls(harness):
    return harness.plugin("count").context.store.get("calls")


def audit_rows(kernel):
    return len(list(kernel.audit.iter_rows()))


async def test_a_replayed_interaction_runs_once_even_after_a_restart(
    fake_discord, clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(counter(make_plugin))
    captured = record_signed(fake_discord)
    running = await start_bot(fake_discord, harness)
    try:
        first = await fake_discord.invoke(running.url, "count")
        assert first.message["content"] == "call 1"
        ((body, headers),) = captured
        rows = audit_rows(harness.kernel)
        assert rows >= 1

        await asyncio.sleep(2)  # captured, then replayed 2 s later: still in the window
        status, text = await post(running.url, body, headers)
        assert status == 409
        assert text == f"replayed interaction: {first.id} was already received; it runs once"
        assert calls(harness) == 1
        assert audit_rows(harness.kernel) == rows  # nothing ran, nothing was audited

        # Another interaction is served as usual.
        other = await fake_discord.invoke(running.url, "count")
        assert other.message["content"] == "call 2"
        rows = audit_rows(harness.kernel)
    finally:
        await running.server.close()

    harness.close()  # a restart on the same data directory
    running = await start_bot(fake_discord, harness)
    try:
        status, _ = await post(running.url, body, headers)
        assert status == 409
        assert calls(harness) == 2
        assert audit_rows(harness.kernel) == rows
        again = await fake_discord.invoke(running.url, "count")
        assert again.message["content"] == "call 3"
    finally:
        await running.server.close()


async def test_concurrent_copies_of_one_request_run_once(
    fake_discord, clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(counter(make_plugin))
    captured = record_signed(fake_discord)
    running = await start_bot(fake_discord, harness)
    try:
        await fake_discord.invoke(running.url, "count")
        ((body, headers),) = captured
        statuses = await asyncio.gather(*(post(running.url, body, headers) for _ in range(5)))
        assert [status for status, _ in statuses] == [409] * 5
        assert calls(harness) == 1
    finally:
        await running.server.close()


async def test_a_forged_request_cannot_use_up_a_real_interactions_id(
    fake_discord, clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(counter(make_plugin))
    captured = record_signed(fake_discord)
    running = await start_bot(fake_discord, harness)
    try:
        await fake_discord.invoke(running.url, "count")
        ((body, _),) = captured
        payload = json.loads(body)
        payload.update(id=fake_discord.snowflake(), token="fake-interaction-next")
        forged_body = json.dumps(payload).encode()
        status, text = await post(
            running.url, forged_body, fake_discord.sign(forged_body, forged=True)
        )
        assert (status, text) == (401, "invalid request signature")
        # The real interaction with that id still runs.
        result = await fake_discord.deliver_raw(running.url, payload)
        assert result.status == 200
        assert result.message["content"] == "call 2"
    finally:
        await running.server.close()


def test_the_memory_survives_a_restart_and_stays_bounded(tmp_path):
    now = [1_000_000.0]
    database = Database(tmp_path / "clustercord.db")
    memory = InteractionMemory(database, 300, clock=lambda: now[0])
    for n in range(1000):
        assert memory.claim(f"id-{n}", now[0])
    assert not memory.claim("id-7", now[0])
    assert len(memory) == 1000
    memory.close()

    memory = InteractionMemory(database, 300, clock=lambda: now[0])  # a restart
    now[0] += 299
    assert not memory.claim("id-7", now[0] - 299)  # still within the window: refused
    # A timestamp in the future (clock skew, accepted up to the window) keeps the id longer.
    assert memory.claim("future", now[0] + 200)
    # The first thousand are past the window: pruned by a claim once the last pruning
    # (at most every tenth of the window) is that long ago.
    now[0] += 31
    assert memory.claim("fresh", now[0])
    assert len(memory) == 2
    assert not memory.claim("future", now[0])
    memory.close()
    database.close()


async def test_a_duplicated_gateway_interaction_is_ignored(
    fake_discord, clustercord_harness, make_plugin
):
    import hikari

    from clustercord.frontends.discord.app import DiscordFrontend
    from clustercord.frontends.discord.server import gateway_bot
    from tests.discord.conftest import discord_settings

    harness = clustercord_harness
    harness.add_plugin(counter(make_plugin))
    kernel = await harness.start()
    settings = discord_settings(fake_discord)
    bot = gateway_bot(settings)
    frontend = DiscordFrontend(kernel, bot, settings)

    async def starting(event):
        await frontend.start()

    bot.subscribe(hikari.StartingEvent, starting)
    await asyncio.wait_for(bot.start(check_for_updates=False), 10)
    try:
        first = await fake_discord.invoke(None, "count")
        assert first.message["content"] == "call 1"
        rows = audit_rows(kernel)
        # The same INTERACTION_CREATE again (a resumed session replaying its events).
        await fake_discord.gateway_sessions[0].dispatch("INTERACTION_CREATE", first.payload)
        await asyncio.sleep(0.5)
        assert calls(harness) == 1
        assert audit_rows(kernel) == rows
        other = await fake_discord.invoke(None, "count")
        assert other.message["content"] == "call 2"
    finally:
        await frontend.stop()
        await bot.close()


async def test_a_replayed_autocomplete_is_refused(fake_discord, clustercord_harness, make_plugin):
    clustercord_harness.add_builtins(["plugins"])
    clustercord_harness.add_plugin(counter(make_plugin))
    captured = record_signed(fake_discord)
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        result = await fake_discord.autocomplete(
            running.url, "plugin info", focused="name", value="cou"
        )
        assert "count" in [c["value"] for c in result.choices]
        ((body, headers),) = captured
        status, _ = await post(running.url, body, headers)
        assert status == 409
    finally:
        await running.server.close()
