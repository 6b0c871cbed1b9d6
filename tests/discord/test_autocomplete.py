"""Autocomplete of the builtin commands, end to end: real hikari and lightbulb answer the fake
Discord's autocomplete interactions with names read from the sandbox cluster as the typing
user (clusters, namespaces, pods, deployments, templates, commands)."""

from __future__ import annotations

import pytest

from tests.discord.conftest import sandbox_bot

ADMIN = "100000000000000071"  # mapped to the homelab's cluster-admin user
NOBODY = "100000000000000072"  # mapped to a Kubernetes user with no rights


@pytest.fixture
async def bot(fake_discord, clustercord_harness, sandbox_cluster):
    builtins = ["cluster", "templates", "help", "plugins"]
    identity = {ADMIN: "admin", NOBODY: "nobody"}
    async with sandbox_bot(
        fake_discord, clustercord_harness, sandbox_cluster, builtins, identity
    ) as running:
        yield running


async def suggest(bot, command, focused, value="", user=ADMIN, **options):
    result = await bot.discord.autocomplete(
        bot.url, command, focused=focused, value=value, options=options, user_id=user
    )
    return [choice["value"] for choice in result.choices]


async def test_clusters_namespaces_pods_and_deployments_come_from_the_cluster(bot):
    (cluster,) = [c.name for c in bot.harness.kernel.kubernetes.registry.list()]
    assert await suggest(bot, "cluster use", "cluster") == [cluster]
    assert await suggest(bot, "cluster remove", "name", cluster[:2]) == [cluster]
    # Names that start with what was typed first, then names that contain it.
    assert await suggest(bot, "pod list", "namespace", "me") == ["media", "games", "home"]

    # The pods of the namespace already given, as kubectl lists them.
    listed = bot.sandbox.kubectl("get", "pods", "-n", "monitoring", "-o", "name").stdout.split()
    pods = await suggest(bot, "pod logs", "name", "", namespace="monitoring")
    assert pods == sorted(name.removeprefix("pod/") for name in listed)
    assert (await suggest(bot, "pod logs", "name", "graf", namespace="monitoring"))[0].startswith(
        "grafana"
    )
    assert await suggest(bot, "pod logs", "name", "jelly", namespace="monitoring") == []
    assert await suggest(bot, "deployment scale", "name", "gra", namespace="monitoring") == [
        "grafana"
    ]


async def test_templates_and_commands_autocomplete(bot):
    assert "minecraft" in await suggest(bot, "template deploy", "template", "mine")
    assert await suggest(bot, "template deploy", "namespace", "gam", template="minecraft") == [
        "games"
    ]
    assert await suggest(bot, "help", "command", "pod l") == ["pod list", "pod logs"]


async def test_nobody_sees_names_their_kubernetes_identity_may_not_list(bot):
    assert await suggest(bot, "pod logs", "name", "", user=NOBODY, namespace="media") == []
    assert await suggest(bot, "pod list", "namespace", "", user=NOBODY) == []
    # Cluster names are not Kubernetes objects: everyone may see them.
    assert len(await suggest(bot, "cluster use", "cluster", user=NOBODY)) == 1
