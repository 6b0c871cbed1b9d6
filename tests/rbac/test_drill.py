"""Drill-down in Discord (the fake Discord and the real interaction server): who-can → a
subject's bindings → a binding's role → the role's rules, each step a select."""

from __future__ import annotations

import json
from dataclasses import replace

from clustercord_testing.fake_discord.state import LOADING

USER = "100000000000000001"  # the fake Discord's default user


def select(message):
    [found] = [
        c for row in message.get("components") or [] for c in row["components"] if c["type"] == 3
    ]
    return found


def option(component, label):
    return next(o["value"] for o in component["options"] if o["label"] == label)


async def settled(discord, message_id):
    """The message once the bot has answered in it (a slow answer is deferred first)."""

    def answered():
        message = discord.messages.get(message_id)
        if not message or message["flags"] & LOADING:  # deferred: still "thinking…"
            return None
        return message if message["components"] or message["embeds"] or message["content"] else None

    return await discord.wait_for(answered, timeout=30)


async def choose(discord, url, message, label):
    """Pick an option of the message's select; the answer comes as a new message."""
    component = select(message)
    before = set(discord.messages)
    await discord.click(url, message, component["custom_id"], values=[option(component, label)])
    new = await discord.wait_for(lambda: [m for m in discord.messages if m not in before], 30)
    return await settled(discord, new[-1])


async def test_select_drills_from_subject_to_rules(
    fake_discord, clustercord_harness, homelab, monkeypatch
):
    from clustercord.frontends.discord.server import start_interaction_server
    from clustercord.frontends.discord.settings import DiscordSettings

    monkeypatch.setenv("KUBECONFIG", str(homelab.kubeconfig))
    # The clicking Discord user acts as the homelab's cluster admin on Kubernetes.
    clustercord_harness.settings = replace(
        clustercord_harness.settings, identity={"users": {USER: {"user": "admin"}}}
    )
    clustercord_harness.add_builtins(["rbac"])
    kernel = await clustercord_harness.start()
    discord = fake_discord
    settings = DiscordSettings(
        token=discord.bot_token,
        public_key=discord.public_key_hex,
        api_url=discord.api_url,
        guilds=(int(discord.guild_id),),
        allowed_guilds=frozenset({discord.guild_id}),
        defer_after=0.6,
        progress_interval=0.1,
    )
    server = await start_interaction_server(
        kernel, settings, host="127.0.0.1", port=0, background=False
    )
    try:
        asked = await discord.invoke(
            server.url,
            "rbac who-can",
            {"verb": "create", "resource": "deployments", "namespace": "home"},
        )
        message = await settled(discord, asked.message_id)
        assert message is not None and "sa:home/ci" in [
            o["label"] for o in select(message)["options"]
        ]

        bindings = await choose(discord, server.url, message, "sa:home/ci")
        text = str(bindings)
        assert "RoleBinding 'home/ci-edit'" in text and "ClusterRole edit" in text

        role = await choose(discord, server.url, bindings, "RoleBinding home/ci-edit")
        assert "ClusterRole edit" in str(role) and "sa:home/ci" in str(role)

        rules = await choose(discord, server.url, role, "ClusterRole 'edit'")
        text = json.dumps(rules, ensure_ascii=False)  # str() would escape the quotes
        # long rule lines are cut in the code block; the attached reply has every one whole
        [attached] = rules["attachments"]
        text += discord.attachment_data(attached).decode()
        assert "ClusterRole 'edit' (aggregated)" in text and "pods/exec" in text
    finally:
        await server.close()
