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


# The schemas are written as `jsonName=fieldNumber`, grouped by kind, so that each line reads
# like the `.proto` it was taken from: `_one("string", name=1)` is `string name = 1;`.
def _one(kind: Any, /, **numbers: int) -> Schema:
    """Singular fields of one kind (the kind is positional: `kind` is also a field name)."""
    return {number: (name, kind, False) for name, number in numbers.items()}


def _many(kind: Any, /, **numbers: int) -> Schema:
    """Repeated fields of one kind."""
    return {number: (name, kind, True) for name, number in numbers.items()}


_OBJECT_META = _one("string", name=1, namespace=3)
_RESOURCE_ATTRIBUTES = _one(
    "string", namespace=1, verb=2, group=3, version=4, resource=5, subresource=6, name=7
)
_NON_RESOURCE_ATTRIBUTES = _one("string", path=1, verb=2)
_SSAR_SPEC = {
    **_one(_RESOURCE_ATTRIBUTES, resourceAttributes=1),
    **_one(_NON_RESOURCE_ATTRIBUTES, nonResourceAttributes=2),
}
_SAR_SPEC = {
    **_SSAR_SPEC,
    **_one("string", user=3, uid=6),
    **_many("string", groups=4),
    **_one("map", extra=5),
}
_SSRR_SPEC = _one("string", namespace=1)
# authentication/v1: TokenRequestSpec has no field 2 (it was never used).
_BOUND_OBJECT_REF = _one("string", kind=1, apiVersion=2, name=3, uid=4)
_TOKEN_REQUEST_SPEC = {
    **_many("string", audiences=1),
    **_one(_BOUND_OBJECT_REF, boundObjectRef=3),
    **_one("int", expirationSeconds=4),
}
_TOKEN_REVIEW_SPEC = {**_one("string", token=1), **_many("string", audiences=2)}

