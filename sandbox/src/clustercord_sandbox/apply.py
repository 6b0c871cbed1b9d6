"""Server-side apply (`PATCH` with `application/apply-patch+yaml`), after structured-merge-diff.

An apply sends the manager's whole intent (its *applied configuration*). The server:

1. merges it into the live object by the schema (maps by key, keyed lists by their map keys,
   sets by value, atomic lists and leaves replaced);
2. refuses, with 409 and one `FieldManagerConflict` cause per field, to change a field another
   manager owns, unless `force=true` takes it over;
3. gives the applier exactly the fields of its configuration, and removes from the object the
   fields it applied before and omits now, unless another manager still owns them.

`kubectl` as manager also gets client-side apply's upgrade path: conflicts on fields whose
live value is still the one in the `last-applied-configuration` annotation are taken over
without `--force-conflicts`, and that annotation follows the applied configuration.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import errors
from .managedfields import (
    Entry,
    FieldSet,
    Path,
    base_entries,
    compare,
    find_entry,
    item_key,
    list_shape,
    path_string,
    set_entries,
    view,
    walk,
)
from .managedfields import atomic_map as _atomic_map
from .openapi import property_schema, resolve, schema_for
from .registry import ResourceType

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# The managers whose apply keeps kubectl's client-side annotation in step (as the server does).
_KUBECTL = "kubectl"


def validate_manager(manager: str) -> None:
    """An apply must name its manager (the server answers 422 on PatchOptions otherwise)."""
    problem = ""
    if not manager:
        problem = "fieldManager: Required value: is required for apply patch"
    elif len(manager) > 128:
        problem = "fieldManager: Too long: may not be more than 128 bytes"
    if problem:
        raise errors.ApiError(
            422,
            "Invalid",
            f'PatchOptions.meta.k8s.io "" is invalid: {problem}',
            {
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [
                    {
                        "reason": "FieldValueRequired" if not manager else "FieldValueTooLong",
                        "message": problem.split(": ", 1)[1],
                        "field": "fieldManager",
                    }
                ],
            },
        )


def apply(
    rt: ResourceType,
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    force: bool,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live` (None when absent), with its
    managedFields; raises a 409 conflict as the API server does."""
    schema = schema_for(rt)
    applied = view(rt, config, subresource)
    merged: dict[str, Any] = merge(copy.deepcopy(live) if live else {}, applied, schema)
    for type_field in ("apiVersion", "kind"):
        merged[type_field] = config[type_field]
    meta = merged.setdefault("metadata", {})
    for meta_field in ("name", "namespace"):
        if meta_field in config.get("metadata", {}):
            meta[meta_field] = config["metadata"][meta_field]

    entries = base_entries(live, {})
    key = (manager, "Apply", subresource)
    live_walk = walk(view(rt, live, subresource), schema)
    diff = compare(live_walk, walk(view(rt, merged, subresource), schema))
    conflicts = [
        (entry, path)
        for entry in entries
        if entry.key != key
        for path in sorted(entry.fields & diff.changed())
    ]
    if (
        conflicts
        and not force
        and not _upgrades_client_side_apply(manager, live, conflicts, schema, rt, live_walk)
    ):
        raise conflict_error(conflicts)
    for entry in entries:
        if entry.key != key:
            entry.fields -= diff.changed()

    applied_fields = walk(applied, schema).members()
    mine = find_entry(entries, key, rt.api_version)
    previous = mine.fields
    others: FieldSet = set().union(*(e.fields for e in entries if e is not mine))
    mine.fields = applied_fields
    _prune(merged, previous - applied_fields - others, applied_fields | others, rt, subresource)
    # What the prune removed nobody owns any longer.
    removed = compare(live_walk, walk(view(rt, merged, subresource), schema)).removed
    for entry in entries:
        if entry is not mine:
            entry.fields -= removed
    live_entries = base_entries(live, {})
    live_mine = next((e for e in live_entries if e.key == key), None)
    unchanged = view(rt, merged, subresource) == view(rt, live, subresource)
    if live_mine is not None and unchanged and live_mine.fields == mine.fields:
        mine.time, mine.api_version = live_mine.time, live_mine.api_version
    else:
        mine.time, mine.api_version = now, rt.api_version
    set_entries(merged, entries)
    if manager == _KUBECTL and live and LAST_APPLIED in (live["metadata"].get("annotations") or {}):
        _keep_last_applied(merged, config)
    return merged


