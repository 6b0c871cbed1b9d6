"""What the real API server checks before it stores an object, to the degree the sandbox needs.

Two layers, in the server's order:

1. decoding (400 BadRequest): wrong JSON types, and unknown fields under
   `fieldValidation=Strict` (kubectl's default); unknown fields are always dropped;
2. validation (422 Invalid, with `details.causes[].field`): names (RFC 1123), required fields
   from the OpenAPI definitions, and a kind's own rules where the sandbox has them
   (`KIND_CHECKS`: HorizontalPodAutoscaler's replica bounds and scale target).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import autoscaling
from .errors import ApiError, bad_request, invalid
from .openapi import resolve, schema_for, schema_types
from .registry import ResourceType

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# A kind's own validation (the API server's `Validate<Kind>`), on the stored version.
KIND_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any]], list[tuple[str, str, str]]]] = {
    ("autoscaling", "HorizontalPodAutoscaler"): autoscaling.validate_hpa,
}

# Resources whose names must be a DNS label (no dots), as in the real validators.
_LABEL_NAMED = {("", "namespaces"), ("", "services")}
# RBAC objects accept any path segment name (e.g. `system:controller:x`).
_PATH_SEGMENT_NAMED = {"rbac.authorization.k8s.io"}


def validate_name(rt: ResourceType, name: str) -> list[tuple[str, str, str]]:
    if not name:
        return [
            (
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        ]
    if rt.group in _PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: \"{name}\": may not contain '/' or '%'",
                )
            ]
        return []
    if (rt.group, rt.plural) in _LABEL_NAMED:
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            return [
                ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {_LABEL_MSG}')
            ]
        return []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [
            ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {_SUBDOMAIN_MSG}')
        ]
    return []


@dataclass
class DecodeResult:
    """The object with unknown fields dropped, and what was dropped."""

    obj: dict[str, Any]
    unknown: list[str] = field(default_factory=list)


_GO_TYPES = {"integer": "int", "number": "float64", "boolean": "bool", "string": "string"}


def _type_ok(value: Any, kinds: set[str]) -> bool:
    if not kinds or value is None:
        return True
    checks = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
    }
    return any(checks.get(k, True) for k in kinds)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def decode(rt: ResourceType, obj: dict[str, Any], strict: bool) -> DecodeResult:
    """Checks types against the OpenAPI definition and drops unknown fields (400 if strict)."""
    result = DecodeResult(obj={})
    schema = schema_for(rt)
    if rt.schema is not None:  # a custom resource: its schema's errors are 422, as there
        causes = structural_errors(obj, schema, "")
        if causes:
            raise invalid(rt, obj.get("metadata", {}).get("name", ""), causes)
    result.obj = _walk(obj, schema, "", rt, result.unknown)
    if strict and result.unknown:
        fields = ", ".join(f'unknown field "{path}"' for path in result.unknown)
        raise _cannot_handle(rt, f"strict decoding error: {fields}")
    return result


def _cannot_handle(rt: ResourceType, message: str) -> ApiError:
    return bad_request(
        f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {message}'
    )


def _walk(
    value: Any, schema: dict[str, Any] | None, path: str, rt: ResourceType, unknown: list[str]
) -> Any:
    schema = resolve(schema)
    if schema is None:
        return value
    kinds = schema_types(schema)
    if not _type_ok(value, kinds):
        go_type = _GO_TYPES.get(sorted(kinds)[0], sorted(kinds)[0])
        raise _cannot_handle(
            rt,
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"{path or rt.kind} of type {go_type}",
        )
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is None and not isinstance(extra, dict):
            return value  # free-form (RawExtension, FieldsV1 ...)
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
        out = {}
        for key, sub in value.items():
            child = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                out[key] = _walk(sub, properties[key], child, rt, unknown)
            elif isinstance(extra, dict):
                out[key] = _walk(sub, extra, child, rt, unknown)
            elif keep_unknown:
                out[key] = sub
            else:
                unknown.append(child)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        return [_walk(v, items, f"{path}[{i}]", rt, unknown) for i, v in enumerate(value)]
    return value


def _schema_type(value: Any) -> str:
    """A JSON value's type as an OpenAPI schema names it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def structural_errors(
    value: Any, schema: dict[str, Any] | None, path: str
) -> list[tuple[str, str, str]]:
    """A custom resource against its CRD's schema: types, enums, bounds and patterns, with the
    messages of the API server's schema validation (required fields are `_required`'s)."""
    schema = resolve(schema)
    if schema is None or value is None:
        return []
    kind = schema.get("type")
    typed = isinstance(kind, str) and not schema.get("x-kubernetes-int-or-string")
    if typed and path and not _type_ok(value, {str(kind)}):
        got = _schema_type(value)
        return [
            (
                path,
                "FieldValueTypeInvalid",
                f'Invalid value: "{got}": {path} in body must be of type {kind}: "{got}"',
            )
        ]
    causes: list[tuple[str, str, str]] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        causes.append(
            (
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {json.dumps(value)}: supported values: {supported}",
            )
        )
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: {value}: {path} in body should be greater than or equal to "
                f"{schema['minimum']}",
            )
        )
    if number and "maximum" in schema and value > schema["maximum"]:
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: {value}: {path} in body should be less than or equal to "
                f"{schema['maximum']}",
            )
        )
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: \"{value}\": {path} in body should match '{schema['pattern']}'",
            )
        )
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            child = f"{path}.{key}" if path else key
            sub_schema = properties.get(key, extra if isinstance(extra, dict) else None)
            causes += structural_errors(sub, sub_schema, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            causes += structural_errors(item, schema.get("items"), f"{path}[{index}]")
    return causes


def _required(
    value: Any, schema: dict[str, Any] | None, path: str, causes: list[tuple[str, str, str]]
) -> None:
    schema = resolve(schema)
    if schema is None:
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        # The top level's metadata is checked on its own (`validate` leaves it out of `body`;
        # Event's schema requires it).
        skipped = ("apiVersion", "kind", "metadata") if not path else ("apiVersion", "kind")
        for name in schema.get("required", []):
            if value.get(name) in (None, "", [], {}) and name not in skipped:
                causes.append(
                    (f"{path}.{name}" if path else name, "FieldValueRequired", "Required value")
                )
        for key, sub in value.items():
            if key in properties:
                _required(sub, properties[key], f"{path}.{key}" if path else key, causes)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _required(item, schema.get("items"), f"{path}[{i}]", causes)


def validate(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Raises 422 Invalid naming every failing field."""
    name = obj.get("metadata", {}).get("name", "")
    causes = validate_name(rt, name)
    if "metadata" in obj:
        ns = obj["metadata"].get("namespace")
        if ns and not DNS1123_LABEL.match(ns):
            causes.append(
                ("metadata.namespace", "FieldValueInvalid", f'Invalid value: "{ns}": {_LABEL_MSG}')
            )
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    _required(body, schema_for(rt), "", causes)
    check = KIND_CHECKS.get((rt.group, rt.kind))
    if check is not None:
        specific = check(obj)
        # A kind's cause about a field (spec.scaleTargetRef.kind: Required) replaces the
        # schema's about its parent (spec.scaleTargetRef: Required), as Go decodes an absent
        # struct as an empty one and reports its fields.
        causes = [c for c in causes if not any(f.startswith(c[0] + ".") for f, _, _ in specific)]
        causes += [c for c in specific if c not in causes]
    if causes:
        raise invalid(rt, name, causes)
