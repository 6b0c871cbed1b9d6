"""The Kubernetes OpenAPI definitions, and the documents the sandbox serves from them.

The definitions come from `kubernetes-validate` (Kubernetes' own OpenAPI, with the
`x-kubernetes-*` extensions), so the sandbox never hand-writes a schema. They serve three uses:

- `/openapi/v3` and `/openapi/v3/<group-version>`: kubectl reads them for `explain`, and to learn
  that the server validates fields itself (a PATCH operation with a `fieldValidation`
  parameter), in which case `kubectl apply` skips client-side validation;
- the patch strategy and merge keys that strategic merge patch needs;
- structural validation of incoming objects (unknown fields, wrong types, required fields).
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from typing import Any

from .registry import Registry, ResourceType

KUBERNETES_VERSION = "v1.32.0"
_DEFS_PREFIX = "#/$defs/"
_V3_PREFIX = "#/components/schemas/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions by name (`io.k8s.api.core.v1.Pod` ...), loaded once."""
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"{KUBERNETES_VERSION}-local" / "_definitions.json"
    return dict(json.loads(path.read_text())["$defs"])


def schema_for(rt: ResourceType) -> dict[str, Any] | None:
    """The object schema of a resource: a custom resource's own, else the built-in definition."""
    return rt.schema if rt.schema is not None else definitions().get(rt.definition)


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref[len(_DEFS_PREFIX) :] if isinstance(ref, str) else None


