"""Typed events delivered to plugins through the ``on_event`` hook.

The manifest's ``hooks`` entries subscribe a plugin to event types with a filter
(labels and namespaces) and a priority; the kernel only calls a plugin for events
that pass its filter, highest priority first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def parse_label_selector(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Parse ``app=minecraft,tier!=db,env in (a,b),!legacy,gpu`` into requirements.

    Each requirement is ``(key, operator, values)`` with operator one of
    ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!exists``.
    """
    requirements: list[tuple[str, str, tuple[str, ...]]] = []
    for part in _split_selector(text):
        part = part.strip()
        if not part:
            continue
        lowered = part.replace("\t", " ")
        for op in (" notin ", " in "):
            if op in lowered:
                key, _, rest = lowered.partition(op)
                rest = rest.strip()
                if not (rest.startswith("(") and rest.endswith(")")):
                    raise ValueError(f"label selector {part!r}: values must be in parentheses")
                values = tuple(v.strip() for v in rest[1:-1].split(",") if v.strip())
                if not values:
                    raise ValueError(f"label selector {part!r}: needs at least one value")
                requirements.append((key.strip(), op.strip(), values))
                break
        else:
            if "!=" in part:
                key, _, value = part.partition("!=")
                requirements.append((key.strip(), "!=", (value.strip(),)))
            elif "==" in part or "=" in part:
                key, _, value = part.replace("==", "=").partition("=")
                requirements.append((key.strip(), "=", (value.strip(),)))
            elif part.startswith("!"):
                requirements.append((part[1:].strip(), "!exists", ()))
            else:
                requirements.append((part, "exists", ()))
    for key, _, _ in requirements:
        if not key:
            raise ValueError(f"label selector {text!r} has an empty key")
    return requirements


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def labels_match(
    requirements: list[tuple[str, str, tuple[str, ...]]], labels: Mapping[str, str]
) -> bool:
    """True when ``labels`` satisfy every requirement of a parsed selector."""
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "=" and value != values[0]:
            return False
        if op == "!=" and value == values[0]:
            return False
        if op == "in" and value not in values:
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


@dataclass(frozen=True)
class EventFilter:
    """A compiled manifest hook filter: a label selector and a namespace list."""

    selector: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
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
