"""`pods/ephemeralcontainers`: how `kubectl debug POD --image=... --target=...` adds a container.

GET returns the pod; PUT and PATCH may only add ephemeral containers (existing ones cannot be
changed or removed, names must be unique in the pod, a target must be one of its containers),
as on a real API server. An added container is reported running at once (the sandbox runs no
images); `kubectl debug -it` then attaches to it, which `podexec` serves with a process in the
target pod's namespaces, with the capabilities the container's securityContext grants.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from clustercord_sdk.rbac import UserInfo

from . import errors
from .objects import ObjectAPI, WriteOptions, now
from .registry import ResourceType

Obj = dict[str, Any]
ReadBody = Callable[[web.Request], Awaitable[Any]]


class EphemeralContainers:
    """The `pods/ephemeralcontainers` handler; `read_body` is the server's body reader."""

    def __init__(self, api: ObjectAPI, read_body: ReadBody) -> None:
        self.api = api
        self.read_body = read_body

    async def handle(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        rt: ResourceType = req.rt
        if request.method == "GET":
            return web.json_response(self.api.get(rt, req.namespace, req.name))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_supported(
                f"{request.method} is not supported on pods/ephemeralcontainers"
            )
        body = await self.read_body(request)
        if request.method == "PATCH":
            # The patch applies to the whole pod; only its ephemeral containers are kept.
            body = self.api.patch(
                rt,
                req.namespace,
                req.name,
                request.content_type,
                body,
                WriteOptions(dry_run=True, field_manager="kubectl-debug"),
            )
        if not isinstance(body, dict):
            raise errors.bad_request("the body of pods/ephemeralcontainers must be a Pod")
        wanted = (body.get("spec") or {}).get("ephemeralContainers") or []
        return web.json_response(self.add(rt, req.namespace, req.name, wanted))

    def add(self, rt: ResourceType, namespace: str, name: str, wanted: list[Obj]) -> Obj:
        """Adds the new ephemeral containers of `wanted` to the pod, running; returns the pod."""
        pod = self.api.get(rt, namespace, name)
        existing = (pod.get("spec") or {}).get("ephemeralContainers") or []
        added, problems = _new_containers(pod.get("spec") or {}, wanted)
        if problems:
            raise errors.invalid(rt, name, problems)
        if not added:
            return pod
        body = copy.deepcopy(pod)
        body["spec"]["ephemeralContainers"] = [*existing, *added]
        options = WriteOptions(field_manager="kubectl-debug")
        updated = self.api.update(rt, namespace, name, body, options)
        status = copy.deepcopy(updated.get("status") or {})
        status["ephemeralContainerStatuses"] = [
            *(status.get("ephemeralContainerStatuses") or []),
            *(_running(updated, c) for c in added),
        ]
        return self.api.update(
            rt, namespace, name, {**updated, "status": status}, options, "status"
        )


def _new_containers(spec: Obj, wanted: list[Obj]) -> tuple[list[Obj], list[tuple[str, str, str]]]:
    """The containers `wanted` adds, and the problems (field, reason, message) that forbid it."""
    field = "spec.ephemeralContainers"
    existing = {c["name"]: c for c in spec.get("ephemeralContainers") or []}
    names = {c.get("name") for key in ("containers", "initContainers") for c in spec.get(key) or []}
    wanted_names = {c.get("name") for c in wanted if isinstance(c, dict)}
    problems = [
        (field, "FieldValueForbidden", f"{old}: existing ephemeral containers may not be removed")
        for old in existing
        if old not in wanted_names
    ]
    added: list[Obj] = []
    for index, container in enumerate(wanted):
        where = f"{field}[{index}]"
        if not isinstance(container, dict) or not container.get("name"):
            problems.append((f"{where}.name", "FieldValueRequired", "Required value"))
            continue
        cname = container["name"]
        if cname in existing:
            if container != existing[cname]:
                message = f'existing ephemeral containers "{cname}" may not be changed'
                problems.append((where, "FieldValueForbidden", message))
            continue
        if cname in names or any(c["name"] == cname for c in added):
            problems.append((f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{cname}"'))
        if not container.get("image"):
            problems.append((f"{where}.image", "FieldValueRequired", "Required value"))
        target = container.get("targetContainerName")
        if target and target not in names:
            message = f'Not found: "{target}"'
            problems.append((f"{where}.targetContainerName", "FieldValueNotFound", message))
        added.append(container)
    return added, problems


def _running(pod: Obj, container: Obj) -> Obj:
    uid = pod["metadata"].get("uid", "")
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": f"sandbox://{container.get('image', '')}",
        "containerID": f"sandbox://{uid[:8]}-{container['name']}",
        "ready": False,  # ephemeral containers never count as ready
        "restartCount": 0,
        "state": {"running": {"startedAt": now()}},
        "lastState": {},
    }
