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

Runs that watch *different* objects of one kind in one namespace (50 GameDay runs, each its
own Deployment) share too: once ``list_from`` distinct names of a (kind, namespace) were asked
for within ``HOT_FOR`` seconds, one LIST made at most ``max_age`` ago answers them all, in
place of a GET each. A LIST costs more than a GET in proportion to what the namespace holds,
so a namespace whose last LIST brought more than ``LIST_WASTE`` times the objects watched
there is read with GETs (until more are watched, or ``GETS_FOR`` seconds passed), as is, for
``GETS_FOR`` seconds, one the plugin may not list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from clustercord_sdk.errors import CommandError

MAX_AGE = 0.25
LIST_FROM = 4
"""Distinct objects of one kind and namespace watched at once before one LIST serves them."""
HOT_FOR = 2.0
"""Seconds a name asked for counts as watched (two check intervals)."""
LIST_WASTE = 4
"""A LIST bringing more than this many objects per object watched costs more than the GETs."""
GETS_FOR = 60.0
"""Seconds a (kind, namespace) too big or not listable goes back to GETs before trying again."""

Key = tuple[int, str, str, str | None, str | None]
Group = tuple[int, str, str | None, str | None]
"""Objects one LIST answers: (identity, resource, namespace, cluster)."""


class SharedReads:
    def __init__(
        self,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        list_from: int | None = LIST_FROM,
    ):
        self.max_age = max_age
        self.clock = clock
        self.list_from = list_from
        """``None``: every object its own GET (the benchmark's comparison)."""
        self._reads: dict[Key, tuple[float, Any, asyncio.Future[dict[str, Any]]]] = {}
        self._lists: dict[Group, tuple[float, Any, asyncio.Future[dict[str, Any]]]] = {}
        self._watched: dict[Group, dict[str, float]] = {}
        self._gets_until: dict[Group, float] = {}
        """Groups the plugin could not list lately, until when GETs serve them."""
        self._sizes: dict[Group, tuple[int, float]] = {}
        """Objects each group's last LIST brought, and when."""
        self.calls = 0
        """GETs and LISTs actually sent (for tests and the benchmark)."""
        self.lists = 0
        """LISTs among them."""

    def reader(self, kube: Any) -> SharedReader:
        """``kube`` (the plugin's own Kubernetes) with its ``get`` shared."""
        return SharedReader(self, kube)

    async def get(
        self, kube: Any, resource: str, name: str, namespace: str | None, cluster: str | None
    ) -> dict[str, Any]:
        now = self.clock()
        loop = asyncio.get_running_loop()
        _expire(self._reads, now - self.max_age, loop)
        _expire(self._lists, now - self.max_age, loop)
        key = (id(kube), resource, name, namespace, cluster)
        group = (id(kube), resource, namespace, cluster)
        if self._listing(group, name, now):
            listed = await self._listed(group, kube, now)
            if listed is not None:
                if name not in listed:
                    where = f" in namespace {namespace}" if namespace else ""
                    raise CommandError(f"not found: {resource} {name!r}{where}")
                return listed[name]
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

    def _listing(self, group: Group, name: str, now: float) -> bool:
        """Whether ``group`` is read with LISTs now: enough of its objects are watched (this
        one counted) and it was not found too big or not listable lately."""
        if not self.list_from or self.max_age <= 0:
            return False
        watched = self._watched.setdefault(group, {})
        watched[name] = now
        if len(watched) >= self.list_from:  # forget names no run asked for lately
            for old in [n for n, at in watched.items() if now - at > HOT_FOR]:
                del watched[old]
        if len(watched) < self.list_from or self._gets_until.get(group, 0.0) > now:
            return False
        size, learned = self._sizes.get(group, (0, 0.0))
        # Known too big for what is watched (learned lately): GETs, until more are watched.
        return now - learned > GETS_FOR or size <= LIST_WASTE * len(watched)

    async def _listed(self, group: Group, kube: Any, now: float) -> dict[str, Any] | None:
        """The group's objects by name from one LIST at most ``max_age`` old, or ``None``
        when GETs serve it instead (the LIST failed, or brings too much)."""
        found = self._lists.get(group)
        if found is None or found[1] is not kube:
            _, resource, namespace, cluster = group
            self.calls += 1
            self.lists += 1
            future = asyncio.ensure_future(_by_name(kube, resource, namespace, cluster))
            found = (now, kube, future)
            self._lists[group] = found
            future.add_done_callback(lambda done: self._forget_failed_list(group, done))
        try:
            listed: dict[str, Any] = await asyncio.shield(found[2])
        except Exception:
            # Not listable as the plugin (or the API failed): the GETs tell each run why.
            self._gets_until[group] = now + GETS_FOR
            return None
        self._sizes[group] = (len(listed), now)
        return listed

    def _forget_failed_list(self, group: Group, done: asyncio.Future[dict[str, Any]]) -> None:
        if done.cancelled() or done.exception() is not None:
            entry = self._lists.get(group)
            if entry is not None and entry[2] is done:
                del self._lists[group]

    def _forget_failed(self, key: Key, done: asyncio.Future[dict[str, Any]]) -> None:
        if done.cancelled() or done.exception() is not None:
            # The next check asks again rather than repeating the error for max_age.
            entry = self._reads.get(key)
            if entry is not None and entry[2] is done:
                del self._reads[key]


def _expire(cache: dict[Any, tuple[float, Any, Any]], before: float, loop: Any) -> None:
    """Drop the reads made before ``before`` (or on another event loop: a test's)."""
    for key, (made, _, future) in list(cache.items()):
        if made < before or future.get_loop() is not loop:
            del cache[key]


async def _by_name(
    kube: Any, resource: str, namespace: str | None, cluster: str | None
) -> dict[str, Any]:
    items = await kube.list(resource, namespace=namespace, cluster=cluster)
    return {item["metadata"]["name"]: item for item in items}


class SharedReader:
    """What a probe reads with: ``get`` as the Kubernetes service's, shared."""

    def __init__(self, reads: SharedReads, kube: Any) -> None:
        self.reads = reads
        self.kube = kube

    async def get(
        self, resource: str, name: str, *, namespace: str | None = None, cluster: str | None = None
    ) -> dict[str, Any]:
        return await self.reads.get(self.kube, resource, name, namespace, cluster)
