"""The light controllers: directly through `ObjectAPI` + `reconcile_once()`, and with kubectl.

The kubectl tests run a module-local sandbox whose controllers run their async loop (started
here unless the server already starts them as `server.controllers`), so they also prove the
event-driven path: nothing in them calls `reconcile_once()`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clustercord_sandbox import fixtures
from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.controllers import (
    REVISION,
    TEMPLATE_HASH,
    Controllers,
)
from clustercord_sandbox.objects import ObjectAPI, WriteOptions
from clustercord_sandbox.registry import default_registry
from clustercord_sandbox.store import SandboxStore

from .conftest import sandbox_with_controllers

Obj = dict[str, Any]
NODES = ("nas", "pi-1", "pi-2")
MERGE = "application/merge-patch+json"


# -- direct: ObjectAPI and reconcile_once ------------------------------------------------------
class Cluster:
    """An `ObjectAPI` with the homelab's three nodes and controllers driven by hand."""

    def __init__(self) -> None:
        self.api = ObjectAPI(SandboxStore(history=100_000), default_registry())
        fixtures.load(self.api, fixtures.empty() + fixtures.homelab_nodes())
        self.controllers = Controllers(self.api)
        self.reg = self.api.registry

    def rt(self, api_version: str, kind: str) -> Any:
        return self.reg.by_kind(api_version, kind)

    def create(self, obj: Obj, namespace: str = "default") -> Obj:
        return self.api.create(
            self.rt(obj["apiVersion"], obj["kind"]), namespace, obj, WriteOptions()
        )

    def patch(self, api_version: str, kind: str, ns: str, name: str, patch: Obj) -> Obj:
        return self.api.patch(self.rt(api_version, kind), ns, name, MERGE, patch, WriteOptions())

    def delete(self, api_version: str, kind: str, ns: str, name: str, policy: str = "") -> None:
        self.api.delete(self.rt(api_version, kind), ns, name, propagation_policy=policy or None)

    def get(self, group: str, plural: str, ns: str, name: str) -> Obj | None:
        return self.api.store.get(group, plural, ns, name)

    def pods(self, ns: str = "default") -> list[Obj]:
        return self.api.store.list("", "pods", ns)

    def reconcile(self) -> int:
        return self.controllers.reconcile_once()


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.27") -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def _controller_ref(obj: Obj) -> Obj:
    refs = [r for r in obj["metadata"].get("ownerReferences", []) if r.get("controller")]
    assert len(refs) == 1
    return refs[0]


