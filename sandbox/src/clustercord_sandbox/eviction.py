"""`pods/eviction` (policy/v1 Eviction) honouring PodDisruptionBudgets, as `kubectl drain` uses it.

An eviction deletes the pod unless the one PodDisruptionBudget selecting it allows no
disruption: then the answer is 429 TooManyRequests with Kubernetes' own message, and kubectl
retries until its timeout. A Deployment's pods come back through the controllers.

`pdb_status` computes a budget's status (expectedPods, currentHealthy, desiredHealthy,
disruptionsAllowed) from the pods and their controllers. An eviction decides on a fresh one, and
`DisruptionController` (the part of kube-controller-manager that keeps it current) rewrites it
whenever pods, budgets or workloads of a namespace change, so `kubectl get pdb` shows it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from clustercord_sdk.rbac import UserInfo

from . import errors
from .controllers import cancel_task, pod_ready, selector_matches
from .errors import ApiError
from .objects import ObjectAPI, WriteOptions
from .registry import ResourceType
from .store import SandboxStore, WatchEvent

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ReadBody = Callable[[web.Request], Awaitable[Any]]

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
# Pods that are not running cannot be disrupted further: evicting them ignores budgets.
_IGNORES_BUDGETS = ("Pending", "Succeeded", "Failed")
# Changes that can change a budget's status: its pods, itself, the scale of their controllers.
_WATCHED = {("", "pods"), ("policy", "poddisruptionbudgets")} | {
    ("apps", plural) for plural in ("deployments", "replicasets", "statefulsets")
}
# Controllers whose `spec.replicas` is the number of pods a budget expects.
_SCALABLE = {
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "Deployment": ("apps", "deployments"),
    "ReplicationController": ("", "replicationcontrollers"),
}


class PodEviction:
    """The `pods/eviction` handler; `read_body` is the server's body reader (JSON or protobuf)."""

    def __init__(self, api: ObjectAPI, read_body: ReadBody) -> None:
        self.api = api
        self.read_body = read_body

    async def handle(self, request: web.Request, req: Any, user: UserInfo) -> web.StreamResponse:
        if request.method != "POST":
            raise errors.method_not_supported(f"{request.method} is not supported on eviction")
        eviction = await self.read_body(request)
        if not isinstance(eviction, dict) or eviction.get("kind") not in (None, "Eviction"):
            raise errors.bad_request("the body of a pods/eviction request must be an Eviction")
        named = (eviction.get("metadata") or {}).get("name")
        if named and named != req.name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        options = eviction.get("deleteOptions") or {}
        dry_run = "All" in (options.get("dryRun") or []) or request.query.get("dryRun") == "All"
        self.evict(req.rt, req.namespace, req.name, options, dry_run)
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return web.json_response({**status, "code": 201}, status=201)

    def evict(
        self, pods: ResourceType, namespace: str, name: str, options: Obj, dry_run: bool
    ) -> None:
        """Deletes the pod if its disruption budget allows it; raises 429 otherwise."""
        pod = self.api.get(pods, namespace, name)
        budgets = [b for b in self.budgets(namespace) if _selects(b, pod)]
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if budgets and phase not in _IGNORES_BUDGETS:
            if len(budgets) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support.",
                )
            budget = budgets[0]
            status = self.refresh(budget)
            if status["disruptionsAllowed"] < 1:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    VIOLATION,
                    {
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {budget['metadata']['name']} "
                                f"needs {status['desiredHealthy']} healthy pods and has "
                                f"{status['currentHealthy']} currently",
                            }
                        ]
                    },
                )
        self.api.delete(
            pods,
            namespace,
            name,
            dry_run,
            options.get("preconditions"),
            options.get("propagationPolicy"),
        )
        if not dry_run:
            for budget in budgets:
                self.refresh(budget)

    def refresh(self, budget: Obj) -> Obj:
        """Recomputes a budget's status from the pods now, writes it, and returns it."""
        meta = budget["metadata"]
        status = pdb_status(budget, self._pods(meta.get("namespace", "")), self._replicas_of)
        current = budget.get("status") or {}
        if any(current.get(key) != value for key, value in status.items()):
            rt = self._pdb_type()
            fresh = self.api.get(rt, meta.get("namespace", ""), meta["name"])
            body = {**fresh, "status": {**(fresh.get("status") or {}), **status}}
            self.api.update(rt, meta.get("namespace", ""), meta["name"], body, _options(), "status")
        return status

    # -- lookups ---------------------------------------------------------------------------
    def _pdb_type(self) -> ResourceType:
        rt = self.api.registry.lookup("policy", "v1", "poddisruptionbudgets")
        assert rt is not None
        return rt

    def budgets(self, namespace: str) -> list[Obj]:
        return self.api.store.list("policy", "poddisruptionbudgets", namespace)

    def _pods(self, namespace: str) -> list[Obj]:
        return self.api.store.list("", "pods", namespace)

    def _replicas_of(self, namespace: str, kind: str, name: str) -> int | None:
        where = _SCALABLE.get(kind)
        owner = self.api.store.get(*where, namespace, name) if where else None
        if owner is None:
            return None
        if kind == "ReplicaSet":  # a Deployment's ReplicaSet: the Deployment is the scale
            parent = _controller(owner)
            if parent and parent[0] == "Deployment":
                return self._replicas_of(namespace, *parent)
        return int((owner.get("spec") or {}).get("replicas", 1))


