"""`pods/log`: believable, deterministic container logs for a cluster that runs no containers.

The sandbox starts no processes for pods, so a container's log is made of two parts:

- boot lines derived from the container (name, image, ports) and the time its status says it
  started, the same on every read, so tests and demos can rely on them;
- lines appended later by the sandbox itself (`PodLogs.append`: controllers, tests, demos),
  kept in memory per container (bounded), never in the pod object.

A read honours the options of the real endpoint: `container`, `tailLines`, `sinceSeconds`,
`sinceTime`, `timestamps`, `limitBytes`, `previous` (400 when there was no earlier run) and
`follow` (the response stays open and appended lines are streamed until the pod goes away or
the client hangs up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from clustercord_sdk.rbac import UserInfo

from . import errors
from .errors import ApiError
from .objects import ObjectAPI
from .registry import ResourceType
from .resource_request import query_flag

Line = tuple[datetime, str]

# How a few well-known images introduce themselves, so `kubectl logs` looks familiar.
_IMAGE_GREETINGS: dict[str, tuple[str, ...]] = {
    "nginx": (
        "/docker-entrypoint.sh: Configuration complete; ready for start up",
        "nginx: start worker processes",
    ),
    "redis": ("Server initialized", "Ready to accept connections tcp"),
    "postgres": ("database system is ready to accept connections",),
    "busybox": ("sh: waiting for commands",),
    # The homelab fixture's images.
    "eclipse-mosquitto": ("mosquitto version 2.0.20 running",),
    "home-assistant": ("Home Assistant initialized",),
    "grafana": ('logger=http.server msg="HTTP Server Listen" address=[::]:3000',),
    "minecraft-server": ('Done! For help, type "help"',),
    "jellyfin": ("Startup complete",),
    "node-exporter": ('msg="Listening on" address=[::]:9100',),
    "prometheus": ('msg="Server is ready to receive web requests."',),
}


@dataclass
class _Stream:
    """One container's appended lines and a signal for followers."""

    lines: deque[Line]
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    total: int = 0  # lines ever appended, so a follower knows what it missed

    def since(self, seen: int) -> list[Line]:
        """Lines appended after the first `seen`; those a full deque dropped are lost."""
        missed = min(self.total - seen, len(self.lines))
        return list(self.lines)[len(self.lines) - missed :] if missed > 0 else []


@dataclass(frozen=True)
class LogOptions:
    """The query parameters of `GET .../pods/NAME/log`, validated."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since: datetime | None = None
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, query: Any, now: datetime) -> LogOptions:
        since: datetime | None = None
        since_seconds = _int_option(query, "sinceSeconds", minimum=1)
        if since_seconds is not None:
            since = now - timedelta(seconds=since_seconds)
        if query.get("sinceTime"):
            if since is not None:
                raise errors.bad_request(
                    "at most one of sinceTime or sinceSeconds may be specified"
                )
            since = _parse_time(query["sinceTime"], "sinceTime")
        return cls(
            container=query.get("container", ""),
            follow=query_flag(query, "follow"),
            previous=query_flag(query, "previous"),
            timestamps=query_flag(query, "timestamps"),
            tail_lines=_int_option(query, "tailLines", minimum=0),
            since=since,
            limit_bytes=_int_option(query, "limitBytes", minimum=1),
        )


class PodLogs:
    """The sandbox's log store and its `pods/log` handler."""

    def __init__(
        self,
        api: ObjectAPI,
        closing: Callable[[], bool] = lambda: False,
        max_lines: int = 2000,
        max_streams: int = 10_000,
        poll_interval: float = 0.5,
    ) -> None:
        self.api = api
        self._closing = closing
        self.max_lines = max_lines
        self.max_streams = max_streams
        self.poll_interval = poll_interval
        self._streams: OrderedDict[tuple[str, str, str, str], _Stream] = OrderedDict()

    # -- the store -------------------------------------------------------------------------
    def append(
        self, namespace: str, pod: str, container: str, line: str, at: datetime | None = None
    ) -> None:
        """Adds `line` (or several, newline-separated) to a container's log; followers see it.

        Must run on the sandbox's event loop (followers wait on an asyncio event).
        """
        obj = self.api.get(_pods(self.api), namespace, pod)
        container_of(obj, container)  # an unknown container is an error, not a new log
        stream = self._stream(obj, container)
        stamp = at or datetime.now(UTC)
        for text in line.splitlines() or [""]:
            stream.lines.append((stamp, text))
            stream.total += 1
        stream.changed.set()
        stream.changed = asyncio.Event()

    def lines(self, pod: dict[str, Any], container: str, previous: bool = False) -> list[Line]:
        """Every line of a container's current (or previous) run, oldest first."""
        spec = container_of(pod, container)
        status = _container_status(pod, container)
        if previous:
            terminated = ((status or {}).get("lastState") or {}).get("terminated")
            if not terminated:
                raise errors.bad_request(
                    f'previous terminated container "{container}" in pod '
                    f'"{pod["metadata"]["name"]}" not found'
                )
            started = _parse_time(terminated.get("startedAt"), "startedAt")
            ended = _parse_time(terminated.get("finishedAt") or terminated["startedAt"], "at")
            code, reason = terminated.get("exitCode", 0), terminated.get("reason", "Error")
            return [
                *boot_lines(pod, spec, started),
                (ended, f"{spec['name']}: exited with code {code} ({reason})"),
            ]
        started = _started_at(pod, container, status)
        appended = self._streams.get(self._key(pod, container))
        return boot_lines(pod, spec, started) + list(appended.lines if appended else ())

    def _key(self, pod: dict[str, Any], container: str) -> tuple[str, str, str, str]:
        meta = pod["metadata"]
        return (meta.get("namespace", ""), meta["name"], meta.get("uid", ""), container)

    def _stream(self, pod: dict[str, Any], container: str) -> _Stream:
        key = self._key(pod, container)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(deque(maxlen=self.max_lines))
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)  # the least recently written container
        self._streams.move_to_end(key)
        return stream

    # -- the endpoint ----------------------------------------------------------------------
    async def handle(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        """`GET /api/v1/namespaces/NS/pods/NAME/log` as text/plain (streamed with follow)."""
        if request.method != "GET":
            raise errors.method_not_supported(f"{request.method} is not supported on pods/log")
        now = datetime.now(UTC)
        options = LogOptions.from_query(request.query, now)
        pod = self.api.get(req.rt, req.namespace, req.name)
        container = options.container or default_container(pod)
        lines = self.lines(pod, container, options.previous)
        if options.since is not None:
            lines = [line for line in lines if line[0] >= options.since]
        if options.tail_lines is not None:
            lines = lines[len(lines) - options.tail_lines :] if options.tail_lines else []
        body = render(lines, options.timestamps)
        if not options.follow or options.previous:
            if options.limit_bytes is not None:
                body = body[: options.limit_bytes]
            return web.Response(body=body, content_type="text/plain")
        return await self._follow(request, pod, container, body, options)

    async def _follow(
        self,
        request: web.Request,
        pod: dict[str, Any],
        container: str,
        first: bytes,
        options: LogOptions,
    ) -> web.StreamResponse:
        # Counted before the first await, so a line appended meanwhile is not lost.
        stream = self._stream(pod, container)
        seen = stream.total
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        budget = options.limit_bytes
        pending = first
        meta = pod["metadata"]
        while True:
            if budget is not None:
                pending = pending[:budget]
                budget -= len(pending)
            if pending:
                await response.write(pending)
            if budget == 0 or self._closing():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.changed.wait(), self.poll_interval)
            current = self.api.store.get("", "pods", meta.get("namespace", ""), meta["name"])
            if current is None or current["metadata"].get("uid") != meta.get("uid"):
                break  # the pod is gone: a real follow ends when the container does
            pending = render(stream.since(seen), options.timestamps)
            seen = stream.total
        await response.write_eof()
        return response


