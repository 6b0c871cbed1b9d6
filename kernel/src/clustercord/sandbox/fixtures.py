"""Starting states for the sandbox: `empty`, a YAML file of objects, and (later) `homelab`.

Fixtures go through `ObjectAPI` like any client, so their objects are validated and get uids,
resourceVersions and defaults exactly as if kubectl had created them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from .objects import ObjectAPI, WriteOptions

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def empty() -> list[dict[str, Any]]:
    """What a fresh cluster has: the four system namespaces (each gets a default SA)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in SYSTEM_NAMESPACES
    ]


def _homelab() -> list[dict[str, Any]]:
    raise NotImplementedError("the homelab fixture arrives in a later slice of the sandbox")


# Named fixtures; `homelab` is registered so the CLI can name it and fail clearly until then.
NAMED: dict[str, Callable[[], list[dict[str, Any]]]] = {"empty": empty, "homelab": _homelab}


class FixtureError(ValueError):
    """A fixture that cannot be loaded (unknown name, unreadable file, unknown kind)."""


def objects_from_yaml(text: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise FixtureError(f"a YAML document is not an object: {doc!r}")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(doc["items"])
        else:
            objects.append(doc)
    return objects


def resolve(fixture: str) -> list[dict[str, Any]]:
    """The objects of a named fixture, or of a YAML file (on top of `empty`)."""
    if fixture in NAMED:
        try:
            return NAMED[fixture]()
        except NotImplementedError as exc:
            raise FixtureError(str(exc)) from exc
    path = Path(fixture)
    if not path.is_file():
        raise FixtureError(
            f"no fixture named {fixture!r} and no such file (known: {', '.join(NAMED)})"
        )
    return empty() + objects_from_yaml(path.read_text())


def load(api: ObjectAPI, objects: Iterable[dict[str, Any]]) -> int:
    """Creates the objects in order (namespaces first); returns how many were created."""
    ordered = sorted(objects, key=lambda o: 0 if o.get("kind") == "Namespace" else 1)
    count = 0
    for obj in ordered:
        rt = api.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise FixtureError(
                f"the sandbox does not serve {obj.get('apiVersion')}/{obj.get('kind')}"
            )
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if rt.namespaced else ""
        if api.store.get(rt.group, rt.plural, namespace, meta.get("name", "")):
            continue  # already there (e.g. a namespace the file repeats)
        api.create(rt, namespace, obj, WriteOptions(field_validation="Strict"))
        count += 1
    return count
