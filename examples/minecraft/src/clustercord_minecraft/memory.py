"""Out of memory: read the crashed server's last log lines; on ``OutOfMemoryError`` (or an
OOMKilled container) notify with recommendations and ask an admin to raise the limit."""

from __future__ import annotations

import re

from clustercord_sdk import Reply
from clustercord_sdk.errors import CommandError

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}


def to_bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity.strip())
    if match is None:
        raise ValueError(f"unsupported memory quantity {quantity!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


def to_quantity(size: int) -> str:
    for unit in ("Gi", "Mi", "Ki"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


async def last_lines(ctx, pod: str, where: dict) -> str:
    """The container's last lines: its previous run's (the one that crashed) and the
    current one's, when there are any (a container waiting to start has none)."""
    found = []
    for previous in (True, False):
        try:
            found.append(await ctx.kubernetes.logs(pod, tail_lines=50, previous=previous, **where))
        except CommandError:
            continue
    return "\n".join(found)


async def on_crash(event, ctx) -> None:
    where = {"namespace": event.namespace, "cluster": event.cluster}
    logs = await last_lines(ctx, event.name, where)
    java_oom = "java.lang.OutOfMemoryError" in logs
    if not java_oom and event.data.get("reason") != "OOMKilled":
        return
    pod = await ctx.kubernetes.get("pods", event.name, **where)
    owner = next(
        (o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "StatefulSet"),
        None,
    )
    if owner is None:
        return
    container = pod["spec"]["containers"][0]
    current = (container.get("resources", {}).get("limits", {}) or {}).get("memory", "1Gi")
    proposed = to_quantity(to_bytes(current) * 2)
    last = [line for line in logs.splitlines() if line.strip()][-5:]
    summary = (
        f"Raise {event.namespace}/{owner['name']} memory limit {current} → {proposed} "
        "(the server ran out of memory)"
    )
    ctx.approvals.request(
        "minecraft.raise-memory",
        summary,
        requested_by="minecraft",
        details={
            "namespace": event.namespace,
            "statefulset": owner["name"],
            "container": container["name"],
            "cluster": event.cluster,
            "from": current,
            "to": proposed,
        },
    )
    await ctx.notifier.notify(
        Reply(
            text=(
                f"💥 {event.namespace}/{event.name} ran out of memory "
                f"({'java.lang.OutOfMemoryError' if java_oom else 'OOMKilled'}).\n"
                "Recommendations: set the JVM heap (-Xmx) to about 75% of the limit, lower "
                "view-distance, pre-generate the world.\n"
                f"Proposed: {summary}; an admin can approve it (/approval list).\n"
                "Last lines:\n" + "\n".join(last)
            ),
            data={"pod": event.name, "from": current, "to": proposed},
        )
    )


async def raise_memory(approval, ctx) -> None:
    details = approval.details
    await ctx.kubernetes.patch(
        "statefulsets.apps",
        details["statefulset"],
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": details["container"],
                                "resources": {
                                    "limits": {"memory": details["to"]},
                                    "requests": {"memory": details["to"]},
                                },
                            }
                        ]
                    }
                }
            }
        },
        namespace=details["namespace"],
        cluster=details.get("cluster"),
        patch_type="strategic",
    )
