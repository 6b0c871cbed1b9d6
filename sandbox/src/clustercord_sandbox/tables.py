"""Server-side printing: `meta.k8s.io/v1` Table answers for `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the
server chooses, so the familiar columns (READY, STATUS, AGE ...) are decided here: built-in
kinds as `pkg/printers/internalversion/printers.go` prints them, CustomResourceDefinitions with
the generic NAME / CREATED AT, custom resources with their CRD's `additionalPrinterColumns`
(NAME, then those columns; AGE when it declares none), as the apiextensions server does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import autoscaling
from .registry import ResourceType
from .store import SandboxStore

Column = tuple[str, str, int, Callable[[dict[str, Any]], Any]]  # name, type, priority, cell


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(timestamp: str | None, now: datetime | None = None) -> str:
    """Like apimachinery's duration.HumanDuration: `45s`, `3m20s`, `5h`, `12d`."""
    if not timestamp:
        return "<unknown>"
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(UTC)) - created).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _age(obj: dict[str, Any]) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"))


def _pod_ready(obj: dict[str, Any]) -> str:
    containers = obj.get("spec", {}).get("containers", [])
    statuses = obj.get("status", {}).get("containerStatuses", [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_restarts(obj: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in obj.get("status", {}).get("containerStatuses", []))


def _service_ports(obj: dict[str, Any]) -> str:
    ports = obj.get("spec", {}).get("ports", [])
    rendered = [f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports]
    return ",".join(rendered) or "<none>"


def _node_status(obj: dict[str, Any]) -> str:
    conditions = obj.get("status", {}).get("conditions", [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    status = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if obj.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: dict[str, Any]) -> str:
    prefix = "node-role.kubernetes.io/"
    labels = obj["metadata"].get("labels") or {}
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _spec(path: str, default: Any = "") -> Callable[[dict[str, Any]], Any]:
    def get(obj: dict[str, Any]) -> Any:
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        return default if current is None else current

    return get


def _int_or_string(path: str) -> Callable[[dict[str, Any]], Any]:
    """An IntOrString field as the printers show it, `N/A` when unset (PDB min/max)."""
    get = _spec(path, None)
    return lambda obj: "N/A" if get(obj) is None else str(get(obj))


def _created_at(obj: dict[str, Any]) -> str:
    """The default table convertor's CREATED AT: the timestamp itself, RFC 3339 in UTC."""
    return str(obj["metadata"].get("creationTimestamp") or "")


NAME: Column = ("Name", "string", 0, _name)
AGE: Column = ("Age", "string", 0, _age)


def _endpoints(obj: dict[str, Any]) -> str:
    """`10.244.0.2:80,10.244.1.2:80 + 3 more...`, as kubectl's printer writes Endpoints."""
    pairs = [
        f"{address.get('ip')}:{port.get('port')}"
        for subset in obj.get("subsets") or []
        for port in subset.get("ports") or [{}]
        for address in subset.get("addresses") or []
    ]
    return _first_three(pairs)


def _first_three(items: list[str]) -> str:
    if not items:
        return "<none>"
    extra = f" + {len(items) - 3} more..." if len(items) > 3 else ""
    return ",".join(items[:3]) + extra


def _slice_ports(obj: dict[str, Any]) -> str:
    ports = [str(p.get("port")) for p in obj.get("ports") or [] if p.get("port") is not None]
    return ",".join(ports) if ports else "<unset>"


def _slice_endpoints(obj: dict[str, Any]) -> str:
    return _first_three([a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []])


def _event_first_seen(obj: dict[str, Any]) -> str:
    first = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp")
    return human_age(first or obj.get("eventTime") or obj["metadata"].get("creationTimestamp"))


def _event_last_seen(obj: dict[str, Any]) -> str:
    """`printEvent`: the series' last observation, else lastTimestamp, else first seen."""
    series = obj.get("series") or {}
    last = series.get("lastObservedTime") or obj.get("lastTimestamp")
    last = last or obj.get("deprecatedLastTimestamp")
    return human_age(last) if last else _event_first_seen(obj)


def _event_count(obj: dict[str, Any]) -> str:
    series = obj.get("series") or {}
    count = series.get("count") or obj.get("count") or obj.get("deprecatedCount") or 1
    return str(count)


def _event_subobject(obj: dict[str, Any]) -> str:
    return str((obj.get("involvedObject") or obj.get("regarding") or {}).get("fieldPath", ""))


def _event_source(obj: dict[str, Any]) -> str:
    source = obj.get("source") or obj.get("deprecatedSource") or {}
    component = source.get("component") or obj.get("reportingController") or ""
    return ", ".join(part for part in (component, source.get("host", "")) if part)


def _event_object(obj: dict[str, Any]) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}"


def _event_message(obj: dict[str, Any]) -> str:
    return str(obj.get("message") or obj.get("note") or "")


def _scale_target(obj: dict[str, Any]) -> str:
    ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


COLUMNS: dict[str, list[Column]] = {
    "Event": [
        ("Last Seen", "string", 0, _event_last_seen),
        ("Type", "string", 0, _spec("type", "")),
        ("Reason", "string", 0, _spec("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Subobject", "string", 1, _event_subobject),
        ("Source", "string", 1, _event_source),
        ("Message", "string", 0, _event_message),
        ("First Seen", "string", 1, _event_first_seen),
        ("Count", "string", 1, _event_count),
        ("Name", "string", 1, _name),
    ],
    "Endpoints": [NAME, ("Endpoints", "string", 0, _endpoints), AGE],
    "EndpointSlice": [
        NAME,
        ("AddressType", "string", 0, _spec("addressType", "")),
        ("Ports", "string", 0, _slice_ports),
        ("Endpoints", "string", 0, _slice_endpoints),
        AGE,
    ],
    "ReplicationController": [
        NAME,
        ("Desired", "integer", 0, _spec("spec.replicas", 1)),
        ("Current", "integer", 0, _spec("status.replicas", 0)),
        ("Ready", "integer", 0, _spec("status.readyReplicas", 0)),
        AGE,
    ],
    "Pod": [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _spec("status.phase", "Pending")),
        ("Restarts", "string", 0, _pod_restarts),
        AGE,
        ("IP", "string", 1, _spec("status.podIP", "<none>")),
        ("Node", "string", 1, _spec("spec.nodeName", "<none>")),
    ],
    "Deployment": [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: (
                f"{o.get('status', {}).get('readyReplicas', 0)}/"
                f"{o.get('spec', {}).get('replicas', 1)}"
            ),
        ),
        ("Up-to-date", "integer", 0, _spec("status.updatedReplicas", 0)),
        ("Available", "integer", 0, _spec("status.availableReplicas", 0)),
        AGE,
    ],
    "ReplicaSet": [
        NAME,
        ("Desired", "integer", 0, _spec("spec.replicas", 1)),
        ("Current", "integer", 0, _spec("status.replicas", 0)),
        ("Ready", "integer", 0, _spec("status.readyReplicas", 0)),
        AGE,
    ],
    "Service": [
        NAME,
        ("Type", "string", 0, _spec("spec.type", "ClusterIP")),
        ("Cluster-IP", "string", 0, _spec("spec.clusterIP", "<none>")),
        ("External-IP", "string", 0, lambda o: "<none>"),
        ("Port(s)", "string", 0, _service_ports),
        AGE,
    ],
    "Namespace": [NAME, ("Status", "string", 0, _spec("status.phase", "Active")), AGE],
    "ConfigMap": [NAME, ("Data", "integer", 0, lambda o: len(o.get("data") or {})), AGE],
    "Secret": [
        NAME,
        ("Type", "string", 0, _spec("type", "Opaque")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        AGE,
    ],
    "ServiceAccount": [NAME, ("Secrets", "integer", 0, lambda o: len(o.get("secrets") or [])), AGE],
    "Node": [
        NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        AGE,
        ("Version", "string", 0, _spec("status.nodeInfo.kubeletVersion", "")),
    ],
    "PodDisruptionBudget": [
        NAME,
        ("Min Available", "string", 0, _int_or_string("spec.minAvailable")),
        ("Max Unavailable", "string", 0, _int_or_string("spec.maxUnavailable")),
        ("Allowed Disruptions", "integer", 0, _spec("status.disruptionsAllowed", 0)),
        AGE,
    ],
    # (kubectl's printer converts to the internal version first; `targets` reads both.)
    "HorizontalPodAutoscaler": [
        NAME,
        ("Reference", "string", 0, _scale_target),
        ("Targets", "string", 0, autoscaling.targets),
        (
            "MinPods",
            "string",
            0,
            lambda o: str((o.get("spec") or {}).get("minReplicas", "<unset>")),
        ),
        ("MaxPods", "integer", 0, _spec("spec.maxReplicas", 0)),
        ("Replicas", "integer", 0, _spec("status.currentReplicas", 0)),
        AGE,
    ],
    # Served by the apiextensions server, which has no printer: the default convertor's.
    "CustomResourceDefinition": [NAME, ("Created At", "date", 0, _created_at)],
}

# -- custom resources: additionalPrinterColumns -------------------------------------------------

_SEGMENT = re.compile(
    r"""\.(?P<field>(?:[^.\[\\]|\\.)+)"""  # .field (a `\.` escapes a dot: .metadata.labels.a\.b)
    r"""|\[(?P<index>-?\d+)\]"""  # [0]
    r"""|\[['"](?P<key>[^'"]*)['"]\]"""  # ['a.b']
    r"""|\[\?\(@(?P<where>(?:\.[\w-]+)+)\s*==\s*['"](?P<equals>[^'"]*)['"]\)\]"""  # [?(@.a=="x")]
)


def parse_json_path(text: str) -> list[tuple[str, Any]]:
    """The simple JSONPath CRD printer columns use, as steps; ValueError for anything else."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {text!r} at {text[position:]!r}")
        if match["field"] is not None:
            steps.append(("field", match["field"].replace("\\", "")))
        elif match["index"] is not None:
            steps.append(("index", int(match["index"])))
        elif match["key"] is not None:
            steps.append(("field", match["key"]))
        else:
            steps.append(("where", (match["where"][1:].split("."), match["equals"])))
        position = match.end()
    return steps


def _follow(obj: Any, steps: list[tuple[str, Any]]) -> Any:
    """The first value the path finds (the apiextensions server prints only that), or None."""
    current = obj
    for step, arg in steps:
        if step == "field":
            current = current.get(arg) if isinstance(current, dict) else None
        elif step == "index":
            in_range = isinstance(current, list) and -len(current) <= arg < len(current)
            current = current[arg] if in_range else None
        else:
            fields, wanted = arg
            current = (
                next((i for i in current if _lookup(i, fields) == wanted), None)
                if isinstance(current, list)
                else None
            )
        if current is None:
            return None
    return current


def _lookup(obj: Any, fields: list[str]) -> Any:
    for name in fields:
        obj = obj.get(name) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)


def _go_text(value: Any) -> str:
    """A value as kubectl's JSONPath printer writes it for a `string` column."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _typed_cell(kind: str, value: Any) -> Any:
    """apiextensions' cellForJSONValue: a cell of the column's type, None when it is not one."""
    if kind == "string":
        return _go_text(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            return human_age(value)
        except ValueError:
            return "<invalid>"
    return None


def _printer_column(definition: dict[str, Any]) -> Column:
    steps = parse_json_path(str(definition.get("jsonPath", "")))
    kind = str(definition.get("type", "string"))

    def cell(obj: dict[str, Any]) -> Any:
        value = _follow(obj, steps)
        return None if value is None else _typed_cell(kind, value)

    return (str(definition["name"]), kind, int(definition.get("priority", 0)), cell)


def custom_columns(crd: dict[str, Any] | None, version: str) -> list[Column]:
    """NAME and the CRD version's additionalPrinterColumns (AGE when there are none)."""
    versions = ((crd or {}).get("spec") or {}).get("versions") or []
    served: dict[str, Any] = next((v for v in versions if v.get("name") == version), {})
    definitions = served.get("additionalPrinterColumns") or []
    columns = []
    for definition in definitions:
        try:
            columns.append(_printer_column(definition))
        except (KeyError, TypeError, ValueError):
            continue  # the CRD's validation would have refused it; print the rest
    return [NAME, *columns] if columns or definitions else [NAME, AGE]


def _columns(rt: ResourceType, store: SandboxStore | None) -> list[Column]:
    if rt.schema is not None and store is not None:  # a custom resource
        crd = store.get_stored(
            "apiextensions.k8s.io", "customresourcedefinitions", "", f"{rt.plural}.{rt.group}"
        )
        return custom_columns(crd, rt.version)
    return COLUMNS.get(rt.kind, [NAME, AGE])


def _row(columns: list[Column], obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "cells": [cell(obj) for _, _, _, cell in columns],
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        },
    }


def to_table(
    rt: ResourceType,
    objects: list[dict[str, Any]],
    list_meta: dict[str, Any],
    store: SandboxStore | None = None,
) -> dict[str, Any]:
    """The Table kubectl prints; `store` holds the CRDs a custom resource's columns come from."""
    columns = _columns(rt, store)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": f"{name} of the {rt.kind}",
                "priority": priority,
            }
            for name, kind, priority, _ in columns
        ],
        "rows": [_row(columns, obj) for obj in objects],
    }
