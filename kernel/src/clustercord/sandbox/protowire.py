"""Just enough Kubernetes protobuf to read the review requests kubectl sends.

kubectl's typed clients (`auth can-i`, `auth whoami`) POST their reviews as
`application/vnd.kubernetes.protobuf` and do not fall back to JSON. Protobuf field numbers are
not in the OpenAPI, so a generic decoder is impossible; the few review messages are described
here by hand (from `k8s.io/api/{authorization,authentication}/v1/generated.proto`) and decoded
into the JSON form the rest of the sandbox speaks.

kubectl's typed clients send whole objects as protobuf too (`create deployment|namespace|
configmap|secret|serviceaccount`; `drain` sends its Evictions as JSON, a client set up for
protobuf sends them as protobuf) and kubectl 1.32 does not retry in JSON after a 415, so those
objects are described as well (`k8s.io/api/{core,apps,policy}/v1`,
`k8s.io/apimachinery/pkg/apis/meta/v1`). Their generated code writes every non-pointer field,
so the object kinds `text`, `count` and `flag` drop empty values as JSON's `omitempty` does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"

# A message schema: field number → (json name, nested schema | "string" | "int", repeated?).
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
# authentication/v1: TokenRequestSpec has no field 2 (it was never used).
_BOUND_OBJECT_REF: Schema = {
    1: ("kind", "string", False),
    2: ("apiVersion", "string", False),
    3: ("name", "string", False),
    4: ("uid", "string", False),
}
_TOKEN_REQUEST_SPEC: Schema = {
    1: ("audiences", "string", True),
    3: ("boundObjectRef", _BOUND_OBJECT_REF, False),
    4: ("expirationSeconds", "int", False),
}
_TOKEN_REVIEW_SPEC: Schema = {1: ("token", "string", False), 2: ("audiences", "string", True)}

# -- whole objects (kubectl create ..., evictions) ------------------------------------------
# Object kinds: "text" (string), "count" (non-pointer int), "flag" (non-pointer bool) are
# omitted when empty; "bool" (a *bool) is kept; "b64" is bytes as base64 (JSON's []byte);
# "quantity" is a resource.Quantity; "intorstr" an IntOrString (kept, a pointer in the specs
# here) and "intorstr0" one omitted when it is 0 (ServicePort.targetPort). Map kinds: "labels"
# (map<string,string>), "b64map" (map<string,bytes>), "quantities" (map<string,Quantity>).
_META: Schema = {
    1: ("name", "text", False),
    2: ("generateName", "text", False),
    3: ("namespace", "text", False),
    5: ("uid", "text", False),
    6: ("resourceVersion", "text", False),
    11: ("labels", "labels", False),
    12: ("annotations", "labels", False),
    14: ("finalizers", "text", True),
}
_LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "labels", False),
    2: (
        "matchExpressions",
        {1: ("key", "text", False), 2: ("operator", "text", False), 3: ("values", "text", True)},
        True,
    ),
}
_CONTAINER: Schema = {
    1: ("name", "text", False),
    2: ("image", "text", False),
    3: ("command", "text", True),
    4: ("args", "text", True),
    5: ("workingDir", "text", False),
    6: (
        "ports",
        {
            1: ("name", "text", False),
            2: ("hostPort", "count", False),
            3: ("containerPort", "count", False),
            4: ("protocol", "text", False),
            5: ("hostIP", "text", False),
        },
        True,
    ),
    7: ("env", {1: ("name", "text", False), 2: ("value", "text", False)}, True),
    8: (
        "resources",
        {1: ("limits", "quantities", False), 2: ("requests", "quantities", False)},
        False,
    ),
    13: ("terminationMessagePath", "text", False),
    14: ("imagePullPolicy", "text", False),
    16: ("stdin", "flag", False),
    17: ("stdinOnce", "flag", False),
    18: ("tty", "flag", False),
    20: ("terminationMessagePolicy", "text", False),
}
_POD_SPEC: Schema = {
    2: ("containers", _CONTAINER, True),
    3: ("restartPolicy", "text", False),
    4: ("terminationGracePeriodSeconds", "int", False),
    6: ("dnsPolicy", "text", False),
    7: ("nodeSelector", "labels", False),
    8: ("serviceAccountName", "text", False),
    10: ("nodeName", "text", False),
    16: ("hostname", "text", False),
    19: ("schedulerName", "text", False),
    20: ("initContainers", _CONTAINER, True),
}
_TEMPLATE: Schema = {1: ("metadata", _META, False), 2: ("spec", _POD_SPEC, False)}
_DEPLOYMENT_SPEC: Schema = {
    1: ("replicas", "int", False),
    2: ("selector", _LABEL_SELECTOR, False),
    3: ("template", _TEMPLATE, False),
    5: ("minReadySeconds", "count", False),
    6: ("revisionHistoryLimit", "int", False),
    7: ("paused", "flag", False),
    9: ("progressDeadlineSeconds", "int", False),
}
_POLICY_RULE: Schema = {
    1: ("verbs", "text", True),
    2: ("apiGroups", "text", True),
    3: ("resources", "text", True),
    4: ("resourceNames", "text", True),
    5: ("nonResourceURLs", "text", True),
}
_BINDING: Schema = {
    1: ("metadata", _META, False),
    2: (
        "subjects",
        {
            1: ("kind", "text", False),
            2: ("apiGroup", "text", False),
            3: ("name", "text", False),
            4: ("namespace", "text", False),
        },
        True,
    ),
    3: (
        "roleRef",
        {1: ("apiGroup", "text", False), 2: ("kind", "text", False), 3: ("name", "text", False)},
        False,
    ),
}
_SERVICE_SPEC: Schema = {
    1: (
        "ports",
        {
            1: ("name", "text", False),
            2: ("protocol", "text", False),
            3: ("port", "count", False),
            4: ("targetPort", "intorstr0", False),
            5: ("nodePort", "count", False),
        },
        True,
    ),
    2: ("selector", "labels", False),
    3: ("clusterIP", "text", False),
    4: ("type", "text", False),
    5: ("externalIPs", "text", True),
    11: ("externalName", "text", False),
}
_DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int", False),
    2: ("preconditions", {1: ("uid", "text", False), 2: ("resourceVersion", "text", False)}, False),
    3: ("orphanDependents", "bool", False),
    4: ("propagationPolicy", "text", False),
    5: ("dryRun", "text", True),
}
_OBJECTS: dict[str, Schema] = {
    "Namespace": {
        1: ("metadata", _META, False),
        2: ("spec", {1: ("finalizers", "text", True)}, False),
    },
    "ConfigMap": {
        1: ("metadata", _META, False),
        2: ("data", "labels", False),
        3: ("binaryData", "b64map", False),
        4: ("immutable", "bool", False),
    },
    "Secret": {
        1: ("metadata", _META, False),
        2: ("data", "b64map", False),
        3: ("type", "text", False),
        4: ("stringData", "labels", False),
        5: ("immutable", "bool", False),
    },
    "ServiceAccount": {
        1: ("metadata", _META, False),
        3: ("automountServiceAccountToken", "bool", False),
        4: ("imagePullSecrets", {1: ("name", "text", False)}, True),
    },
    "Deployment": {1: ("metadata", _META, False), 2: ("spec", _DEPLOYMENT_SPEC, False)},
    "Eviction": {1: ("metadata", _META, False), 2: ("deleteOptions", _DELETE_OPTIONS, False)},
    "DeleteOptions": _DELETE_OPTIONS,
    "PodDisruptionBudget": {
        1: ("metadata", _META, False),
        2: (
            "spec",
            {
                1: ("minAvailable", "intorstr", False),
                2: ("selector", _LABEL_SELECTOR, False),
                3: ("maxUnavailable", "intorstr", False),
                4: ("unhealthyPodEvictionPolicy", "text", False),
            },
            False,
        ),
    },
    "Service": {1: ("metadata", _META, False), 2: ("spec", _SERVICE_SPEC, False)},
    "Job": {
        1: ("metadata", _META, False),
        2: (
            "spec",
            {
                1: ("parallelism", "int", False),
                2: ("completions", "int", False),
                3: ("activeDeadlineSeconds", "int", False),
                6: ("template", _TEMPLATE, False),
                7: ("backoffLimit", "int", False),
            },
            False,
        ),
    },
    "Role": {1: ("metadata", _META, False), 2: ("rules", _POLICY_RULE, True)},
    "ClusterRole": {
        1: ("metadata", _META, False),
        2: ("rules", _POLICY_RULE, True),
        3: ("aggregationRule", {1: ("clusterRoleSelectors", _LABEL_SELECTOR, True)}, False),
    },
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
}


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
    "TokenRequest": _review(_TOKEN_REQUEST_SPEC),
    "TokenReview": _review(_TOKEN_REVIEW_SPEC),
    **_OBJECTS,
}
_UNKNOWN: Schema = {
    1: ("typeMeta", {1: ("apiVersion", "string", False), 2: ("kind", "string", False)}, False),
    2: ("raw", "bytes", False),
}


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf envelope of a known kind."""