# -- merging --------------------------------------------------------------------------------
def merge(live: Any, config: Any, schema: dict[str, Any] | None) -> Any:
    """SMD's merge of an applied configuration into a live value."""
    schema = resolve(schema)
    if isinstance(config, dict) and isinstance(live, dict) and not _atomic_map(schema):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                continue
            sub = property_schema(schema, key)
            out[key] = merge(live[key], value, sub) if key in live else copy.deepcopy(value)
        return out
    if isinstance(config, list) and isinstance(live, list):
        kind, keys = list_shape(schema)
        if kind == "set":
            return [*live, *(copy.deepcopy(v) for v in config if v not in live)]
        if kind == "map":
            out_list = list(live)
            index = {item_key(item, keys): i for i, item in enumerate(out_list)}
            item_schema = (schema or {}).get("items")
            for item in config:
                at = index.get(item_key(item, keys))
                if at is None:
                    index[item_key(item, keys)] = len(out_list)
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[at] = merge(out_list[at], item, item_schema)
            return out_list
    return copy.deepcopy(config)


# -- pruning --------------------------------------------------------------------------------
def _prune(
    obj: dict[str, Any],
    dropped: FieldSet,
    owned: FieldSet,
    rt: ResourceType,
    subresource: str,
) -> None:
    """Removes the fields the applier gave up, keeping any path above a field still owned."""
    for path in sorted(dropped, key=len):
        if any(len(p) > len(path) and p[: len(path)] == path for p in owned):
            continue
        if (
            path[:1] == (("f", "status"),)
            and subresource != "status"
            and "status" in (rt.subresources)
        ):
            continue
        _remove(obj, path)


def _remove(obj: Any, path: Path) -> None:
    node = obj
    for element in path[:-1]:
        node = _child(node, element)
        if node is None:
            return
    kind, text = path[-1]
    if kind == "f" and isinstance(node, dict):
        node.pop(text, None)
    elif kind in ("k", "v") and isinstance(node, list):
        node[:] = [item for item in node if not _matches(item, (kind, text))]


def _child(node: Any, element: tuple[str, str]) -> Any:
    kind, text = element
    if kind == "f":
        return node.get(text) if isinstance(node, dict) else None
    if isinstance(node, list):
        return next((item for item in node if _matches(item, element)), None)
    return None


def _matches(item: Any, element: tuple[str, str]) -> bool:
    kind, text = element
    if kind == "v":
        return json.dumps(item, sort_keys=True, separators=(",", ":")) == text
    wanted = json.loads(text)
    return isinstance(item, dict) and json.loads(item_key(item, tuple(wanted))) == wanted


# -- conflicts ------------------------------------------------------------------------------
def conflict_error(conflicts: list[tuple[Entry, Path]]) -> errors.ApiError:
    """409 with the API server's message and one FieldManagerConflict cause per field."""
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": path_string(path),
        }
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.describe()}: " + (
            path_string(path)
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.describe(), []).append(path_string(path))
        lines = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {p}" for p in by_manager[manager]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.ApiError(409, "Conflict", message, {"causes": causes})


def _upgrades_client_side_apply(
    manager: str,
    live: dict[str, Any] | None,
    conflicts: list[tuple[Entry, Path]],
    schema: dict[str, Any] | None,
    rt: ResourceType,
    live_walk: Any,
) -> bool:
    """kubectl moving from client-side to server-side apply: conflicts on fields still holding
    the value of the last-applied-configuration annotation are taken over without force."""
    if manager != _KUBECTL or not live:
        return False
    raw = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    try:
        last_applied = json.loads(raw) if raw else None
    except ValueError:
        return False
    if not isinstance(last_applied, dict):
        return False
    previous = walk(view(rt, last_applied), schema)
    unchanged = {
        p
        for p in previous.values
        if p not in previous.leaves or live_walk.values.get(p, object()) == previous.values[p]
    }
    return all(path in unchanged for _, path in conflicts)


def _keep_last_applied(merged: dict[str, Any], config: dict[str, Any]) -> None:
    body = copy.deepcopy(config)
    annotations = body.get("metadata", {}).get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        body.get("metadata", {}).pop("annotations", None)
    # Encoded as the server's JSON encoder does, newline included.
    merged["metadata"].setdefault("annotations", {})[LAST_APPLIED] = (
        json.dumps(body, separators=(",", ":")) + "\n"
    )