class DisruptionController:
    """Keeps every PodDisruptionBudget's status current: `start()` on the sandbox's loop."""

    def __init__(self, evictions: PodEviction, store: SandboxStore) -> None:
        self.evictions = evictions
        self.store = store
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sync(sorted(self._namespaces_with_budgets()))
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    def sync(self, namespaces: list[str]) -> None:
        """Rewrites the status of every budget in `namespaces` that changed."""
        for namespace in namespaces:
            for budget in self.evictions.budgets(namespace):
                try:
                    self.evictions.refresh(budget)
                except ApiError as exc:  # e.g. deleted meanwhile: the next event fixes it
                    log.debug("cannot update budget %s: %s", budget["metadata"]["name"], exc)

    async def _run(self) -> None:
        queue = self.store.subscribe()
        try:
            while True:
                events = [await queue.get()]
                while not queue.empty():  # a burst (a rollout) is one pass
                    events.append(queue.get_nowait())
                self.sync(sorted(_dirty_namespaces(events)))
        finally:
            self.store.unsubscribe(queue)

    def _namespaces_with_budgets(self) -> set[str]:
        budgets = self.store.list("policy", "poddisruptionbudgets", None)
        return {b["metadata"].get("namespace", "") for b in budgets}


def _dirty_namespaces(events: list[WatchEvent]) -> set[str]:
    return {e.namespace for e in events if (e.group, e.plural) in _WATCHED}


def pdb_status(
    budget: Obj, pods: list[Obj], replicas_of: Callable[[str, str, str], int | None]
) -> Obj:
    """A PodDisruptionBudget's status as the disruption controller computes it."""
    selected = [p for p in pods if _selects(budget, p) and not _terminal(p)]
    healthy = sum(1 for p in selected if pod_ready(p))
    spec = budget.get("spec") or {}
    namespace = budget["metadata"].get("namespace", "")
    if "maxUnavailable" in spec or _is_percent(spec.get("minAvailable")):
        # Percentages and maxUnavailable count against the controllers' scale.
        expected = _expected_from_controllers(selected, namespace, replicas_of)
    else:
        expected = len(selected)
    if "maxUnavailable" in spec:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        desired = _scaled(spec.get("minAvailable", 1), expected)
    return {
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "disruptionsAllowed": max(0, healthy - desired),
        "expectedPods": expected,
        "observedGeneration": budget["metadata"].get("generation", 1),
    }


def _expected_from_controllers(
    pods: list[Obj], namespace: str, replicas_of: Callable[[str, str, str], int | None]
) -> int:
    owners: dict[tuple[str, str], int] = {}
    bare = 0
    for pod in pods:
        owner = _controller(pod)
        replicas = replicas_of(namespace, *owner) if owner else None
        if owner is None or replicas is None:
            bare += 1
        else:
            owners[owner] = replicas
    return sum(owners.values()) + bare


def _scaled(value: Any, expected: int) -> int:
    """An IntOrString: an int as is, "N%" of `expected` rounded up (as the controller does)."""
    if _is_percent(value):
        try:
            percent = int(str(value)[:-1])
        except ValueError:
            raise errors.bad_request(f"invalid percentage {value!r} in disruption budget") from None
        return math.ceil(percent * expected / 100)
    return int(value)


def _is_percent(value: Any) -> bool:
    return isinstance(value, str) and value.endswith("%")


def _selects(budget: Obj, pod: Obj) -> bool:
    selector = (budget.get("spec") or {}).get("selector")
    if selector is None:
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    # In policy/v1 an empty selector selects every pod of the namespace.
    return selector == {} or selector_matches(selector, labels)


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _controller(obj: Obj) -> tuple[str, str] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind", "")), str(ref.get("name", ""))
    return None


def _options() -> WriteOptions:
    return WriteOptions(field_manager="disruption-controller")
