"""Cluster events for plugins: watches of pods and nodes turned into typed events.

Per cluster, one watch of pods and one of nodes, each:
- starts from a list (its state is remembered, no events are emitted for it: a restart of
  the bot must not replay every running pod as ``pod:start``);
- resumes from the last resourceVersion it saw when the stream ends;
- relists when the server answers 410 Gone (the version is too old), emitting only the
  changes the relist reveals;
- reconnects with exponential backoff after failures, without blocking other clusters.

Derived events: ``pod:start`` (a pod became Running with every container ready),
``pod:crash`` (CrashLoopBackOff, OOMKilled or a non-zero exit, once per restart),
``pod:delete``, ``node:not-ready`` and ``node:ready``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clustercord.kubernetes.service import KubernetesService
from clustercord_sdk.events import Event

log = logging.getLogger("clustercord.watches")
Publish = Callable[[Event], Awaitable[int]]


@dataclass(frozen=True)
class PodState:
    running: bool
    restarts: int
    crash: str | None


def pod_state(pod: dict[str, Any]) -> PodState:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = bool(containers) and all(c.get("ready") for c in containers)
    return PodState(
        status.get("phase") == "Running" and ready,
        sum(c.get("restartCount", 0) for c in containers),
        crash_reason(containers),
    )


def crash_reason(containers: list[dict[str, Any]]) -> str | None:
    for container in containers:
        state = container.get("state") or {}
        waiting = (state.get("waiting") or {}).get("reason")
        if waiting == "CrashLoopBackOff":
            last = (container.get("lastState") or {}).get("terminated") or {}
            return last.get("reason") if last.get("reason") == "OOMKilled" else waiting
        terminated = (
            state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
        )
        if terminated.get("reason") == "OOMKilled":
            return "OOMKilled"
        if terminated.get("exitCode") not in (None, 0):
            return f"exit code {terminated['exitCode']}"
    return None


def node_ready(node: dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


class ClusterWatcher:
    def __init__(
        self,
        service: KubernetesService,
        cluster: str,
        publish: Publish,
        *,
        backoff: float = 1.0,
        stream_seconds: int = 60,
    ) -> None:
        self.service = service
        self.cluster = cluster
        self.publish = publish
        self.backoff = backoff
        self.stream_seconds = stream_seconds
        self.pods: dict[str, PodState] = {}
        self.nodes: dict[str, bool] = {}
        self.relists = 0

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._loop("pods", stop), self._loop("nodes", stop))

    async def _loop(self, kind: str, stop: asyncio.Event) -> None:
        delay = self.backoff
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    version, missed = await asyncio.to_thread(self._relist, kind)
                    for event in missed:
                        await self.publish(event)
                version = await self._stream(kind, version, stop)
                delay = self.backoff
            except Gone:
                version = None
                self.relists += 1
            except Exception as exc:  # the cluster is down or the stream broke: retry later
                if self.service.metrics is not None:
                    self.service.metrics.watch_reconnects.labels(self.cluster, kind).inc()
                log.warning(
                    "cluster %s: %s watch failed (%s); retrying in %.0f s",
                    self.cluster,
                    kind,
                    exc,
                    delay,
                )
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)

    def _relist(self, kind: str) -> tuple[str, list[Event]]:
        path = "/api/v1/pods" if kind == "pods" else "/api/v1/nodes"
        listing = self.service.request(self.cluster, "GET", path)
        fresh = not (self.pods if kind == "pods" else self.nodes)
        missed = []
        for obj in listing.get("items", []):
            # A relist after a 410 reveals changes the stream missed; the first list is the
            # starting state and announces nothing.
            missed += self._observe(kind, "MODIFIED" if not fresh else "SYNC", obj)
        if kind == "pods":
            seen = {p["metadata"]["uid"] for p in listing.get("items", [])}
            for uid in [u for u in self.pods if u not in seen]:
                del self.pods[uid]
        return str(listing["metadata"]["resourceVersion"]), missed

    async def _stream(self, kind: str, version: str, stop: asyncio.Event) -> str:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def hand_over(item: tuple[str, dict[str, Any]] | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: the kernel stopped while we waited
                cancel.set()

        def pump() -> None:
            try:
                for event in self._events(kind, version, cancel):
                    hand_over(event)
            except BaseException as exc:  # handed to the event loop, raised there
                hand_over(exc)
            else:
                hand_over(None)

        thread = threading.Thread(target=pump, name=f"watch-{self.cluster}-{kind}", daemon=True)
        thread.start()
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    getter.cancel()
                    return version
                stopper.cancel()
                item = getter.result()
                if item is None:
                    return version
                if isinstance(item, BaseException):
                    raise item
                event_type, obj = item
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if event_type != "BOOKMARK":
                    for event in self._observe(kind, event_type, obj):
                        await self.publish(event)
        finally:
            cancel.set()
            # The thread may stay blocked in its read until the stream times out; it is a
            # daemon and hands nothing over once cancelled. (Closing its socket from here
            # would block the event loop on urllib3's lock.)

    def _events(
        self, kind: str, version: str, cancel: threading.Event
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        # The stream is read as raw lines: the client's Watch.stream(deserialize=False)
        # fails with KeyError('raw_object') on an ERROR event, hiding the 410 to relist on.
        from kubernetes import client
        from kubernetes.watch.watch import iter_resp_lines

        api = client.CoreV1Api(self.service.client(self.cluster))
        function = api.list_pod_for_all_namespaces if kind == "pods" else api.list_node
        try:
            response = function(
                watch=True,
                resource_version=version,
                timeout_seconds=self.stream_seconds,
                allow_watch_bookmarks=True,
                _preload_content=False,
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 410:
                raise Gone() from None
            raise
        try:
            for line in iter_resp_lines(response):
                if cancel.is_set():
                    return
                event = json.loads(line)
                raw = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if raw.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(raw.get("message", "watch error"))
                yield event["type"], raw
        finally:
            response.close()
            response.release_conn()

    def _observe(self, kind: str, event_type: str, obj: dict[str, Any]) -> list[Event]:
        """Update the remembered state; return the events the change means."""
        meta = obj.get("metadata") or {}
        if kind == "nodes":
            name = meta.get("name", "")
            ready, was = node_ready(obj), self.nodes.get(name)
            if event_type == "DELETED":
                self.nodes.pop(name, None)
                return []
            self.nodes[name] = ready
            if event_type == "SYNC" or was == ready or (was is None and ready):
                return []
            return [self._event("node:ready" if ready else "node:not-ready", obj, {})]
        uid = meta.get("uid", "")
        if event_type == "DELETED":
            self.pods.pop(uid, None)
            return [self._event("pod:delete", obj, {})]
        state, before = pod_state(obj), self.pods.get(uid)
        self.pods[uid] = state
        if event_type == "SYNC":
            return []
        events = []
        if state.running and not (before and before.running):
            events.append(self._event("pod:start", obj, {}))
        if state.crash and (
            before is None or state.restarts > before.restarts or state.crash != before.crash
        ):
            events.append(
                self._event("pod:crash", obj, {"reason": state.crash, "restarts": state.restarts})
            )
        return events

    def _event(self, kind: str, obj: dict[str, Any], data: dict[str, Any]) -> Event:
        meta = obj.get("metadata") or {}
        details = {
            "node": (obj.get("spec") or {}).get("nodeName"),
            "phase": (obj.get("status") or {}).get("phase"),
            **data,
        }
        return Event(
            kind,
            cluster=self.cluster,
            namespace=meta.get("namespace"),
            name=meta.get("name"),
            labels=dict(meta.get("labels") or {}),
            data=details,
        )


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""
