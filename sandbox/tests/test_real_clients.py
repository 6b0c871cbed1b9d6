"""Wire forms of real clients (issue 18, section 3): the official Python client's older
(up to v36: `?watch=True`, `stdin=True`, stdin in text WebSocket frames) and current
(v37: `true`, binary frames) releases, and kubectl.

The env holds the client's v37; v36's requests are sent as v36 sends them (the same query
strings and frame types), so both wire forms are exercised on every run.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config, watch
from kubernetes.stream import stream

from clustercord_sandbox.errors import encode
from clustercord_sandbox.resource_request import query_flag

from .conftest import kubectl_runner, running_pod, sandbox_with_nodes

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)

OLD, NEW = "True", "true"  # how the client up to v36 and from v37 spells a true boolean


@pytest.fixture(scope="module")
def pod(kubeconfig) -> str:
    running_pod(kubectl_runner(kubeconfig), "clients-demo")
    return "clients-demo"


@pytest.fixture(scope="module")
def core(kubeconfig) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _context(server) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=server.certificate.ca_pem.decode())


def _request(
    server, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, bytes]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {server.admin_token}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, context=_context(server), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- 1. booleans ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("", True),  # Go's conversion: only 0 and false are false
    ],
)
def test_booleans_parse_as_the_api_server_converts_them(value, expected):
    query = {} if value is None else {"flag": value}
    assert query_flag(query, "flag") is expected


@pytest.mark.parametrize("spelling", [OLD, NEW])
def test_watch_and_bookmarks_in_both_spellings(server, spelling, monkeypatch):
    monkeypatch.setattr(server, "bookmark_interval", 0.3)
    path = (
        f"/api/v1/namespaces/default/configmaps?watch={spelling}"
        f"&allowWatchBookmarks={spelling}&resourceVersion=0&timeoutSeconds=1"
    )
    status, body = _request(server, "GET", path)
    assert status == 200
    events = [json.loads(line) for line in body.decode().splitlines() if line]
    assert events and all("type" in e for e in events), "a watch stream, not a List"
    assert any(e["type"] == "BOOKMARK" for e in events)


def test_watch_false_is_a_list(server):
    status, body = _request(server, "GET", "/api/v1/namespaces/default/configmaps?watch=False")
    assert status == 200 and json.loads(body)["kind"] == "ConfigMapList"


def test_the_current_clients_watch(core, unique):
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    threading.Timer(
        0.3,
        lambda: core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=unique))
        ),
    ).start()
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=rv,
        timeout_seconds=5,
        allow_watch_bookmarks=True,
    ):
        if event["type"] == "ADDED" and event["object"].metadata.name == unique:
            w.stop()
            break
    else:
        pytest.fail("the watch never saw the ConfigMap")


@pytest.mark.parametrize("spelling", [OLD, NEW])
def test_forced_server_side_apply_in_both_spellings(server, unique, spelling):
    path = f"/api/v1/namespaces/default/configmaps/{unique}"
    apply = "application/apply-patch+yaml"

    def cm(value: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": unique},
                "data": {"k": value}}  # fmt: skip

    status, _ = _request(server, "PATCH", path + "?fieldManager=one", cm("1"), apply)
    assert status in (200, 201)
    status, body = _request(server, "PATCH", path + "?fieldManager=two", cm("2"), apply)
    assert status == 409, body
    status, body = _request(
        server, "PATCH", f"{path}?fieldManager=two&force={spelling}", cm("2"), apply
    )
    assert status == 200, body
    assert json.loads(body)["data"] == {"k": "2"}


@pytest.mark.parametrize("spelling", [OLD, NEW])
def test_log_flags_in_both_spellings(server, pod, spelling):
    path = f"/api/v1/namespaces/default/pods/{pod}/log?container=web&timestamps={spelling}"
    status, body = _request(server, "GET", path)
    assert status == 200
    first = body.decode().splitlines()[0]
    assert first[:4].isdigit() and "T" in first.split(" ")[0], first


# -- exec: booleans and frames --------------------------------------------------------------


async def _exec(
    server, pod: str, command: list[str], stdin: bytes, spelling: str, text: bool
) -> tuple[bytes, dict[str, Any]]:
    """Exec as the official client does: `v4.channel.k8s.io`, stdin written as soon as the
    socket is open, in text frames (up to v36) or binary ones (v37)."""
    query = [("container", "web"), ("stdin", spelling), ("stdout", spelling)]
    query += [("stderr", spelling), ("tty", "False" if spelling == OLD else "false")]
    query += [("command", part) for part in command]
    url = f"{server.url}/api/v1/namespaces/default/pods/{pod}/exec"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    stdout, status = b"", {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url,
            params=query,
            headers=headers,
            protocols=("v4.channel.k8s.io",),
            ssl=_context(server),
        ) as ws,
    ):
        if text:
            await ws.send_str("\x00" + stdin.decode())
        else:
            await ws.send_bytes(b"\x00" + stdin)
        async for message in ws:
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            if data[0] == 1:
                stdout += data[1:]
            elif data[0] == 3:
                status = json.loads(data[1:])
    return stdout, status


@pytest.mark.parametrize(("spelling", "text"), [(OLD, True), (NEW, False), (OLD, False)])
def test_exec_stdin_in_both_wire_forms(server, pod, spelling, text):
    # `head -c 6` ends after six bytes of stdin: no need to close it.
    stdout, status = asyncio.run(
        _exec(server, pod, ["head", "-c", "6"], b"h\xc3\xa9llo", spelling, text)
    )
    assert stdout == "héllo".encode()
    assert status == {"metadata": {}, "status": "Success"}


def test_the_current_clients_exec_with_stdin(core, pod):
    session = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        container="web",
        command=["head", "-n", "1"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    session.write_stdin("from python\n")
    out = ""
    deadline = time.monotonic() + 10
    while session.is_open() and time.monotonic() < deadline:
        session.update(timeout=1)
        out += session.read_stdout(timeout=0) or ""
    out += session.read_stdout(timeout=0) or ""
    session.close()
    assert out == "from python\n"


# -- 3. /openapi/v2 and `kind: List` ----------------------------------------------------------


def test_get_o_yaml_then_apply_of_the_list_round_trips(kubectl, unique, tmp_path):
    kubectl("create", "configmap", unique, "--from-literal=k=v")
    kubectl("label", "configmap", unique, f"backup={unique}")
    kubectl("create", "deployment", unique, "--image=nginx:1.27")
    kubectl("label", "deployment", unique, f"backup={unique}")
    backup = tmp_path / "backup.yaml"
    backup.write_text(kubectl("get", "cm,deploy", "-l", f"backup={unique}", "-o", "yaml").stdout)
    assert "kind: List" in backup.read_text()
    kubectl("delete", "cm,deploy", "-l", f"backup={unique}")
    out = kubectl("apply", "-f", str(backup)).stdout
    assert f"configmap/{unique} created" in out
    assert f"deployment.apps/{unique} created" in out
    assert kubectl("get", "cm", unique, "-o", "jsonpath={.data.k}").stdout == "v"


def test_a_list_is_validated_with_the_v2_models(kubectl, unique):
    bad = f"""\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: {unique}}}
  datta: {{k: v}}
