"""The event bus: typed events to the plugins that subscribed in their manifests.

Subscriptions are compiled once per event type (filters parsed, plugins ordered
by descending priority) and recompiled only when the set of enabled plugins
changes, so publishing is a loop of guarded calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from clustercord_sdk.events import Event, EventFilter

from clustercord.plugins.manager import ENABLED, Plugin, PluginManager

Subscriber = tuple[str, EventFilter, Callable[..., Any], tuple[str, ...], Any]


class EventBus:
    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self._subscribers: dict[str, list[Subscriber]] = {}
        manager.listeners.append(self._invalidate)

    def _invalidate(self, change: str, plugin: Plugin) -> None:
        self._subscribers.clear()

    def subscribers(self, event_type: str) -> list[Subscriber]:
        cached = self._subscribers.get(event_type)
        if cached is not None:
            return cached
        functions = {name: (fn, args) for name, fn, args in self.manager.implementations("on_event")}
        ranked = []
        for plugin in self.manager.plugins.values():
            if plugin.state != ENABLED or plugin.manifest is None or plugin.name not in functions:
                continue
            for hook in plugin.manifest.hooks:
                if hook.event == event_type:
                    function, argnames = functions[plugin.name]
                    ranked.append((-hook.priority, plugin.name, hook.filter, function, argnames,
                                   plugin.context))
        ranked.sort(key=lambda item: (item[0], item[1]))
        subscribers = [(name, flt, fn, args, ctx) for _, name, flt, fn, args, ctx in ranked]
        self._subscribers[event_type] = subscribers
        return subscribers

    def publish_sync(self, event: Event) -> int:
        """Deliver to synchronous subscribers inline; returns how many were called."""
        called = 0
        guard = self.manager.guard
        for name, event_filter, function, argnames, ctx in self.subscribers(event.type):
            if not event_filter.matches(event):
                continue
            kwargs = {"event": event, "ctx": ctx} if len(argnames) == 2 else _args(argnames, event, ctx)
            guard.call(name, "on_event", function, kwargs)
            called += 1
        return called

    async def publish(self, event: Event) -> int:
        """Deliver to every matching subscriber, ``async`` implementations included."""
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
    available = {"event": event, "ctx": ctx}
    return {name: available[name] for name in argnames if name in available}
