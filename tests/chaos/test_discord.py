"""`/chaos` in Discord, end to end: real hikari and lightbulb against the fake Discord over a
homelab sandbox. The command tree registers within Discord's limits, a fault's report arrives
as an embed, the stop command is offered the running experiment by autocomplete, and kubectl
sees the fault made and undone."""

from __future__ import annotations

import pytest

from tests.discord.conftest import sandbox_bot

from .conftest import cluster_marks, first_pod, images, pod_named

OWNER = "100000000000000091"


@pytest.fixture
async def bot(fake_discord, clustercord_harness, sandbox_cluster):
    async with sandbox_bot(
        fake_discord, clustercord_harness, sandbox_cluster, ["chaos"], {OWNER: "admin"}
    ) as running:
        yield running


def embed_titles(message) -> list[str]:
    return [e.get("title") or "" for e in (message or {}).get("embeds") or []]


async def test_a_fault_from_discord_reports_in_an_embed_and_stops_from_autocomplete(bot):
    discord = bot.discord
    victim = first_pod(bot.sandbox)
    name = victim["metadata"]["name"]
    result = await discord.invoke(
        bot.url, "chaos pod-failure", {"pod": name, "namespace": "media", "duration": "10m"},
        user_id=OWNER,
    )  # fmt: skip

    def reported():
        titles = embed_titles(result.message)
        return result.message if any("Chaos experiment" in t for t in titles) else None

    message = await discord.wait_for(reported, timeout=20)  # fmt: skip
    fields = {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}
    assert fields["State"] == "active" and "registry.k8s.io/pause" in fields["What changed"]
    assert set(images(pod_named(bot.sandbox, name)).values()) == {"registry.k8s.io/pause:3.10"}

    offered = await discord.autocomplete(
        bot.url, "chaos stop", focused="experiment", value="ex-", user_id=OWNER
    )
    (choice,) = offered.choices
    assert "pod-failure" in choice["name"] and name in choice["name"]
    stopped = await discord.invoke(
        bot.url, "chaos stop", {"experiment": choice["value"]}, user_id=OWNER
    )
    await discord.wait_for(
        lambda: "Stopped 1" in ((stopped.message or {}).get("content") or ""), timeout=20
    )
    assert images(pod_named(bot.sandbox, name)) == images(victim)
    assert cluster_marks(bot.sandbox) == ""
