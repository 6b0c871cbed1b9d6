"""Server-side apply and managedFields: the real kubectl and the official client against the
sandbox, plus the FieldsV1 format on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from clustercord_sandbox.managedfields import decode, encode, path_string

APPLY = "application/apply-patch+yaml"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
"""


def _configmap(name: str, data: dict[str, str], **labels: str) -> str:
    meta: dict[str, object] = {"name": name}
    if labels:
        meta["labels"] = labels
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


def _get(kubectl, kind: str, name: str) -> dict:
    return json.loads(kubectl("get", kind, name, "-o", "json", "--show-managed-fields").stdout)


def _entries(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


# -- kubectl apply --server-side ---------------------------------------------------------------
def test_server_side_apply_creates_the_object_and_records_kubectl_as_its_manager(kubectl, unique):
    out = kubectl(
        "apply", "--server-side", "-f", "-", input=_configmap(unique, {"a": "1"}, app="x")
    )
    assert f"configmap/{unique} serverside-applied" in out.stdout
    entry = _entries(_get(kubectl, "cm", unique))[("kubectl", "Apply")]
    assert entry["apiVersion"] == "v1" and entry["fieldsType"] == "FieldsV1" and entry["time"]
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}
    # kubectl hides managedFields unless asked.
    plain = json.loads(kubectl("get", "cm", unique, "-o", "json").stdout)
    assert "managedFields" not in plain["metadata"]


def test_reapplying_without_a_field_removes_it(kubectl, unique):
    kubectl(
        "apply", "--server-side", "-f", "-", input=_configmap(unique, {"a": "1", "b": "2"}, app="x")
    )
    kubectl("apply", "--server-side", "-f", "-", input=_configmap(unique, {"a": "1"}))
    obj = _get(kubectl, "cm", unique)
    assert obj["data"] == {"a": "1"}
    assert not obj["metadata"].get("labels")
    assert _entries(obj)[("kubectl", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_reapplying_the_same_configuration_changes_nothing(kubectl, unique):
    manifest = DEPLOYMENT.format(name=unique, image="nginx:1.27")
    kubectl("apply", "--server-side", "-f", "-", input=manifest)
    before = _get(kubectl, "deploy", unique)["metadata"]
    kubectl("apply", "--server-side", "-f", "-", input=manifest)
    after = _get(kubectl, "deploy", unique)["metadata"]
    assert after["generation"] == before["generation"] == 1
    assert (
        _entries({"metadata": after})[("kubectl", "Apply")]
        == (_entries({"metadata": before})[("kubectl", "Apply")])
    )


def test_a_conflict_with_another_manager_is_shown_then_forced(kubectl, unique):
    manifest = DEPLOYMENT.format(name=unique, image="nginx:1.27")
    kubectl("apply", "--server-side", "-f", "-", input=manifest)
    kubectl("scale", "deploy", unique, "--replicas=5")  # an Update by "kubectl" through /scale
    refused = kubectl("apply", "--server-side", "-f", "-", input=manifest, check=False)
    assert refused.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using '
        "apps/v1: .spec.replicas" in refused.stderr
    )
    assert "--force-conflicts" in refused.stderr  # kubectl's own advice, from our 409
    scaled = _get(kubectl, "deploy", unique)
    assert scaled["spec"]["replicas"] == 5
    assert _entries(scaled)[("kubectl", "Update")]["subresource"] == "scale"

    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    obj = _get(kubectl, "deploy", unique)
    assert obj["spec"]["replicas"] == 2
    entries = _entries(obj)
    assert "f:replicas" in entries[("kubectl", "Apply")]["fieldsV1"]["f:spec"]
    scaled = entries.get(("kubectl", "Update"), {}).get("fieldsV1", {})
    assert "f:replicas" not in scaled.get("f:spec", {})


def test_client_side_apply_after_server_side_apply_takes_the_changed_field(kubectl, unique):
    kubectl("apply", "--server-side", "-f", "-", input=DEPLOYMENT.format(name=unique, image="a:1"))
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(name=unique, image="a:2"))
    obj = _get(kubectl, "deploy", unique)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "a:2"
    entries = _entries(obj)
    csa = entries[("kubectl-client-side-apply", "Update")]["fieldsV1"]
    container = 'k:{"name":"web"}'
    assert "f:image" in csa["f:spec"]["f:template"]["f:spec"]["f:containers"][container]
    ssa = entries[("kubectl", "Apply")]["fieldsV1"]
    assert "f:image" not in ssa["f:spec"]["f:template"]["f:spec"]["f:containers"][container]


def test_server_side_apply_after_client_side_apply_upgrades_without_conflict(kubectl, unique):
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(name=unique, image="a:1"))
    out = kubectl(
        "apply", "--server-side", "-f", "-", input=DEPLOYMENT.format(name=unique, image="a:2")
    )
    assert "serverside-applied" in out.stdout
    obj = _get(kubectl, "deploy", unique)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "a:2"
    assert ("kubectl", "Apply") in _entries(obj)
    last = json.loads(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["spec"]["template"]["spec"]["containers"][0]["image"] == "a:2"


def test_server_dry_run_changes_nothing(kubectl, unique):
    kubectl("apply", "--server-side", "-f", "-", input=_configmap(unique, {"a": "1"}))
    before = _get(kubectl, "cm", unique)
    out = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        input=_configmap(unique, {"a": "2"}),
    )
    assert "(server dry run)" in out.stdout
    assert _get(kubectl, "cm", unique) == before
    missing = f"{unique}-new"
    kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=_configmap(missing, {}))
    assert kubectl("get", "cm", missing, check=False).returncode == 1


