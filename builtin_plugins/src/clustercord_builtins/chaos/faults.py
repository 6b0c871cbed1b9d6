"""The changes faults make in the cluster, and what undoes each.

Every change is described by a plain dict (stored in the experiment's record before the change
is made) that :func:`undo` reverses. Undo is idempotent and safe to run on a change that was
never made (the bot may have died just before making it): it only reverts what still carries
the fault's mark. The target carries the mark too (label ``chaos.clustercord.io/experiment``,
annotations with the expiry and the originals), so a fault whose record was lost is still
found and removed (:func:`marked_pods`, :func:`marked_nodes`).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from clustercord_sdk.errors import CommandError
from clustercord_sdk.kubernetes import Kubernetes

LABEL = "chaos.clustercord.io/experiment"
EXPIRES = "chaos.clustercord.io/expires"
ORIGINALS = "chaos.clustercord.io/original-images"
CORDONED = "chaos.clustercord.io/cordoned"


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_not_found(error: Exception) -> bool:
    return str(error).startswith("not found")


# -- pod-failure: images swapped for a pause image ----------------------------------------
def image_swap(pod: dict[str, Any], pause_image: str, cluster: str) -> dict[str, Any]:
    """The change pod-failure makes to ``pod``: every container's image becomes
    ``pause_image``; the originals are kept here and in the pod's annotation."""
    meta = pod["metadata"]
    return {
        "kind": "pod-image",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "uid": meta.get("uid"),
        "pause_image": pause_image,
        "originals": {c["name"]: c.get("image", "") for c in pod["spec"].get("containers", [])},
    }


async def swap_images(
    kube: Kubernetes, change: dict[str, Any], experiment: str, expires: float
) -> None:
    body = {
        "metadata": {
            "labels": {LABEL: experiment},
            "annotations": {EXPIRES: iso(expires), ORIGINALS: json.dumps(change["originals"])},
        },
        "spec": {
            "containers": [{"name": n, "image": change["pause_image"]} for n in change["originals"]]
        },
    }
    await kube.patch(
        "pods",
        change["pod"],
        body,
        namespace=change["namespace"],
        cluster=change["cluster"],
        patch_type="strategic",
    )


async def restore_images(kube: Kubernetes, change: dict[str, Any]) -> str:
    try:
        pod = await kube.get(
            "pods", change["pod"], namespace=change["namespace"], cluster=change["cluster"]
        )
    except CommandError as error:
        if is_not_found(error):
            return f"pod {change['namespace']}/{change['pod']} is gone: nothing to restore"
        raise
    if change.get("uid") and pod["metadata"].get("uid") != change["uid"]:
        return f"pod {change['namespace']}/{change['pod']} was replaced: nothing to restore"
    current = {c["name"]: c.get("image") for c in pod["spec"].get("containers", [])}
    # Only what still runs the pause image: an image someone changed since is theirs.
    restore = [
        {"name": name, "image": image}
        for name, image in change["originals"].items()
        if current.get(name) == change["pause_image"] and image != change["pause_image"]
    ]
    meta = pod["metadata"]
    marked = LABEL in (meta.get("labels") or {}) or ORIGINALS in (meta.get("annotations") or {})
    if not restore and not marked:
        return f"pod {change['namespace']}/{change['pod']}: nothing to restore"
    body: dict[str, Any] = {
        "metadata": {"labels": {LABEL: None}, "annotations": {EXPIRES: None, ORIGINALS: None}}
    }
    if restore:
        body["spec"] = {"containers": restore}
    await kube.patch(
        "pods",
        change["pod"],
        body,
        namespace=change["namespace"],
        cluster=change["cluster"],
        patch_type="strategic",
    )
    images = ", ".join(f"{r['name']}={r['image']}" for r in restore) or "unchanged"
    return f"pod {change['namespace']}/{change['pod']}: images restored ({images})"


# -- drain-node: cordon, rollback uncordons -----------------------------------------------
def cordon_change(node: dict[str, Any], cluster: str) -> dict[str, Any]:
    return {
        "kind": "node-cordon",
        "cluster": cluster,
        "node": node["metadata"]["name"],
        # A node cordoned before the experiment stays cordoned after it.
        "was_unschedulable": bool(node.get("spec", {}).get("unschedulable")),
    }


async def cordon(kube: Kubernetes, change: dict[str, Any], experiment: str, expires: float) -> None:
    body = {
        "metadata": {
            "labels": {LABEL: experiment},
            "annotations": {EXPIRES: iso(expires), CORDONED: "true"},
        },
        "spec": {"unschedulable": True},
    }
    await kube.patch("nodes", change["node"], body, cluster=change["cluster"])


