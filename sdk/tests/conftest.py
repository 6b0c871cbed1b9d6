"""Builders shared by the ports of Kubernetes' RBAC tests (``from .conftest import new_rule``),
written like the Go helpers so each table reads as it does upstream."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def new_rule(verbs: str, groups: str, resources: str, urls: str) -> Obj:
    """The Go ``newRule``: each field split on commas like ``strings.Split`` (``""`` → ``[""]``)."""
    return {
        "verbs": verbs.split(","),
        "apiGroups": groups.split(","),
        "resources": resources.split(","),
        "nonResourceURLs": urls.split(","),
    }


def subjects(written: tuple[str, ...]) -> list[Obj]:
    """Subjects written ``"User:name"``, ``"Group:name"`` or ``"ServiceAccount:name"``."""
    out = []
    for subject in written:
        kind, name = subject.split(":", 1)
        out.append({"kind": kind, "name": name})
    return out
