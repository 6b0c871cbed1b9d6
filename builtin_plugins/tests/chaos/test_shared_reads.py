"""Steady-state reads shared between runs: one GET for the runs that read the same object
within max_age, a fresh one after, errors never reused, nothing shared between identities, and
a stopped run does not take the others' answer with it."""

from __future__ import annotations

import asyncio

import pytest

from clustercord_builtins.chaos.shared_reads import SharedReads
from clustercord_sdk.errors import CommandError


class Cluster:
    """Answers GETs after a short delay, counting them; ``fail`` makes the next ones fail."""

    def __init__(self) -> None:
        self.gets: list[tuple[str, str]] = []
        self.fail = False
        self.ready = 2

    async def get(self, resource, name, *, namespace=None, cluster=None):
        self.gets.append((resource, name))
        await asyncio.sleep(0.02)
        if self.fail:
            raise CommandError("the cluster failed to get deployments (503)")
        return {"status": {"readyReplicas": self.ready}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_runs_reading_the_same_object_share_one_get_until_it_is_too_old():
    clock, cluster = Clock(), Cluster()
    reads = SharedReads(max_age=0.25, clock=clock)
    reader = reads.reader(cluster)
    answers = await asyncio.gather(
        *(reader.get("deployments.apps", "api", namespace="prod") for _ in range(50))
    )
    assert len(cluster.gets) == 1 and all(a["status"]["readyReplicas"] == 2 for a in answers)
    other = await reader.get("deployments.apps", "web", namespace="prod")  # another object
    assert other and len(cluster.gets) == 2
    cluster.ready = 0
    clock.now += 0.2
    assert (await reader.get("deployments.apps", "api", namespace="prod"))["status"] == {
        "readyReplicas": 2
    }  # still within max_age
    clock.now += 0.1
    fresh = await reader.get("deployments.apps", "api", namespace="prod")
    assert fresh["status"]["readyReplicas"] == 0 and len(cluster.gets) == 3


async def test_errors_are_not_reused_and_identities_do_not_share():
    clock, cluster = Clock(), Cluster()
    reads = SharedReads(clock=clock)
    cluster.fail = True
    with pytest.raises(CommandError, match="503"):
        await reads.reader(cluster).get("deployments.apps", "api")
    cluster.fail = False
    assert await reads.reader(cluster).get("deployments.apps", "api")  # asked again at once
    assert len(cluster.gets) == 2
    another = Cluster()  # another plugin's (or kernel's) Kubernetes: its own reads
    await reads.reader(another).get("deployments.apps", "api")
    assert len(another.gets) == 1 and len(cluster.gets) == 2


async def test_a_stopped_run_does_not_cancel_the_read_others_wait_for():
    cluster = Cluster()
    reads = SharedReads(clock=Clock())
    first = asyncio.ensure_future(reads.reader(cluster).get("deployments.apps", "api"))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(reads.reader(cluster).get("deployments.apps", "api"))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second)["status"]["readyReplicas"] == 2
    assert len(cluster.gets) == 1