def test_deployment_creates_a_replicaset_and_running_pods(cluster: Cluster) -> None:
    created = cluster.create(deployment("web", replicas=3))
    cluster.reconcile()
    (rs,) = cluster.api.store.list("apps", "replicasets", "default")
    digest = rs["metadata"]["labels"][TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{digest}"
    assert _controller_ref(rs)["uid"] == created["metadata"]["uid"]
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", TEMPLATE_HASH: digest}
    pods = cluster.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{digest}-")
        assert len(pod["metadata"]["name"]) == len(f"web-{digest}-") + 5
        assert _controller_ref(pod)["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in NODES
        assert pod["status"]["podIP"].startswith("10.244.")
        assert pod["status"]["startTime"]
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
    assert {p["spec"]["nodeName"] for p in pods} == set(NODES)  # round-robin
    assert len({p["status"]["podIP"] for p in pods}) == 3
    status = cluster.get("apps", "deployments", "default", "web")["status"]  # type: ignore[index]
    assert status["replicas"] == status["readyReplicas"] == status["availableReplicas"] == 3
    assert status["updatedReplicas"] == 3
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert cluster.reconcile() == 0  # a fixed point: nothing left to write


def test_deleted_pods_are_replaced_and_scaling_works(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    cluster.reconcile()
    victim = cluster.pods()[0]["metadata"]["name"]
    cluster.delete("v1", "Pod", "default", victim)
    cluster.reconcile()
    names = {p["metadata"]["name"] for p in cluster.pods()}
    assert len(names) == 2 and victim not in names
    cluster.patch("apps/v1", "Deployment", "default", "web", {"spec": {"replicas": 0}})
    cluster.reconcile()
    assert cluster.pods() == []
    cluster.patch("apps/v1", "Deployment", "default", "web", {"spec": {"replicas": 4}})
    cluster.reconcile()
    assert [p["status"]["phase"] for p in cluster.pods()] == ["Running"] * 4
    status = cluster.get("apps", "deployments", "default", "web")["status"]  # type: ignore[index]
    assert status["readyReplicas"] == 4 and status["observedGeneration"] == 3


def test_a_template_change_rolls_to_a_new_replicaset(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    cluster.reconcile()
    old_pods = {p["metadata"]["name"] for p in cluster.pods()}
    restarted = {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}
    patch = {"spec": {"template": {"metadata": {"annotations": restarted}}}}
    cluster.patch("apps/v1", "Deployment", "default", "web", patch)
    cluster.reconcile()
    sets = {
        rs["metadata"]["annotations"][REVISION]: rs
        for rs in cluster.api.store.list("apps", "replicasets", "default")
    }
    assert sets["1"]["spec"]["replicas"] == 0 and sets["2"]["spec"]["replicas"] == 2
    pods = cluster.pods()
    assert len(pods) == 2 and not old_pods & {p["metadata"]["name"] for p in pods}
    new_hash = sets["2"]["metadata"]["labels"][TEMPLATE_HASH]
    assert all(p["metadata"]["labels"][TEMPLATE_HASH] == new_hash for p in pods)
    assert all(p["metadata"]["annotations"] == restarted for p in pods)
    deploy = cluster.get("apps", "deployments", "default", "web")
    assert deploy["metadata"]["annotations"][REVISION] == "2"  # type: ignore[index]
    # `rollout undo`: the old template again revives the old ReplicaSet as revision 3.
    undo = {"spec": {"template": {"metadata": {"annotations": None}}}}
    cluster.patch("apps/v1", "Deployment", "default", "web", undo)
    cluster.reconcile()
    revived = cluster.get("apps", "replicasets", "default", sets["1"]["metadata"]["name"])
    assert revived["metadata"]["annotations"][REVISION] == "3"  # type: ignore[index]
    assert revived["spec"]["replicas"] == 2  # type: ignore[index]


def test_cordoned_and_unready_nodes_get_no_new_pods(cluster: Cluster) -> None:
    for node in ("nas", "pi-1"):
        cluster.patch("v1", "Node", "", node, {"spec": {"unschedulable": True}})
    cluster.create(deployment("web", replicas=3))
    cluster.reconcile()
    assert {p["spec"]["nodeName"] for p in cluster.pods()} == {"pi-2"}
    cluster.patch("v1", "Node", "", "pi-2", {"spec": {"unschedulable": True}})
    cluster.patch("apps/v1", "Deployment", "default", "web", {"spec": {"replicas": 4}})
    cluster.reconcile()
    (pending,) = [p for p in cluster.pods() if p["status"]["phase"] == "Pending"]
    assert "nodeName" not in pending["spec"]
    scheduled = [c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "False" and scheduled[0]["reason"] == "Unschedulable"
    assert "0/3 nodes are available" in scheduled[0]["message"]
    status = cluster.get("apps", "deployments", "default", "web")["status"]  # type: ignore[index]
    assert status["availableReplicas"] == 3 and status["unavailableReplicas"] == 1
    cluster.patch("v1", "Node", "", "nas", {"spec": {"unschedulable": None}})
    cluster.reconcile()
    assert (
        cluster.get("", "pods", "default", pending["metadata"]["name"])["spec"][  # type: ignore[index]
            "nodeName"
        ]
        == "nas"
    )


def test_node_selector_is_honoured(cluster: Cluster) -> None:
    body = deployment("arm", replicas=4)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    cluster.create(body)
    cluster.reconcile()
    assert {p["spec"]["nodeName"] for p in cluster.pods()} == {"pi-1", "pi-2"}


def test_deleting_a_replicaset_collects_its_pods(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    cluster.reconcile()
    cluster.delete("apps/v1", "Deployment", "default", "web")
    assert len(cluster.pods()) == 2  # background propagation: the collector does it
    cluster.reconcile()
    assert cluster.api.store.list("apps", "replicasets", "default") == []
    assert cluster.pods() == []


def test_orphan_propagation_keeps_dependents_without_the_reference(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    cluster.reconcile()
    (rs,) = cluster.api.store.list("apps", "replicasets", "default")
    cluster.delete("apps/v1", "ReplicaSet", "default", rs["metadata"]["name"], "Orphan")
    pods = cluster.pods()
    assert len(pods) == 2 and all("ownerReferences" not in p["metadata"] for p in pods)
    cluster.delete("apps/v1", "Deployment", "default", "web", "Foreground")
    cluster.reconcile()
    assert len(cluster.pods()) == 2  # orphans stay; the deployment's new RS went at once


def test_foreground_propagation_deletes_dependents_first(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2))
    cluster.reconcile()
    cluster.delete("apps/v1", "Deployment", "default", "web", "Foreground")
    assert cluster.api.store.list("apps", "replicasets", "default") == []
    assert cluster.pods() == []


def test_namespace_deletion_cascades(cluster: Cluster) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "")
    cluster.create(deployment("web"), "shop")
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "shop")
    cluster.reconcile()
    assert len(cluster.pods("shop")) == 2
    cluster.delete("v1", "Namespace", "", "shop")
    assert cluster.get("", "namespaces", "", "shop")["status"]["phase"] == "Terminating"
    cluster.reconcile()  # the namespace controller removes the contents, then the namespace
    assert cluster.get("", "namespaces", "", "shop") is None
    for rt in cluster.reg:
        if rt.namespaced:
            assert cluster.api.store.list(rt.group, rt.plural, "shop") == []


def test_statefulset_daemonset_and_job(cluster: Cluster) -> None:
    template = {
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "postgres:17"}]},
    }
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    cluster.create(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "rancher.io/local-path",
        },
        "",
    )
    cluster.create(sts)
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "busybox"}]},
            },
        },
    }
    cluster.create(ds)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "backup"},
        "spec": {
            "completions": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "b", "image": "busybox"}],
                }
            },
        },
    }
    cluster.create(job)
    cluster.patch("v1", "Node", "", "pi-2", {"spec": {"unschedulable": True}})
    cluster.reconcile()
    pods = {p["metadata"]["name"]: p for p in cluster.pods()}
    assert {"db-0", "db-1", "db-2"} <= pods.keys()
    assert pods["db-1"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-db-1"
    claim = cluster.get("", "persistentvolumeclaims", "default", "data-db-1")
    assert claim["status"]["phase"] == "Bound"  # type: ignore[index]
    sts_status = cluster.get("apps", "statefulsets", "default", "db")["status"]  # type: ignore[index]
    assert sts_status["readyReplicas"] == 3
    assert sts_status["currentRevision"] == sts_status["updateRevision"]
    agents = [p for p in pods.values() if p["metadata"]["name"].startswith("agent-")]
    assert sorted(p["spec"]["nodeName"] for p in agents) == list(NODES)  # cordon tolerated
    ds_status = cluster.get("apps", "daemonsets", "default", "agent")["status"]  # type: ignore[index]
    assert ds_status["desiredNumberScheduled"] == ds_status["numberReady"] == 3
    backups = [p for p in pods.values() if p["metadata"]["name"].startswith("backup-")]
    assert [p["status"]["phase"] for p in backups] == ["Succeeded", "Succeeded"]
    job_status = cluster.get("batch", "jobs", "default", "backup")["status"]  # type: ignore[index]
    assert job_status["succeeded"] == 2 and job_status["completionTime"]
    assert {c["type"] for c in job_status["conditions"]} >= {"Complete"}
    cluster.patch("apps/v1", "StatefulSet", "default", "db", {"spec": {"replicas": 1}})
    cluster.reconcile()
    assert [
        p["metadata"]["name"] for p in cluster.pods() if p["metadata"]["name"][:3] == "db-"
    ] == ["db-0"]


def test_nodes_without_status_register_and_roles_aggregate(cluster: Cluster) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "extra"}}, "")
    cluster.reconcile()
    node = cluster.get("", "nodes", "", "extra")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]  # type: ignore[index]
    assert ready[0]["status"] == "True"
    view = cluster.get("rbac.authorization.k8s.io", "clusterroles", "", "view")
    assert any("pods" in r.get("resources", []) for r in view["rules"])  # type: ignore[index]