"""
    result = kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'unknown field "datta" in io.k8s.api.core.v1.ConfigMap' in result.stderr


def test_openapi_v2_in_json_and_protobuf(server, api_client):
    status, body = _request(server, "GET", "/openapi/v2")
    assert status == 200
    document = json.loads(body)
    assert document["swagger"] == "2.0"
    pod = document["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    # What kubectl asks for: gnostic's openapi.v2.Document (field 1 is "swagger").
    method, url, headers, body, _ = api_client.param_serialize(
        "GET",
        "/openapi/v2",
        header_params={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers)
    response.read()
    assert response.status == 200
    assert response.getheader("Content-Type").endswith("+protobuf")
    assert response.data.startswith(b"\x0a\x032.0")


@pytest.fixture(scope="module")
def api_client(kubeconfig) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


# -- 4. the rest of a v1.32 cluster's resources ---------------------------------------------

STOCK = {  # resource: (group/version, namespaced, short name) as v1.32's discovery has them
    "replicationcontrollers": ("v1", True, "rc"),
    "resourcequotas": ("v1", True, "quota"),
    "limitranges": ("v1", True, "limits"),
    "podtemplates": ("v1", True, None),
    "apiservices": ("apiregistration.k8s.io/v1", False, None),
    "priorityclasses": ("scheduling.k8s.io/v1", False, "pc"),
    "horizontalpodautoscalers": ("autoscaling/v2", True, "hpa"),
    "endpointslices": ("discovery.k8s.io/v1", True, None),
    "events.events.k8s.io": ("events.k8s.io/v1", True, None),
    "controllerrevisions": ("apps/v1", True, None),
    "ingressclasses": ("networking.k8s.io/v1", False, None),
    "runtimeclasses": ("node.k8s.io/v1", False, None),
    "certificatesigningrequests": ("certificates.k8s.io/v1", False, "csr"),
    "flowschemas": ("flowcontrol.apiserver.k8s.io/v1", False, None),
    "validatingwebhookconfigurations": ("admissionregistration.k8s.io/v1", False, None),
    "csidrivers": ("storage.k8s.io/v1", False, None),
}


def test_discovery_has_the_stock_resources(kubectl):
    rows = kubectl("api-resources", "--no-headers", "-o", "wide").stdout.splitlines()
    found = {}
    for row in rows:
        cells = row.split()
        name = cells[0]
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...
        short = cells[1] if len(cells) > 2 and "/" not in cells[1] and cells[1] != "v1" else None
        rest = cells[2:] if short else cells[1:]
        found.setdefault(name, []).append((rest[0], rest[1] == "true", short))
    for resource, expected in STOCK.items():
        name = resource.split(".")[0]
        assert expected in found.get(name, []), (resource, found.get(name))


def test_apply_prune_with_its_default_list(kubectl, unique):
    """`kubectl apply --prune` walks its default list, replicationcontrollers included."""
    manifest = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {unique}-a, labels: {{prune: {unique}}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {unique}-b, labels: {{prune: {unique}}}}}
"""
    kubectl("apply", "-f", "-", input=manifest)
    first_only = manifest.split("---\n")[0]
    out = kubectl("apply", "--prune", "-l", f"prune={unique}", "-f", "-", input=first_only)
    assert f"configmap/{unique}-b pruned" in out.stdout
    assert kubectl("get", "cm", f"{unique}-b", check=False).returncode != 0