class UnknownKind(ProtobufError):
    """A well-formed envelope of a kind the sandbox has no schema for (answered with 415)."""


def decode(data: bytes) -> dict[str, Any]:
    """The JSON form of an enveloped (`k8s\\0` + runtime.Unknown) review or object."""
    if not data.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = _message(data[len(MAGIC) :], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise UnknownKind(f"the sandbox cannot decode protobuf {kind or 'objects'}")
    body = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **body}


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue  # fields the sandbox does not need are skipped
        name, kind, repeated = schema[number]
        if isinstance(kind, str) and kind in _MAPS:
            key, item = _map_entry(name, value, _MAPS[kind])
            out.setdefault(name, {})[key] = item
            continue
        if isinstance(kind, str) and kind in _VALUES:
            decoded = _VALUES[kind](name, value)
            if repeated:
                out.setdefault(name, []).append(decoded)
            elif decoded or kind not in _OMITTED_WHEN_EMPTY:
                out[name] = decoded
            continue
        if (kind == "int") != isinstance(value, int):
            raise ProtobufError(f"protobuf field {name} has the wrong wire type")
        if kind == "int":
            out[name] = _int64(value)  # type: ignore[arg-type]
            continue
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


def _bytes(name: str, value: bytes | int) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError(f"protobuf field {name} has the wrong wire type")
    return value


