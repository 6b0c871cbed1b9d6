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


class Namespace:
    """A namespace of Deployments ``app-0``...: GETs and LISTs counted, LISTs may fail."""

    def __init__(self, size: int) -> None:
        self.ready = {f"app-{i}": i % 3 for i in range(size)}
        self.gets: list[str] = []
        self.lists = 0
        self.list_fails = False

    def _object(self, name):
        return {"metadata": {"name": name}, "status": {"readyReplicas": self.ready[name]}}

    async def get(self, resource, name, *, namespace=None, cluster=None):
        self.gets.append(name)
        await asyncio.sleep(0.001)
        if name not in self.ready:
            raise CommandError(f"not found: deployments.apps {name!r}")
        return self._object(name)

    async def list(self, resource, *, namespace=None, cluster=None):
        self.lists += 1
        await asyncio.sleep(0.001)
        if self.list_fails:
            raise CommandError("forbidden: the plugin may not list deployments.apps")
        return [self._object(n) for n in self.ready]


async def check_all(reader, names):
    """One check interval of runs each watching its own Deployment, as they come."""
    answers = {}
    for name in names:
        found = await reader.get("deployments.apps", name, namespace="prod")
        answers[name] = found["status"]["readyReplicas"]
    return answers


async def test_runs_watching_different_objects_of_a_namespace_share_one_list():
    clock, cluster = Clock(), Namespace(50)
    reads = SharedReads(max_age=0.25, clock=clock)
    reader = reads.reader(cluster)
    names = list(cluster.ready)
    # The first interval: GETs until 4 names are watched, then a LIST; it brought 50 objects,
    # too many for 5 to 12 watched (GETs), not for 13: that LIST serves the rest.
    assert await check_all(reader, names) == cluster.ready
    assert len(cluster.gets) == 3 + 8 and cluster.lists == 1
    # Every later interval: a LIST per max_age instead of 50 GETs, each answer its object's.
    cluster.ready = {n: (v + 1) % 3 for n, v in cluster.ready.items()}
    for _ in range(4):
        clock.now += 0.3
        assert await check_all(reader, names) == cluster.ready
    assert len(cluster.gets) == 11 and cluster.lists == 5 and reads.lists == 5
    # Within max_age the answer is the LIST's; an object it lacks is not found.
    with pytest.raises(
        CommandError, match=r"not found: deployments\.apps 'gone' in namespace prod"
    ):
        await reader.get("deployments.apps", "gone", namespace="prod")
    assert len(cluster.gets) == 11


async def test_a_namespace_much_bigger_than_what_is_watched_goes_back_to_gets():
    clock, cluster = Clock(), Namespace(1000)
    reads = SharedReads(max_age=0.25, clock=clock)
    reader = reads.reader(cluster)
    watched = [f"app-{i}" for i in range(5)]
    assert await check_all(reader, watched) == {n: cluster.ready[n] for n in watched}
    assert cluster.lists == 1  # one LIST of 1,000 objects for 4 watched: too big
    clock.now += 0.3
    await check_all(reader, watched)
    assert cluster.lists == 1 and len(cluster.gets) == 3 + 1 + 5  # the 5th: a GET already
    clock.now += 61  # what it learned is forgotten after a minute: one LIST to learn again
    await check_all(reader, watched)
    assert cluster.lists == 2


async def test_a_list_the_plugin_may_not_make_falls_back_to_gets_and_off_means_gets():
    clock, cluster = Clock(), Namespace(50)
    cluster.list_fails = True
    reader = SharedReads(max_age=0.25, clock=clock).reader(cluster)
    names = list(cluster.ready)[:10]
    assert await check_all(reader, names) == {n: cluster.ready[n] for n in names}
    assert cluster.lists == 1 and len(cluster.gets) == 10

    cluster = Namespace(50)
    reader = SharedReads(max_age=0.25, clock=clock, list_from=None).reader(cluster)
    await check_all(reader, list(cluster.ready))
    assert cluster.lists == 0 and len(cluster.gets) == 50
