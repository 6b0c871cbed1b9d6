"""``node-restart``: a privileged pod on the node reboots it (always behind an admin's approval).

The pod runs with ``hostPID`` and a privileged container that enters the host's namespaces
(``nsenter --target 1``) and runs ``systemctl reboot``. It is recorded (change
``restart-pod``) before it is created, carries the experiment's label and expiry like every
fault, and is deleted at the end, on stop, or by the reconciler. The report says how long the
node was NotReady and how many containers of its pods restarted (``restartCount``), read from
the API; the reboot is seen by the node's new ``bootID``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clustercord_builtins.chaos import faults
from clustercord_sdk.errors import CommandError
from clustercord_sdk.kubernetes import Kubernetes

DEFAULT_IMAGE = "docker.io/library/busybox:1.36"
"""Any image with ``nsenter`` (busybox has it); ``node_restart_image`` overrides it."""
COMMAND = ["nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--"]
REBOOT = ["systemctl", "reboot"]
MARK = "chaos.clustercord.io/node-restart"


def pod_name(experiment_id: str) -> str:
    return f"chaos-node-restart-{experiment_id}"


def restart_change(node: str, cluster: str, namespace: str, experiment_id: str) -> dict[str, Any]:
    return {
        "kind": "restart-pod",
        "cluster": cluster,
        "namespace": namespace,
        "pod": pod_name(experiment_id),
        "node": node,
    }


def manifest(change: dict[str, Any], experiment: str, expires: float, image: str) -> dict[str, Any]:
    """The privileged pod: bound to the node by name (no scheduler, so a cordoned or tainted
    node is still reached), tolerating every taint, never restarted."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": change["pod"],
            "namespace": change["namespace"],
            "labels": {faults.LABEL: experiment},
            "annotations": {faults.EXPIRES: faults.iso(expires), MARK: change["node"]},
        },
        "spec": {
            "nodeName": change["node"],
            "hostPID": True,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "reboot",
                    "image": image,
                    "command": [*COMMAND, *REBOOT],
                    "securityContext": {"privileged": True},
                }
            ],
        },
    }


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _boot_id(node: dict[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("bootID", ""))


async def restart_counts(kube: Kubernetes, node: str, cluster: str) -> dict[str, int]:
    pods = await kube.list(
        "pods", all_namespaces=True, field_selector=f"spec.nodeName={node}", cluster=cluster
    )
    return {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": sum(
            int(s.get("restartCount", 0))
            for s in (p.get("status") or {}).get("containerStatuses") or []
        )
        for p in pods
        if not (p["metadata"].get("labels") or {}).get(faults.LABEL)
    }


async def restart(
    kube: Kubernetes,
    change: dict[str, Any],
    experiment: str,
    expires: float,
    image: str,
    timeout: float,
    poll: float = 0.2,
) -> dict[str, Any]:
    """Create the reboot pod and watch the node go NotReady and come back (new boot ID)
    within ``timeout`` seconds. The pod is left for the rollback to delete."""
    node = await kube.get("nodes", change["node"], cluster=change["cluster"])
    boot_before = _boot_id(node)
    before = await restart_counts(kube, change["node"], change["cluster"])
    await kube.create(
        "pods", manifest(change, experiment, expires, image),
        namespace=change["namespace"], cluster=change["cluster"],
    )  # fmt: skip
    started = time.monotonic()
    down_at: float | None = None
    while time.monotonic() - started < timeout:
        node = await kube.get("nodes", change["node"], cluster=change["cluster"])
        if down_at is None and not _ready(node):
            down_at = time.monotonic()
        rebooted = _boot_id(node) != boot_before
        if _ready(node) and (down_at is not None or rebooted):
            back = time.monotonic()
            after = await restart_counts(kube, change["node"], change["cluster"])
            restarted = {
                k: after[k] - before[k] for k in after if k in before and after[k] > before[k]
            }
            return {
                "rebooted": rebooted,
                "not_ready_seconds": round(back - (down_at or back), 3),
                "back_after_seconds": round(back - started, 3),
                "restarted_containers": sum(restarted.values()),
                "restarted_pods": sorted(restarted),
            }
        await asyncio.sleep(poll)
    raise CommandError(
        f"node {change['node']} did not go through a restart within {timeout:g} s "
        "(the reboot pod may not have run: is the image pullable, privileged pods allowed?)"
    )


async def remove(kube: Kubernetes, change: dict[str, Any]) -> str:
    try:
        await kube.delete(
            "pods", change["pod"], namespace=change["namespace"], cluster=change["cluster"],
            grace_period=0,
        )  # fmt: skip
    except CommandError as error:
        if faults.is_not_found(error):
            return f"reboot pod {change['namespace']}/{change['pod']} is gone"
        raise
    return f"reboot pod {change['namespace']}/{change['pod']} deleted"


def change_from_marked(pod: dict[str, Any], cluster: str) -> dict[str, Any] | None:
    """The restart-pod change a marked reboot pod describes (a record lost in a crash)."""
    meta = pod["metadata"]
    node = (meta.get("annotations") or {}).get(MARK)
    if not node:
        return None
    return {
        "kind": "restart-pod",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "node": node,
    }
