"""port-forward into a sandbox pod's own network (issue 18): the official Python client's
`kubernetes.stream.portforward` (WebSocket, `v4.channel.k8s.io`) and the real kubectl 1.32
(SPDY tunneled in a WebSocket) reach an HTTP server running in the pod, which nothing on the
host can reach."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from kubernetes import client, config
from kubernetes.stream import portforward, stream

from .conftest import KUBECTL, kubectl_runner, running_pod, sandbox_with_nodes

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)
PORTS = (38081, 38082)  # where the pod's servers listen (in the pod's network namespace)


@pytest.fixture(scope="module")
def core(kubeconfig) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


@pytest.fixture(scope="module")
def pod(server, kubeconfig, core) -> str:
    """A running pod with an HTTP server on each of PORTS, started by exec (sandbox pods run
    no image: their processes are what exec starts)."""
    if server.isolation.refusal() is not None:
        pytest.skip(f"this host cannot isolate pods: {server.isolation.reason}")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 on this host to serve HTTP in a pod")
    running_pod(kubectl_runner(kubeconfig), "forward-demo")
    script = "mkdir -p /tmp/www && echo hello-from-the-pod > /tmp/www/index.html && cd /tmp/www"
    for port in PORTS:
        script += f" && (python3 -m http.server {port} >/dev/null 2>&1 &)"
    stream(
        core.connect_get_namespaced_pod_exec, "forward-demo", "default", container="web",
        command=["sh", "-c", script], stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    return "forward-demo"


def _get(sock, path: str = "/index.html") -> bytes:  # type: ignore[no-untyped-def]
    """An HTTP/1.0 GET through a forwarded socket: the answer, up to its Content-Length (a
    port's stream only ends when the whole port-forward does, as with the kubelet)."""
    sock.settimeout(10)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length" and len(body) >= int(value):
                return data
    return data


def _forward(core, pod: str, ports: str):  # type: ignore[no-untyped-def]
    """The client's portforward; the pod's server may take a moment to listen."""
    deadline = time.monotonic() + 10
    while True:
        forward = portforward(
            core.connect_get_namespaced_pod_portforward, pod, "default", ports=ports
        )
        first = int(ports.split(",")[0])
        answer = _get(forward.socket(first))
        if answer or time.monotonic() > deadline:
            return forward, answer
        time.sleep(0.2)


def test_the_python_client_reaches_the_pods_http_server(core, pod):
    forward, answer = _forward(core, pod, str(PORTS[0]))
    assert answer.startswith(b"HTTP/1.0 200 OK"), answer
    assert answer.endswith(b"hello-from-the-pod\n")
    assert forward.error(PORTS[0]) is None


def test_the_pods_port_is_not_the_hosts(core, pod):
    _forward(core, pod, str(PORTS[0]))  # the pod's server is listening
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", PORTS[0]), timeout=2)


def test_two_ports_on_one_connection(core, pod):
    _forward(core, pod, str(PORTS[0]))
    forward = portforward(
        core.connect_get_namespaced_pod_portforward,
        pod,
        "default",
        ports=f"{PORTS[0]},{PORTS[1]}",
    )
    for port in PORTS:
        assert _get(forward.socket(port)).endswith(b"hello-from-the-pod\n")


def test_nothing_listening_is_reported_on_the_error_channel(core, pod):
    forward = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="9")
    assert _get(forward.socket(9)) == b""
    deadline = time.monotonic() + 5
    while forward.error(9) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert forward.error(9) == (
        f"error forwarding port 9 to pod default/{pod}: failed to connect to localhost:9 inside "
        "the pod's network namespace, IPv4: dial 127.0.0.1 port 9: connect: connection refused "
        "IPv6: dial ::1 port 9: connect: connection refused"
    )


async def _raw(server, pod: str, query: str, protocols=("v4.channel.k8s.io",), headers=None):  # type: ignore[no-untyped-def]
    """The first frames of a raw WebSocket port-forward, or the HTTP error it got."""
    context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
    url = f"{server.url}/api/v1/namespaces/default/pods/{pod}/portforward?{query}"
    headers = {"Authorization": f"Bearer {server.admin_token}", **(headers or {})}
    frames: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(
                url, headers=headers, protocols=protocols, ssl=context
            ) as ws:
                assert ws.protocol == "v4.channel.k8s.io"
                while len(frames) < 2:
                    message = await ws.receive(timeout=5)
                    frames.append(message.data)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, frames
    return 101, frames


def test_each_channel_opens_with_its_port_little_endian(server, pod):
    status, frames = asyncio.run(_raw(server, pod, f"ports={PORTS[0]}"))
    assert status == 101
    port = PORTS[0].to_bytes(2, "little")
    assert frames == [b"\x00" + port, b"\x01" + port]


def _http(server, path: str, headers: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(server.url + path, headers={
        "Authorization": f"Bearer {server.admin_token}", **headers})  # fmt: skip
    context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


V4_HEADERS = {"Sec-WebSocket-Protocol": "v4.channel.k8s.io"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", 'query parameter "ports" is required (e.g. ports=8080)'),
        ("ports=0", "port 0 must be between 1 and 65535"),
        ("ports=70000", "port 70000 must be between 1 and 65535"),
        ("ports=http", "invalid port 'http'"),
        ("ports=80,80", "port 80 is asked for twice"),
    ],
)
def test_bad_ports_are_refused(server, pod, query, message):
    status, body = _http(
        server, f"/api/v1/namespaces/default/pods/{pod}/portforward?{query}", V4_HEADERS
    )
    assert status == 400 and body["message"] == message


