"""``drain-node``: cordon, then evict the node's pods one by one as ``kubectl drain`` does.

DaemonSet pods (their controller would put them back at once) and mirror pods (the kubelet's
own, which the API cannot evict) are skipped, as are finished pods and pods of protected
namespaces. An eviction a PodDisruptionBudget refuses (429) is retried every few seconds, as
kubectl retries, until the drain's timeout. Each eviction is recorded before it is asked for;
the rollback uncordons the node (evicted pods are rescheduled by their controllers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from clustercord_builtins.chaos import faults
from clustercord_builtins.chaos.experiments import Experiment, Experiments
from clustercord_sdk.errors import CommandError
from clustercord_sdk.kubernetes import Kubernetes

MIRROR = "kubernetes.io/config.mirror"
RETRY_EVERY = 5.0
"""Seconds between retries of an eviction a PodDisruptionBudget refused (kubectl's)."""


def skip_reason(pod: dict[str, Any], protected: set[str]) -> str | None:
    meta = pod["metadata"]
    if MIRROR in (meta.get("annotations") or {}):
        return "mirror pod"
    owner = faults.controller_of(pod)
    if owner and owner.get("kind") == "DaemonSet":
        return "DaemonSet pod"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return "finished"
    if meta.get("namespace") in protected:
        return "protected namespace"
    return None


async def pods_on(kube: Kubernetes, node: str, cluster: str) -> list[dict[str, Any]]:
    return await kube.list(
        "pods", all_namespaces=True, field_selector=f"spec.nodeName={node}", cluster=cluster
    )


async def drain(
    kube: Kubernetes,
    experiments: Experiments,
    experiment: Experiment,
    protected: set[str],
    retry_every: float = RETRY_EVERY,
    progress: Callable[[int, int, str], Any] | None = None,
) -> None:
    """Cordon (the first recorded change) was made; evict the pods within the timeout."""
    node, cluster = experiment.target, experiment.cluster
    deadline = time.monotonic() + float(experiment.parameters.get("timeout", 300))
    evicted: list[str] = []
    blocked: list[str] = []
    skipped: list[str] = []
    pending = []
    for pod in await pods_on(kube, node, cluster):
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        reason = skip_reason(pod, protected)
        if reason:
            skipped.append(f"{where} ({reason})")
        else:
            pending.append(pod)
    total = len(pending)
    while pending:
        current = experiments.get(experiment.id)
        if current is not None and current.state != "injecting":  # stopped meanwhile
            skipped += [
                f"{p['metadata']['namespace']}/{p['metadata']['name']} (stopped)" for p in pending
            ]
            break
        pod = pending.pop(0)
        meta = pod["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        change = {
            "kind": "pod-drained",
            "cluster": cluster,
            "namespace": meta["namespace"],
            "pod": meta["name"],
            "uid": meta.get("uid"),
        }
        if change not in experiment.changes:
            experiment.changes.append(change)
            experiments.save(experiment)  # recorded before the eviction is asked for
        try:
            await faults.kill(kube, {**change, "kind": "pod-evicted"}, None)
        except CommandError as error:
            if faults.is_not_found(error):
                evicted.append(f"{where} (already gone)")
                continue
            if "PodDisruptionBudget" not in str(error):
                blocked.append(f"{where}: {error}")
                experiments.note(experiment.id, f"could not evict {where}: {error}")
                continue
            if time.monotonic() + retry_every > deadline:
                blocked.append(
                    f"{where}: a PodDisruptionBudget allowed no disruption until the timeout"
                )
                experiments.note(experiment.id, f"gave up on {where}: PodDisruptionBudget")
                continue
            experiments.note(experiment.id, f"{where}: PodDisruptionBudget, retrying")
            await asyncio.sleep(retry_every)
            pending.append(pod)
            continue
        evicted.append(where)
        experiments.note(experiment.id, f"evicted {where}")
        if progress is not None:
            await progress(len(evicted), total, where)
    current = experiments.get(experiment.id)
    if current is not None and current.state != "injecting":  # a stop won: keep its outcome
        experiment.state, experiment.ended, experiment.error = (
            current.state,
            current.ended,
            current.error,
        )
        experiment.result = {**current.result, **experiment.result}
    experiment.result.update({"evicted": evicted, "blocked": blocked, "skipped": skipped})
    experiments.save(experiment)