STOCK_OBJECTS = """\
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: nginx:1.27}}]}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: {name}}}
spec: {{hard: {{pods: "10"}}}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: {name}}}
value: 1000
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 3
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}}}
addressType: IPv4
endpoints: [{{addresses: [10.0.0.1]}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1.{name}.example.com}}
spec: {{group: {name}.example.com, version: v1, groupPriorityMinimum: 100, versionPriority: 10}}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {{name: {name}}}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: test
reportingInstance: test-1
action: Testing
reason: Tested
type: Normal
"""


def test_stock_resources_are_stored_and_validated(kubectl, unique):
    out = kubectl("apply", "-f", "-", input=STOCK_OBJECTS.format(name=unique)).stdout
    assert out.count(" created") == 7, out
    listed = kubectl("get", "rc,quota,hpa,endpointslices,events.events.k8s.io", "-o", "name")
    assert f"replicationcontroller/{unique}" in listed.stdout
    assert f"horizontalpodautoscaler.autoscaling/{unique}" in listed.stdout
    assert kubectl("get", "pc", unique, "-o", "jsonpath={.value}").stdout == "1000"
    # The API server's validation: unknown fields (strict) and required ones.
    bad = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: x}\nvalu: 1\n"
    result = kubectl("create", "--validate=strict", "-f", "-", input=bad, check=False)
    assert 'unknown field "valu"' in result.stderr
    result = kubectl("create", "--validate=false", "-f", "-", input=bad, check=False)
    assert "value: Required value" in result.stderr


def test_the_python_client_reads_the_stock_resources(api_client, unique, kubectl):
    kubectl("apply", "-f", "-", input=STOCK_OBJECTS.format(name=f"{unique}p"))
    rc = client.CoreV1Api(api_client).read_namespaced_replication_controller(
        f"{unique}p", "default"
    )
    assert rc.spec.replicas == 1
    hpa = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler(
        f"{unique}p", "default"
    )
    assert hpa.spec.max_replicas == 3
    pc = client.SchedulingV1Api(api_client).read_priority_class(f"{unique}p")
    assert pc.value == 1000
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice("default")
    assert f"{unique}p" in {s.metadata.name for s in slices.items}


# -- 5. what a user expects to see: events, endpoints, kubernetes, kube-root-ca.crt ---------


