"""Two bots on one Discord application: the Lease in the home cluster (the sandbox API
server, through the kernel's own Kubernetes service) lets only one hold it; an expired
holder is taken over, a released Lease is free at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from clustercord.kubernetes.calls import ApiStatusError
from clustercord.lease import DURATION, MARGIN, ServeLease


@pytest.fixture
async def home(clustercord_harness, sandbox_cluster):
    sandbox_cluster("homelab")
    kernel = await clustercord_harness.start()
    (cluster,) = kernel.kubernetes.registry.list()
    return kernel.kubernetes, cluster.name


def _lease(kubernetes, cluster):
    return kubernetes.request(
        cluster, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/clustercord"
    )


async def test_only_one_instance_holds_the_lease(home):
    kubernetes, cluster = home
    first = ServeLease(kubernetes, cluster, "default", identity="pod-a/1")
    second = ServeLease(kubernetes, cluster, "default", identity="pod-b/1")
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert second.holder == "pod-a/1" and not second.held
    assert first.try_acquire() is True  # a renewal
    spec = _lease(kubernetes, cluster)["spec"]
    assert spec["holderIdentity"] == "pod-a/1" and spec["leaseDurationSeconds"] == 15
    # The second one waits (it would answer nothing) while the first holds it.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second.acquire(every=0.1, say=lambda _: None), 0.5)
    first.release()
    with pytest.raises(ApiStatusError) as gone:
        _lease(kubernetes, cluster)
    assert gone.value.status == 404
    await asyncio.wait_for(second.acquire(every=0.1), 5)
    assert second.held and _lease(kubernetes, cluster)["spec"]["holderIdentity"] == "pod-b/1"


async def test_an_expired_holder_is_taken_over(home):
    kubernetes, cluster = home
    long_ago = datetime.now(UTC) - timedelta(seconds=60)
    dead = ServeLease(kubernetes, cluster, "default", identity="dead/1", clock=lambda: long_ago)
    assert dead.try_acquire() is True  # its last renewal was a minute ago: expired
    ticks = [0.0]
    alive = ServeLease(
        kubernetes, cluster, "default", identity="pod-b/2", monotonic=lambda: ticks[0]
    )
    # Expired by its stamp, but this instance never saw it: it waits a duration of its own.
    assert alive.try_acquire() is False and alive.holder == "dead/1"
    ticks[0] += DURATION - 0.5
    assert alive.try_acquire() is False
    ticks[0] += 1.0  # unchanged for a whole duration, by its own clock too
    assert alive.try_acquire() is True
    spec = _lease(kubernetes, cluster)["spec"]
    assert spec["holderIdentity"] == "pod-b/2" and spec["leaseTransitions"] == 1
    # The dead one, back, does not win it back; its keeper sees it lost and stops.
    late = ServeLease(kubernetes, cluster, "default", identity="dead/1")
    assert late.try_acquire() is False
    late.held = True
    await asyncio.wait_for(late.keep(asyncio.Event(), every=0.05), 5)
    assert late.held is False


async def test_a_stale_write_loses_the_race(home):
    kubernetes, cluster = home
    first = ServeLease(kubernetes, cluster, "default", identity="pod-a/1")
    assert first.try_acquire()
    version = _lease(kubernetes, cluster)["metadata"]["resourceVersion"]
    assert first.try_acquire()  # renewed: the version read before is stale now
    other = ServeLease(kubernetes, cluster, "default", identity="pod-c/1")
    body = other._body(datetime.now(UTC), version, datetime.now(UTC))
    assert other._write("PUT", first.path, body, 0.0) is False
    assert _lease(kubernetes, cluster)["spec"]["holderIdentity"] == "pod-a/1"


async def test_a_holder_trusts_its_lease_only_until_another_may_take_it(home):
    kubernetes, cluster = home
    ticks = [100.0]
    holder = ServeLease(
        kubernetes, cluster, "default", identity="pod-a/1", monotonic=lambda: ticks[0]
    )
    assert not holder.valid()
    assert holder.try_acquire() and holder.valid()
    ticks[0] += DURATION - MARGIN - 0.1
    assert holder.valid()
    # Frozen past it: still "held" as last known, but no longer trusted to answer.
    ticks[0] += 0.2
    assert holder.held and not holder.valid()
    assert holder.try_acquire() and holder.valid()  # renewed: trusted again
    holder.release()
    assert not holder.valid()


async def test_a_standby_whose_clock_runs_ahead_waits_for_a_live_holder(home):
    """The holder's renewTime read on a clock a minute fast looks expired: what the standby
    saw change by its own clock keeps it waiting while the holder renews."""
    kubernetes, cluster = home
    holder = ServeLease(kubernetes, cluster, "default", identity="pod-a/1")
    assert holder.try_acquire()
    ticks = [0.0]
    fast = ServeLease(
        kubernetes,
        cluster,
        "default",
        identity="pod-b/1",
        clock=lambda: datetime.now(UTC) + timedelta(seconds=60),
        monotonic=lambda: ticks[0],
    )
    for _ in range(6):  # 30 s of the holder renewing every 5 s
        assert fast.try_acquire() is False
        ticks[0] += 5.0
        assert holder.try_acquire()
    assert _lease(kubernetes, cluster)["spec"]["holderIdentity"] == "pod-a/1"
    assert fast.try_acquire() is False  # it sees the last renewal …
    ticks[0] += DURATION  # … then the holder died: nothing changed for a duration
    assert fast.try_acquire() is True
