"""Clustered stacks in the sandbox: every member's claim is the release's, and growing a
cluster through /template update adds members, their claims and a Job that joins them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("server_side_apply")


async def test_a_redis_cluster_grows_through_update(templates, homelab):
    deployed = await templates.run(
        "/template deploy template:redis-cluster namespace:cache vars:nodes=3 wait:false"
    )
    assert deployed.ok, deployed.text
    claims = {f"persistentvolumeclaim/data-redis-cluster-redis-{i}" for i in range(3)}
    assert homelab.names("cache", "persistentvolumeclaims") == claims
    assert homelab.names("cache", "jobs") == {"job.batch/redis-cluster-create-3"}
    peers = homelab.kubectl(
        "get",
        "service",
        "redis-cluster-redis-peers",
        "-n",
        "cache",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.publishNotReadyAddresses}",
    )
    assert peers == "None true"

    grown = await templates.run("/template update deployment:cache/redis-cluster vars:nodes=6")
    assert grown.ok, grown.text
    assert grown.reply.data["pruned"] == ["Job/redis-cluster-create-3"]
    assert (
        homelab.kubectl(
            "get",
            "statefulset",
            "redis-cluster-redis",
            "-n",
            "cache",
            "-o",
            "jsonpath={.spec.replicas}",
        )
        == "6"
    )
    # The new members' claims are the release's (rendered before the StatefulSet asks).
    assert homelab.names("cache", "persistentvolumeclaims") == {
        f"persistentvolumeclaim/data-redis-cluster-redis-{i}" for i in range(6)
    }
    assert homelab.names("cache", "jobs") == {"job.batch/redis-cluster-create-6"}

    kept = await templates.run("/template delete deployment:cache/redis-cluster")
    assert sorted(kept.reply.data["kept"]) == sorted(
        f"PersistentVolumeClaim/data-redis-cluster-redis-{i}" for i in range(6)
    )
    homelab.kubectl("delete", "pvc", "--all", "-n", "cache")
