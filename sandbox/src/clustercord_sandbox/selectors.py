"""Label and field selectors with the grammar of `k8s.io/apimachinery/pkg/labels`.

Label: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND).
Field: `path=value`, `path==value`, `path!=value` over a few well-known paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clustercord_sdk import selectors as sdk_selectors
from clustercord_sdk.selectors import Requirement, split_top_level

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]


def parse_label_selector(text: str) -> list[Requirement]:
    """The SDK's selector grammar, with its errors as the API server's 400."""
    try:
        return sdk_selectors.parse_label_selector(text)
    except ValueError as exc:
        raise bad_request(f"unable to parse requirement: {exc}") from None


def label_predicate(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    requirements = parse_label_selector(text)

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)

    return match


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":  # an Event's `source` field label is its component
        path = "source.component"
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return "" if current is None else str(current)


# Fields every type supports, plus the per-kind ones the real server indexes.
SUPPORTED_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.podIP",
    "type",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.kind",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "spec.unschedulable",
}


def field_predicate(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    terms: list[tuple[str, bool, str]] = []
    for part in split_top_level(text):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        if m.group(1) not in SUPPORTED_FIELDS:
            raise bad_request(f"field label not supported: {m.group(1)}")
        terms.append((m.group(1), m.group(2) != "!=", m.group(3).strip()))

    def match(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in terms)

    return match
