"""CustomResourceDefinitions: a created CRD serves its resources, as on a real cluster.

Creating or updating a CRD adds one registry row per served version (so discovery, routing,
the OpenAPI documents, RBAC and namespace deletion see it at once) with the version's
structural schema; the CRD's status says its names are accepted and it is established.
Deleting the CRD removes the rows and every object of the resource.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .registry import ALL_VERBS, Registry, ResourceType
from .store import SandboxStore

GROUP = "apiextensions.k8s.io"
_META_REF = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def is_crd(rt: ResourceType) -> bool:
    return rt.group == GROUP and rt.plural == "customresourcedefinitions"


def definition_name(group: str, version: str, kind: str) -> str:
    """The OpenAPI name Kubernetes gives a custom kind: `com.example.v1.Widget`."""
    return ".".join([*reversed(group.split(".")), version, kind])


def check_if_crd(rt: ResourceType, crd: dict[str, Any]) -> None:
    """The checks of the real CRD validation that users hit (422 naming the field)."""
    if not is_crd(rt):
        return
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[tuple[str, str, str]] = []
    name = crd.get("metadata", {}).get("name", "")
    plural, group = names.get("plural", ""), spec.get("group", "")
    if name != f"{plural}.{group}":
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: '
                '"Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: []: must have exactly one version marked as storage version",
            )
        )
    for index, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            causes.append(
                (
                    f"spec.versions[{index}].schema.openAPIV3Schema.type",
                    "FieldValueRequired",
                    "Required value: must be object at the root",
                )
            )
    if causes:
        raise errors.invalid(rt, name, causes)


def status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """What the CRD controllers write: names accepted, established, stored versions."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")

    def condition(type_: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True",
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    return {
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established", "InitialNamesAccepted", "the initial names have been accepted"
            ),
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }


def resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """One row per served version of a CRD."""
    spec = crd["spec"]
    names = spec["names"]
    kind, group = names["kind"], spec["group"]
    rows = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        rows.append(
            ResourceType(
                group,
                version["name"],
                kind,
                names["plural"],
                spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                verbs=ALL_VERBS,
                definition=definition_name(group, version["name"], kind),
                singular=names.get("singular") or kind.lower(),
                schema=object_schema(version, group, kind),
            )
        )
    return rows


def object_schema(version: dict[str, Any], group: str, kind: str) -> dict[str, Any]:
    """The version's openAPIV3Schema, with the standard apiVersion, kind and metadata."""
    schema = copy.deepcopy((version.get("schema") or {}).get("openAPIV3Schema") or {})
    schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = dict(_META_REF)
    schema["x-kubernetes-group-version-kind"] = [
        {"group": group, "version": version["name"], "kind": kind}
    ]
    return schema


def register(registry: Registry, crd: dict[str, Any]) -> None:
    """Serves (or re-serves, after an update) a CRD's resources."""
    spec = crd["spec"]
    registry.remove(spec["group"], spec["names"]["plural"])
    for row in resource_types(crd):
        registry.add(row)


def unregister(registry: Registry, store: SandboxStore, crd: dict[str, Any]) -> None:
    """Stops serving a deleted CRD's resources and deletes their objects."""
    spec = crd.get("spec") or {}
    group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
    registry.remove(group, plural)
    for obj in store.list(group, plural):
        meta = obj["metadata"]
        store.delete(group, plural, meta.get("namespace", ""), meta["name"])


def apply_schema_defaults(value: Any, schema: dict[str, Any] | None) -> None:
    """Fills absent fields that declare a `default` in a custom resource's schema, as the
    API server's structural defaulting does (in place)."""
    if not schema:
        return
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_schema_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in (schema.get("properties") or {}):
                    apply_schema_defaults(item, extra)
    elif isinstance(value, list):
        for item in value:
            apply_schema_defaults(item, schema.get("items"))
