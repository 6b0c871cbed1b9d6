"""The three patch formats of the Kubernetes API.

- JSON patch (RFC 6902) through the `jsonpatch` library;
- JSON merge patch (RFC 7386): maps merge, `null` deletes, lists replace;
- strategic merge patch: like merge patch, but lists whose OpenAPI field declares
  `x-kubernetes-patch-strategy: merge` merge their items by `x-kubernetes-patch-merge-key`
  (containers by name, ports by containerPort ...), with the directives kubectl's client-side
  apply sends: `$patch: delete|replace|merge`, `$retainKeys`, `$setElementOrder/<field>` and
  `$deleteFromPrimitiveList/<field>`.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .errors import bad_request
from .openapi import definitions, property_schema, resolve

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list):
        raise bad_request("json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(obj, patch)  # type: ignore[no-any-return]
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise bad_request(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(
    obj: dict[str, Any], patch: dict[str, Any], definition: str
) -> dict[str, Any]:
    """Applies a strategic merge patch to an object whose schema is `definition`."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    schema = definitions().get(definition)
    return _merge_map(obj, patch, schema)  # type: ignore[no-any-return]


def _merge_map(
    original: Any, patch: dict[str, Any], schema: dict[str, Any] | None
) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    patch = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return _strip_directives(patch)  # type: ignore[no-any-return]
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.pop("$retainKeys", None)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            continue  # ordering hint only; the merged order is kept
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        field_schema = property_schema(schema, key)
        current = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current, value, resolve(field_schema))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(current, value, field_schema)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], schema: dict[str, Any] | None) -> list[Any]:
    strategy = (schema or {}).get("x-kubernetes-patch-strategy", "")
    merge_key = (schema or {}).get("x-kubernetes-patch-merge-key")
    if "merge" not in strategy.split(","):
        return _strip_directives(patch)  # type: ignore[no-any-return]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    current = list(copy.deepcopy(original)) if isinstance(original, list) else []
    item_schema = resolve((schema or {}).get("items"))
    if not merge_key:  # a set of primitives, e.g. finalizers
        for value in patch:
            if value not in current:
                current.append(value)
        return current
    for item in patch:
        if not isinstance(item, dict):
            continue
        key_value = item.get(merge_key)
        index = next(
            (
                i
                for i, c in enumerate(current)
                if isinstance(c, dict) and c.get(merge_key) == key_value
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
            continue
        if index is None:
            current.append(_strip_directives(item))
        else:
            merged = _merge_map(current[index], item, item_schema)
            if merged is not None:
                current[index] = merged
    return current


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
