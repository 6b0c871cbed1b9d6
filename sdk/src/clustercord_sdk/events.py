"""Typed events delivered to plugins through the ``on_event`` hook.

The manifest's ``hooks`` entries subscribe a plugin to event types with a filter
(labels and namespaces) and a priority; the kernel only calls a plugin for events
that pass its filter, highest priority first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk.selectors import Requirement, labels_match, parse_label_selector

MEMBER_UPDATED = "discord:member-updated"
"""A Discord server member changed (roles, nickname...): ``data`` has ``user_id``,
``guild_id`` and ``role_ids`` (the member's role ids now, as strings)."""
MEMBER_REMOVED = "discord:member-removed"
"""A member left the Discord server, or was kicked or banned: ``data`` has ``user_id`` and
``guild_id``."""
FRONTEND_EVENTS = (MEMBER_UPDATED, MEMBER_REMOVED)
"""Published only by the Discord front end's gateway connection (the kernel refuses them
from anyone else), so a plugin may act on them as Discord's word."""

#: Event types the kernel emits. Plugins may publish their own, namespaced ``plugin-name:event``.
KNOWN_EVENTS = (
    "pod:start",
    "pod:crash",
    "pod:delete",
    "node:not-ready",
    "node:ready",
    "deployment:rollout",
    "plugin:enabled",
    "plugin:disabled",
    "approval:decided",
    "schedule:tick",
    *FRONTEND_EVENTS,
)


@dataclass(frozen=True)
class Event:
    """Something that happened. ``data`` carries the type-specific details."""

    type: str
    cluster: str | None = None
    namespace: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventFilter:
    """A compiled manifest hook filter: a label selector and a namespace list."""

    selector: tuple[Requirement, ...] = ()
    namespaces: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any] | None) -> EventFilter:
        spec = spec or {}
        label = spec.get("label") or spec.get("labels") or ""
        namespaces = spec.get("namespaces") or (
            [spec["namespace"]] if spec.get("namespace") else []
        )
        return cls(tuple(parse_label_selector(label)), frozenset(namespaces))

    def matches(self, event: Event) -> bool:
        if self.namespaces and event.namespace not in self.namespaces:
            return False
        return labels_match(list(self.selector), event.labels)


__all__ = [
    "FRONTEND_EVENTS",
    "KNOWN_EVENTS",
    "MEMBER_REMOVED",
    "MEMBER_UPDATED",
    "Event",
    "EventFilter",
    "labels_match",
    "parse_label_selector",
]
