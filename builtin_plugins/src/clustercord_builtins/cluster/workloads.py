"""Handlers of ``/pod`` and ``/deployment``."""

from __future__ import annotations

from datetime import UTC, datetime

from clustercord_sdk import Card, CommandContext, Field, File, Reply, Table
from clustercord_sdk.kubernetes import default_container
from clustercord_sdk.reply import code_block

# A log longer than this is attached as a file (a chat message holds 2,000 characters,
# and the code fence and the header take some of them).
INLINE_LOG_CHARS = 1800
# How many of its last lines an attached log still shows in the message.
PREVIEW_LINES = 10


def _where(ctx: CommandContext) -> tuple[str, str]:
    return ctx.kubernetes.target(ctx.options.get("cluster"), ctx.options.get("namespace"))


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """``kubectl``'s age column: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "?"
    started = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - started).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def pod_row(pod: dict) -> dict:
    status = pod.get("status", {})
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    total = len(pod.get("spec", {}).get("containers", [])) or len(containers)
    waiting = [
        c["state"]["waiting"].get("reason") for c in containers if c.get("state", {}).get("waiting")
    ]
    return {
        "namespace": pod["metadata"].get("namespace"),
        "name": pod["metadata"]["name"],
        "ready": f"{ready}/{total}",
        "status": waiting[0] if waiting else status.get("phase", "Unknown"),
        "restarts": sum(c.get("restartCount", 0) for c in containers),
        "node": pod.get("spec", {}).get("nodeName") or "",
        "ip": status.get("podIP") or "",
        "age": age(pod["metadata"].get("creationTimestamp")),
    }


async def list_pods(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    every = ctx.options.get("all_namespaces")
    pods = await ctx.kubernetes.list(
        "pods",
        namespace=namespace,
        all_namespaces=every,
        label_selector=ctx.options.get("selector"),
        cluster=cluster,
    )
    rows = [pod_row(p) for p in pods]
    columns = ["name", "ready", "status", "restarts", "node", "age"]
    if every:
        columns.insert(0, "namespace")
    where = "all namespaces" if every else f"namespace {namespace}"
    table = Table(
        [c.upper() for c in columns],
        [[r[c] for c in columns] for r in rows],
        title=f"{len(rows)} pods in {where} on {cluster}",
    )
    return Reply(tables=[table], data={"pods": rows})


async def describe_pod(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    pod = await ctx.kubernetes.get(
        "pods", ctx.options["name"], namespace=namespace, cluster=cluster
    )
    row = pod_row(pod)
    spec = pod.get("spec", {})
    fields = [
        Field("Status", row["status"], inline=True),
        Field("Ready", row["ready"], inline=True),
        Field("Restarts", str(row["restarts"]), inline=True),
        Field("Node", row["node"] or "not scheduled", inline=True),
        Field("IP", row["ip"] or "none", inline=True),
        Field("Age", row["age"], inline=True),
    ]
    for container in spec.get("containers", []):
        resources = container.get("resources", {})
        limits = ", ".join(f"{k}={v}" for k, v in (resources.get("limits") or {}).items())
        fields.append(
            Field(
                f"Container {container['name']}",
                f"{container.get('image', '?')}" + (f"\nlimits: {limits}" if limits else ""),
            )
        )
    labels = pod["metadata"].get("labels") or {}
    if labels:
        fields.append(Field("Labels", ", ".join(f"{k}={v}" for k, v in labels.items())))
    conditions = [
        c for c in pod.get("status", {}).get("conditions", []) or [] if c.get("status") != "True"
    ]
    if conditions:
        fields.append(
            Field(
                "Conditions not met",
                "\n".join(
                    f"{c['type']}: {c.get('reason', '')} {c.get('message', '')}".strip()
                    for c in conditions
                ),
            )
        )
    card = Card(title=f"Pod {namespace}/{row['name']}", fields=fields, footer=f"cluster {cluster}")
    return Reply(cards=[card], data=pod)


async def pod_logs(ctx: CommandContext) -> Reply:
    """``/pod logs``: the log inline when it is short, else attached as a file."""
    cluster, namespace = _where(ctx)
    name = ctx.options["name"]
    container = ctx.options.get("container")
    note = ""
    if not container:
        pod = await ctx.kubernetes.get("pods", name, namespace=namespace, cluster=cluster)
        container, others = default_container(pod)
        if others:
            note = f" (defaulted; the pod also has {', '.join(others)})"
    log = await ctx.kubernetes.logs(
        name,
        namespace=namespace,
        cluster=cluster,
        container=container,
        tail_lines=ctx.options.get("tail"),
        previous=bool(ctx.options.get("previous")),
    )
    lines = log.splitlines()
    header = f"📜 {namespace}/{name} container {container}{note} on {cluster}"
    data = {"pod": name, "namespace": namespace, "container": container, "lines": len(lines)}
    if not lines:
        return Reply(text=f"{header}: the log is empty.", data={**data, "attached": False})
    if len(log) <= INLINE_LOG_CHARS:
        block = code_block(log.rstrip("\n"))
        return Reply(text=f"{header}:\n{block}", data={**data, "attached": False})
    preview = code_block("\n".join(lines[-PREVIEW_LINES:])[-INLINE_LOG_CHARS:].rstrip("\n"))
    attachment = File(f"{name}-{container}.log", log.encode(), "container log", "text/plain")
    return Reply(
        text=f"{header}: {len(lines)} lines, attached; the last ones:\n{preview}",
        files=[attachment],
        data={**data, "attached": True},
    )


async def delete_pod(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    name = ctx.options["name"]
    await ctx.kubernetes.delete("pods", name, namespace=namespace, cluster=cluster)
    return Reply(
        text=f"🗑️ Deleted pod {namespace}/{name} on {cluster}.",
        data={"deleted": name, "namespace": namespace},
    )


async def list_deployments(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    every = ctx.options.get("all_namespaces")
    deployments = await ctx.kubernetes.list(
        "deployments.apps", namespace=namespace, all_namespaces=every, cluster=cluster
    )
    rows = []
    for d in deployments:
        status = d.get("status", {})
        rows.append(
            {
                "namespace": d["metadata"].get("namespace"),
                "name": d["metadata"]["name"],
                "ready": f"{status.get('readyReplicas', 0)}/{d.get('spec', {}).get('replicas', 1)}",
                "up_to_date": status.get("updatedReplicas", 0),
                "available": status.get("availableReplicas", 0),
                "age": age(d["metadata"].get("creationTimestamp")),
            }
        )
    columns = ["name", "ready", "up_to_date", "available", "age"]
    if every:
        columns.insert(0, "namespace")
    table = Table(
        [c.upper().replace("_", "-") for c in columns],
        [[r[c] for c in columns] for r in rows],
        title=f"{len(rows)} deployments on {cluster}",
    )
    return Reply(tables=[table], data={"deployments": rows})


async def scale(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    name, replicas = ctx.options["name"], ctx.options["replicas"]
    before = await ctx.kubernetes.get(
        "deployments.apps", name, namespace=namespace, cluster=cluster
    )
    await ctx.kubernetes.patch(
        "deployments.apps",
        name,
        {"spec": {"replicas": replicas}},
        namespace=namespace,
        cluster=cluster,
    )
    was = before.get("spec", {}).get("replicas", 1)
    return Reply(
        text=f"📏 {namespace}/{name}: {was} → {replicas} replicas on {cluster}.",
        data={"name": name, "from": was, "to": replicas},
    )


async def restart(ctx: CommandContext) -> Reply:
    cluster, namespace = _where(ctx)
    name = ctx.options["name"]
    # What `kubectl rollout restart` does: a new template annotation rolls every pod.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}
        }
    }
    await ctx.kubernetes.patch(
        "deployments.apps",
        name,
        patch,
        namespace=namespace,
        cluster=cluster,
        patch_type="strategic",
    )
    return Reply(
        text=f"🔄 Restarting {namespace}/{name} on {cluster} (restartedAt {now}).",
        data={"name": name, "restartedAt": now},
    )
