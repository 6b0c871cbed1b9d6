"""``/cost report`` and ``/cost idle``, read as the user who asks (their own RBAC)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from clustercord_sdk import CommandContext, Reply, Table

from .pricing import idle_resources, money, namespace_usage


async def _pods(kubernetes: Any, namespace: str | None) -> list[dict[str, Any]]:
    if namespace:
        return await kubernetes.list("pods", namespace=namespace)
    return await kubernetes.list("pods", all_namespaces=True)


def report_reply(pods: list[dict[str, Any]], config: Mapping[str, Any]) -> Reply:
    """The cost table: one row per namespace, most expensive first, and a total."""
    currency = config["currency"]
    usage = sorted(namespace_usage(pods).values(), key=lambda u: (-u.monthly(config), u.namespace))
    rows = [
        [
            u.namespace,
            str(u.pods),
            f"{u.cpu_requests:.2f}".rstrip("0").rstrip("."),
            f"{u.memory_requests:.2f}".rstrip("0").rstrip("."),
            money(u.monthly(config), currency),
            money(u.monthly(config, limits=True), currency),
        ]
        for u in usage
    ]
    total = sum((u.monthly(config) for u in usage), Decimal(0))
    ceiling = sum((u.monthly(config, limits=True) for u in usage), Decimal(0))
    unbounded = [f"{u.namespace}/{pod}" for u in usage for pod in u.unbounded]
    text = (
        f"Monthly cost of requests: {money(total, currency)} "
        f"(up to {money(ceiling, currency)} at the limits)"
    )
    if unbounded:
        text += f"\n⚠ {len(unbounded)} containers request nothing (cost unknown): " + ", ".join(
            unbounded[:10]
        )
    return Reply(
        text=text,
        tables=[
            Table(
                columns=[
                    "Namespace",
                    "Pods",
                    "CPU",
                    "Memory GiB",
                    "Requests/month",
                    "Limits/month",
                ],
                rows=rows,
                title="Cost by namespace",
            )
        ],
        data={
            "currency": currency,
            "total": str(total.quantize(Decimal("0.01"))),
            "limits_total": str(ceiling.quantize(Decimal("0.01"))),
            "namespaces": {
                u.namespace: {
                    "pods": u.pods,
                    "cpu": str(u.cpu_requests),
                    "memory_gib": str(u.memory_requests),
                    "monthly": str(u.monthly(config).quantize(Decimal("0.01"))),
                    "limits_monthly": str(u.monthly(config, limits=True).quantize(Decimal("0.01"))),
                }
                for u in usage
            },
            "unbounded": unbounded,
        },
    )


async def report(ctx: CommandContext) -> Reply:
    return report_reply(await _pods(ctx.kubernetes, ctx.options.get("namespace")), ctx.config)


async def idle(ctx: CommandContext) -> Reply:
    namespace = ctx.options.get("namespace")
    pods = await _pods(ctx.kubernetes, namespace)
    if namespace:
        claims = await ctx.kubernetes.list("persistentvolumeclaims", namespace=namespace)
    else:
        claims = await ctx.kubernetes.list("persistentvolumeclaims", all_namespaces=True)
    found = idle_resources(pods, claims, ctx.config)
    currency = ctx.config["currency"]
    if not found:
        return Reply(text="Nothing idle: every volume claim is mounted, every pod runs.")
    wasted = sum((i.monthly for i in found), Decimal(0))
    return Reply(
        text=f"{len(found)} idle resources, {money(wasted, currency)} a month",
        tables=[
            Table(
                columns=["Kind", "Namespace", "Name", "Why", "Per month"],
                rows=[
                    [i.kind, i.namespace, i.name, i.why, money(i.monthly, currency)] for i in found
                ],
                title="Idle resources",
            )
        ],
        data={
            "idle": [
                {
                    "kind": i.kind,
                    "namespace": i.namespace,
                    "name": i.name,
                    "monthly": str(i.monthly.quantize(Decimal("0.01"))),
                }
                for i in found
            ]
        },
    )