def _number(name: str, value: bytes | int) -> int:
    if not isinstance(value, int):
        raise ProtobufError(f"protobuf field {name} has the wrong wire type")
    return _int64(value)


def _text(name: str, value: bytes | int) -> str:
    try:
        return _bytes(name, value).decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"protobuf field {name} is not UTF-8 text") from None


def _int_or_string(name: str, value: bytes | int) -> int | str:
    fields = _message(
        _bytes(name, value),
        {1: ("type", "count", False), 2: ("intVal", "count", False), 3: ("strVal", "text", False)},
    )
    if fields.get("type") == 1:
        return str(fields.get("strVal", ""))
    return int(fields.get("intVal", 0))


def _quantity(name: str, value: bytes | int) -> str:
    return str(_message(_bytes(name, value), {1: ("string", "text", False)}).get("string", ""))


_VALUES: dict[str, Callable[[str, bytes | int], Any]] = {
    "text": _text,
    "count": _number,
    "flag": lambda name, value: bool(_number(name, value)),
    "bool": lambda name, value: bool(_number(name, value)),
    "b64": lambda name, value: base64.b64encode(_bytes(name, value)).decode(),
    "quantity": _quantity,
    "intorstr": _int_or_string,
    "intorstr0": _int_or_string,
}
_OMITTED_WHEN_EMPTY = {"text", "count", "flag", "intorstr0"}
_MAPS = {"labels": "text", "b64map": "b64", "quantities": "quantity"}


def _map_entry(name: str, value: bytes | int, item_kind: str) -> tuple[str, Any]:
    """One map<string, T> entry (key = 1, value = 2); an empty value is kept as such."""
    entry = _message(
        _bytes(name, value), {1: ("key", "text", False), 2: ("value", item_kind, False)}
    )
    return entry.get("key", ""), entry.get("value", "")


def _int64(value: int) -> int:
    """A varint as int64: negative numbers arrive as their 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


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