# -- whole objects (kubectl create ..., evictions) ------------------------------------------
# Object kinds: "text" (string), "count" (non-pointer int), "flag" (non-pointer bool) are
# omitted when empty; "bool" (a *bool) is kept; "b64" is bytes as base64 (JSON's []byte);
# "quantity" is a resource.Quantity; "intorstr" an IntOrString (kept, a pointer in the specs
# here) and "intorstr0" one omitted when it is 0 (ServicePort.targetPort). Map kinds: "labels"
# (map<string,string>), "b64map" (map<string,bytes>), "quantities" (map<string,Quantity>).
_META = {
    **_one("text", name=1, generateName=2, namespace=3, uid=5, resourceVersion=6),
    **_one("labels", labels=11, annotations=12),
    **_many("text", finalizers=14),
}
_LABEL_SELECTOR_REQUIREMENT = {**_one("text", key=1, operator=2), **_many("text", values=3)}
_LABEL_SELECTOR = {
    **_one("labels", matchLabels=1),
    **_many(_LABEL_SELECTOR_REQUIREMENT, matchExpressions=2),
}
_CONTAINER_PORT = {
    **_one("text", name=1, protocol=4, hostIP=5),
    **_one("count", hostPort=2, containerPort=3),
}
_CONTAINER = {
    **_one("text", name=1, image=2, workingDir=5, imagePullPolicy=14),
    **_one("text", terminationMessagePath=13, terminationMessagePolicy=20),
    **_many("text", command=3, args=4),
    **_many(_CONTAINER_PORT, ports=6),
    **_many(_one("text", name=1, value=2), env=7),
    **_one(_one("quantities", limits=1, requests=2), resources=8),
    **_one("flag", stdin=16, stdinOnce=17, tty=18),
}
_POD_SPEC = {
    **_many(_CONTAINER, containers=2, initContainers=20),
    **_one("text", restartPolicy=3, dnsPolicy=6, serviceAccountName=8, nodeName=10),
    **_one("text", hostname=16, schedulerName=19),
    **_one("int", terminationGracePeriodSeconds=4),
    **_one("labels", nodeSelector=7),
}
_TEMPLATE = {**_one(_META, metadata=1), **_one(_POD_SPEC, spec=2)}
_DEPLOYMENT_SPEC = {
    **_one("int", replicas=1, revisionHistoryLimit=6, progressDeadlineSeconds=9),
    **_one(_LABEL_SELECTOR, selector=2),
    **_one(_TEMPLATE, template=3),
    **_one("count", minReadySeconds=5),
    **_one("flag", paused=7),
}
_JOB_SPEC = {
    **_one("int", parallelism=1, completions=2, activeDeadlineSeconds=3, backoffLimit=7),
    **_one(_TEMPLATE, template=6),
}
_PDB_SPEC = {
    **_one("intorstr", minAvailable=1, maxUnavailable=3),
    **_one(_LABEL_SELECTOR, selector=2),
    **_one("text", unhealthyPodEvictionPolicy=4),
}
_POLICY_RULE = _many("text", verbs=1, apiGroups=2, resources=3, resourceNames=4, nonResourceURLs=5)
_SUBJECT = _one("text", kind=1, apiGroup=2, name=3, namespace=4)
_ROLE_REF = _one("text", apiGroup=1, kind=2, name=3)
_SERVICE_PORT = {
    **_one("text", name=1, protocol=2),
    **_one("count", port=3, nodePort=5),
    **_one("intorstr0", targetPort=4),
}
_SERVICE_SPEC = {
    **_many(_SERVICE_PORT, ports=1),
    **_one("labels", selector=2),
    **_one("text", clusterIP=3, type=4, externalName=11),
    **_many("text", externalIPs=5),
}
# batch/v1 CronJob (`kubectl create cronjob`).
_CRON_JOB_SPEC = {
    **_one("text", schedule=1, concurrencyPolicy=3, timeZone=8),
    **_one("int", startingDeadlineSeconds=2, successfulJobsHistoryLimit=6),
    **_one("int", failedJobsHistoryLimit=7),
    **_one("bool", suspend=4),
    **_one({**_one(_META, metadata=1), **_one(_JOB_SPEC, spec=2)}, jobTemplate=5),
}
# networking/v1 Ingress (`kubectl create ingress`). An IngressRule embeds its
# IngressRuleValue inline (`json:",inline"`): the empty name merges it into the rule.
_INGRESS_BACKEND = {
    **_one(_one("text", apiGroup=1, kind=2, name=3), resource=3),
    **_one({**_one("text", name=1), **_one(_one("text", name=1) | _one("count", number=2), port=2)},
           service=4),
}  # fmt: skip
_HTTP_INGRESS_PATH = {
    **_one("text", path=1, pathType=3),
    **_one(_INGRESS_BACKEND, backend=2),
}
_INGRESS_RULE = {
    **_one("text", host=1),
    **_one(_one(_many(_HTTP_INGRESS_PATH, paths=1), http=1), **{"": 2}),
}
_INGRESS_SPEC = {
    **_one(_INGRESS_BACKEND, defaultBackend=1),
    **_many({**_many("text", hosts=1), **_one("text", secretName=2)}, tls=2),
    **_many(_INGRESS_RULE, rules=3),
    **_one("text", ingressClassName=4),
}
# core/v1 ResourceQuota (`kubectl create quota`).
_SCOPE_REQUIREMENT = {**_one("text", scopeName=1, operator=2), **_many("text", values=3)}
_RESOURCE_QUOTA_SPEC = {
    **_one("quantities", hard=1),
    **_many("text", scopes=2),
    **_one(_many(_SCOPE_REQUIREMENT, matchExpressions=1), scopeSelector=3),
}
# autoscaling/v1 HorizontalPodAutoscaler (`kubectl autoscale` in 1.32 creates a v1 one).
_HPA_V1_SPEC = {
    **_one(_one("text", kind=1, name=2, apiVersion=3), scaleTargetRef=1),
    **_one("int", minReplicas=2, maxReplicas=3, targetCPUUtilizationPercentage=4),
}
_DELETE_OPTIONS = {
    **_one("int", gracePeriodSeconds=1),
    **_one(_one("text", uid=1, resourceVersion=2), preconditions=2),
    **_one("bool", orphanDependents=3),
    **_one("text", propagationPolicy=4),
    **_many("text", dryRun=5),
}


