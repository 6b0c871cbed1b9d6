"""`pods/portforward` into the pod's own network: the official Python client's WebSocket
protocol and kubectl's SPDY tunneled in a WebSocket.

A sandbox pod's processes (what `kubectl exec` runs there) live in the pod's network
namespace (`isolation`), so a server started in a pod listens on the pod's loopback, which
nothing on the host can reach. A port-forward relays each connection through a small relay
process that joins the pod's namespaces as exec does (the pod's user, its limits) and connects
to `localhost:PORT` there, as the kubelet's port-forward connects inside the pod's network
namespace.

Two protocols, as the kubelet (behind the API server) speaks them:

- WebSocket `v4.channel.k8s.io` (the official Python client's `kubernetes.stream.portforward`):
  `?ports=8080,9090`; per port `i` a data channel `2i` and an error channel `2i+1`, each
  opened by a frame of the channel byte and the port as 2 bytes little-endian; one connection
  per port, made when the WebSocket opens; a failure to connect is text on the error channel;
- SPDY/3.1 streams tunneled in a WebSocket (`SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+
  sends first; `spdy.py`): per local connection an error and a data stream with the port in
  their headers. (kubectl's fallback, a plain SPDY upgrade, is not served.)

Where pods cannot be isolated, port-forward is refused as exec is; with `--unsafe-host-exec`
too: unisolated pods have no network of their own, and a forward would reach the machine's
own services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from clustercord_sdk.rbac import UserInfo

from . import errors, spdy
from .errors import ApiError
from .isolation import IsolationError, Launch
from .podexec import V4, PodExec

log = logging.getLogger(__name__)
Relay = tuple[asyncio.subprocess.Process, Launch]
# Starts a relay to a port of the pod: the process, or why it could not start.
StartRelay = Callable[[int], Awaitable[Relay | str]]

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
TUNNEL = "SPDY/3.1+portforward.k8s.io"  # kubectl's SPDY in a WebSocket
MAX_PORTS = 64  # channel numbers are one byte: 2 per port
MAX_PENDING = 256  # kubectl requests with one of their two streams open (a hostile client's)


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
        self.exec.admit(request, req, user, pod, "portforward")  # RBAC first, as the API server
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        protocol = next((p for p in (TUNNEL, V4) if p in offered), None)
        if protocol is None:
            raise errors.bad_request(
                f'pod "{req.name}": the ClusterCord sandbox forwards ports over WebSocket: '
                f"{V4} (the official Python client's kubernetes.stream.portforward) or "
                f"{TUNNEL} (kubectl 1.31+); not over a plain SPDY upgrade"
            )
        ports = parse_ports(request.query) if protocol == V4 else []
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

        async def start(port: int) -> Relay | str:
            command = ["python3", "-c", RELAY, str(port)]
            try:
                launch = await self.isolation.launch(
                    pod, container, command, False, self.exec.config
                )
            except (FileNotFoundError, IsolationError, OSError) as exc:
                return f"the port-forward relay could not start: {exc}"
            try:
                return await _spawn(launch), launch
            except OSError as exc:
                if launch.cleanup is not None:
                    launch.cleanup()
                return f"the port-forward relay could not start: {exc}"

        ws = web.WebSocketResponse(protocols=(protocol,), autoping=True)
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required (pods/portforward speaks WebSocket)")
        await ws.prepare(request)
        if protocol == TUNNEL:
            await _SpdyForward(ws, start, f"{req.namespace}/{req.name}").run()
            return ws
        forward = _Forward(ws, ports, f"{req.namespace}/{req.name}")
        await forward.open()
        try:
            for index, port in enumerate(ports):
                relay = await start(port)
                if isinstance(relay, str):
                    await forward.error(index, relay)
                else:
                    forward.add(index, relay)
            await forward.run()
        finally:
            forward.stop()
        return ws


async def _spawn(launch: Launch) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
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


def _end(process: asyncio.subprocess.Process, launch: Launch) -> None:
    """Kills a relay (and what it started) and releases what its launch holds."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            launch.kill(process.pid)
    if launch.cleanup is not None:
        with contextlib.suppress(OSError):
            launch.cleanup()


