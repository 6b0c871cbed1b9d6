"""A model of a node reboot, so that ``/chaos node-restart`` is tested end to end.

The sandbox has no machines to reboot. What the API shows of a real reboot is modelled instead:
a running pod bound to a node with ``hostPID`` and a privileged container whose command
reboots the host (``reboot``, ``systemctl reboot``, ``systemctl restart kubelet``) makes

1. the pod end (``Succeeded``: the host stopped it), the node ``Ready=False``
   (``KubeletNotReady``) and its other running pods not Ready (``NodeNotReady``, as the node
   lifecycle controller marks them);
2. after ``DOWN_SECONDS`` (or the node's annotation ``sandbox.clustercord.io/reboot-seconds``),
   the node ``Ready`` again with a new ``bootID``, and every container of its pods restarted:
   ``restartCount`` + 1, ``lastState.terminated`` with reason ``Unknown`` and exit code 255
   (what a kubelet reports for containers that died with the host), Ready again.

Nothing else is a reboot: an unprivileged pod, or one without ``hostPID``, running ``reboot``
reboots nothing (its own PID namespace), as on a real node.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import uuid
from typing import Any

from . import errors
from .controllers import Controllers, cancel_task, condition, node_ready
from .objects import now

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DOWN_SECONDS = 3.0
DOWN_ANNOTATION = "sandbox.clustercord.io/reboot-seconds"
_REBOOT = re.compile(r"(^|[\s;&|/])(reboot|systemctl\s+(reboot|restart\s+kubelet))(\s|$|;)")


def reboots_host(pod: Obj) -> bool:
    """A running pod that would reboot its node: host PID namespace, privileged, and a
    command that reboots."""
    spec = pod.get("spec") or {}
    if not spec.get("hostPID") or (pod.get("status") or {}).get("phase") != "Running":
        return False
    for container in spec.get("containers") or []:
        privileged = (container.get("securityContext") or {}).get("privileged") is True
        command = " ".join(
            str(p) for p in (container.get("command") or []) + (container.get("args") or [])
        )
        if privileged and _REBOOT.search(command):
            return True
    return False


class NodeRestarts:
    """Watches the store for reboot pods and plays the reboot on their node."""

    def __init__(self, controllers: Controllers, down_seconds: float = DOWN_SECONDS) -> None:
        self.controllers = controllers
        self.down_seconds = down_seconds
        self._handled: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._reboots: set[asyncio.Task[None]] = set()

    def start(self) -> NodeRestarts:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def stop(self) -> None:
        await cancel_task(self._task)
        for task in list(self._reboots):
            await cancel_task(task)

    async def _watch(self) -> None:
        store = self.controllers.store
        queue = store.subscribe()
        try:
            while True:
                event = await queue.get()
                if event.group != "" or event.plural != "pods" or event.type == "DELETED":
                    continue
                pod = event.object
                uid = str((pod.get("metadata") or {}).get("uid"))
                if uid in self._handled or not reboots_host(pod):
                    continue
                self._handled.add(uid)
                task = asyncio.get_running_loop().create_task(self._reboot(pod))
                self._reboots.add(task)
                task.add_done_callback(self._reboots.discard)
        finally:
            store.unsubscribe(queue)

    def _down_seconds(self, node: Obj) -> float:
        raw = ((node.get("metadata") or {}).get("annotations") or {}).get(DOWN_ANNOTATION)
        try:
            return max(0.0, min(float(raw), 600.0)) if raw is not None else self.down_seconds
        except ValueError:
            return self.down_seconds

    async def _reboot(self, reboot_pod: Obj) -> None:
        c = self.controllers
        node_name = (reboot_pod.get("spec") or {}).get("nodeName", "")
        node = c.store.get("", "nodes", "", node_name)
        if node is None or not node_ready(node):
            return
        log.info("sandbox: node %s reboots (pod %s)", node_name, reboot_pod["metadata"]["name"])
        self._end_reboot_pod(reboot_pod)
        self._node_ready(node, False)
        for pod in self._pods_on(node_name):
            self._pod_ready(pod, False, restarted=False)
        await asyncio.sleep(self._down_seconds(node))
        node = c.store.get("", "nodes", "", node_name)
        if node is None:
            return
        self._node_ready(node, True)
        for pod in self._pods_on(node_name):
            self._pod_ready(pod, True, restarted=True)

    def _pods_on(self, node_name: str) -> list[Obj]:
        return [
            p
            for p in self.controllers._list(self.controllers.types.pod)
            if (p.get("spec") or {}).get("nodeName") == node_name
            and (p.get("status") or {}).get("phase") == "Running"
            and not (p.get("metadata") or {}).get("deletionTimestamp")
        ]

    def _write_status(self, kind: str, obj: Obj, status: Obj) -> None:
        rt = self.controllers.types.node if kind == "node" else self.controllers.types.pod
        try:
            self.controllers._set_status(rt, obj, status)
        except errors.ApiError as error:  # deleted meanwhile: nothing to model
            log.debug("sandbox reboot: %s %s: %s", kind, obj["metadata"].get("name"), error)

    def _end_reboot_pod(self, pod: Obj) -> None:
        status = copy.deepcopy(pod.get("status") or {})
        at = now()
        status["phase"] = "Succeeded"
        status["conditions"] = [
            condition(status.get("conditions"), "Ready", "False", "PodCompleted"),
            condition(status.get("conditions"), "ContainersReady", "False", "PodCompleted"),
        ]
        for container in status.get("containerStatuses") or []:
            started = (container.get("state") or {}).get("running", {}).get("startedAt", at)
            container.update(ready=False, started=False)
            container["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": at,
                }
            }
        self._write_status("pod", pod, status)

    def _node_ready(self, node: Obj, ready: bool) -> None:
        status = copy.deepcopy(node.get("status") or {})
        conditions = status.get("conditions")
        reason = "KubeletReady" if ready else "KubeletNotReady"
        message = "kubelet is posting ready status" if ready else "node is rebooting"
        ready_condition = condition(conditions, "Ready", "True" if ready else "False", reason)
        ready_condition["message"] = message
        status["conditions"] = [c for c in conditions or [] if c.get("type") != "Ready"] + [
            ready_condition
        ]
        if ready:  # a new boot: the kubelet reports a new boot ID
            status.setdefault("nodeInfo", {})["bootID"] = str(uuid.uuid4())
        self._write_status("node", node, status)

    def _pod_ready(self, pod: Obj, ready: bool, *, restarted: bool) -> None:
        status = copy.deepcopy(pod.get("status") or {})
        value = "True" if ready else "False"
        reason = "" if ready else "NodeNotReady"
        status["conditions"] = [
            condition(status.get("conditions"), c.get("type", ""), value, reason)
            if c.get("type") in ("Ready", "ContainersReady")
            else c
            for c in status.get("conditions") or []
        ]
        at = now()
        for container in status.get("containerStatuses") or []:
            container.update(ready=ready, started=ready)
            if restarted:
                started = (container.get("state") or {}).get("running", {}).get("startedAt", at)
                container["lastState"] = {
                    "terminated": {
                        "exitCode": 255, "reason": "Unknown", "startedAt": started,
                        "finishedAt": at, "containerID": container.get("containerID", ""),
                    }
                }  # fmt: skip
                container["restartCount"] = int(container.get("restartCount", 0)) + 1
                container["state"] = {"running": {"startedAt": at}}
        self._write_status("pod", pod, status)
