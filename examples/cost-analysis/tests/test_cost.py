"""The cost plugin on the testing kit: a real kernel around it, a sandbox API server
holding the pods and volume claims, the real kubectl applying them."""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent.parent / "src" / "clustercord_cost"

WORKLOADS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-shop"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-lab"}},
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "acme-shop"},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx",
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "2Gi"},
                    },
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "notebook", "namespace": "acme-lab"},
        "spec": {
            "containers": [
                {
                    "name": "jupyter",
                    "image": "jupyter",
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                },
                {"name": "sidecar", "image": "busybox"},
            ]
        },
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "web-data", "namespace": "acme-shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "old-dataset", "namespace": "acme-lab"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
    },
]


@pytest.fixture
async def cost(clustercord_harness, sandbox_cluster):
    cluster = sandbox_cluster("homelab")  # it has nodes: pods run
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": WORKLOADS}))
    cluster.wait_running("web", "acme-shop")  # a Pending pod would count as idle
    cluster.wait_running("notebook", "acme-lab")
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    harness.add_plugin(PLUGIN)
    await harness.start()
    approved = await harness.run("/plugin permissions name:cost approve:true")
    assert approved.ok, approved.text
    for key, value in (("cpu_hour", "0.04"), ("memory_gib_hour", "0.01"), ("currency", "EUR")):
        done = await harness.run(f"/plugin config name:cost key:{key} value:{value}")
        assert done.ok, done.text
    return harness


async def test_report_prices_each_namespace_requests_and_limits(cost):
    everything = await cost.run("/cost report")
    assert everything.ok, everything.text
    namespaces = [row[0] for row in everything.reply.tables[0].rows]
    assert namespaces.index("acme-shop") < namespaces.index("acme-lab")  # dearest first
    result = await cost.run("/cost report namespace:acme-lab")
    assert list(result.reply.data["namespaces"]) == ["acme-lab"]
    data = everything.reply.data
    # shop: 0.5 cores × 0.04 + 1 GiB × 0.01 = 0.03 an hour, × 730 hours; limits 1 core, 2 GiB.
    assert data["namespaces"]["acme-shop"]["monthly"] == "21.90"
    assert data["namespaces"]["acme-shop"]["limits_monthly"] == "43.80"
    # lab: 0.25 × 0.04 + 0.5 × 0.01 = 0.015 an hour; the sidecar requests nothing.
    assert data["namespaces"]["acme-lab"]["monthly"] == "10.95"
    assert "acme-lab/notebook/sidecar" in data["unbounded"] and data["currency"] == "EUR"
    assert result.reply.data["total"] == "10.95"
    assert "10.95 EUR" in result.text and "request nothing" in result.text


async def test_idle_finds_the_unmounted_volume_claim(cost):
    result = await cost.run("/cost idle namespace:acme-lab")
    assert result.ok, result.text
    # 20 GiB × 0.1 a month (the default storage price); web-data is mounted by web.
    assert result.reply.data["idle"] == [
        {"kind": "volume claim", "namespace": "acme-lab", "name": "old-dataset", "monthly": "2.00"}
    ]
    assert (await cost.run("/cost idle namespace:shop")).text.startswith("Nothing idle")


async def test_the_weekly_report_is_scheduled_and_posts_to_the_alert_channel(cost):
    kernel = cost.kernel
    (job,) = kernel.scheduler.jobs("cost")
    assert job.handler == "jobs:weekly_report" and job.schedule == "0 9 * * 1"
    await kernel.run_job(job)
    (posted,) = [n for n in kernel.notifier.pending() if n["plugin"] == "cost"]
    assert (
        "Weekly cost report" in posted["reply"]
        and "21.90 EUR" in posted["reply"]
        and "acme-lab" in posted["reply"]
    )


async def test_a_changed_schedule_replaces_the_job(cost):
    done = await cost.run("/plugin config name:cost key:report_cron value:'0 8 * * 5'")
    assert done.ok, done.text
    (job,) = cost.kernel.scheduler.jobs("cost")
    assert job.schedule == "0 8 * * 5"


def load_pricing():
    """pricing.py holds pure functions: tested alone, without a kernel."""
    spec = importlib.util.spec_from_file_location("cost_pricing", PLUGIN / "pricing.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pod(name, phase, cpu="1", memory="1Gi"):
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
        },
        "status": {"phase": phase},
    }


def test_finished_pods_cost_nothing_and_pending_ones_are_idle():
    pricing = load_pricing()
    prices = {"cpu_hour": 0.04, "memory_gib_hour": 0.01, "storage_gib_month": 0.1}
    pods = [pod("done", "Succeeded"), pod("failed", "Failed"), pod("stuck", "Pending", "2", "4Gi")]
    usage = pricing.namespace_usage(pods)
    assert usage["ns"].pods == 1 and usage["ns"].cpu_requests == Decimal(2)
    (idle,) = pricing.idle_resources(pods, [], prices)
    # 2 × 0.04 + 4 × 0.01 = 0.12 an hour, 730 hours a month.
    assert (idle.kind, idle.name, idle.monthly) == ("pod", "stuck", Decimal("87.6"))
    with pytest.raises(ValueError, match="not a quantity"):
        pricing.namespace_usage([pod("odd", "Running", cpu="lots")])