def _eventually(check, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_events_of_a_deployment_as_kubectl_shows_them(kubectl, unique):
    kubectl("create", "deployment", unique, "--image=nginx:1.27", "--replicas=2")
    kubectl("rollout", "status", f"deployment/{unique}", "--timeout=20s")

    def events() -> str:
        out = kubectl("events", "--for", f"deployment/{unique}").stdout
        return out if "ScalingReplicaSet" in out else ""

    assert f"Scaled up replica set {unique}-" in _eventually(events)
    out = kubectl("events").stdout
    for reason in ("SuccessfulCreate", "Scheduled", "Pulled", "Created", "Started"):
        assert reason in out, reason
    pod = kubectl("get", "pods", "-l", f"app={unique}", "-o", "name").stdout.split()[0]
    described = kubectl("describe", pod).stdout
    assert "default-scheduler  Successfully assigned default/" in described
    assert "kubelet            Started container nginx" in described
    assert "ScalingReplicaSet" in kubectl("describe", "deployment", unique).stdout
    kubectl("scale", f"deployment/{unique}", "--replicas=1")

    def scaled_down() -> str:
        out = kubectl("events").stdout
        return out if "Killing" in out and "SuccessfulDelete" in out else ""

    out = _eventually(scaled_down)
    assert "Scaled down replica set" in out and "Stopping container nginx" in out


def test_expose_gets_endpoints_and_an_endpoint_slice(kubectl, unique, api_client):
    kubectl("create", "deployment", unique, "--image=nginx:1.27", "--replicas=2", "--port=80")
    kubectl("rollout", "status", f"deployment/{unique}", "--timeout=20s")
    kubectl("expose", "deployment", unique, "--port=8080", "--target-port=80")
    ips = set(
        kubectl(
            "get", "pods", "-l", f"app={unique}", "-o", "jsonpath={.items[*].status.podIP}"
        ).stdout.split()
    )

    def endpoints() -> str:
        out = kubectl("get", "endpoints", unique, "--no-headers").stdout
        return out if out.count(":80") == 2 else ""

    row = _eventually(endpoints)
    assert {part.split(":")[0] for part in row.split()[1].split(",")} == ips
    slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
        "default", label_selector=f"kubernetes.io/service-name={unique}"
    )
    (only,) = slices.items
    assert {a for e in only.endpoints for a in e.addresses} == ips
    assert all(e.conditions.ready for e in only.endpoints)
    assert only.ports[0].port == 80
    assert only.metadata.owner_references[0].kind == "Service"
    # Scaling down leaves one address; deleting the Service takes its endpoints along.
    kubectl("scale", f"deployment/{unique}", "--replicas=1")
    assert _eventually(
        lambda: kubectl("get", "endpoints", unique, "--no-headers").stdout.count(":80") == 1
    )
    kubectl("delete", "service", unique)
    assert _eventually(
        lambda: (
            kubectl(
                "get", "endpoints,endpointslices", "-l", f"app={unique}", "-o", "name"
            ).stdout.strip()
            == ""
        )
    )


def test_the_kubernetes_service_and_root_ca_in_every_namespace(kubectl, server, unique, core):
    service = json.loads(kubectl("get", "service", "kubernetes", "-o", "json").stdout)
    assert service["spec"]["clusterIP"] == "10.96.0.1"
    assert service["spec"]["ports"][0]["port"] == 443
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert endpoints.subsets[0].ports[0].port == server.port
    assert endpoints.subsets[0].addresses[0].ip == server.host
    kubectl("create", "namespace", unique)
    ca = _eventually(
        lambda: (
            kubectl("get", "configmap", "kube-root-ca.crt", "-n", unique, check=False).returncode
            == 0
        )
    )
    assert ca
    pem = core.read_namespaced_config_map("kube-root-ca.crt", unique).data["ca.crt"]
    assert pem == server.certificate.ca_pem.decode()


# -- 7. error bodies byte for byte ------------------------------------------------------------


def test_a_not_found_is_the_api_servers_bytes(server, api_client):
    status, body = _request(server, "GET", "/api/v1/namespaces/default/pods/missing")
    assert status == 404
    assert body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"pods \\"missing\\" not found","reason":"NotFound",'
        b'"details":{"name":"missing","kind":"pods"},"code":404}\n'
    )
    # The official client hands the same bytes to its caller.
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api_client).read_namespaced_pod("missing", "default")
    assert err.value.body.encode() == body


