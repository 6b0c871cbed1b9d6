"""Waiting for a deployment's workloads to become ready, after the apply.

A workload is ready when its controller says so: a Deployment or StatefulSet with
``readyReplicas`` equal to its replicas (and the current generation observed), a
DaemonSet with every scheduled pod ready. CronJobs and Jobs have nothing to wait for.
Not being ready in time is reported, never rolled back: images may simply be slow to pull.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from clustercord_builtins.templates.inventory import PART_OF

WORKLOADS = ("deployments.apps", "statefulsets.apps", "daemonsets.apps")


def is_ready(obj: dict[str, Any]) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    meta = obj.get("metadata") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    if "desiredNumberScheduled" in status or obj.get("kind") == "DaemonSet":
        return int(status.get("numberReady", 0)) >= int(status.get("desiredNumberScheduled", 1))
    return int(status.get("readyReplicas", 0)) >= int(spec.get("replicas", 1))


async def wait_ready(
    kube: Any,
    cluster: str,
    namespace: str,
    set_id: str,
    *,
    timeout: float,
    progress: Callable[[float, float, str], Awaitable[None]],
    interval: float = 1.0,
) -> list[str]:
    """Poll until every workload of the deployment is ready; returns those that are not."""
    deadline = time.monotonic() + timeout
    while True:
        listings = await asyncio.gather(
            *(
                kube.list(
                    r, namespace=namespace, label_selector=f"{PART_OF}={set_id}", cluster=cluster
                )
                for r in WORKLOADS
            )
        )
        workloads = [
            (kind, obj)
            for kind, items in zip(
                ("Deployment", "StatefulSet", "DaemonSet"), listings, strict=True
            )
            for obj in items
        ]
        waiting = [f"{kind}/{o['metadata']['name']}" for kind, o in workloads if not is_ready(o)]
        ready = len(workloads) - len(waiting)
        await progress(ready, len(workloads) or 1, f"{ready}/{len(workloads)} workloads ready")
        if not waiting or time.monotonic() >= deadline:
            return waiting
        await asyncio.sleep(interval)
