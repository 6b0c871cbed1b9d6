"""`pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) in the pod's namespaces.

The sandbox runs no images, so `kubectl exec POD -- CMD` runs the host's CMD, but inside the
pod's own Linux namespaces (see `isolation`: its PID 1, network, hostname, a private
filesystem view of read-only system directories, its user, no capabilities unless granted,
its limits). The process

- gets a clean environment: `PATH`, `HOME`, `HOSTNAME`, `TERM` (with a tty) and the
  container's literal `env` values; nothing of the sandbox's own environment (tokens, keys)
  leaks into it;
- gets a pseudo-terminal (of the pod's own /dev/pts) when `tty=true`, so an interactive
  `kubectl exec -it POD -- sh` works (resize messages on channel 4 resize it);
- is killed (its process group, and in a pod every process it started) when the WebSocket
  closes.

Where the host cannot make namespaces, exec is refused with a `Status` saying why; with
`--unsafe-host-exec` the command runs as a local process in a temporary directory instead.

`pods/attach` to an ephemeral container (what `kubectl debug -it` does) runs that container's
command (`sh` without one) the same way, in the target pod's namespaces; a regular container
has no process to attach to (400).

Channels, as in the kubelet's stream protocol: 0 stdin, 1 stdout, 2 stderr, 3 error (a
`Status` when the command ends: Success, or Failure with reason `NonZeroExitCode` and a cause
`ExitCode`), 4 resize; v5 adds 255, "close this stream" (kubectl's end of stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import termios
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from clustercord_sdk.rbac import Attributes, UserInfo

from . import errors
from .errors import ApiError
from .isolation import Isolation, IsolationError, Launch
from .objects import ObjectAPI
from .podlogs import container_of, default_container
from .resource_request import query_flag

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

Authorize = Callable[[UserInfo, Attributes], None]


class PodExec:
    """The `pods/exec` and `pods/attach` handlers."""

    def __init__(
        self,
        api: ObjectAPI,
        authorize: Authorize,
        grace: float = 0.5,
        isolation: Isolation | None = None,
    ) -> None:
        self.api = api
        self.authorize = authorize
        self.grace = grace  # how long to collect output after the process exits
        self.isolation = isolation or Isolation()

    async def attach(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        """Attaching to an ephemeral container (`kubectl debug -it`) starts its command.

        A regular container's main process does not exist in the sandbox: that is a 400.
        """
        pod = self.api.get(req.rt, req.namespace, req.name)
        name = request.query.get("container") or default_container(pod)
        container = container_of(pod, name)
        ephemeral = (pod.get("spec") or {}).get("ephemeralContainers") or []
        if not any(c.get("name") == name for c in ephemeral):
            raise errors.bad_request(
                "the ClusterCord sandbox runs no container processes to attach to; "
                "use kubectl exec instead (or kubectl debug -it for an ephemeral container)"
            )
        command = [*(container.get("command") or ["sh"]), *(container.get("args") or [])]
        return await self._run(request, req, user, pod, container, command, "attach")

    async def handle(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            raise errors.bad_request("you must specify at least 1 command")
        pod = self.api.get(req.rt, req.namespace, req.name)
        container = container_of(pod, request.query.get("container") or default_container(pod))
        return await self._run(request, req, user, pod, container, command, "exec")

    async def _run(
        self,
        request: web.Request,
        req: Any,
        user: UserInfo,
        pod: dict[str, Any],
        container: dict[str, Any],
        command: list[str],
        subresource: str,
    ) -> web.StreamResponse:
        self.admit(request, req, user, pod, subresource)
        ws = web.WebSocketResponse(protocols=(V5, V4), autoping=True)
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required (pods/exec speaks WebSocket)")
        await ws.prepare(request)
        if ws.ws_protocol not in (V5, V4):
            await ws.close(message=b"unsupported stream protocol")
            return ws
        query = request.query
        session = _Session(ws, ws.ws_protocol == V5, query_flag(query, "tty"), self.grace)
        try:
            launch = await self.isolation.launch(pod, container, command, session.tty, self.config)
        except FileNotFoundError as exc:
            await session.status(_failure(command, exc))
            return ws
        except (IsolationError, OSError) as exc:
            await session.status(_internal(f"the pod's namespaces could not be made: {exc}"))
            return ws
        await session.run(command, launch, stdin=query_flag(query, "stdin"))
        return ws

    def admit(
        self, request: web.Request, req: Any, user: UserInfo, pod: dict[str, Any], subresource: str
    ) -> None:
        """What a stream into a pod (exec, attach, portforward) needs: GET or POST, `create`
        on the subresource, a running pod, and pods the machine can isolate."""
        if request.method not in ("GET", "POST"):
            raise errors.method_not_supported(
                f"{request.method} is not supported on pods/{subresource}"
            )
        # An upgraded GET is authorized as `get`; the API server also requires `create`.
        self.authorize(
            user,
            Attributes(
                "create",
                resource="pods",
                subresource=subresource,
                name=req.name,
                namespace=req.namespace,
                path=request.path,
            ),
        )
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase != "Running":
            raise errors.bad_request(
                f"cannot {subresource} into a container in a {phase.lower()} pod; "
                f"current phase is {phase}"
            )
        refusal = self.isolation.refusal()
        if refusal is not None:
            raise ApiError(500, "InternalError", refusal)

    def config(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap or Secret of the pod's namespace, for its volumes (None if missing)."""
        rt = self.api.registry.lookup("", "v1", plural)
        if rt is None or not name:
            return None
        try:
            return self.api.get(rt, namespace, name)
        except ApiError:
            return None


