"""The `empty` and `homelab` fixtures: contents, speed, and what kubectl shows after loading."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clustercord_sandbox import fixtures
from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.controllers import Controllers
from clustercord_sandbox.objects import ObjectAPI
from clustercord_sandbox.registry import default_registry
from clustercord_sandbox.store import SandboxStore

from .conftest import sandbox_with_controllers

RBAC = "rbac.authorization.k8s.io"


def loaded(name: str) -> ObjectAPI:
    api = ObjectAPI(SandboxStore(history=100_000), default_registry())
    fixtures.load(api, fixtures.resolve(name))
    return api


def test_empty_has_the_bootstrap_policy() -> None:
    # How fast it loads is the benchmarks' business (cold start), not a timed unit test's.
    api = loaded("empty")
    store = api.store
    for role in ("cluster-admin", "admin", "edit", "view", "system:basic-user"):
        assert store.get(RBAC, "clusterroles", "", role) is not None
    binding = store.get(RBAC, "clusterrolebindings", "", "cluster-admin")
    assert binding["subjects"][0]["name"] == "system:masters"  # type: ignore[index]
    assert store.list(RBAC, "roles", "kube-system")
    assert store.list(RBAC, "rolebindings", "kube-public")
    assert store.list("", "nodes") == []
    assert "creationTimestamp" in store.get(RBAC, "clusterroles", "", "view")["metadata"]  # type: ignore[index]


def test_homelab_contents() -> None:
    api = loaded("homelab")
    store = api.store
    nodes = {n["metadata"]["name"]: n for n in store.list("", "nodes")}
    assert set(nodes) == {"nas", "pi-1", "pi-2"}
    assert "node-role.kubernetes.io/control-plane" in nodes["nas"]["metadata"]["labels"]
    assert nodes["pi-1"]["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    for node in nodes.values():
        status = node["status"]
        assert {"cpu", "memory", "pods"} <= status["allocatable"].keys()
        assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0"
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        assert status["addresses"][0]["type"] == "InternalIP"
    spaces = {n["metadata"]["name"] for n in store.list("", "namespaces")}
    assert {"media", "games", "monitoring", "home"} <= spaces
    sc = store.get("storage.k8s.io", "storageclasses", "", "local-path")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"  # type: ignore[index]
    family = store.get(RBAC, "rolebindings", "media", "family-view")
    assert family["roleRef"]["name"] == "view"  # type: ignore[index]
    assert family["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": "family"}]  # type: ignore[index]
    ci = store.get(RBAC, "rolebindings", "home", "ci-edit")
    assert ci["subjects"][0] == {"kind": "ServiceAccount", "name": "ci", "namespace": "home"}  # type: ignore[index]
    assert store.get("", "serviceaccounts", "home", "ci") is not None
    admin = store.get(RBAC, "clusterrolebindings", "", "admin-cluster-admin")
    assert admin["subjects"][0]["name"] == "admin"  # type: ignore[index]
    for ns, name in (("media", "jellyfin"), ("monitoring", "grafana"), ("home", "home-assistant")):
        assert store.get("apps", "deployments", ns, name) is not None
        assert store.get("", "services", ns, name) is not None
    assert store.get("apps", "statefulsets", "games", "minecraft") is not None


def test_homelab_after_one_reconcile_runs_everything() -> None:
    api = loaded("homelab")
    Controllers(api).reconcile_once()
    pods = api.store.list("", "pods")
    assert len(pods) >= 8
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] in {"nas", "pi-1", "pi-2"}
        assert pod["status"]["podIP"]
    jellyfin = [p for p in pods if p["metadata"]["name"].startswith("jellyfin-")]
    assert jellyfin[0]["spec"]["nodeName"] == "nas"  # the only amd64 node
    claims = api.store.list("", "persistentvolumeclaims")
    assert claims and all(c["status"]["phase"] == "Bound" for c in claims)
    view = api.store.get(RBAC, "clusterroles", "", "view")
    assert view["rules"]  # type: ignore[index]  # aggregated


def test_a_yaml_fixture_may_bring_node_status(tmp_path: Any) -> None:
    path = tmp_path / "cluster.yaml"
    node = fixtures.homelab_nodes()[1]
    path.write_text(json.dumps(node))
    api = loaded(str(path))
    stored = api.store.get("", "nodes", "", "pi-1")
    assert stored["status"]["nodeInfo"]["architecture"] == "arm64"  # type: ignore[index]


# -- with kubectl ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundSandbox]:
    """Overrides conftest's: the homelab fixture, with controllers on the server's loop."""
    yield from sandbox_with_controllers("homelab")


def test_kubectl_sees_a_running_homelab(kubectl: Any) -> None:
    deadline = time.monotonic() + 10
    while True:
        pods = json.loads(kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
        if pods and all(p["status"].get("phase") == "Running" for p in pods):
            break
        assert time.monotonic() < deadline, "homelab pods never became Running"
        time.sleep(0.05)
    nodes = kubectl("get", "nodes").stdout.splitlines()[1:]
    assert len(nodes) == 3 and all(" Ready " in line for line in nodes)
    assert "v1.32.0" in nodes[0]
    table = kubectl("get", "pods", "-A", "-o", "wide").stdout
    for namespace in ("media", "games", "monitoring", "home"):
        assert namespace in table
    assert "10.244." in table
    described = kubectl("describe", "node", "nas").stdout
    assert "control-plane" in described
    result = kubectl("rollout", "status", "deploy/grafana", "-n", "monitoring", "--timeout=10s")
    assert "successfully rolled out" in result.stdout
    result = kubectl("rollout", "status", "sts/minecraft", "-n", "games", "--timeout=10s")
    assert result.returncode == 0
    result = kubectl("rollout", "status", "ds/node-exporter", "-n", "monitoring", "--timeout=10s")
    assert "successfully rolled out" in result.stdout
