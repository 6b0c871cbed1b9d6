"""Handlers of ``/cluster``."""

from __future__ import annotations

import time

from clustercord_sdk import Card, CommandContext, Field, Reply, Table


def _registry(ctx: CommandContext):
    return ctx.plugin.require("cluster-registry")


def list_clusters(ctx: CommandContext) -> Reply:
    registry = _registry(ctx)
    clusters = registry.list()
    default, namespace = registry.defaults(ctx.user_id)
    if not clusters:
        return Reply(
            text="No clusters yet: set KUBECONFIG, or /cluster add name: kubeconfig:",
            data={"clusters": []},
        )
    rows = [
        [
            "⭐" if c["name"] == default else "",
            c["name"],
            c["server"],
            namespace if c["name"] == default and namespace else c["namespace"],
            c["source"],
        ]
        for c in clusters
    ]
    problems = registry.problems()
    return Reply(
        tables=[
            Table(
                ["", "Cluster", "Server", "Namespace", "Source"],
                rows,
                title=f"{len(clusters)} clusters",
            )
        ],
        text="\n".join(f"⚠️ {p}" for p in problems) or None,
        data={"clusters": clusters, "default": default, "problems": problems},
    )


async def status(ctx: CommandContext) -> Reply:
    kube = ctx.kubernetes
    cluster, _ = kube.target(ctx.options.get("cluster"))
    version = await kube.version(cluster=cluster)
    # Timed on a second call: the first one also pays for the connection and TLS handshake.
    start = time.perf_counter()
    await kube.version(cluster=cluster)
    latency_ms = (time.perf_counter() - start) * 1000
    nodes = await kube.list("nodes", cluster=cluster)
    ready = [n for n in nodes if _condition(n, "Ready") == "True"]
    unschedulable = [n["metadata"]["name"] for n in nodes if n.get("spec", {}).get("unschedulable")]
    healthy = nodes and len(ready) == len(nodes)
    card = Card(
        title=f"☸️ {cluster}",
        color="green" if healthy else "orange",
        fields=[
            Field("Version", version.get("gitVersion", "?"), inline=True),
            Field("Nodes ready", f"{len(ready)}/{len(nodes)}", inline=True),
            Field("API latency", f"{latency_ms:.0f} ms", inline=True),
        ]
        + ([Field("Cordoned", ", ".join(unschedulable))] if unschedulable else []),
    )
    return Reply(
        cards=[card],
        data={
            "cluster": cluster,
            "version": version.get("gitVersion"),
            "nodes": len(nodes),
            "ready": len(ready),
            "latency_ms": round(latency_ms, 1),
            "cordoned": unschedulable,
        },
    )


def use(ctx: CommandContext) -> Reply:
    registry = _registry(ctx)
    registry.use(ctx.user_id, ctx.options["cluster"], ctx.options.get("namespace"))
    cluster, namespace = registry.defaults(ctx.user_id)
    return Reply(
        text=f"Your default is now {cluster}, namespace {namespace}.",
        data={"cluster": cluster, "namespace": namespace},
    )


def add(ctx: CommandContext) -> Reply:
    upload = ctx.options["kubeconfig"]
    try:
        text = upload.data.decode("utf-8")
    except UnicodeDecodeError:
        return Reply.fail(f"{upload.name} is not a text kubeconfig")
    added = _registry(ctx).add(ctx.options["name"], text, by=ctx.user_id)
    return Reply(
        text=f"Added cluster {added['name']} ({added['server']}); its credentials are "
        "stored encrypted.",
        data=added,
        ephemeral=True,
    )


def remove(ctx: CommandContext) -> Reply:
    _registry(ctx).remove(ctx.options["name"])
    return Reply(text=f"Removed cluster {ctx.options['name']}.")


def _condition(obj: dict, kind: str) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind:
            return condition.get("status")
    return None
