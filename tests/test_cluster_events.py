"""Cluster changes reach plugins as typed events, through watches of the sandbox."""

from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import crash_looping, deployment, running, until

WEB = deployment("web", "games", "nginx:1.27.3")

RECORDER = {
    "manifest": {
        "hooks": [
            {"event": "pod:start", "filter": {"label": "app=web"}},
            {"event": "pod:crash"},
            {"event": "pod:delete", "filter": {"namespaces": ["games"]}},
            {"event": "node:not-ready"},
        ]
    },
    "init": """
        @hookimpl
        def on_event(event, ctx):
            seen = ctx.store.get("seen", [])
            ctx.store.set("seen", seen + [[event.type, event.namespace, event.name,
                                             event.data.get("reason")]])
    """,
}


@pytest.fixture
def homelab(sandbox_cluster):
    return sandbox_cluster("homelab").kubectl


async def test_pod_and_node_events_reach_subscribed_plugins(
    clustercord_harness, add_plugin, homelab
):
    harness = clustercord_harness
    add_plugin("recorder", **RECORDER)
    kernel = await harness.start()
    store = harness.plugin("recorder").context.store
    seen = lambda: store.get("seen", [])  # noqa: E731
    async with running(lambda stop: kernel.run_background(stop, tick=0.1)):
        await asyncio.sleep(1.0)  # the watches list first: nothing already running is announced
        assert seen() == []

        homelab("apply", "-f", "-", input=WEB)
        assert await until(lambda: any(e[0] == "pod:start" for e in seen())), seen()
        start = next(e for e in seen() if e[0] == "pod:start")
        assert start[1] == "games" and start[2].startswith("web-")
        pod = start[2]

        crashed = crash_looping("web", "nginx:1.27.3", restarts=3)
        homelab(
            "patch",
            "pod",
            pod,
            "-n",
            "games",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(crashed),
        )
        assert await until(lambda: ["pod:crash", "games", pod, "OOMKilled"] in seen()), seen()

        homelab("delete", "pod", pod, "-n", "games")
        assert await until(lambda: ["pod:delete", "games", pod, None] in seen()), seen()

        homelab(
            "patch",
            "node",
            "pi-2",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(
                {
                    "status": {
                        "conditions": [
                            {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}
                        ]
                    }
                }
            ),
        )
        assert await until(lambda: ["node:not-ready", None, "pi-2", None] in seen()), seen()
    # Only what the manifest's filters let through: no other app's pod:start.
    assert {e[0] for e in seen()} <= {"pod:start", "pod:crash", "pod:delete", "node:not-ready"}
    assert all(e[2].startswith("web-") for e in seen() if e[0] == "pod:start")


async def test_nobody_subscribed_nobody_watches(clustercord_harness, add_plugin, homelab):
    add_plugin("quiet")
    kernel = await clustercord_harness.start()
    assert kernel.cluster_watchers() == []
