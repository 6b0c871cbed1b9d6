"""Capability services of isolated plugins (conversations, the identity map and the cluster
registry read-only; plugin-admin and approvals-admin refused, naming the in-process tier),
``on_enable`` again after a crash restart, and the admin-granted in-process tier."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from clustercord.isolation.stub import IsolatedPackage
from clustercord_sdk.services import Message

from .conftest import commands


@pytest.mark.parametrize(
    "capability", ["plugin-admin", "approvals-admin", "audit-read", "config-write"]
)
async def test_kernel_capabilities_are_refused_naming_the_in_process_tier(
    clustercord_harness, isolated_plugin, capability
):
    isolated_plugin("boss", manifest={**commands("boss"), "capabilities": [capability]})
    kernel = await clustercord_harness.start()
    plugin = clustercord_harness.plugin("boss")
    assert plugin.state == "awaiting-approval"
    await kernel.manager.approve("boss", by="admin")
    assert plugin.state == "disabled"
    assert f"capability {capability} needs the in-process tier" in plugin.reason, plugin.reason
    assert "'in-process'" in plugin.reason
    assert kernel.isolation.process("boss") is None  # no process was started for it
    ran = await clustercord_harness.run("/boss")
    assert ran.status == "error"


READER = {
    "manifest": {**commands("who"), "capabilities": ["identity-map", "cluster-registry"]},
    "modules": {
        "commands": """
            import json

            def who(ctx):
                ids = ctx.plugin.require("identity-map")
                me = ids.resolve("1001", ["r1"])
                registry = ctx.plugin.require("cluster-registry")
                seen = {
                    "user": me.user,
                    "groups": list(me.groups),
                    "ids": ids.discord_ids_of("alice"),
                    "clusters": registry.list(),
                    "problems": registry.problems(),
                }
                for name, attempt in {
                    "unmapped": lambda: ids.resolve("9999"),
                    "add": lambda: registry.add("x", "apiVersion: v1", by="me"),
                    "remove": lambda: registry.remove("x"),
                }.items():
                    try:
                        attempt()
                        seen[name] = "allowed"
                    except Exception as exc:
                        seen[name] = f"{type(exc).__name__}: {exc}"
                return json.dumps(seen)
        """
    },
}


async def test_identity_map_and_cluster_registry_read_only(clustercord_harness, isolated_plugin):
    clustercord_harness.settings = replace(
        clustercord_harness.settings,
        identity={
            "users": {"1001": {"user": "alice", "groups": ["sre"]}},
            "roles": {"r1": {"groups": ["ops"]}},
        },
    )
    isolated_plugin("reader", **READER)
    kernel = await clustercord_harness.start()
    await kernel.manager.approve("reader", by="admin")
    assert clustercord_harness.plugin("reader").state == "enabled"
    ran = await clustercord_harness.run("/who")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    assert (seen["user"], seen["groups"]) == ("alice", ["sre", "ops", "system:authenticated"])
    assert seen["ids"] == ["1001"]
    assert seen["clusters"] == kernel.kubernetes.registry.list() or isinstance(
        seen["clusters"], list
    )
    assert isinstance(seen["problems"], list)
    assert seen["unmapped"].startswith("PermissionDenied: your Discord account (9999)")
    for name in ("add", "remove"):
        assert "needs the in-process tier" in seen[name], seen[name]


TALKER = {
    "manifest": {**commands("chat"), "capabilities": ["conversations"]},
    "modules": {
        "commands": """
            from clustercord_sdk import Invocation

            async def chat(ctx):
                conversations = ctx.plugin.require("conversations")
                forged = Invocation(user_id="x", command=("chat",), channel_id="elsewhere")
                conversation = await conversations.open("a chat", for_invocation=forged)
                sent = await conversation.send("hello")
                message = await conversation.receive(timeout=5)
                await conversation.close()
                return f"{conversation.id} {sent} {message.user_id}:{message.text}"
        """
    },
}


class FakeConversation:
    def __init__(self, title: str) -> None:
        self.id = f"thread-{title}"
        self.sent: list[object] = []
        self.closed = False

    async def send(self, reply):
        self.sent.append(reply)
        return f"m{len(self.sent)}"

    async def receive(self, timeout: float = 60.0):
        return Message(user_id="alice", text="hi back", message_id="m9")

    async def close(self) -> None:
        self.closed = True


async def test_conversations_open_for_the_command_in_flight(clustercord_harness, isolated_plugin):
    isolated_plugin("talker", **TALKER)
    kernel = await clustercord_harness.start()
    await kernel.manager.approve("talker", by="admin")
    opened = []

    async def opener(plugin, title, invocation):
        conversation = FakeConversation(title.replace(" ", "-"))
        opened.append((plugin, invocation, conversation))
        return conversation

    kernel.conversations.register("console", opener)
    ran = await clustercord_harness.run("/chat", user="1001")
    assert ran.text == "thread-a-chat m1 alice:hi back", ran.text
    ((plugin, invocation, conversation),) = opened
    # Opened for the invocation of the call, not the one the plugin made up.
    assert plugin == "talker" and invocation.user_id == "1001"
    assert invocation.channel_id != "elsewhere"
    assert conversation.sent == ["hello"] and conversation.closed
    assert not kernel.isolation.process("talker").handles


KEEPER = {
    "manifest": commands("state"),
    "init": """
        STATE = {}

        @hookimpl
        def on_enable(ctx):
            STATE["ready"] = True
            ctx.store.set("enables", ctx.store.get("enables", 0) + 1)
            ctx.scheduler.every("1h", "jobs:tick", job_id="tick")
    """,
    "modules": {
        "commands": """
            from . import STATE

            def state(ctx):
                return f"{STATE.get('ready')} {ctx.store.get('enables')}"
        """,
        "jobs": "def tick(job, ctx):\n    pass\n",
    },
}


async def test_on_enable_runs_again_after_a_crash_restart(clustercord_harness, isolated_plugin):
    isolated_plugin("keeper", **KEEPER)
    kernel = await clustercord_harness.start()
    assert (await clustercord_harness.run("/state")).text == "True 1"
    first = kernel.isolation.process("keeper")
    first.kill("a crash in the test")
    first.proc.wait(timeout=5)
    again = await clustercord_harness.run("/state")
    assert again.text == "True 2", again.text  # its state is back before the call
    assert kernel.isolation.process("keeper").pid != first.pid
    (job,) = kernel.scheduler.for_plugin("keeper").jobs()
    assert job.id == "tick"
    assert clustercord_harness.plugin("keeper").reason is None


ASKER = {"manifest": {**commands("where"), "capabilities": ["in-process"]}}
ASKER["modules"] = {
    "commands": "import os\n\ndef where(ctx):\n    return str(os.getpid())\n",
}


async def test_only_an_admin_grant_runs_a_plugin_in_process(
    clustercord_signer, tmp_path, make_plugin
):
    import os

    from clustercord_testing.harness import KernelHarness

    harness = KernelHarness(tmp_path / "tier-data", clustercord_signer, isolation="signer")
    try:
        harness.add_builtins(["plugins"])
        harness.add_plugin(make_plugin("asker", **ASKER))
        harness.add_plugin(
            make_plugin(
                "plain",
                manifest=commands("plain-where"),
                modules={
                    "commands": "import os\n\ndef plain_where(ctx):\n    return str(os.getpid())\n"
                },
            )
        )
        kernel = await harness.start()
        asker = harness.plugin("asker")
        # Asking is not having: until an admin grants it, it waits (and would run isolated).
        assert asker.state == "awaiting-approval"
        assert "capability:in-process" in asker.reason
        assert kernel.isolation.isolates(asker)
        assert isinstance(harness.plugin("plain").module, IsolatedPackage)
        assert (await harness.run("/plain-where")).text != str(os.getpid())

        approved = await harness.run("/plugin permissions name:asker approve:true")
        assert approved.ok, approved.text
        assert asker.state == "enabled", asker.reason
        assert not isinstance(asker.module, IsolatedPackage)
        assert kernel.isolation.process("asker") is None
        assert (await harness.run("/where")).text == str(os.getpid())
        info = await harness.run("/plugin info name:asker")
        shown = json.dumps(info.reply.to_dict())
        assert "capability:in-process" in shown and "in-process" in shown

        # A restart keeps the grant; without it (another data directory) it is isolated.
        kernel = await harness.restart()
        assert not isinstance(harness.plugin("asker").module, IsolatedPackage)
    finally:
        harness.close()