def resolve(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follows `$ref` to the definition it names (one level is all the definitions use)."""
    if schema is None:
        return None
    name = ref_name(schema)
    if name is not None:
        return definitions().get(name)
    return schema


def property_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The schema of one property of an object schema, with `$ref` resolved."""
    schema = resolve(schema)
    if not schema:
        return None
    properties = schema.get("properties")
    if properties and key in properties:
        return properties[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a (resolved) schema admits, `null` left out."""
    if "oneOf" in schema:
        found: set[str] = set()
        for option in schema["oneOf"]:
            found |= schema_types(option)
        return found
    kind = schema.get("type")
    if kind is None:
        return set()
    kinds = kind if isinstance(kind, list) else [kind]
    return {k for k in kinds if k != "null"}


# -- OpenAPI v3 documents ------------------------------------------------------------------


def _to_v3(schema: Any) -> Any:
    """Rewrites a JSON-Schema style definition into the OpenAPI 3.0 dialect kubectl parses."""
    if isinstance(schema, list):
        return [_to_v3(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = _V3_PREFIX + value[len(_DEFS_PREFIX) :]
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if kinds:
                out[key] = kinds[0]
        elif key == "oneOf":
            options = {k for option in value for k in schema_types(option)}
            out["type"] = "string"
            if "integer" in options:
                out["format"] = "int-or-string"
        elif key == "enum" and isinstance(value, list):
            out[key] = [v for v in value if v is not None]
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _to_v3(sub) for name, sub in value.items()}
        else:
            out[key] = _to_v3(value)
    return out


def _closure(names: list[str]) -> list[str]:
    """Every definition reachable from `names` through `$ref`."""
    defs = definitions()
    seen: list[str] = []
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen.append(name)
        stack.extend(_refs(defs[name]))
    return sorted(seen)


def _refs(schema: Any) -> list[str]:
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value[len(_DEFS_PREFIX) :])
            else:
                found.extend(_refs(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(_refs(item))
    return found


_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_COMMON = [_META + n for n in ("Status", "DeleteOptions", "Patch", "WatchEvent", "APIResourceList")]


def _param(name: str, where: str, description: str, required: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }
    if required:
        param["required"] = True
    return param


_WRITE_PARAMS = [
    _param("dryRun", "query", "When present, modifications are not persisted."),
    _param("fieldManager", "query", "The name of the actor making the change."),
    _param(
        "fieldValidation",
        "query",
        "Ignore, Warn or Strict (the default): how to treat unknown or duplicate fields.",
    ),
]


def _content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _V3_PREFIX + ref}}}


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    common = [_param("pretty", "query", "Pretty-print the output.")]
    if rt.namespaced:
        common.append(_param("namespace", "path", "object name and auth scope", True))
    item_params = [_param("name", "path", f"name of the {rt.kind}", True), *common]
    ok = {"200": {"description": "OK", "content": _content(rt.definition)}}
    ok_list = {"200": {"description": "OK", "content": _content(rt.definition + "List")}}

    def op(action: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "operationId": f"{action}{rt.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": responses,
            **extra,
        }

    body = {"content": _content(rt.definition), "required": True}
    patch_body = {
        "content": {
            media: {"schema": {"$ref": _V3_PREFIX + _META + "Patch"}}
            for media in (
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            )
        },
        "required": True,
    }
    return {
        f"{base}/{rt.plural}": {
            "get": op("list", ok_list),
            "post": op("post", ok, requestBody=body, parameters=_WRITE_PARAMS),
            "parameters": common,
        },
        f"{base}/{rt.plural}/{{name}}": {
            "get": op("get", ok),
            "put": op("put", ok, requestBody=body, parameters=_WRITE_PARAMS),
            "patch": op(
                "patch",
                ok,
                requestBody=patch_body,
                parameters=[*_WRITE_PARAMS, _param("force", "query", "Force apply.")],
            ),
            "delete": op("delete", ok),
            # kubectl's field-validation probe looks for the parameter on the path item.
            "parameters": [*item_params, *_WRITE_PARAMS],
        },
    }


def _custom_list(rt: ResourceType) -> dict[str, Any]:
    """The `<Kind>List` schema of a custom resource (the API server generates it too)."""
    return {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": _DEFS_PREFIX + _META + "ListMeta"},
            "items": {"type": "array", "items": {"$ref": _DEFS_PREFIX + rt.definition}},
        },
        "x-kubernetes-group-version-kind": [
            {"group": rt.group, "version": rt.version, "kind": rt.kind + "List"}
        ],
    }


class OpenAPIDocuments:
    """Builds (once) and serves the OpenAPI v3 discovery and per-group-version documents."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._cache: dict[str, bytes] = {}
        self._generation = registry.generation

    @staticmethod
    def gv_path(group: str, version: str) -> str:
        return f"api/{version}" if not group else f"apis/{group}/{version}"

    def document(self, gv_path: str) -> bytes | None:
        if self._generation != self._registry.generation:  # a CRD came or went
            self._cache.clear()
            self._generation = self._registry.generation
        if gv_path in self._cache:
            return self._cache[gv_path]
        for group, version in self._registry.group_versions():
            if self.gv_path(group, version) == gv_path:
                body = self._build(self._registry.in_group_version(group, version))
                self._cache[gv_path] = body
                return body
        return None

    def _build(self, rows: list[ResourceType]) -> bytes:
        roots = list(_COMMON)
        paths: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for rt in rows:
            paths.update(_paths(rt))
            if rt.schema is not None:
                custom[rt.definition] = rt.schema
                custom[rt.definition + "List"] = _custom_list(rt)
                roots += [_META + "ObjectMeta", _META + "ListMeta"]
            else:
                roots += [rt.definition, rt.definition + "List"]
        defs = definitions()
        schemas = {name: _to_v3(defs[name]) for name in _closure(roots)}
        schemas.update({name: _to_v3(schema) for name, schema in custom.items()})
        doc = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (ClusterCord sandbox)", "version": KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": schemas},
        }
        return json.dumps(doc).encode()

    def discovery(self) -> dict[str, Any]:
        paths = {}
        for group, version in self._registry.group_versions():
            gv = self.gv_path(group, version)
            digest = (
                hashlib.sha512(
                    repr(
                        [r.__dict__ for r in self._registry.in_group_version(group, version)]
                    ).encode()
                )
                .hexdigest()[:64]
                .upper()
            )
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        return {"paths": paths}
