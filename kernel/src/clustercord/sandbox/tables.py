"""Server-side printing: `meta.k8s.io/v1` Table answers for `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns the
server chooses, so the familiar columns (READY, STATUS, AGE ...) are decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .registry import ResourceType

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


NAME: Column = ("Name", "string", 0, _name)
AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
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
}


def _columns(rt: ResourceType) -> list[Column]:
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
    rt: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any]
) -> dict[str, Any]:
    columns = _columns(rt)
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
