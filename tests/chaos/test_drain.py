"""`/chaos drain-node`: cordon, evictions pod by pod (DaemonSet pods skipped, PodDisruptionBudgets
retried until the timeout), uncordon at stop or expiry, and after a kill -9 mid-drain."""

from __future__ import annotations

import json
import time

from .conftest import VIEWER, cluster_marks, run, start_chaos
from .test_crash import bot_killed_at


def node_pods(cluster, node: str) -> list[dict]:
    found = cluster.kubectl(
        "get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "json"
    ).stdout
    return json.loads(found)["items"]


def unschedulable(cluster, node: str) -> bool:
    spec = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)["spec"]
    return bool(spec.get("unschedulable"))


def busiest_node(cluster) -> str:
    """A node running a DaemonSet pod and at least one other pod."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for node in ("pi-1", "pi-2", "nas"):
            kinds = [
                (p["metadata"].get("ownerReferences") or [{}])[0].get("kind")
                for p in node_pods(cluster, node)
                if p["status"].get("phase") == "Running"
            ]
            if "DaemonSet" in kinds and any(k != "DaemonSet" for k in kinds):
                return node
        time.sleep(0.2)
    raise AssertionError("no node runs a DaemonSet pod and another pod")


def owned_by(pod: dict) -> str | None:
    return (pod["metadata"].get("ownerReferences") or [{}])[0].get("kind")


async def test_drain_evicts_all_but_daemonset_pods_and_stop_uncordons(chaos, homelab):
    node = busiest_node(homelab)
    before = node_pods(homelab, node)
    movable = sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in before
        if owned_by(p) != "DaemonSet"
    )
    dry = await run(chaos, f"/chaos drain-node node:{node} dry_run:true")
    assert dry.ok, dry.text
    assert dry.reply.data["experiment"]["targets"] == [node]
    changes = dry.reply.data["experiment"]["changes"]
    assert sorted(c.removeprefix("evict ") for c in changes if c.startswith("evict")) == movable
    assert not unschedulable(homelab, node)

    assert not (await run(chaos, f"/chaos drain-node node:{node}", user=VIEWER)).ok
    assert not unschedulable(homelab, node)

    result = await run(chaos, f"/chaos drain-node node:{node} timeout:10s duration:10m")
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "active"
    assert sorted(experiment["result"]["evicted"]) == movable
    assert all("DaemonSet pod" in s for s in experiment["result"]["skipped"])
    assert unschedulable(homelab, node)  # kubectl: cordoned, only the DaemonSet pod left
    left = [p for p in node_pods(homelab, node) if not p["metadata"].get("deletionTimestamp")]
    assert {owned_by(p) for p in left} == {"DaemonSet"}

    assert (await run(chaos, f"/chaos stop experiment:{experiment['id']}")).ok
    assert not unschedulable(homelab, node)
    assert cluster_marks(homelab) == ""


async def test_unknown_nodes_and_bad_timeouts_are_clear_errors(chaos, homelab):
    unknown = await run(chaos, "/chaos drain-node node:pi-3")
    assert not unknown.ok and "no node 'pi-3'" in unknown.text and "pi-1" in unknown.text
    longer = await run(chaos, "/chaos drain-node node:pi-1 timeout:20m duration:10m")
    assert not longer.ok and "longer than the drain lasts" in longer.text
    assert not unschedulable(homelab, "pi-1")


async def test_a_drain_killed_midway_is_undone_at_restart(clustercord_harness, homelab):
    node = busiest_node(homelab)
    bot_killed_at(clustercord_harness.data_dir, "after", f"/chaos drain-node node:{node}")
    assert unschedulable(homelab, node)  # what the kill left: cordoned, one pod evicted
    assert cluster_marks(homelab) == f"node/{node}"
    chaos = await start_chaos(clustercord_harness)
    assert not unschedulable(homelab, node)
    assert cluster_marks(homelab) == ""
    (entry,) = (await run(chaos, "/chaos list")).reply.data["experiments"]
    assert entry["status"] == "ended"


async def test_a_pod_disruption_budget_blocks_its_pod_until_the_timeout(chaos, homelab):
    node = busiest_node(homelab)
    guarded = next(p for p in node_pods(homelab, node) if owned_by(p) != "DaemonSet")
    namespace = guarded["metadata"]["namespace"]
    labels = guarded["metadata"]["labels"]
    key = next(k for k in labels if k != "pod-template-hash")
    homelab.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        f"metadata: {{name: guard, namespace: {namespace}}}\n"
        f"spec: {{minAvailable: 1, selector: {{matchLabels: {{{key}: '{labels[key]}'}}}}}}\n"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        allowed = homelab.kubectl(
            "get", "pdb", "guard", "-n", namespace, "-o", "jsonpath={.status.disruptionsAllowed}"
        ).stdout
        if allowed == "0":
            break
        time.sleep(0.1)
    started = time.monotonic()
    result = await run(chaos, f"/chaos drain-node node:{node} timeout:12s duration:1m")
    assert result.ok, result.text
    blocked = result.reply.data["experiment"]["result"]["blocked"]
    where = f"{namespace}/{guarded['metadata']['name']}"
    assert [b.split(":")[0] for b in blocked] == [where]
    assert "PodDisruptionBudget" in blocked[0]
    assert time.monotonic() - started < 30  # retried, then gave up at the timeout
    timeline = [t["text"] for t in result.reply.data["experiment"]["timeline"]]
    assert any("PodDisruptionBudget, retrying" in t for t in timeline)
    assert any(
        p["metadata"]["name"] == guarded["metadata"]["name"] for p in node_pods(homelab, node)
    )
    assert (await run(chaos, "/chaos stop all:true")).ok
    assert not unschedulable(homelab, node)


async def test_stop_during_a_drain_ends_it_and_uncordons(chaos, homelab):
    import asyncio

    node = busiest_node(homelab)
    guarded = next(p for p in node_pods(homelab, node) if owned_by(p) != "DaemonSet")
    namespace = guarded["metadata"]["namespace"]
    labels = guarded["metadata"]["labels"]
    key = next(k for k in labels if k != "pod-template-hash")
    homelab.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        f"metadata: {{name: guard, namespace: {namespace}}}\n"
        f"spec: {{minAvailable: 1, selector: {{matchLabels: {{{key}: '{labels[key]}'}}}}}}\n"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        allowed = homelab.kubectl(
            "get", "pdb", "guard", "-n", namespace, "-o", "jsonpath={.status.disruptionsAllowed}"
        ).stdout
        if allowed == "0":
            break
        time.sleep(0.1)
    # The guarded pod blocks the drain (retried until 2 minutes): it is stopped meanwhile.
    draining = asyncio.ensure_future(run(chaos, f"/chaos drain-node node:{node} timeout:2m"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not unschedulable(homelab, node):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    (running,) = (await run(chaos, "/chaos status")).reply.data["experiments"]
    assert (await run(chaos, f"/chaos stop experiment:{running['id']}")).ok
    result = await asyncio.wait_for(draining, 30)
    assert result.ok, result.text
    assert result.reply.data["experiment"]["status"] == "ended"
    assert not unschedulable(homelab, node)
    assert cluster_marks(homelab) == ""
