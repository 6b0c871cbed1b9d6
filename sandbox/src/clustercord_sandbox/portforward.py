"""`pods/portforward` over WebSocket (`v4.channel.k8s.io`), into the pod's own network.

A sandbox pod's processes (what `kubectl exec` runs there) live in the pod's network
namespace (`isolation`), so a server started in a pod listens on the pod's loopback, which
nothing on the host can reach. A port-forward relays each forwarded port through a small
relay process that joins the pod's namespaces as exec does (the pod's user, its limits) and
connects to `localhost:PORT` there, as the kubelet's port-forward connects inside the pod's
network namespace.

The protocol is the kubelet's WebSocket port-forward (what the official Python client's
`kubernetes.stream.portforward` speaks): `?ports=8080,9090`; per port `i`, a data channel
`2i` and an error channel `2i+1`, each opened by a frame of the channel byte and the port as
2 bytes little-endian; a connection per port, made when the WebSocket opens; a failure to
connect is text on the error channel.

kubectl 1.32 speaks SPDY (or SPDY tunneled in a WebSocket, `SPDY/3.1+portforward.k8s.io`),
which the sandbox does not: it answers kubectl with a `Status` saying what is supported.
Where pods cannot be isolated, port-forward is refused as exec is; with `--unsafe-host-exec`
too: unisolated pods have no network of their own, and a forward would reach the machine's
own services.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import WSMsgType, web

from clustercord_sdk.rbac import UserInfo

from . import errors
from .errors import ApiError
from .isolation import IsolationError, Launch
from .podexec import V4, PodExec

# Runs in the pod: connects to localhost:PORT (IPv4, then IPv6, as the kubelet tries) and
# relays stdin → socket, socket → stdout; a failure to connect is one line on stderr.
RELAY = r"""
import os, socket, sys, threading
port = int(sys.argv[1])
errors = []
for host in ("127.0.0.1", "::1"):
    try:
        conn = socket.create_connection((host, port))
        break
    except OSError as exc:
        errors.append(f"{'IPv4' if host[0] == '1' else 'IPv6'}: dial {host} port {port}: "
                      f"connect: {(exc.strerror or str(exc)).lower()}")
else:
    sys.stderr.write(f"failed to connect to localhost:{port} inside the pod's network "
                     f"namespace, {' '.join(errors)}")
    sys.exit(1)
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = conn.recv(65536)
    if not data:
        break
    os.write(1, data)