def test_updates_record_their_managers_with_the_api_servers_format(kubectl, unique):
    kubectl("create", "configmap", unique, "--from-literal=a=1")
    kubectl("label", "cm", unique, "tier=web")
    entries = _entries(_get(kubectl, "cm", unique))
    assert entries[("kubectl-create", "Update")]["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    # The label map did not exist: its creator owns it too ("." marks the map itself).
    assert entries[("kubectl-label", "Update")]["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:tier": {}}}
    }


# -- the official Python client ------------------------------------------------------------------
@pytest.fixture(scope="module")
def core(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _apply(core, name: str, data: dict[str, str], manager: str | None, force: bool = False):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    kwargs = {"field_manager": manager} if manager else {}
    return core.patch_namespaced_config_map(
        name, "default", body, force=force, _content_type=APPLY, **kwargs
    )


def test_python_client_applies_and_reads_managed_fields(core, unique):
    created = _apply(core, unique, {"a": "1"}, "templates")
    assert created.data == {"a": "1"}
    [entry] = created.metadata.managed_fields
    assert (entry.manager, entry.operation, entry.fields_v1) == (
        "templates",
        "Apply",
        {"f:data": {"f:a": {}}},
    )


def test_python_client_apply_needs_a_field_manager(core, unique):
    with pytest.raises(ApiException) as err:
        _apply(core, unique, {"a": "1"}, None)
    assert err.value.status == 422
    assert "fieldManager: Required value" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException):
        core.read_namespaced_config_map(unique, "default")  # nothing was created


def test_python_client_conflict_has_field_manager_causes_and_force_takes_over(core, unique):
    _apply(core, unique, {"a": "1", "b": "1"}, "first")
    with pytest.raises(ApiException) as err:
        _apply(core, unique, {"a": "2"}, "second")
    body = json.loads(err.value.body)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "first": .data.a'
    assert body["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".data.a"}
    ]
    forced = _apply(core, unique, {"a": "2"}, "second", force=True)
    assert forced.data == {"a": "2", "b": "1"}
    owners = {e.manager: e.fields_v1 for e in forced.metadata.managed_fields}
    assert owners == {"first": {"f:data": {"f:b": {}}}, "second": {"f:data": {"f:a": {}}}}


def test_a_field_another_manager_still_applies_is_kept(core, unique):
    _apply(core, unique, {"shared": "x", "mine": "y"}, "first")
    _apply(core, unique, {"shared": "x"}, "second")  # same value: co-owned, no conflict
    after = _apply(core, unique, {}, "first")
    assert after.data == {"shared": "x"}


# -- FieldsV1 -----------------------------------------------------------------------------------
def test_fields_v1_round_trips_the_api_servers_encoding():
    fields = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"web"}': {
                    ".": {},
                    "f:image": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {}},
                }
            },
            "f:finalizers": {'v:"kubernetes"': {}},
        },
    }
    assert json.dumps(encode(decode(fields))) == json.dumps(fields)  # same order too


def test_paths_print_like_the_api_server():
    [path] = decode({"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:name": {}}}}})
    assert path_string(path) == '.spec.ports[port=80,protocol="TCP"].name'


# -- merge semantics, on the module itself ---------------------------------------------------
def _pod_rt():
    from clustercord_sandbox.registry import default_registry

    return default_registry().lookup("", "v1", "pods")


def _apply_as(live, manager: str, spec: dict, finalizers=None) -> dict:
    from clustercord_sandbox.apply import apply

    meta = {"name": "p", "namespace": "default"}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    config = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    return apply(_pod_rt(), live, config, manager, False, "2026-01-01T00:00:00Z")


def _container(**fields) -> dict:
    return {"containers": [{"name": "app", "image": "x", **fields}]}


def test_set_lists_union_and_each_manager_removes_only_its_items():
    first = _apply_as(None, "a", _container(), finalizers=["a.io/x"])
    both = _apply_as(first, "b", _container(), finalizers=["b.io/y"])
    assert both["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    dropped = _apply_as(both, "a", _container(), finalizers=[])
    assert dropped["metadata"]["finalizers"] == ["b.io/y"]


def test_keyed_list_items_merge_by_key_and_atomic_lists_are_replaced():
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    live = _apply_as(None, "a", _container(env=env, args=["one", "two"]))
    after = _apply_as(live, "a", _container(env=env[:1], args=["three"]))
    [container] = after["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["args"] == ["three"]
    # Another manager's item in the same list survives the first manager's re-apply.
    other = _apply_as(after, "b", {"containers": [{"name": "side", "image": "y"}]})
    again = _apply_as(other, "a", _container(env=env[:1], args=["three"]))
    assert [c["name"] for c in again["spec"]["containers"]] == ["app", "side"]