async def uncordon(kube: Kubernetes, change: dict[str, Any]) -> str:
    try:
        node = await kube.get("nodes", change["node"], cluster=change["cluster"])
    except CommandError as error:
        if is_not_found(error):
            return f"node {change['node']} is gone"
        raise
    meta = node["metadata"]
    if LABEL not in (meta.get("labels") or {}) and CORDONED not in (meta.get("annotations") or {}):
        return f"node {change['node']}: nothing to undo"
    body: dict[str, Any] = {
        "metadata": {"labels": {LABEL: None}, "annotations": {EXPIRES: None, CORDONED: None}}
    }
    if not change.get("was_unschedulable"):
        body["spec"] = {"unschedulable": None}
    await kube.patch("nodes", change["node"], body, cluster=change["cluster"])
    return (
        f"node {change['node']} uncordoned"
        if not change.get("was_unschedulable")
        else (f"node {change['node']}: left cordoned, as it was before")
    )


# -- undo of any change ------------------------------------------------------------------
async def undo(kube: Kubernetes, change: dict[str, Any]) -> str:
    """Reverse one recorded change; returns what was done, for the timeline."""
    kind = change.get("kind")
    if kind == "pod-image":
        return await restore_images(kube, change)
    if kind == "node-cordon":
        return await uncordon(kube, change)
    if kind in ("pod-deleted", "pod-evicted", "pod-drained"):
        return f"pod {change.get('namespace')}/{change.get('pod')}: its controller replaces it"
    return f"nothing known undoes a {kind!r} change"


# -- faults left in the cluster without a live record -------------------------------------
async def marked_pods(kube: Kubernetes, cluster: str) -> list[dict[str, Any]]:
    return await kube.list("pods", all_namespaces=True, label_selector=LABEL, cluster=cluster)


async def marked_nodes(kube: Kubernetes, cluster: str) -> list[dict[str, Any]]:
    return await kube.list("nodes", label_selector=LABEL, cluster=cluster)


def change_from_marked_pod(pod: dict[str, Any], cluster: str) -> dict[str, Any] | None:
    """The pod-image change a marked pod's annotations describe (``None`` without them)."""
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(ORIGINALS)
    try:
        originals = json.loads(raw) if raw else None
    except ValueError:
        originals = None
    if not isinstance(originals, dict):
        return None
    current = {c["name"]: c.get("image") for c in pod["spec"].get("containers", [])}
    pauses = {current[n] for n in originals if n in current and current[n] != originals[n]}
    return {
        "kind": "pod-image",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "uid": meta.get("uid"),
        "pause_image": next(iter(pauses), ""),
        "originals": {str(k): str(v) for k, v in originals.items()},
    }


def marked_expiry(obj: dict[str, Any]) -> float | None:
    raw = (obj["metadata"].get("annotations") or {}).get(EXPIRES)
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


# -- kill-pod ----------------------------------------------------------------------------
def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def controller_of(pod: dict[str, Any]) -> dict[str, Any] | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return {"kind": ref.get("kind"), "name": ref.get("name"), "uid": ref.get("uid")}
    return None


async def kill(kube: Kubernetes, change: dict[str, Any], grace: int | None) -> None:
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    if change["kind"] == "pod-deleted":
        await kube.delete("pods", change["pod"], grace_period=grace, **where)
        return
    eviction: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": change["pod"], "namespace": change["namespace"]},
    }
    if grace is not None:
        eviction["deleteOptions"] = {"gracePeriodSeconds": grace}
    try:
        await kube.create("pods/eviction", eviction, **where)
    except CommandError as error:
        if "(429)" in str(error) or "disruption budget" in str(error).lower():
            raise CommandError(
                f"the eviction of {change['namespace']}/{change['pod']} was refused: a "
                "PodDisruptionBudget allows no disruption now (nothing was changed)"
            ) from None
        raise


async def wait_replacement(
    kube: Kubernetes, change: dict[str, Any], timeout: float, poll: float = 0.2
) -> dict[str, Any]:
    """Wait until the pod's controller has a Ready pod other than the killed one: the
    recovery time, or that it did not recover within ``timeout`` seconds."""
    owner = change.get("owner")
    if not owner:
        return {
            "replacement": None,
            "recovery_seconds": None,
            "note": "the pod had no controller: nothing replaces it",
        }
    started = time.monotonic()
    while True:
        pods = await kube.list("pods", namespace=change["namespace"], cluster=change["cluster"])
        for pod in pods:
            if pod["metadata"].get("uid") == change["uid"] or pod["metadata"].get(
                "deletionTimestamp"
            ):
                continue
            if _same_owner(pod, owner) and pod_ready(pod):
                return {
                    "replacement": pod["metadata"]["name"],
                    "recovery_seconds": round(
                        time.monotonic() - started + change.get("kill_seconds", 0), 3
                    ),
                }
        if time.monotonic() - started > timeout:
            return {
                "replacement": None,
                "recovery_seconds": None,
                "note": f"no Ready replacement within {timeout:g} s",
            }
        await asyncio.sleep(poll)


def _same_owner(pod: dict[str, Any], owner: dict[str, Any]) -> bool:
    mine = controller_of(pod)
    if mine is None:
        return False
    if owner.get("kind") == "StatefulSet":  # a StatefulSet recreates the pod under its name
        return mine.get("uid") == owner.get("uid")
    return mine.get("uid") == owner.get("uid")
