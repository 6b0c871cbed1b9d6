"""The official `kubernetes` client against the sandbox; the kernel's Kubernetes service uses it."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from clustercord_sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def _cm(name: str, **labels: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None), data={"k": "v"}
    )


def test_list_namespaces(core):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_create_get_and_already_exists(core, unique):
    created = core.create_namespaced_config_map("default", _cm(unique))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert core.read_namespaced_config_map(unique, "default").data == {"k": "v"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", _cm(unique))
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_not_found_is_a_status_object(core):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("missing", "default")
    body = json.loads(err.value.body)
    assert err.value.status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "pods"},
        "code": 404,
    }


def test_the_namespace_must_exist(core, unique):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-ns", _cm(unique))
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'namespaces "no-such-ns" not found'


def test_stale_resource_version_conflicts(core, unique):
    created = core.create_namespaced_config_map("default", _cm(unique))
    created.data = {"k": "2"}
    core.replace_namespaced_config_map(unique, "default", created)  # bumps the version
    created.data = {"k": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map(unique, "default", created)
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "Conflict"


def test_patch_kinds(core, unique):
    core.create_namespaced_config_map("default", _cm(unique, app="x"))
    patched = core.patch_namespaced_config_map(
        unique, "default", {"metadata": {"labels": {"tier": "db"}}, "data": {"extra": "1"}}
    )
    assert patched.metadata.labels == {"app": "x", "tier": "db"}
    assert patched.data == {"k": "v", "extra": "1"}


def test_invalid_name_names_the_field(core):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", _cm("Not_Valid"))
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_label_and_field_selectors_and_paging(core, unique):
    for i in range(5):
        core.create_namespaced_config_map("default", _cm(f"{unique}-{i}", batch=unique, n=str(i)))
    sel = core.list_namespaced_config_map("default", label_selector=f"batch={unique},n notin (0,1)")
    assert [c.metadata.name for c in sel.items] == [f"{unique}-{i}" for i in (2, 3, 4)]
    exists = core.list_namespaced_config_map("default", label_selector=f"batch={unique},n")
    assert len(exists.items) == 5
    one = core.list_namespaced_config_map("default", field_selector=f"metadata.name={unique}-3")
    assert [c.metadata.name for c in one.items] == [f"{unique}-3"]
    names: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(
            "default", label_selector=f"batch={unique}", limit=2, _continue=token
        )
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"{unique}-{i}" for i in range(5)]


def test_watch_from_a_resource_version(core, unique):
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    events: list[tuple[str, str]] = []

    def produce() -> None:
        core.create_namespaced_config_map("default", _cm(unique))
        core.patch_namespaced_config_map(unique, "default", {"data": {"k": "2"}})
        core.delete_namespaced_config_map(unique, "default")

    threading.Timer(0.3, produce).start()
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5
    ):
        if event["object"].metadata.name == unique:
            events.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_too_old_resource_version_is_gone(core, unique):
    for i in range(60):  # the module's store keeps 50 events
        core.create_namespaced_config_map("default", _cm(f"{unique}-{i}"))
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=2
        ):
            pass
    assert err.value.status == 410


def _raw_get(server: SandboxServer, path: str, token: str | None) -> tuple[int, str]:
    """A plain HTTPS GET that trusts the sandbox CA (for what the typed client hides)."""
    assert server.certificate is not None
    context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
    request = urllib.request.Request(server.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bookmarks(server):
    path = (
        "/api/v1/namespaces/default/configmaps"
        "?watch=true&allowWatchBookmarks=true&resourceVersion=0&timeoutSeconds=1"
    )
    status, body = _raw_get(server, path, server.admin_token)
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) > 0


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_is_unauthorized(server, token):
    status, body = _raw_get(server, "/api/v1/namespaces", token)
    assert status == 401
    assert json.loads(body)["reason"] == "Unauthorized"
