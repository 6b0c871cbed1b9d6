"""The event bus: typed events to the plugins that subscribed in their manifests.

Subscriptions are compiled once per event type (filters parsed, plugins ordered
by descending priority) and recompiled only when the set of enabled plugins
changes, so publishing is a loop of guarded calls.

Some event types are Discord's word about people (``discord:member-*``): a plugin acts on
them (the SSO plugin ends sessions), so nobody but the Discord front end's gateway
connection may publish them. They are reserved here: :meth:`EventBus.publish` refuses them,
and only the one :class:`Publisher` handed out by :meth:`EventBus.claim` delivers them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from clustercord.plugins.manager import ENABLED, Plugin, PluginManager
from clustercord_sdk.errors import HookTimeout, PermissionDenied
from clustercord_sdk.events import FRONTEND_EVENTS, Event, EventFilter

Subscriber = tuple[str, EventFilter, Callable[..., Any], tuple[str, ...], Any]


class Publisher:
    """The right to publish some reserved event types (held by the one front end that
    claimed them, until it releases them)."""

    def __init__(self, bus: EventBus, types: frozenset[str], holder: str) -> None:
        self._bus, self.types, self.holder = bus, types, holder

    async def publish(self, event: Event) -> int:
        if event.type not in self.types or self._bus._claims.get(event.type) is not self:
            raise PermissionDenied(f"{self.holder} may not publish {event.type!r} events")
        return await self._bus._deliver(event)

    def release(self) -> None:
        for event_type in self.types:
            if self._bus._claims.get(event_type) is self:
                del self._bus._claims[event_type]


class EventBus:
    def __init__(self, manager: PluginManager, reserved: tuple[str, ...] = FRONTEND_EVENTS) -> None:
        self.manager = manager
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._reserved = frozenset(reserved)
        """Published only through a claimed :class:`Publisher`, never :meth:`publish`."""
        self._claims: dict[str, Publisher] = {}
        manager.listeners.append(self._invalidate)

    def claim(self, types: tuple[str, ...], holder: str) -> Publisher:
        """The one publisher of reserved ``types``; refused while another holds any."""
        wanted = frozenset(types)
        if not wanted <= self._reserved:
            raise PermissionDenied(f"not reserved event types: {sorted(wanted - self._reserved)}")
        taken = {self._claims[t].holder for t in wanted if t in self._claims}
        if taken:
            raise PermissionDenied(f"{', '.join(sorted(taken))} publishes these events already")
        publisher = Publisher(self, wanted, holder)
        for event_type in wanted:
            self._claims[event_type] = publisher
        return publisher

    def _refuse_reserved(self, event: Event) -> None:
        if event.type in self._reserved:
            raise PermissionDenied(
                f"{event.type!r} events come from Discord's gateway only: "
                "they cannot be published here"
            )

    def _invalidate(self, change: str, plugin: Plugin) -> None:
        self._subscribers.clear()

    def subscribers(self, event_type: str) -> list[Subscriber]:
        cached = self._subscribers.get(event_type)
        if cached is not None:
            return cached
        functions = {
            name: (fn, args) for name, fn, args in self.manager.implementations("on_event")
        }
        ranked = []
        for plugin in self.manager.plugins.values():
            if plugin.state != ENABLED or plugin.manifest is None or plugin.name not in functions:
                continue
            for hook in plugin.manifest.hooks:
                if hook.event == event_type:
                    function, argnames = functions[plugin.name]
                    ranked.append(
                        (
                            -hook.priority,
                            plugin.name,
                            hook.filter,
                            function,
                            argnames,
                            plugin.context,
                        )
                    )
        ranked.sort(key=lambda item: (item[0], item[1]))
        subscribers = [(name, flt, fn, args, ctx) for _, name, flt, fn, args, ctx in ranked]
        self._subscribers[event_type] = subscribers
        return subscribers

    def publish_sync(self, event: Event) -> int:
        """Deliver to synchronous subscribers inline; returns how many were called.

        This is :meth:`Guard.call` unrolled for the hot path (thousands of events a
        second): one watchdog token per event, re-armed per plugin, and no result
        objects unless something fails.
        """
        self._refuse_reserved(event)
        guard = self.manager.guard
        if guard.trace:
            return self._publish_traced(event)
        watchdog, timeout, failures = guard.watchdog, guard.timeout, guard.failures
        calls, ident = watchdog.calls_of_this_thread()
        token = watchdog.arm(timeout)
        called = 0
        try:
            for name, event_filter, function, argnames, ctx in self.subscribers(event.type):
                filtered = event_filter.selector or event_filter.namespaces
                if filtered and not event_filter.matches(event):
                    continue
                calls[ident] = (time.monotonic() + timeout, token)
                try:
                    function(**_args(argnames, event, ctx))
                except (HookTimeout, Exception) as exc:
                    error = _timeout(timeout) if isinstance(exc, HookTimeout) else exc
                    guard.failed(name, "on_event", error, time.perf_counter())
                    token = watchdog.arm(timeout)  # a fired token stays fired: take a new one
                else:
                    if failures and failures.get(name):
                        failures[name] = 0
                called += 1
        finally:
            watchdog.disarm(token)
        return called

    def _publish_traced(self, event: Event) -> int:
        called = 0
        for name, event_filter, function, argnames, ctx in self.subscribers(event.type):
            if event_filter.matches(event):
                self.manager.guard.call(name, "on_event", function, _args(argnames, event, ctx))
                called += 1
        return called

    async def publish(self, event: Event) -> int:
        """Deliver to every matching subscriber, ``async`` implementations included.
        A reserved event type is refused (:class:`PermissionDenied`) and reaches nobody."""
        self._refuse_reserved(event)
        return await self._deliver(event)

    async def _deliver(self, event: Event) -> int:
        called = 0
        guard = self.manager.guard
        for name, event_filter, function, argnames, ctx in list(self.subscribers(event.type)):
            if not event_filter.matches(event):
                continue
            plugin = self.manager.plugins.get(name)
            if plugin is None or plugin.state != ENABLED:
                continue  # disabled by an earlier failure during this very event
            kwargs = _args(argnames, event, ctx)
            if inspect.iscoroutinefunction(function):
                await guard.acall(name, "on_event", function, kwargs)
            else:
                guard.call(name, "on_event", function, kwargs)
            called += 1
        return called


def _args(argnames: tuple[str, ...], event: Event, ctx: Any) -> dict[str, Any]:
    if len(argnames) == 2:  # the usual (event, ctx): skip building a filtered dict
        return {"event": event, "ctx": ctx}
    available = {"event": event, "ctx": ctx}
    return {name: available[name] for name in argnames if name in available}


def _timeout(seconds: float) -> TimeoutError:
    return TimeoutError(f"on_event did not return within {seconds:g} s")
