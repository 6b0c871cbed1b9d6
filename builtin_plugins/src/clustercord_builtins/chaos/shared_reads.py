"""Steady-state reads shared between concurrent experiment runs.

Profiling the probe-overhead benchmark (50 runs checking the same Deployment every second)
put most of each check's CPU in the Kubernetes call itself (the worker-thread hop, the
client's request and response handling, TLS), not in the probe's own logic. Runs that watch
the same object (a GameDay's experiments sharing "the API has 2 ready replicas") therefore
share one GET made at most ``max_age`` seconds ago instead of each making its own.

Only the checks *during* a run go through here: they read as the plugin (the same identity for
every run), so sharing hands no run anything its user could not read (each run's "before"
check read the same objects acting for its user). ``max_age`` (0.25 s) is a quarter of the
check interval: it delays noticing a broken steady state by at most that much.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

MAX_AGE = 0.25

Key = tuple[int, str, str, str | None, str | None]


class SharedReads:
    def __init__(self, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic):
        self.max_age = max_age
        self.clock = clock
        self._reads: dict[Key, tuple[float, Any, asyncio.Future[dict[str, Any]]]] = {}
        self.calls = 0
        """GETs actually sent (for tests and the benchmark)."""

    def reader(self, kube: Any) -> SharedReader:
        """``kube`` (the plugin's own Kubernetes) with its ``get`` shared."""
        return SharedReader(self, kube)

    async def get(
        self, kube: Any, resource: str, name: str, namespace: str | None, cluster: str | None
    ) -> dict[str, Any]:
        now = self.clock()
        loop = asyncio.get_running_loop()
        for key, (made, _, future) in list(self._reads.items()):
            if now - made > self.max_age or future.get_loop() is not loop:
                del self._reads[key]
        key = (id(kube), resource, name, namespace, cluster)
        found = self._reads.get(key)
        if found is None or found[1] is not kube:
            self.calls += 1
            future = asyncio.ensure_future(
                kube.get(resource, name, namespace=namespace, cluster=cluster)
            )
            # Kept until it expires even if the run that started it is stopped meanwhile
            # (shield below): the others waiting on it still get their answer.
            found = (now, kube, future)
            self._reads[key] = found
            future.add_done_callback(lambda done: self._forget_failed(key, done))
        # The same object for every run: probes only read it (observe, field_value).
        return await asyncio.shield(found[2])

    def _forget_failed(self, key: Key, done: asyncio.Future[dict[str, Any]]) -> None:
        if done.cancelled() or done.exception() is not None:
            # The next check asks again rather than repeating the error for max_age.
            entry = self._reads.get(key)
            if entry is not None and entry[2] is done:
                del self._reads[key]


class SharedReader:
    """What a probe reads with: ``get`` as the Kubernetes service's, shared."""

    def __init__(self, reads: SharedReads, kube: Any) -> None:
        self.reads = reads
        self.kube = kube

    async def get(
        self, resource: str, name: str, *, namespace: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]:
        return await self.reads.get(self.kube, resource, name, namespace, cluster)