"""
SPDY = "portforward.k8s.io"
MAX_PORTS = 64  # channel numbers are one byte: 2 per port


def parse_ports(query: Any) -> list[int]:
    """The ports asked for (`ports=80,8080` or repeated `ports`/`port`), each 1-65535."""
    values = [*query.getall("ports", []), *query.getall("port", [])]
    ports: list[int] = []
    for value in values:
        for part in str(value).split(","):
            try:
                port = int(part.strip())
            except ValueError:
                raise errors.bad_request(f"invalid port {part.strip()!r}") from None
            if not 0 < port < 65536:
                raise errors.bad_request(f"port {port} must be between 1 and 65535")
            if port in ports:
                raise errors.bad_request(f"port {port} is asked for twice")
            ports.append(port)
    if not ports:
        raise errors.bad_request('query parameter "ports" is required (e.g. ports=8080)')
    if len(ports) > MAX_PORTS:
        raise errors.bad_request(f"at most {MAX_PORTS} ports may be forwarded at once")
    return ports


class PodPortForward:
    """The `pods/portforward` handler; shares exec's admission (RBAC, phase, isolation)."""

    def __init__(self, pod_exec: PodExec) -> None:
        self.exec = pod_exec
        self.isolation = pod_exec.isolation

    async def handle(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        pod = self.exec.api.get(req.rt, req.namespace, req.name)
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        if V4 not in offered:
            raise errors.bad_request(
                f'pod "{req.name}": the ClusterCord sandbox forwards ports over WebSocket '
                f"({V4}, as the official Python client's kubernetes.stream.portforward "
                "speaks it), not over SPDY (kubectl port-forward); use "
                "kubernetes.stream.portforward, or kubectl exec to reach the port from "
                "inside the pod"
            )
        ports = parse_ports(request.query)
        self.exec.admit(request, req, user, pod, "portforward")
        if self.isolation.host_exec:
            raise ApiError(
                400,
                "BadRequest",
                "the ClusterCord sandbox does not forward ports with --unsafe-host-exec: "
                "unisolated pods have no network of their own, and a forward would reach "
                "this machine's own services",
            )
        # A port belongs to the pod (its containers share one network): the relay runs as
        # its first container's process, with its limits.
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        ws = web.WebSocketResponse(protocols=(V4,), autoping=True)
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required (pods/portforward speaks WebSocket)")
        await ws.prepare(request)
        forward = _Forward(ws, ports)
        await forward.open()
        launches = []
        try:
            for index, port in enumerate(ports):
                command = ["python3", "-c", RELAY, str(port)]
                try:
                    launch = await self.isolation.launch(
                        pod, container, command, False, self.exec.config
                    )
                except (FileNotFoundError, IsolationError, OSError) as exc:
                    await forward.error(index, f"the port-forward relay could not start: {exc}")
                    continue
                launches.append(launch)
                await forward.start(index, launch)
            await forward.run()
        finally:
            forward.stop()
            for launch in launches:
                if launch.cleanup is not None:
                    launch.cleanup()
        return ws


class _Forward:
    """One WebSocket's ports: a relay process per port, frames to and from each."""

    def __init__(self, ws: web.WebSocketResponse, ports: list[int]) -> None:
        self.ws = ws
        self.ports = ports
        self.relays: dict[int, tuple[asyncio.subprocess.Process, Launch]] = {}
        self.tasks: list[asyncio.Future[None]] = []

    async def open(self) -> None:
        """Each channel's first frame names its port (2 bytes, little-endian)."""
        for index, port in enumerate(self.ports):
            for channel in (2 * index, 2 * index + 1):
                await self._send(channel, port.to_bytes(2, "little"))

    async def start(self, index: int, launch: Launch) -> None:
        process = await asyncio.create_subprocess_exec(
            *launch.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=launch.cwd,
            env=launch.env,
            start_new_session=True,
            preexec_fn=launch.preexec,
            pass_fds=launch.pass_fds,
        )
        self.relays[index] = (process, launch)
        self.tasks.append(asyncio.ensure_future(self._relay_out(index, process)))

    async def _relay_out(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None and process.stderr is not None
        while chunk := await process.stdout.read(64 * 1024):
            await self._send(2 * index, chunk)
        problem = (await process.stderr.read()).decode(errors="replace").strip()
        if await process.wait() != 0 and problem:
            port = self.ports[index]
            await self.error(
                index, f"an error occurred forwarding {port} -> {port}: {problem.splitlines()[-1]}"
            )

    async def error(self, index: int, message: str) -> None:
        await self._send(2 * index + 1, message.encode())

    async def run(self) -> None:
        """Relays until every port's connection has ended, or the client goes."""
        reader = asyncio.ensure_future(self._read_socket())
        relays = asyncio.gather(*self.tasks) if self.tasks else None
        try:
            waiting: set[asyncio.Future[Any]] = {reader}
            if relays is not None:
                waiting.add(relays)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            with contextlib.suppress(ConnectionError):
                await self.ws.close()

    async def _read_socket(self) -> None:
        async for message in self.ws:
            if message.type == WSMsgType.BINARY:
                payload: bytes = message.data
            elif message.type == WSMsgType.TEXT:  # read as the API server reads text frames
                payload = message.data.encode()
            else:
                continue
            if len(payload) < 2 or payload[0] % 2:
                continue  # an empty frame, or one on an error channel: nothing to write
            relay = self.relays.get(payload[0] // 2)
            if relay is not None and relay[0].stdin is not None:
                with contextlib.suppress(ConnectionError):
                    relay[0].stdin.write(payload[1:])
                    await relay[0].stdin.drain()

    async def _send(self, channel: int, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_bytes(bytes([channel]) + data)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for process, launch in self.relays.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    launch.kill(process.pid)
