"""`kubectl drain` against the sandbox: evictions and PodDisruptionBudgets."""

from __future__ import annotations

import json
import time

import pytest

from clustercord_sandbox.errors import ApiError
from clustercord_sandbox.eviction import VIOLATION, PodEviction, pdb_status

from .conftest import sandbox_with_nodes

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: "nginx:1.27"}}]
"""
BUDGET = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {rule}
  selector: {{matchLabels: {{app: {name}}}}}
"""


sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)


def pods_of(kubectl, namespace: str, app: str) -> list[dict]:
    out = kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout
    return json.loads(out)["items"]


def ready_deployment(kubectl, namespace: str, name: str, replicas: int) -> list[dict]:
    kubectl("create", "namespace", namespace)
    manifest = DEPLOYMENT.format(name=name, namespace=namespace, replicas=replicas)
    kubectl("apply", "-f", "-", input=manifest)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pods = pods_of(kubectl, namespace, name)
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        if len(running) == replicas:
            return running
        time.sleep(0.1)
    raise AssertionError(f"deployment {name} never got {replicas} running pods")


def test_drain_evicts_and_the_deployment_replaces_the_pods(kubectl, unique):
    pods = ready_deployment(kubectl, unique, "web", replicas=3)
    node = pods[0]["spec"]["nodeName"]
    on_node = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == node}
    try:
        result = kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s"
        )
        for name in on_node:
            assert f"evicting pod {unique}/{name}" in result.stderr + result.stdout
        assert f"node/{node} drained" in result.stdout
        assert "SchedulingDisabled" in kubectl("get", "node", node).stdout
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = pods_of(kubectl, unique, "web")
            running = [p for p in now if p["status"].get("phase") == "Running"]
            if len(running) == 3:
                break
            time.sleep(0.1)
        names = {p["metadata"]["name"] for p in running}
        assert len(running) == 3 and not names & on_node, "evicted pods are replaced"
        assert all(p["spec"]["nodeName"] != node for p in running), "not on the cordoned node"
    finally:
        kubectl("uncordon", node)


def test_a_budget_that_allows_no_disruption_blocks_the_drain(kubectl, unique):
    pods = ready_deployment(kubectl, unique, "db", replicas=2)
    budget = BUDGET.format(name="db", namespace=unique, rule="minAvailable: 2")
    kubectl("apply", "-f", "-", input=budget)
    node = pods[0]["spec"]["nodeName"]
    try:
        result = kubectl(
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=2s",
            check=False,
        )
        assert result.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in (
            result.stderr
        )
        assert pods[0]["metadata"]["name"] in kubectl("get", "pods", "-n", unique).stdout
        status = json.loads(kubectl("get", "pdb", "db", "-n", unique, "-o", "json").stdout)
        assert status["status"]["disruptionsAllowed"] == 0
        assert status["status"]["currentHealthy"] == 2
        assert status["status"]["desiredHealthy"] == 2
        assert status["status"]["expectedPods"] == 2
    finally:
        kubectl("uncordon", node)


def test_max_unavailable_allows_one_eviction_until_a_replacement_is_ready(
    kubectl, sandbox, server, unique
):
    pods = ready_deployment(kubectl, unique, "api", replicas=3)
    budget = BUDGET.format(name="api", namespace=unique, rule="maxUnavailable: 1")
    kubectl("apply", "-f", "-", input=budget)
    evictions = PodEviction(server.api, read_body=None)  # type: ignore[arg-type]
    pods_type = server.registry.lookup("", "v1", "pods")

    async def evict_two() -> str:
        # Back to back on the sandbox's loop: no controller runs in between, so the first
        # eviction's replacement cannot be Ready yet when the second one is decided.
        evictions.evict(pods_type, unique, pods[0]["metadata"]["name"], {}, dry_run=False)
        try:
            evictions.evict(pods_type, unique, pods[1]["metadata"]["name"], {}, dry_run=False)
        except ApiError as exc:
            return f"{exc.code} {exc.reason}: {exc.message}"
        return "evicted"

    assert sandbox.call(evict_two()) == f"429 TooManyRequests: {VIOLATION}"
    remaining = {p["metadata"]["name"] for p in pods_of(kubectl, unique, "api")}
    assert pods[0]["metadata"]["name"] not in remaining
    assert pods[1]["metadata"]["name"] in remaining


def budget_status(kubectl, namespace: str, name: str, wanted: dict) -> dict:
    deadline = time.monotonic() + 10
    status: dict = {}
    while time.monotonic() < deadline:
        out = kubectl("get", "pdb", name, "-n", namespace, "-o", "jsonpath={.status}").stdout
        status = json.loads(out or "{}")
        if all(status.get(key) == value for key, value in wanted.items()):
            break
        time.sleep(0.1)
    return status


def test_budget_status_follows_the_pods_without_any_eviction(kubectl, unique):
    ready_deployment(kubectl, unique, "cache", replicas=3)
    # `kubectl create pdb` sends the budget as protobuf.
    kubectl("create", "pdb", "cache", "-n", unique, "--selector=app=cache", "--max-unavailable=1")
    wanted = {"expectedPods": 3, "currentHealthy": 3, "desiredHealthy": 2, "disruptionsAllowed": 1}
    status = budget_status(kubectl, unique, "cache", wanted)
    assert {key: status.get(key) for key in wanted} == wanted
    kubectl("scale", "deployment", "cache", "-n", unique, "--replicas=5")
    wanted = {"expectedPods": 5, "currentHealthy": 5, "desiredHealthy": 4, "disruptionsAllowed": 1}
    status = budget_status(kubectl, unique, "cache", wanted)
    assert {key: status.get(key) for key in wanted} == wanted


def test_pdb_status_counts_percentages_against_the_controllers_scale():
    budget = {
        "metadata": {"name": "b", "namespace": "n", "generation": 1},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "x"}}},
    }
    ready = {"type": "Ready", "status": "True"}
    owner = [{"kind": "ReplicaSet", "name": "rs", "controller": True}]

    def pod(name: str, is_ready: bool) -> dict:
        return {
            "metadata": {"name": name, "labels": {"app": "x"}, "ownerReferences": owner},
            "status": {"phase": "Running", "conditions": [ready] if is_ready else []},
        }

    # Four replicas wanted, three pods exist, two of them ready: 50% of 4 is 2 → 0 allowed.
    status = pdb_status(budget, [pod("a", True), pod("b", True), pod("c", False)], lambda *_: 4)
    assert status == {
        "currentHealthy": 2,
        "desiredHealthy": 2,
        "disruptionsAllowed": 0,
        "expectedPods": 4,
        "observedGeneration": 1,
    }
