"""Just enough Kubernetes protobuf to read the review requests kubectl sends.

kubectl's typed clients (`auth can-i`, `auth whoami`) POST their reviews as
`application/vnd.kubernetes.protobuf` and do not fall back to JSON. Protobuf field numbers are
not in the OpenAPI, so a generic decoder is impossible; the few review messages are described
here by hand (from `k8s.io/api/{authorization,authentication}/v1/generated.proto`) and decoded
into the JSON form the rest of the sandbox speaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"

# A message schema: field number → (json name, nested schema | "string", repeated?).
# `"map"` is a map<string, ExtraValue> (entries of key=1, value=2 with items=1).
Schema = dict[int, tuple[str, Any, bool]]

_OBJECT_META: Schema = {1: ("name", "string", False), 3: ("namespace", "string", False)}
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string", False),
    2: ("verb", "string", False),
    3: ("group", "string", False),
    4: ("version", "string", False),
    5: ("resource", "string", False),
    6: ("subresource", "string", False),
    7: ("name", "string", False),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string", False), 2: ("verb", "string", False)}
_SSAR_SPEC: Schema = {
    1: ("resourceAttributes", _RESOURCE_ATTRIBUTES, False),
    2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES, False),
}
_SAR_SPEC: Schema = {
    **_SSAR_SPEC,
    3: ("user", "string", False),
    4: ("groups", "string", True),
    5: ("extra", "map", False),
    6: ("uid", "string", False),
}
_SSRR_SPEC: Schema = {1: ("namespace", "string", False)}


def _review(spec: Schema | None) -> Schema:
    schema: Schema = {1: ("metadata", _OBJECT_META, False)}
    if spec is not None:
        schema[2] = ("spec", spec, False)
    return schema


SCHEMAS: dict[str, Schema] = {
    "SelfSubjectAccessReview": _review(_SSAR_SPEC),
    "SubjectAccessReview": _review(_SAR_SPEC),
    "LocalSubjectAccessReview": _review(_SAR_SPEC),
    "SelfSubjectRulesReview": _review(_SSRR_SPEC),
    "SelfSubjectReview": _review(None),
}
_UNKNOWN: Schema = {
    1: ("typeMeta", {1: ("apiVersion", "string", False), 2: ("kind", "string", False)}, False),
    2: ("raw", "bytes", False),
}


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf envelope of a known kind."""


def decode(data: bytes) -> dict[str, Any]:
    """The JSON form of an enveloped (`k8s\\0` + runtime.Unknown) review message."""
    if not data.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = _message(data[len(MAGIC) :], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ProtobufError(f"the sandbox cannot decode protobuf {kind or 'objects'}")
    body = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **body}


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema or not isinstance(value, bytes):
            continue  # fields the sandbox does not need (or varints) are skipped
        name, kind, repeated = schema[number]
        if kind == "map":
            key, values = _extra_entry(value)
            out.setdefault(name, {})[key] = values
            continue
        decoded = _scalar(value, kind) if isinstance(kind, str) else _message(value, kind)
        if repeated:
            out.setdefault(name, []).append(decoded)
        else:
            out[name] = decoded
    return out


def _scalar(value: bytes, kind: str) -> Any:
    return value if kind == "bytes" else value.decode()


def _extra_entry(data: bytes) -> tuple[str, list[str]]:
    entry = dict(_fields(data))
    key = entry.get(1, b"")
    items = [v.decode() for n, v in _fields(entry.get(2, b"")) if n == 1 and isinstance(v, bytes)]
    return (key.decode() if isinstance(key, bytes) else ""), items


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) pairs of one message: varints as ints, length-delimited as bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated protobuf message")
            yield number, data[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported protobuf wire type {wire}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