class _Forward:
    """One WebSocket's ports (`v4.channel.k8s.io`): a relay per port, frames to and from it."""

    def __init__(self, ws: web.WebSocketResponse, ports: list[int], where: str) -> None:
        self.ws = ws
        self.ports = ports
        self.where = where  # "namespace/name", for error messages
        self.relays: dict[int, Relay] = {}
        self.tasks: list[asyncio.Future[None]] = []

    async def open(self) -> None:
        """Each channel's first frame names its port (2 bytes, little-endian)."""
        for index, port in enumerate(self.ports):
            for channel in (2 * index, 2 * index + 1):
                await self._send(channel, port.to_bytes(2, "little"))

    def add(self, index: int, relay: Relay) -> None:
        self.relays[index] = relay
        self.tasks.append(asyncio.ensure_future(self._relay_out(index, relay[0])))

    async def _relay_out(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None and process.stderr is not None
        while chunk := await process.stdout.read(64 * 1024):
            await self._send(2 * index, chunk)
        problem = (await process.stderr.read()).decode(errors="replace").strip()
        if await process.wait() != 0 and problem:
            await self.error(index, _failure(self.ports[index], self.where, problem))

    async def error(self, index: int, message: str) -> None:
        await self._send(2 * index + 1, message.encode())

    async def run(self) -> None:
        """Relays until every port's connection has ended, or the client goes."""
        reader = asyncio.ensure_future(self._read_socket())
        waiting: set[asyncio.Future[Any]] = {reader}
        if self.tasks:
            waiting.add(asyncio.gather(*self.tasks))
        try:
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
            _end(process, launch)


def _failure(port: int, where: str, problem: str) -> str:
    """The kubelet's words for a forward that failed in the pod."""
    return f"error forwarding port {port} to pod {where}: {problem.splitlines()[-1]}"


class _SpdyForward:
    """kubectl's port-forward: SPDY streams tunneled in the WebSocket; per kubectl request
    (`requestid`) an error and a data stream, and a relay once both are open."""

    def __init__(self, ws: web.WebSocketResponse, start: StartRelay, where: str) -> None:
        self.ws = ws
        self.start = start
        self.where = where  # "namespace/name", for error messages
        self.framer = spdy.Framer()
        self.requests: dict[str, dict[str, int]] = {}
        self.relays: dict[int, Relay] = {}
        self.tasks: list[asyncio.Future[None]] = []

    async def run(self) -> None:
        try:
            async for message in self.ws:
                if message.type == WSMsgType.BINARY:
                    payload: bytes = message.data
                elif message.type == WSMsgType.TEXT:
                    payload = message.data.encode()
                else:
                    continue
                for frame in self.framer.feed(payload):
                    await self._on(frame)
        except spdy.SpdyError as exc:
            log.info("port-forward for %s ended: %s", self.where, exc)
        finally:
            self.stop()
            with contextlib.suppress(ConnectionError):
                await self.ws.close()

    async def _on(self, frame: spdy.Frame) -> None:
        if frame.kind == spdy.PING:
            await self._send(self.framer.ping(frame.value))
        elif frame.kind == spdy.SYN_STREAM:
            await self._send(self.framer.syn_reply(frame.stream))
            await self._open(frame)
        elif frame.kind == 0:
            relay = self.relays.get(frame.stream)
            stdin = relay[0].stdin if relay is not None else None
            if stdin is not None and not stdin.is_closing():
                with contextlib.suppress(ConnectionError):
                    if frame.data:
                        stdin.write(frame.data)
                        await stdin.drain()
                    if frame.fin:
                        stdin.close()  # kubectl's side is done: the relay half-closes
        elif frame.kind == spdy.RST_STREAM and frame.stream in self.relays:
            process, launch = self.relays.pop(frame.stream)
            _end(process, launch)
        elif frame.kind == spdy.GOAWAY:
            await self.ws.close()

    async def _open(self, frame: spdy.Frame) -> None:
        kind, request = frame.header("streamtype"), frame.header("requestid")
        if kind not in ("error", "data"):
            await self._send(self.framer.rst_stream(frame.stream, 1))  # PROTOCOL_ERROR
            return
        if request not in self.requests and len(self.requests) >= MAX_PENDING:
            raise spdy.SpdyError(f"more than {MAX_PENDING} half-opened port-forward requests")
        pair = self.requests.setdefault(request, {})
        pair[kind] = frame.stream
        if "error" not in pair or "data" not in pair:
            return
        del self.requests[request]
        error, data = pair["error"], pair["data"]
        try:
            port = int(frame.header("port"))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await self._fail(error, data, f'invalid port header "{frame.header("port")}"')
            return
        relay = await self.start(port)
        if isinstance(relay, str):
            await self._fail(error, data, _failure(port, self.where, relay))
            return
        self.relays[data] = relay
        self.tasks.append(asyncio.ensure_future(self._pump(port, error, data, relay[0])))

    async def _pump(
        self, port: int, error: int, data: int, process: asyncio.subprocess.Process
    ) -> None:
        assert process.stdout is not None and process.stderr is not None
        while chunk := await process.stdout.read(64 * 1024):
            await self._send(self.framer.data(data, chunk))
        problem = (await process.stderr.read()).decode(errors="replace").strip()
        message = b""
        if await process.wait() != 0 and problem:
            message = _failure(port, self.where, problem).encode()
        await self._send(self.framer.data(error, message, fin=True))
        await self._send(self.framer.data(data, b"", fin=True))
        self.relays.pop(data, None)

    async def _fail(self, error: int, data: int, message: str) -> None:
        await self._send(self.framer.data(error, message.encode(), fin=True))
        await self._send(self.framer.data(data, b"", fin=True))

    async def _send(self, frame: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_bytes(frame)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for process, launch in self.relays.values():
            _end(process, launch)
        self.relays.clear()