def boot_lines(pod: dict[str, Any], container: dict[str, Any], started: datetime) -> list[Line]:
    """The deterministic lines a container "printed" when it started."""
    name = container["name"]
    image = str(container.get("image", ""))
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    meta = pod["metadata"]
    node = (pod.get("spec") or {}).get("nodeName", "")
    texts = [
        f"Starting {name} ({image}) in pod {meta.get('namespace', '')}/{meta['name']}"
        + (f" on node {node}" if node else ""),
        *_IMAGE_GREETINGS.get(base, ()),
    ]
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if command:
        texts.append(f"{name}: running {' '.join(str(c) for c in command)}")
    for port in container.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        texts.append(f"{name}: listening on {protocol.lower()} :{port.get('containerPort')}")
    texts.append(f"{name}: ready")
    return [(started + timedelta(milliseconds=5 * i), text) for i, text in enumerate(texts)]


def render(lines: Iterable[Line], timestamps: bool) -> bytes:
    """Lines as the kubelet serves them: newline-terminated, optionally RFC 3339 stamped."""
    out = []
    for stamp, text in lines:
        prefix = stamp.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") if timestamps else ""
        out.append(f"{prefix}{text}\n")
    return "".join(out).encode()


# -- helpers -------------------------------------------------------------------------------


def _pods(api: ObjectAPI) -> ResourceType:
    rt = api.registry.lookup("", "v1", "pods")
    assert rt is not None
    return rt


def default_container(pod: dict[str, Any]) -> str:
    """kubectl names the container; other clients get the only one or a clear 400."""
    containers = [str(c["name"]) for c in (pod.get("spec") or {}).get("containers") or []]
    if len(containers) == 1:
        return containers[0]
    raise errors.bad_request(
        f"a container name must be specified for pod {pod['metadata']['name']}, "
        f"choose one of: [{' '.join(containers)}]"
    )


def container_of(pod: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if container.get("name") == name:
                return dict(container)
    raise errors.bad_request(f"container {name} is not valid for pod {pod['metadata']['name']}")


def _container_status(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == name:
                return dict(entry)
    return None


def _started_at(pod: dict[str, Any], container: str, status: dict[str, Any] | None) -> datetime:
    state = (status or {}).get("state") or {}
    started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
    if not started:
        reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
        raise errors.bad_request(
            f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
            f"{reason}"
        )
    return _parse_time(started, "startedAt")


def _parse_time(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise errors.bad_request(f"{name} must be an RFC 3339 time, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_option(query: Any, name: str, minimum: int) -> int | None:
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer, not {query[name]!r}") from None
    if value < minimum:
        raise ApiError(
            422,
            "Invalid",
            f"PodLogOptions is invalid: {name}: Invalid value: {value}: "
            f"must be greater than or equal to {minimum}",
        )
    return value