def _object(*fields: Schema) -> Schema:
    """A top-level object: every kind here has its ObjectMeta as field 1."""
    schema = _one(_META, metadata=1)
    for more in fields:
        schema.update(more)
    return schema


_BINDING = _object(_many(_SUBJECT, subjects=2), _one(_ROLE_REF, roleRef=3))
_OBJECTS: dict[str, Schema] = {
    "Namespace": _object(_one(_many("text", finalizers=1), spec=2)),
    "ConfigMap": _object(
        _one("labels", data=2), _one("b64map", binaryData=3), _one("bool", immutable=4)
    ),
    "Secret": _object(
        _one("b64map", data=2),
        _one("text", type=3),
        _one("labels", stringData=4),
        _one("bool", immutable=5),
    ),
    "ServiceAccount": _object(
        _one("bool", automountServiceAccountToken=3),
        _many(_one("text", name=1), imagePullSecrets=4),
    ),
    "Deployment": _object(_one(_DEPLOYMENT_SPEC, spec=2)),
    "Eviction": _object(_one(_DELETE_OPTIONS, deleteOptions=2)),
    "DeleteOptions": _DELETE_OPTIONS,
    "PodDisruptionBudget": _object(_one(_PDB_SPEC, spec=2)),
    "Service": _object(_one(_SERVICE_SPEC, spec=2)),
    "Job": _object(_one(_JOB_SPEC, spec=2)),
    "CronJob": _object(_one(_CRON_JOB_SPEC, spec=2)),
    "Ingress": _object(_one(_INGRESS_SPEC, spec=2)),
    "ResourceQuota": _object(_one(_RESOURCE_QUOTA_SPEC, spec=2)),
    # scheduling/v1 PriorityClass (`kubectl create priorityclass`): `value` has no omitempty.
    "PriorityClass": _object(
        _one("int", value=2),
        _one("flag", globalDefault=3),
        _one("text", description=4, preemptionPolicy=5),
    ),
    "Role": _object(_many(_POLICY_RULE, rules=2)),
    "ClusterRole": _object(
        _many(_POLICY_RULE, rules=2),
        _one(_many(_LABEL_SELECTOR, clusterRoleSelectors=1), aggregationRule=3),
    ),
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
}


def _review(spec: Schema | None) -> Schema:
    schema = _one(_OBJECT_META, metadata=1)
    if spec is not None:
        schema.update(_one(spec, spec=2))
    return schema


# Kinds whose field numbers differ between versions, by (apiVersion, kind); a version not
# listed is an unknown kind (415).
_VERSIONED: dict[tuple[str, str], Schema] = {
    ("autoscaling/v1", "HorizontalPodAutoscaler"): _object(_one(_HPA_V1_SPEC, spec=2)),
}
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
_UNKNOWN = {**_one(_one("string", apiVersion=1, kind=2), typeMeta=1), **_one("bytes", raw=2)}
_INT_OR_STRING = {**_one("count", type=1, intVal=2), **_one("text", strVal=3)}
_QUANTITY = _one("text", string=1)


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
    api_version = type_meta.get("apiVersion", "")
    schema = _VERSIONED.get((api_version, kind)) or SCHEMAS.get(kind)
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
        if not name:  # an embedded struct that JSON inlines (`json:",inline"`)
            out.update(decoded)
        elif repeated:
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
    fields = _message(_bytes(name, value), _INT_OR_STRING)
    if fields.get("type") == 1:
        return str(fields.get("strVal", ""))
    return int(fields.get("intVal", 0))


def _quantity(name: str, value: bytes | int) -> str:
    return str(_message(_bytes(name, value), _QUANTITY).get("string", ""))


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
    entry = _message(_bytes(name, value), {**_one("text", key=1), **_one(item_kind, value=2)})
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
