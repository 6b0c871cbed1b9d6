"""Fixtures of the `/chaos` end-to-end tests: the homelab sandbox, a kernel with the chaos
plugin, and users with and without Kubernetes rights."""

from __future__ import annotations

import json
import time

import pytest

ALICE = "1001"  # cluster-admin in Kubernetes, not a ClusterCord admin
VIEWER = "1002"  # may only read namespace media (the homelab's `family` group)
ADMIN = "1003"  # ClusterCord admin, cluster-admin in Kubernetes
IDENTITY = {
    "users": {
        ALICE: {"user": "admin"},
        VIEWER: {"user": "nephew", "groups": ["family"]},
        ADMIN: {"user": "admin"},
    }
}


@pytest.fixture
def homelab(sandbox_cluster):
    return sandbox_cluster("homelab")


async def start_chaos(harness, **config):
    from clustercord.config import AccessConfig

    if not harness.sources:
        harness.add_builtins(["chaos", "approvals"])
    await harness.restart(
        identity=IDENTITY,
        access=AccessConfig(admins=frozenset({f"user:{ADMIN}"})),
    )
    for key, value in config.items():
        await harness.kernel.manager.set_config("chaos", key, value, by="test")
    return harness


@pytest.fixture
async def chaos(clustercord_harness, homelab):
    return await start_chaos(clustercord_harness)


async def run(harness, line, user=ALICE):
    return await harness.run(line, user=user, frontend="discord")


def pods(cluster, namespace="media") -> list[dict]:
    return json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]


def pod_named(cluster, name, namespace="media") -> dict | None:
    found = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def images(pod: dict) -> dict[str, str]:
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def first_pod(cluster, namespace="media") -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ready = [
            p for p in pods(cluster, namespace) if p.get("status", {}).get("phase") == "Running"
        ]
        if ready:
            return ready[0]
        time.sleep(0.1)
    raise AssertionError(f"no running pod in {namespace}")


def cluster_marks(cluster) -> str:
    """Every chaos mark left in the cluster (labels on pods and nodes), as kubectl shows them."""
    pods_marked = cluster.kubectl(
        "get", "pods", "-A", "-l", "chaos.clustercord.io/experiment", "-o", "name"
    ).stdout.strip()
    nodes_marked = cluster.kubectl(
        "get", "nodes", "-l", "chaos.clustercord.io/experiment", "-o", "name"
    ).stdout.strip()
    return (pods_marked + "\n" + nodes_marked).strip()
