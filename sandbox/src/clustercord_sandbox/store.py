"""In-memory object storage with one global resourceVersion counter and a watch history.

The interface is deliberately small (get / list / create / update / delete / events_since /
subscribe) so a later slice can back it with a file or SQLite without touching the server.

Some resources live only for a while after their last write, as etcd leases make the API
server's Events expire (`--event-ttl`, 1 h by default): `set_ttl` gives a resource such a
lease, renewed on every write, and `expire()` deletes what outlived it (a DELETED watch event,
as the real server's lease expiry sends).
Objects are stored as plain JSON dicts, exactly as they are served. A stored object is never
changed in place (a write stores a new one), so watch events share it instead of copying it.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

Key = tuple[str, str, str, str]  # (group, plural, namespace or "", name)


_T = TypeVar("_T")


def clone(value: _T) -> _T:
    """A deep copy of a JSON value; several times faster than `copy.deepcopy` (no memo),
    which matters since every read and write copies (objects carry managedFields)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [clone(v) for v in value]  # type: ignore[return-value]
    return value


@dataclass(frozen=True)
class WatchEvent:
    """One change: the resourceVersion it produced, its type and the object after it.

    `previous` is the object before a MODIFIED (and the deleted object for DELETED): a watch
    with a selector needs it to tell an object leaving its selection from one never in it.
    """

    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED
    group: str
    plural: str
    namespace: str
    object: dict[str, Any]
    previous: dict[str, Any] | None = None

    def as_seen_by(
        self, matches: Callable[[dict[str, Any]], bool]
    ) -> tuple[str, dict[str, Any]] | None:
        """The event a watch selecting `matches` receives, like the API server's watch cache:
        an object that starts matching is ADDED, one that stops matching is DELETED (the old
        object at the new resourceVersion), one that never matched is not sent."""
        if self.type == "DELETED":
            return (self.type, self.object) if matches(self.object) else None
        now = matches(self.object)
        before = matches(self.previous) if self.previous is not None else False
        if now:
            return ("MODIFIED" if before else "ADDED", self.object)
        if before:
            assert self.previous is not None
            meta = {**self.previous["metadata"], "resourceVersion": str(self.resource_version)}
            return ("DELETED", {**self.previous, "metadata": meta})
        return None


class SandboxStore:
    """Objects by (group, plural, namespace, name); every write bumps the global version."""

    def __init__(self, history: int = 2000, clock: Callable[[], float] = time.monotonic) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._clock = clock
        self._ttls: dict[tuple[str, str], float] = {}  # (group, plural) → lease seconds
        self._leases: dict[Key, float] = {}  # key → when it expires (on `clock`)
        self._version = 0
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._compacted = 0
        self._subscribers: set[asyncio.Queue[WatchEvent]] = set()

    # -- versions --------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._version

    def oldest_watchable(self) -> int:
        """The oldest resourceVersion a watch may start from (410 Expired before it)."""
        if self._history.maxlen and len(self._history) == self._history.maxlen:
            return max(self._history[0].resource_version, self._compacted)
        return self._compacted

    def compact(self) -> None:
        """Forgets the event history up to now, as etcd's compaction does: a watch from an
        earlier resourceVersion then gets 410 Expired and its client must relist."""
        self._history.clear()
        self._compacted = self._version

    # -- reads -----------------------------------------------------------------------------
    def exists(self, group: str, plural: str, namespace: str, name: str) -> bool:
        return (group, plural, namespace, name) in self._objects

    def get_stored(
        self, group: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The stored object itself, for a caller that only reads it (no copy)."""
        return self._objects.get((group, plural, namespace, name))

    def get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.get((group, plural, namespace, name))
        return clone(obj) if obj is not None else None

    def list(
        self, group: str, plural: str, namespace: str | None = None, *, copy_items: bool = True
    ) -> list[dict[str, Any]]:
        """Objects of one resource, sorted by namespace then name; `None` means all namespaces.

        ``copy_items=False`` returns the stored objects themselves, for a caller that only
        reads them and copies what it keeps (a page of a large list).
        """
        items = [
            obj
            for (g, p, ns, _), obj in self._objects.items()
            if g == group and p == plural and (namespace is None or ns == namespace)
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return [clone(o) for o in items] if copy_items else items

    # -- leases ----------------------------------------------------------------------------
    def set_ttl(self, group: str, plural: str, seconds: float) -> None:
        """Objects of this resource expire `seconds` after their last write."""
        self._ttls[(group, plural)] = seconds

    def _lease(self, group: str, plural: str, key: Key) -> None:
        ttl = self._ttls.get((group, plural))
        if ttl is not None:
            self._leases[key] = self._clock() + ttl

    def next_expiry(self) -> float | None:
        """When (on the store's clock) the next lease ends, None without leases."""
        return min(self._leases.values(), default=None)

    def expire(self) -> int:
        """Deletes the objects whose lease has ended; returns how many."""
        now = self._clock()
        due = [key for key, deadline in self._leases.items() if deadline <= now]
        for group, plural, namespace, name in due:
            self.delete(group, plural, namespace, name)
        return len(due)

    # -- writes ----------------------------------------------------------------------------
    def _key(self, group: str, plural: str, obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return (group, plural, meta.get("namespace", ""), meta["name"])

    def _record(
        self,
        kind: str,
        group: str,
        plural: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        event = WatchEvent(
            int(obj["metadata"]["resourceVersion"]),
            kind,
            group,
            plural,
            obj["metadata"].get("namespace", ""),
            obj,  # stored objects are replaced, never mutated: the event may share it
            previous,
        )
        self._history.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    def _stamp(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def create(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores a new object (the caller checked it does not exist) and returns it."""
        obj = clone(obj)
        self._stamp(obj)
        key = self._key(group, plural, obj)
        self._objects[key] = obj
        self._lease(group, plural, key)
        self._record("ADDED", group, plural, obj)
        return clone(obj)

    def update(self, group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = clone(obj)
        self._stamp(obj)
        key = self._key(group, plural, obj)
        # The replaced object is never mutated again, so the event may keep it as is.
        previous = self._objects.get(key)
        self._objects[key] = obj
        self._lease(group, plural, key)
        self._record("MODIFIED", group, plural, obj, previous)
        return clone(obj)

    def delete(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.pop((group, plural, namespace, name), None)
        self._leases.pop((group, plural, namespace, name), None)
        if obj is None:
            return None
        obj = {**obj, "metadata": {**obj["metadata"]}}  # earlier events share the stored one
        self._stamp(obj)
        self._record("DELETED", group, plural, obj)
        return clone(obj)

    # -- watch -----------------------------------------------------------------------------
    def events_since(
        self, resource_version: int, group: str, plural: str, namespace: str | None
    ) -> builtins.list[WatchEvent]:
        return [
            e
            for e in self._history
            if e.resource_version > resource_version
            and e.group == group
            and e.plural == plural
            and (namespace is None or e.namespace == namespace)
        ]

    def subscribe(self) -> asyncio.Queue[WatchEvent]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WatchEvent]) -> None:
        self._subscribers.discard(queue)