class _Session:
    """One exec: a process wired to a WebSocket's channels."""

    def __init__(self, ws: web.WebSocketResponse, v5: bool, tty: bool, grace: float) -> None:
        self.ws, self.v5, self.tty, self.grace = ws, v5, tty, grace
        self.process: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self.launch_kill: Callable[[int], None] = lambda pid: None

    async def run(self, command: list[str], launch: Launch, stdin: bool) -> None:
        try:
            await self._run(command, launch, stdin)
        finally:
            if launch.cleanup is not None:
                launch.cleanup()

    async def _run(self, command: list[str], launch: Launch, stdin: bool) -> None:
        self.launch_kill = launch.kill
        for note in launch.notes:
            await self._send(STDERR, f"{note}\n".encode())
        try:
            outputs = await self._spawn(launch, stdin)
        except OSError as exc:
            await self.status(_failure(command, exc))
            return
        reader = asyncio.ensure_future(self._read_socket())
        try:
            assert self.process is not None
            waiter = asyncio.ensure_future(self.process.wait())
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():  # the client went away first
                return
            # Output the process wrote just before exiting is still in flight.
            await asyncio.wait(outputs, timeout=self.grace)
            await self.status(_exit_status(command, waiter.result()))
        finally:
            reader.cancel()
            for task in outputs:
                task.cancel()
            self._kill()
            if self.master is not None:
                asyncio.get_running_loop().remove_reader(self.master)
                os.close(self.master)

    async def _spawn(self, launch: Launch, stdin: bool) -> list[asyncio.Future[None]]:
        if self.tty:
            master, slave = launch.open_pty()

            def preexec() -> None:
                if launch.controlling_terminal:
                    _controlling_terminal()
                if launch.preexec is not None:
                    launch.preexec()

            try:
                self.process = await asyncio.create_subprocess_exec(
                    *launch.argv,
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    cwd=launch.cwd,
                    env=launch.env,
                    start_new_session=True,
                    preexec_fn=preexec,
                    pass_fds=launch.pass_fds,
                )
            except OSError:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self.master = master
            os.set_blocking(master, False)
            return [asyncio.ensure_future(self._pump_pty(master))]
        self.process = await asyncio.create_subprocess_exec(
            *launch.argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=launch.cwd,
            env=launch.env,
            start_new_session=True,
            preexec_fn=launch.preexec,
            pass_fds=launch.pass_fds,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        return [
            asyncio.ensure_future(self._pump(self.process.stdout, STDOUT)),
            asyncio.ensure_future(self._pump(self.process.stderr, STDERR)),
        ]

    async def _pump(self, stream: asyncio.StreamReader, channel: int) -> None:
        while chunk := await stream.read(32 * 1024):
            await self._send(channel, chunk)

    async def _pump_pty(self, master: int) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 32 * 1024)
            except OSError:  # EIO: every slave end is closed, the session is over
                data = b""
            if not data:
                loop.remove_reader(master)
            chunks.put_nowait(data)

        loop.add_reader(master, readable)
        while chunk := await chunks.get():
            await self._send(STDOUT, chunk)

    async def _read_socket(self) -> None:
        async for message in self.ws:
            # The API server reads a text frame's UTF-8 bytes as it reads a binary frame's
            # (the official Python client up to v36 sends stdin as text: chr(0) + data).
            if message.type == WSMsgType.BINARY:
                payload: bytes = message.data
            elif message.type == WSMsgType.TEXT:
                payload = message.data.encode()
            else:
                continue
            if not payload:
                continue
            channel, data = payload[0], payload[1:]
            if channel == STDIN:
                self._write_stdin(data)
            elif channel == RESIZE:
                self._resize(data)
            elif channel == CLOSE and self.v5 and data[:1] == bytes([STDIN]):
                self._close_stdin()

    def _write_stdin(self, data: bytes) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, data)
        elif self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(data)

    def _close_stdin(self) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"\x04")  # end of input on a terminal is ^D
        elif self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()

    def _resize(self, data: bytes) -> None:
        if self.master is None:
            return
        try:
            size = json.loads(data)
            rows, cols = int(size.get("Height", 0)), int(size.get("Width", 0))
        except (ValueError, AttributeError):
            return  # a malformed resize is ignored, as the kubelet does
        if rows > 0 and cols > 0:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def _send(self, channel: int, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_bytes(bytes([channel]) + data)

    async def status(self, status: dict[str, Any]) -> None:
        # Compact, as the kubelet's `json.Marshal` writes it.
        await self._send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        await self.ws.close()

    def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.launch_kill(self.process.pid)


def _controlling_terminal() -> None:
    """In the child, after setsid: make the pty (its stdin) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _exit_status(command: list[str], code: int) -> dict[str, Any]:
    if code < 0:
        code = 128 - code  # killed by a signal: the shell's convention, as the kubelet reports
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _failure(command: list[str], exc: OSError) -> dict[str, Any]:
    """The command could not start (e.g. not found): an error like the runtime's."""
    name = command[0] if command else ""
    return _internal(f'failed to exec in container: exec: "{name}": {exc.strerror or exc}')


def _internal(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    }
