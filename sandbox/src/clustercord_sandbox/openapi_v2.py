"""`/openapi/v2`: the Swagger 2.0 document, in JSON and in the protobuf form kubectl asks for.

kubectl 1.32 validates a `kind: List` (what `kubectl get -o yaml` writes) on the client through
OpenAPI v2, which it fetches as `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
only (no JSON fallback: a 404 or 406 is "error validating data"). So the document is also
encoded as gnostic's `openapi.v2.Document` message (`github.com/google/gnostic/openapiv2/
OpenAPIv2.proto`); the few messages it needs are written out below by field number.

The definitions are the same as v3's (`openapi.definitions()`, kubernetes-validate's copy of
Kubernetes' own), limited to what the served resources reach, custom resources included; each
carries its `x-kubernetes-*` extensions, which is how kubectl maps a kind to its model.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from .openapi import _COMMON, _META, KUBERNETES_VERSION, _closure, _to_v3, definitions
from .registry import Registry

PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # what kubectl accepts
# What the API server answers with (`@` is not allowed in a media type: Go's mime rejects it).
PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"


def _to_v2(schema: Any) -> Any:
    """The v3 dialect (`openapi._to_v3`) with v2's `$ref` prefix: the two agree otherwise."""
    if isinstance(schema, list):
        return [_to_v2(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _V2_REF + value.removeprefix(_V3_REF)
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _to_v2(sub) for name, sub in value.items()}
        else:
            out[key] = _to_v2(value)
    return out


class OpenAPIV2:
    """Builds (once per registry generation) the v2 document and its protobuf encoding."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._json = b""
        self._protobuf = b""

    def _refresh(self) -> None:
        if self._generation == self._registry.generation:
            return
        roots = list(_COMMON)
        custom: dict[str, Any] = {}
        for rt in self._registry:
            if rt.schema is not None:
                custom[rt.definition] = _with_gvk(rt.schema, rt.group, rt.version, rt.kind)
                roots += [_META + "ObjectMeta", _META + "ListMeta"]
            else:
                roots += [rt.definition, rt.definition + "List"]
        defs = definitions()
        names = _closure(roots)
        result = {name: _to_v2(_to_v3(defs[name])) for name in names}
        result.update({name: _to_v2(_to_v3(schema)) for name, schema in sorted(custom.items())})
        document = {
            "swagger": "2.0",
            "info": {"title": "Kubernetes (ClusterCord sandbox)", "version": KUBERNETES_VERSION},
            "paths": {},
            "definitions": result,
        }
        self._json = json.dumps(document).encode()
        self._protobuf = encode_document(document)
        self._generation = self._registry.generation

    def json(self) -> bytes:
        self._refresh()
        return self._json

    def protobuf(self) -> bytes:
        self._refresh()
        return self._protobuf


def _with_gvk(schema: dict[str, Any], group: str, version: str, kind: str) -> dict[str, Any]:
    gvk = [{"group": group, "version": version, "kind": kind}]
    return {**schema, "x-kubernetes-group-version-kind": gvk}


# -- protobuf ------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _bytes_field(number, value.encode()) if value else b""


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", float(value))


def _any(value: Any) -> bytes:
    """gnostic's `Any`: the value as YAML text (field 2); JSON is YAML."""
    return _text(2, json.dumps(value))


def _named_any(number: int, name: str, value: Any) -> bytes:
    return _bytes_field(number, _text(1, name) + _bytes_field(2, _any(value)))


def _schema(schema: dict[str, Any]) -> bytes:
    """An `openapi.v2.Schema` message."""
    out = bytearray()
    out += _text(1, schema.get("$ref", ""))
    out += _text(2, schema.get("format", ""))
    out += _text(3, schema.get("title", ""))
    out += _text(4, schema.get("description", ""))
    if "default" in schema:
        out += _bytes_field(5, _any(schema["default"]))
    if "maximum" in schema:
        out += _double(7, schema["maximum"])
    out += _bool(8, bool(schema.get("exclusiveMaximum")))
    if "minimum" in schema:
        out += _double(9, schema["minimum"])
    out += _bool(10, bool(schema.get("exclusiveMinimum")))
    out += _int(11, schema.get("maxLength", 0))
    out += _int(12, schema.get("minLength", 0))
    out += _text(13, schema.get("pattern", ""))
    out += _int(14, schema.get("maxItems", 0))
    out += _int(15, schema.get("minItems", 0))
    out += _bool(16, bool(schema.get("uniqueItems")))
    for name in schema.get("required", []):
        out += _text(19, name)
    for value in schema.get("enum", []):
        out += _bytes_field(20, _any(value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _bytes_field(21, _bytes_field(1, _schema(extra)))
    elif isinstance(extra, bool):
        out += _bytes_field(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00"))
    kind = schema.get("type")
    if kind:
        kinds = kind if isinstance(kind, list) else [kind]
        out += _bytes_field(22, b"".join(_text(1, k) for k in kinds))
    items = schema.get("items")
    if isinstance(items, dict):
        out += _bytes_field(23, _bytes_field(1, _schema(items)))
    elif isinstance(items, list):
        out += _bytes_field(23, b"".join(_bytes_field(1, _schema(i)) for i in items))
    for part in schema.get("allOf", []):
        out += _bytes_field(24, _schema(part))
    properties = schema.get("properties")
    if properties is not None:
        named = b"".join(
            _bytes_field(1, _text(1, name) + _bytes_field(2, _schema(sub)))
            for name, sub in properties.items()
        )
        out += _bytes_field(25, named)
    discriminator = schema.get("discriminator")
    if isinstance(discriminator, str):
        out += _text(26, discriminator)
    for key, value in schema.items():
        if key.startswith("x-"):
            out += _named_any(31, key, value)
    return bytes(out)


def encode_document(document: dict[str, Any]) -> bytes:
    """An `openapi.v2.Document` message (swagger, info, paths, definitions)."""
    info = document.get("info", {})
    out = bytearray(_text(1, document.get("swagger", "2.0")))
    out += _bytes_field(2, _text(1, info.get("title", "")) + _text(2, info.get("version", "")))
    out += _bytes_field(8, b"")  # paths: the sandbox lists none (kubectl reads only the models)
    named = b"".join(
        _bytes_field(1, _text(1, name) + _bytes_field(2, _schema(schema)))
        for name, schema in document.get("definitions", {}).items()
    )
    out += _bytes_field(9, named)
    return bytes(out)
