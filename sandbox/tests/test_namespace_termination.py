"""Namespace deletion as on a real cluster: Terminating while its contents go, then gone;
no new content meanwhile. Object finalizers hold a deletion until they are removed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

HELD = "example.com/hold"


@pytest.fixture(scope="module")
def core(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _namespace_with_content(kubectl, name: str) -> None:
    kubectl("create", "namespace", name)
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", name)
    kubectl("create", "configmap", "settings", "--from-literal=a=1", "-n", name)


def _held_configmap(name: str) -> dict:
    return {"metadata": {"name": name, "finalizers": [HELD]}, "data": {"a": "1"}}


def _wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_kubectl_delete_namespace_waits_until_it_and_its_contents_are_gone(kubectl, unique, server):
    _namespace_with_content(kubectl, unique)
    out = kubectl("delete", "namespace", unique, "--wait", "--timeout=20s")
    assert f'namespace "{unique}" deleted' in out.stdout
    missing = kubectl("get", "namespace", unique, check=False)
    assert f'namespaces "{unique}" not found' in missing.stderr
    for rt in server.registry:
        if rt.namespaced:
            assert server.store.list(rt.group, rt.plural, unique) == []


def test_a_terminating_namespace_refuses_new_content_until_it_is_gone(kubectl, core, unique):
    kubectl("create", "namespace", unique)
    core.create_namespaced_config_map(unique, _held_configmap("held"))
    kubectl("delete", "namespace", unique, "--wait=false")

    ns = json.loads(kubectl("get", "namespace", unique, "-o", "json").stdout)
    assert ns["status"]["phase"] == "Terminating"
    assert ns["metadata"]["deletionTimestamp"]
    assert "Terminating" in kubectl("get", "namespace", unique).stdout

    refused = kubectl("create", "configmap", "late", "-n", unique, check=False)
    assert refused.returncode == 1
    assert (
        f'configmaps "late" is forbidden: unable to create new content in namespace {unique} '
        "because it is being terminated" in refused.stderr
    )
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(unique, {"metadata": {"name": "late"}})
    body = json.loads(err.value.body)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {unique} is being terminated",
            "field": "metadata.namespace",
        }
    ]

    # The namespace controller says what holds the namespace.
    def finalizers_condition():
        status = core.read_namespace(unique).status
        return next(
            (c for c in status.conditions or [] if c.type == "NamespaceFinalizersRemaining"),
            None,
        )

    condition = _wait_for(finalizers_condition)
    assert condition is not None and HELD in condition.message

    held = core.read_namespaced_config_map("held", unique)
    assert held.metadata.deletion_timestamp is not None  # deleted, waiting for its finalizer
    kubectl(
        "patch", "configmap", "held", "-n", unique, "--type=merge", "-p",
        '{"metadata":{"finalizers":null}}',
    )  # fmt: skip
    kubectl("wait", "--for=delete", f"namespace/{unique}", "--timeout=10s")


def test_deleting_a_terminating_namespace_again_is_a_conflict(kubectl, core, unique):
    kubectl("create", "namespace", unique)
    core.create_namespaced_config_map(unique, _held_configmap("held"))
    core.delete_namespace(unique)
    with pytest.raises(ApiException) as err:
        core.delete_namespace(unique)
    assert err.value.status == 409
    assert "ensuring all content is removed from this namespace" in err.value.body
    core.patch_namespaced_config_map("held", unique, {"metadata": {"finalizers": None}})
    assert _wait_for(lambda: unique not in kubectl("get", "ns", "-o", "name").stdout)


def test_a_finalizer_holds_an_objects_deletion_until_removed(core, unique):
    core.create_namespaced_config_map("default", _held_configmap(unique))
    core.delete_namespaced_config_map(unique, "default")
    held = core.read_namespaced_config_map(unique, "default")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [HELD]
    core.patch_namespaced_config_map(unique, "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map(unique, "default")
    assert err.value.status == 404
