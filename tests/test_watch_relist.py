"""The kernel's cluster watches over a real watch stream that gets 410 Gone: they relist,
announce what the relist reveals, and keep delivering events afterwards."""

from __future__ import annotations

import asyncio

import pytest

from clustercord.kubernetes.watches import ClusterWatcher
from clustercord_sandbox.objects import WriteOptions
from clustercord_sandbox.server import SandboxServer

from .conftest import crash_looping, running, until

CRASHED = crash_looping("app", "busybox", restarts=4)


async def _gap(server: SandboxServer, namespace: str, name: str) -> None:
    """On the sandbox's loop, in one step so no watch reconnects in between: the open watch
    streams end (an API server restart), a pod crashes unseen, and the history is compacted,
    so resuming from the last seen resourceVersion answers 410 Gone."""
    server.end_watches()
    pods = server.registry.lookup("", "v1", "pods")
    assert pods is not None
    server.api.patch(
        pods, namespace, name, "application/merge-patch+json", CRASHED, WriteOptions(), "status"
    )
    server.store.compact()


@pytest.fixture
def homelab(sandbox_cluster):
    """The homelab sandbox itself (a BackgroundSandbox): the test reaches behind its API."""
    return sandbox_cluster("homelab").background


async def test_a_compacted_history_makes_the_watch_relist_and_keep_delivering(
    clustercord_harness, homelab
):
    server = homelab.server
    kernel = await clustercord_harness.start()
    [cluster] = kernel.kubernetes.registry.list()
    seen: list[tuple[str, str | None, str | None]] = []

    async def publish(event) -> int:
        seen.append((event.type, event.name, event.data.get("reason")))
        return 1

    watcher = ClusterWatcher(kernel.kubernetes, cluster.name, publish, backoff=0.1)
    async with running(watcher.run):
        assert await until(lambda: watcher.pods and watcher.nodes), "the watches never listed"
        await asyncio.sleep(0.3)  # both streams are open
        pod = next(p for p in server.store.list("", "pods") if p["status"]["phase"] == "Running")
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

        homelab.call(_gap(server, namespace, name))
        assert await until(lambda: watcher.relists >= 1, 5.0), "no 410 reached the watch"
        # The crash happened while no stream was open: only the relist can reveal it.
        assert await until(lambda: ("pod:crash", name, "OOMKilled") in seen), seen
        assert server.store.oldest_watchable() > int(pod["metadata"]["resourceVersion"])

        # The watch resumed from the relist's version and still delivers changes.
        pods = server.registry.lookup("", "v1", "pods")
        homelab.call(_delete(server, pods, namespace, name))
        assert await until(lambda: ("pod:delete", name, None) in seen), seen
        assert watcher.relists == 2  # pods and nodes once each, then healthy streams again


async def _delete(server: SandboxServer, rt, namespace: str, name: str) -> None:
    server.api.delete(rt, namespace, name)