def test_an_invalid_object_is_the_api_servers_bytes(server):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
    status, answer = _request(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 422
    message = (
        'Invalid value: \\"Bad_Name\\": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    assert answer.decode() == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        f'"message":"ConfigMap \\"Bad_Name\\" is invalid: metadata.name: {message}",'
        '"reason":"Invalid","details":{"name":"Bad_Name","kind":"ConfigMap","causes":'
        f'[{{"reason":"FieldValueInvalid","message":"{message}","field":"metadata.name"}}]}},'
        '"code":422}\n'
    )


def test_an_unknown_path_and_go_escaping(server):
    status, body = _request(server, "GET", "/apis/no.such.group/v1/things")
    assert status == 404
    assert body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server could not find the requested resource","reason":"NotFound",'
        b'"details":{},"code":404}\n'
    )
    assert encode({"a": "<b> & é\u2028"}) == '{"a":"\\u003cb\\u003e \\u0026 é\\u2028"}\n'.encode()


# -- 8. port-forward ------------------------------------------------------------------------


def test_port_forward_in_discovery(kubectl):
    # (port-forward itself: test_pod_portforward.py)
    resources = json.loads(kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entry = next(r for r in resources if r["name"] == "pods/portforward")
    assert entry["kind"] == "PodPortForwardOptions"


def test_core_and_events_k8s_io_events_are_one_resource(kubectl, unique, api_client):
    """As on a cluster, an Event written through either group reads through both."""
    new = client.EventsV1Api(api_client)
    new.create_namespaced_event(
        "default",
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name=unique),
            event_time="2026-01-01T00:00:00.000000Z",
            reporting_controller="tests",
            reporting_instance="tests-1",
            action="Testing",
            reason="Tested",
            note="written as events.k8s.io/v1",
            type="Normal",
            regarding=client.V1ObjectReference(kind="ConfigMap", name=unique, namespace="default"),
        ),
    )
    core = client.CoreV1Api(api_client)
    event = _eventually(lambda: _read_or_none(core.read_namespaced_event, unique))
    assert event.message == "written as events.k8s.io/v1"
    assert event.involved_object.name == unique and event.source.component == "tests"
    # And the other way: the controllers' core events read as events.k8s.io/v1.
    kubectl("create", "deployment", unique, "--image=nginx:1.27")
    assert _eventually(
        lambda: any(
            e.reason == "ScalingReplicaSet" and e.regarding.name == unique
            for e in new.list_namespaced_event("default").items
        )
    )
    new.delete_namespaced_event(unique, "default")
    assert _eventually(lambda: _read_or_none(core.read_namespaced_event, unique) is None)


def _read_or_none(read, name: str):
    try:
        return read(name, "default")
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_the_controllers_settle_and_record_each_event_once():
    from clustercord_sandbox import fixtures
    from clustercord_sandbox.controllers import Controllers
    from clustercord_sandbox.objects import ObjectAPI, WriteOptions
    from clustercord_sandbox.registry import default_registry
    from clustercord_sandbox.store import SandboxStore

    api = ObjectAPI(SandboxStore(), default_registry())
    fixtures.load(api, [*fixtures.empty(), *fixtures.homelab_nodes()])
    controllers = Controllers(api)
    controllers.ca_pem, controllers.api_endpoint = b"PEM", ("127.0.0.1", 6443)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    registry = api.registry
    api.create(registry.lookup("apps", "v1", "deployments"), "default", deployment, WriteOptions())
    api.create(registry.lookup("", "v1", "services"), "default", service, WriteOptions())
    assert controllers.reconcile_once() > 0
    events = len(api.store.list("", "events", "default"))
    assert controllers.reconcile_once() == 0, "a second pass changes nothing"
    assert len(api.store.list("", "events", "default")) == events
    reasons = sorted(e["reason"] for e in api.store.list("", "events", "default"))
    assert reasons.count("ScalingReplicaSet") == 1 and reasons.count("SuccessfulCreate") == 2
    assert reasons.count("Scheduled") == 2 and reasons.count("Started") == 2
    mirrored = api.store.list("events.k8s.io", "events", "default")
    assert len(mirrored) == events
    (endpoints,) = [
        e for e in api.store.list("", "endpoints", "default") if e["metadata"]["name"] == "web"
    ]
    assert len(endpoints["subsets"][0]["addresses"]) == 2
    assert api.store.get("", "configmaps", "kube-system", "kube-root-ca.crt")["data"] == {
        "ca.crt": "PEM"
    }
