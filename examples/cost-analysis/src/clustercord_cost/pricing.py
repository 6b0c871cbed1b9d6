"""Costs from what pods request and limit, and what is idle: pure functions over the
Kubernetes objects (as the API returns them) and the plugin's config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clustercord_sdk.options import parse_quantity

HOURS_PER_MONTH = Decimal(730)  # 365 × 24 / 12
GIB = Decimal(1024**3)
# A pod in these phases holds no node resources: its requests cost nothing.
FINISHED = ("Succeeded", "Failed")


@dataclass
class Usage:
    """Requested and limited CPU (cores) and memory (GiB) of one namespace."""

    namespace: str
    pods: int = 0
    cpu_requests: Decimal = Decimal(0)
    memory_requests: Decimal = Decimal(0)
    cpu_limits: Decimal = Decimal(0)
    memory_limits: Decimal = Decimal(0)
    unbounded: list[str] = field(default_factory=list)
    """Pods with a container that requests nothing: their cost is unknown (shown, not 0)."""

    def monthly(self, prices: Mapping[str, Any], *, limits: bool = False) -> Decimal:
        cpu = self.cpu_limits if limits else self.cpu_requests
        memory = self.memory_limits if limits else self.memory_requests
        hourly = cpu * _price(prices, "cpu_hour") + memory * _price(prices, "memory_gib_hour")
        return hourly * HOURS_PER_MONTH


def _price(prices: Mapping[str, Any], key: str) -> Decimal:
    return Decimal(str(prices[key]))


def _amount(resources: Mapping[str, Any], kind: str, resource: str) -> Decimal | None:
    value = (resources.get(kind) or {}).get(resource)
    if value is None:
        return None
    amount = parse_quantity(str(value))
    return amount / GIB if resource == "memory" else amount


def namespace_usage(pods: Iterable[Mapping[str, Any]]) -> dict[str, Usage]:
    """Requests and limits summed per namespace, over pods that hold resources now."""
    usage: dict[str, Usage] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in FINISHED:
            continue
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        entry = usage.setdefault(namespace, Usage(namespace))
        entry.pods += 1
        for container in (pod.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            cpu = _amount(resources, "requests", "cpu")
            memory = _amount(resources, "requests", "memory")
            if cpu is None and memory is None:
                entry.unbounded.append(f"{meta.get('name')}/{container.get('name')}")
            entry.cpu_requests += cpu or 0
            entry.memory_requests += memory or 0
            # Kubernetes defaults a missing request to the limit; a missing limit is "no cap"
            # (counted as the request, the least it may use).
            entry.cpu_limits += _amount(resources, "limits", "cpu") or cpu or 0
            entry.memory_limits += _amount(resources, "limits", "memory") or memory or 0
    return usage


@dataclass(frozen=True)
class Idle:
    kind: str
    namespace: str
    name: str
    why: str
    monthly: Decimal


def idle_resources(
    pods: Iterable[Mapping[str, Any]],
    claims: Iterable[Mapping[str, Any]],
    prices: Mapping[str, Any],
) -> list[Idle]:
    """Volume claims no pod mounts (storage paid for nothing) and pods that hold their
    requests without running (Pending, or not ready), most expensive first."""
    pods = list(pods)
    mounted = {
        ((p.get("metadata") or {}).get("namespace"), v["persistentVolumeClaim"]["claimName"])
        for p in pods
        if (p.get("status") or {}).get("phase") not in FINISHED
        for v in (p.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    found = []
    for claim in claims:
        meta = claim.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if key in mounted:
            continue
        requested = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
        size = parse_quantity(str(requested.get("storage", "0"))) / GIB
        found.append(
            Idle(
                "volume claim",
                key[0] or "default",
                key[1] or "?",
                f"{_gib(size)} GiB mounted by no pod",
                size * _price(prices, "storage_gib_month"),
            )
        )
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase != "Pending":
            continue
        meta = pod.get("metadata") or {}
        alone = namespace_usage([pod]).get(meta.get("namespace", "default"))
        cost = alone.monthly(prices) if alone else Decimal(0)
        found.append(
            Idle("pod", meta.get("namespace", "default"), meta.get("name", "?"),
                 "Pending: its requests are reserved, nothing runs", cost)
        )  # fmt: skip
    return sorted(found, key=lambda i: (-i.monthly, i.namespace, i.name))


def _gib(value: Decimal) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"