def test_forwarding_needs_create_on_pods_portforward(server, pod, kubectl):
    kubectl("apply", "-f", "-", input=FORWARD_GET_ONLY)
    status, body = _http(
        server,
        f"/api/v1/namespaces/default/pods/{pod}/portforward?ports={PORTS[0]}",
        {**V4_HEADERS, "Impersonate-User": "dave"},
    )
    assert status == 403
    assert 'cannot create resource "pods/portforward"' in body["message"]


def test_a_pending_pod_is_refused(server, kubectl, unique):
    kubectl("apply", "-f", "-", input=PENDING.format(name=unique))
    status, body = _http(
        server, f"/api/v1/namespaces/default/pods/{unique}/portforward?ports=80", V4_HEADERS
    )
    assert status == 400
    assert "current phase is Pending" in body["message"]


@contextlib.contextmanager
def _kubectl_port_forward(kubeconfig, pod: str, remote: int):  # type: ignore[no-untyped-def]
    """`kubectl port-forward pod/POD 0:REMOTE` running: (the local port, the process)."""
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "port-forward", f"pod/{pod}", f"0:{remote}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.match(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {remote}$", line.strip())
        assert found, (line, process.stderr.read() if process.poll() is not None else "")
        yield int(found.group(1)), process
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_kubectl_port_forward_reaches_the_pods_http_server(kubeconfig, core, pod):
    _forward(core, pod, str(PORTS[0]))  # the pod's server is listening
    with _kubectl_port_forward(kubeconfig, pod, PORTS[0]) as (local, _):
        for _ in range(3):  # a connection each: an error and a data stream each
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html", timeout=10) as r:
                assert r.read() == b"hello-from-the-pod\n"


def test_kubectl_port_forward_reports_nothing_listening(kubeconfig, pod):
    with _kubectl_port_forward(kubeconfig, pod, 9) as (local, process):
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            conn.settimeout(10)
            assert conn.recv(100) == b""  # the connection ends
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.kill()
        _, stderr = process.communicate(timeout=10)
    assert (
        f"an error occurred forwarding {local} -> 9: error forwarding port 9 to pod "
        f"default/{pod}: failed to connect to localhost:9 inside the pod's network namespace"
    ) in stderr


def test_a_plain_spdy_upgrade_is_told_what_is_supported(server, pod):
    # kubectl's fallback when the WebSocket tunnel fails: a plain SPDY/3.1 upgrade.
    status, body = _http(
        server,
        f"/api/v1/namespaces/default/pods/{pod}/portforward",
        {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
         "X-Stream-Protocol-Version": "portforward.k8s.io"},
    )  # fmt: skip
    assert status == 400
    assert body["message"] == (
        f'pod "{pod}": the ClusterCord sandbox forwards ports over WebSocket: '
        "v4.channel.k8s.io (the official Python client's kubernetes.stream.portforward) or "
        "SPDY/3.1+portforward.k8s.io (kubectl 1.31+); not over a plain SPDY upgrade"
    )


def test_the_relay_ends_with_the_connection(core, pod):
    forward = portforward(
        core.connect_get_namespaced_pod_portforward, pod, "default", ports=str(PORTS[0])
    )
    _wait_relays(lambda found: found, "the relay to start")
    forward.close()  # the client hangs up without a word: its relay goes
    _wait_relays(lambda found: not found, "the relay to end")


def _wait_relays(done, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [entry for entry in os.listdir("/proc") if entry.isdigit() and _is_relay(entry)]
        if done(found):
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _is_relay(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"inside the pod's network" in cmdline.read()
    except OSError:
        return False


FORWARD_GET_ONLY = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: forward-get-only}
rules:
- {apiGroups: [""], resources: [pods, pods/portforward], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dave-forward-get-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: forward-get-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: dave}]
"""
PENDING = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{nowhere: "true"}}
  containers: [{{name: web, image: nginx}}]
"""


def test_unisolated_pods_forward_nothing(unique, tmp_path):
    """With --unsafe-host-exec a pod has no network of its own: a forward would reach this
    machine's own services, so it is refused."""
    from clustercord_sandbox import fixtures
    from clustercord_sandbox.background import BackgroundSandbox

    box = BackgroundSandbox(host_exec=True)
    server = box.start()
    try:

        async def load() -> None:
            fixtures.load(server.api, fixtures.homelab_nodes())

        box.call(load())
        kubeconfig = box.write_kubeconfig(tmp_path / "kubeconfig")
        running_pod(kubectl_runner(kubeconfig), unique)
        status, body = _http(
            server, f"/api/v1/namespaces/default/pods/{unique}/portforward?ports=22", V4_HEADERS
        )
    finally:
        box.stop()
    assert status == 400
    assert "does not forward ports with --unsafe-host-exec" in body["message"]


def test_garbage_in_kubectls_tunnel_ends_it(server, pod):
    async def run() -> aiohttp.WSMsgType:
        context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
        url = f"{server.url}/api/v1/namespaces/default/pods/{pod}/portforward"
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                url, headers=headers, protocols=("SPDY/3.1+portforward.k8s.io",), ssl=context
            ) as ws,
        ):
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            await ws.send_bytes(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # SPDY/2
            return (await ws.receive(timeout=5)).type

    assert asyncio.run(run()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
