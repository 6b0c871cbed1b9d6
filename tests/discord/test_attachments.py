"""`/cluster add` with a kubeconfig attached in Discord, end to end: the fake Discord sends
an attachment option (type 11, resolved with a URL it serves), real hikari and lightbulb
download it, the `cluster` builtin stores it encrypted, and the sandbox answers through it."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
import yaml

from tests.discord.conftest import start_bot
from tests.discord.test_interactions import EPHEMERAL

ADMIN = "100000000000000077"


@pytest.fixture
async def admin_bot(fake_discord, clustercord_harness, sandbox_cluster):
    from clustercord.config import AccessConfig

    sandbox = sandbox_cluster()
    clustercord_harness.add_builtins(["cluster", "plugins"])
    clustercord_harness.settings = replace(
        clustercord_harness.settings, access=AccessConfig(admins=frozenset({f"user:{ADMIN}"}))
    )
    running = await start_bot(fake_discord, clustercord_harness)
    running.sandbox = sandbox
    yield running
    await running.server.close()


def cluster_names(bot) -> list[str]:
    return [c.name for c in bot.harness.kernel.kubernetes.registry.list()]


async def test_an_attached_kubeconfig_is_stored_encrypted_and_usable(admin_bot):
    discord, sandbox = admin_bot.discord, admin_bot.sandbox
    text = sandbox.kubeconfig.read_text()
    added = await discord.invoke(
        admin_bot.url,
        "cluster add",
        {"name": "homelab", "kubeconfig": ("homelab.yaml", text.encode())},
        user_id=ADMIN,
    )
    assert added.initial["data"]["flags"] & EPHEMERAL or added.message["flags"] & EPHEMERAL
    assert added.message["content"].startswith("Added cluster homelab"), added.message
    # The upload was fetched from the URL Discord resolved, not passed around inline.
    assert any(r.path.startswith("/attachments/") for r in discord.requests)

    assert "homelab" in cluster_names(admin_bot)
    status = await admin_bot.harness.run("/cluster status cluster:homelab")
    assert status.ok, status.text

    # Encrypted at rest: no credential of the uploaded file is in the database in clear.
    user = yaml.safe_load(text)["users"][0]["user"]
    secrets = [str(v) for v in user.values() if isinstance(v, str) and len(str(v)) > 16]
    assert secrets, "the sandbox kubeconfig should carry a credential"
    raw = sqlite3.connect(admin_bot.harness.settings.database_path).iterdump()
    dump = "\n".join(raw)
    assert not any(secret in dump for secret in secrets)


async def test_a_malformed_kubeconfig_is_a_clear_ephemeral_error_and_stores_nothing(admin_bot):
    discord = admin_bot.discord
    before = cluster_names(admin_bot)
    bad = await discord.invoke(
        admin_bot.url,
        "cluster add",
        {"name": "broken", "kubeconfig": ("broken.yaml", b"clusters: [this is: not yaml")},
        user_id=ADMIN,
    )
    assert bad.initial["data"]["flags"] & EPHEMERAL or bad.message["flags"] & EPHEMERAL
    assert "the uploaded kubeconfig: not valid YAML" in bad.message["content"]
    assert cluster_names(admin_bot) == before
    assert "broken" not in before