# -- with kubectl, against a server whose controllers run their loop ---------------------------
@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundSandbox]:
    """Overrides conftest's: the homelab nodes, and controllers running on the server's loop."""
    yield from sandbox_with_controllers(extra=fixtures.homelab_nodes())


def wait_for(check: Callable[[], Any], timeout: float = 10) -> Any:
    """Polls until `check()` is truthy (the controllers react within milliseconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "timed out waiting for the controllers"
            return value
        time.sleep(0.05)


def _pods(kubectl: Any, ns: str, selector: str = "") -> list[Obj]:
    args = ["get", "pods", "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(kubectl(*args).stdout)["items"]


def _running(pods: list[Obj], count: int) -> list[Obj] | None:
    ok = len(pods) == count and all(p["status"].get("phase") == "Running" for p in pods)
    return pods if ok else None


def apply(kubectl: Any, *objects: Obj) -> None:
    """`kubectl apply` of JSON manifests (typed `kubectl create x` would speak protobuf)."""
    kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def run_deployment(kubectl: Any, namespace: str, replicas: int) -> None:
    body = deployment("web", replicas)
    body["metadata"]["namespace"] = namespace
    apply(kubectl, body)


@pytest.fixture
def namespace(kubectl: Any, unique: str) -> str:
    apply(kubectl, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": unique}})
    return unique


def test_kubectl_deployment_runs_pods_and_replaces_deleted_ones(
    kubectl: Any, namespace: str
) -> None:
    run_deployment(kubectl, namespace, 2)
    pods = wait_for(lambda: _running(_pods(kubectl, namespace), 2))
    assert all(p["spec"]["nodeName"] in NODES and p["status"]["podIP"] for p in pods)
    wide = kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    assert "Running" in wide and "10.244." in wide
    victim = pods[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", namespace)
    replaced = wait_for(
        lambda: (
            (p := _running(_pods(kubectl, namespace), 2))
            and victim not in {x["metadata"]["name"] for x in p}
        )
    )
    assert replaced
    kubectl("scale", "deploy/web", "--replicas=0", "-n", namespace)
    wait_for(lambda: _pods(kubectl, namespace) == [])
    kubectl("scale", "deploy/web", "--replicas=3", "-n", namespace)
    wait_for(lambda: _running(_pods(kubectl, namespace), 3))
    ready = kubectl("get", "deploy", "web", "-n", namespace).stdout
    assert "3/3" in ready


def test_kubectl_rollout_restart_and_status(kubectl: Any, namespace: str) -> None:
    run_deployment(kubectl, namespace, 2)
    before = {
        p["metadata"]["name"] for p in wait_for(lambda: _running(_pods(kubectl, namespace), 2))
    }
    kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=20s")
    kubectl("rollout", "restart", "deploy/web", "-n", namespace)
    result = kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=20s")
    assert "successfully rolled out" in result.stdout
    after = wait_for(lambda: _running(_pods(kubectl, namespace), 2))
    assert not before & {p["metadata"]["name"] for p in after}
    history = kubectl("rollout", "history", "deploy/web", "-n", namespace).stdout
    assert "2" in history.split("REVISION", 1)[1]


def test_kubectl_cordon_keeps_new_pods_off_the_node(kubectl: Any, namespace: str) -> None:
    kubectl("cordon", "pi-1")
    try:
        node = json.loads(kubectl("get", "node", "pi-1", "-o", "json").stdout)
        assert node["spec"]["unschedulable"] is True
        assert "SchedulingDisabled" in kubectl("get", "node", "pi-1").stdout
        run_deployment(kubectl, namespace, 4)
        pods = wait_for(lambda: _running(_pods(kubectl, namespace), 4))
        assert "pi-1" not in {p["spec"]["nodeName"] for p in pods}
    finally:
        kubectl("uncordon", "pi-1")
    node = json.loads(kubectl("get", "node", "pi-1", "-o", "json").stdout)
    assert not node["spec"].get("unschedulable")


def test_kubectl_namespace_delete_cascades(kubectl: Any, namespace: str) -> None:
    run_deployment(kubectl, namespace, 1)
    config = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}
    apply(kubectl, {**config, "metadata": {"name": "settings", "namespace": namespace}})
    wait_for(lambda: _running(_pods(kubectl, namespace), 1))
    kubectl("delete", "namespace", namespace, "--timeout=20s")
    assert namespace not in kubectl("get", "ns").stdout
    everything = kubectl("get", "pods,rs,deploy,cm", "-A", "-o", "json").stdout
    spaces = {o["metadata"]["namespace"] for o in json.loads(everything)["items"]}
    assert namespace not in spaces


def test_kubectl_deleting_a_replicaset_collects_its_pods(kubectl: Any, namespace: str) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "bare", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "bare"}},
            "template": {
                "metadata": {"labels": {"app": "bare"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    apply(kubectl, manifest)
    wait_for(lambda: _running(_pods(kubectl, namespace), 2))
    kubectl("delete", "rs", "bare", "-n", namespace)
    wait_for(lambda: _pods(kubectl, namespace) == [])
