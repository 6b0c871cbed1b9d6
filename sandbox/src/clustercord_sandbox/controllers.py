"""Light controllers: what kube-controller-manager, the scheduler and the kubelets would do.

Nothing runs containers. The controllers only write the objects a real cluster would write, so
`kubectl get pods`, `rollout status`, `scale` and `cordon` behave as users expect:

- Deployment → ReplicaSet (pod-template-hash, revision) → Pods; a template change creates a new
  ReplicaSet and scales the old ones to zero at once (an instant rolling update);
- StatefulSet (ordinal pods and their claims), DaemonSet (a pod per Ready node), Job (pods
  that succeed at once);
- the scheduler (round-robin over Ready, non-cordoned nodes that match `nodeSelector`) and the
  kubelet (Pending → Running with a pod IP from the node's 10.244.x.0/24);
- ownerReference garbage collection (background propagation; `Orphan` and `Foreground` are
  handled by `ObjectAPI.delete`), PersistentVolumeClaim binding, a kubelet status for nodes
  registered without one, and ClusterRole aggregation.

Every controller is level-triggered: `reconcile_once()` compares what is stored with what should
be and writes the difference, repeating until nothing changes. The async loop only decides *when*
to reconcile (after any store change it did not make itself), so tests can call
`reconcile_once()` directly and get the same, deterministic result.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import errors
from .clusterbasics import ClusterBasics
from .objects import ObjectAPI, WriteOptions, now
from .registry import ResourceType
from .store import SandboxStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# The alphabet Kubernetes uses for generated suffixes (no vowels, no confusable characters).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"
REVISION_HASH = "controller-revision-hash"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
MAX_PASSES = 20


@dataclass(frozen=True)
class _Types:
    """The resource types the controllers touch, looked up once."""

    pod: ResourceType
    node: ResourceType
    namespace: ResourceType
    deployment: ResourceType
    replicaset: ResourceType
    statefulset: ResourceType
    daemonset: ResourceType
    job: ResourceType
    pvc: ResourceType
    pv: ResourceType
    storageclass: ResourceType
    clusterrole: ResourceType


def _types(api: ObjectAPI) -> _Types:
    def find(group: str, plural: str) -> ResourceType:
        version = "v1"
        rt = api.registry.lookup(group, version, plural)
        assert rt is not None, f"the registry lacks {plural}.{group}"
        return rt

    return _Types(
        pod=find("", "pods"),
        node=find("", "nodes"),
        namespace=find("", "namespaces"),
        deployment=find("apps", "deployments"),
        replicaset=find("apps", "replicasets"),
        statefulset=find("apps", "statefulsets"),
        daemonset=find("apps", "daemonsets"),
        job=find("batch", "jobs"),
        pvc=find("", "persistentvolumeclaims"),
        pv=find("", "persistentvolumes"),
        storageclass=find("storage.k8s.io", "storageclasses"),
        clusterrole=find("rbac.authorization.k8s.io", "clusterroles"),
    )


# -- small pure helpers ---------------------------------------------------------------------
def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _ns(obj: Obj) -> str:
    return str(_meta(obj).get("namespace", ""))


def _name(obj: Obj) -> str:
    return str(_meta(obj)["name"])


def _uid(obj: Obj) -> str:
    return str(_meta(obj).get("uid", ""))


def _controller_uid(obj: Obj) -> str | None:
    """The uid of the object's controlling owner (`controller: true`), if any."""
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": _name(owner),
        "uid": _uid(owner),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def template_hash(template: Obj) -> str:
    """A stable, label-safe hash of a pod template (the real one is an FNV-32 of the spec)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(SAFE_ALPHABET))
        chars.append(SAFE_ALPHABET[index])
    return "".join(chars)


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A `metav1.LabelSelector` (matchLabels and matchExpressions) against labels."""
    if not selector:
        return False  # an empty/absent selector selects nothing in aggregation rules
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def condition(
    existing: list[Obj] | None, type_: str, status: str, reason: str = "", message: str = ""
) -> Obj:
    """A status condition that keeps its old timestamps when nothing about it changed.

    Without this every reconcile would write a new timestamp and never reach a fixed point.
    """
    old = next((c for c in existing or [] if c.get("type") == type_), None)
    stamp = now()
    cond: Obj = {"type": type_, "status": status}
    if old and old.get("status") == status:
        cond["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
    else:
        cond["lastTransitionTime"] = stamp
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _condition_true(obj: Obj, type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def node_ready(node: Obj) -> bool:
    return _condition_true(node, "Ready")


def pod_ready(pod: Obj) -> bool:
    return _condition_true(pod, "Ready") and not _meta(pod).get("deletionTimestamp")


def _cordoned(node: Obj) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def _finished(pod: Obj) -> bool:
    return _phase(pod) in ("Succeeded", "Failed")


def default_node_status(
    name: str,
    internal_ip: str,
    arch: str = "amd64",
    cpu: str = "4",
    memory: str = "8Gi",
    os_image: str = "Ubuntu 24.04.1 LTS",
) -> Obj:
    """What a kubelet reports for a healthy node: Ready, capacity, addresses, nodeInfo."""
    resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    pressure = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    stamp = now()
    conditions = [
        {
            "type": t,
            "status": "False",
            "reason": r,
            "message": m,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for t, r, m in pressure
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
    )
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": internal_ip},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": arch,
            "bootID": str(uuid.UUID(digest[:32])),
            "containerRuntimeVersion": "containerd://1.7.22",
            "kernelVersion": "6.8.0-48-generic",
            "kubeProxyVersion": "v1.32.0",
            "kubeletVersion": "v1.32.0",
            "machineID": digest[:32],
            "operatingSystem": "linux",
            "osImage": os_image,
            "systemUUID": digest[32:64],
        },
    }


def _node_ip(node: Obj) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return ""


# -- the controller manager -------------------------------------------------------------------
# The field manager the controllers' writes are recorded under, as on a real cluster.
FIELD_MANAGER = "kube-controller-manager"


def _options() -> WriteOptions:
    return WriteOptions(field_manager=FIELD_MANAGER)


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancels a background loop and waits until it has really stopped (if it ever started)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Controllers(ClusterBasics):
    """All sandbox controllers over one `ObjectAPI`; see the module docstring (and
    `clusterbasics` for events, endpoints and what every cluster has)."""

    def __init__(self, api: ObjectAPI, seed: int = 0, debounce: float = 0.01) -> None:
        self.api = api
        self.store: SandboxStore = api.store
        self.types = _types(api)
        self._random = random.Random(seed)
        self._debounce = debounce
        self._next_node = 0  # the scheduler's round-robin position
        self._writes = 0
        self._settled = -1  # the store version right after our last reconcile
        self._task: asyncio.Task[None] | None = None
        self._basics_types()

    def _basics_write(self) -> None:
        self._writes += 1

    # -- driving -------------------------------------------------------------------------------
    def reconcile_once(self) -> int:
        """Runs every controller until nothing changes; returns how many writes it made."""
        total = 0
        for _ in range(MAX_PASSES):
            self._writes = 0
            self._pass()
            total += self._writes
            if not self._writes:
                break
        else:
            log.warning("sandbox controllers did not settle after %d passes", MAX_PASSES)
        self._settled = self.store.resource_version
        return total

    def _pass(self) -> None:
        self._finalize_namespaces()
        self._aggregate_cluster_roles()
        self._register_nodes()
        self._collect_garbage()
        self._bind_claims()
        self._each(self.types.deployment, self._reconcile_deployment)
        self._each(self.types.replicaset, self._reconcile_replicaset)
        self._each(self.types.statefulset, self._reconcile_statefulset)
        self._each(self.types.daemonset, self._reconcile_daemonset)
        self._each(self.types.job, self._reconcile_job)
        self._schedule()
        self._run_pods()
        self._reconcile_basics()

    def _each(self, rt: ResourceType, reconcile: Callable[[Obj], None]) -> None:
        """Reconciles every object of a type; one malformed object must not block the rest."""
        for obj in self._list(rt):
            if not isinstance(obj.get("spec"), dict):
                continue  # nothing to act on (a workload always has a spec via kubectl)
            try:
                reconcile(obj)
            except (errors.ApiError, KeyError, TypeError, ValueError):
                log.exception("sandbox controller failed on %s %s", rt.kind, _name(obj))

    async def run(self) -> None:
        """Reconciles now and after every store change the controllers did not make."""
        queue = self.store.subscribe()
        try:
            self._safe_reconcile()
            while True:
                event = await queue.get()
                if event.resource_version <= self._settled:
                    continue  # our own writes
                await asyncio.sleep(self._debounce)  # let a burst (kubectl apply -f) land
                burst = [event]
                while not queue.empty():
                    burst.append(queue.get_nowait())
                for change in burst:  # a pod someone else deleted: its kubelet stops it
                    if (
                        change.type == "DELETED"
                        and change.group == ""
                        and change.plural == "pods"
                        and change.resource_version > self._settled
                    ):
                        self.record_killing(change.object)
                self._safe_reconcile()
        finally:
            self.store.unsubscribe(queue)

    def _safe_reconcile(self) -> None:
        """A controller bug must not stop the loop (nor the server): log it and go on."""
        try:
            self.reconcile_once()
        except Exception:
            log.exception("sandbox controllers failed to reconcile")
            self._settled = self.store.resource_version

    def start(self) -> Controllers:
        """Starts `run()` as a task on the running event loop (call it from that loop)."""
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    # -- store access that counts writes -------------------------------------------------------
    def _list(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        return self.store.list(rt.group, rt.plural, namespace)

    def _create(self, rt: ResourceType, obj: Obj) -> Obj | None:
        try:
            created = self.api.create(rt, _ns(obj), obj, _options())
        except errors.ApiError as exc:  # e.g. the namespace is gone: try next time
            log.debug("controller could not create %s %s: %s", rt.kind, _name(obj), exc)
            return None
        self._writes += 1
        if rt is self.types.pod:
            self.record_owner(created, "SuccessfulCreate", f"Created pod: {_name(created)}")
        return created

    def _update(self, rt: ResourceType, obj: Obj) -> Obj:
        """Last write wins: the controllers are the only writer while a pass runs."""
        body = copy.deepcopy(obj)
        _meta(body).pop("resourceVersion", None)
        updated = self.api.update(rt, _ns(obj), _name(obj), body, _options())
        self._writes += 1
        return updated

    def _set_status(self, rt: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        body = copy.deepcopy(obj)
        body["status"] = status
        _meta(body).pop("resourceVersion", None)
        self.api.update(rt, _ns(obj), _name(obj), body, _options(), "status")
        obj["status"] = status
        self._writes += 1

    def _delete(self, rt: ResourceType, obj: Obj) -> None:
        if _meta(obj).get("deletionTimestamp"):
            return  # being deleted already (waiting for its finalizers)
        with contextlib.suppress(errors.ApiError):  # already gone
            self.api.delete(rt, _ns(obj), _name(obj))
            self._writes += 1
            if rt is self.types.pod:
                self.record_owner(obj, "SuccessfulDelete", f"Deleted pod: {_name(obj)}")
                self.record_killing(obj)

    def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = _uid(owner)
        return [p for p in self._list(self.types.pod, _ns(owner)) if _controller_uid(p) == uid]

    def _suffix_name(self, prefix: str, namespace: str) -> str:
        """`<prefix>-<5 random safe characters>`, unused in the namespace."""
        while True:
            suffix = "".join(self._random.choice(SAFE_ALPHABET) for _ in range(5))
            name = f"{prefix}-{suffix}"
            if self.store.get("", "pods", namespace, name) is None:
                return name

    # -- namespaces -------------------------------------------------------------------------
    def _finalize_namespaces(self) -> None:
        """A Terminating namespace loses its contents, then goes (see `finalize_namespace`)."""
        for namespace in self._list(self.types.namespace):
            if _meta(namespace).get("deletionTimestamp") and self.api.finalize_namespace(
                _name(namespace)
            ):
                self._writes += 1

    # -- ClusterRole aggregation ---------------------------------------------------------------
    def _aggregate_cluster_roles(self) -> None:
        """`admin`, `edit`, `view` get the rules of the ClusterRoles their selectors match."""
        roles = self._list(self.types.clusterrole)
        for role in roles:
            rule = role.get("aggregationRule")
            if not rule:
                continue
            rules: list[Obj] = []
            for other in roles:
                labels = _meta(other).get("labels") or {}
                if other is role or not any(
                    selector_matches(s, labels) for s in rule.get("clusterRoleSelectors") or []
                ):
                    continue
                rules += [r for r in other.get("rules") or [] if r not in rules]
            if (role.get("rules") or []) != rules:
                role["rules"] = rules
                self._update(self.types.clusterrole, role)

    # -- nodes ------------------------------------------------------------------------------
    def _register_nodes(self) -> None:
        """A node created without a status gets the one its kubelet would post (Ready)."""
        nodes = self._list(self.types.node)
        for index, node in enumerate(nodes):
            status = node.get("status") or {}
            if status.get("conditions"):
                continue
            ip = f"192.168.1.{200 + index % 50}"
            self._set_status(self.types.node, node, default_node_status(_name(node), ip))

    # -- garbage collection -----------------------------------------------------------------
    def _all_objects(self) -> Iterator[tuple[ResourceType, Obj]]:
        for rt in self.api.registry.stored():
            if "list" not in rt.verbs:
                continue
            for obj in self._list(rt):
                yield rt, obj

    def _collect_garbage(self) -> None:
        """Deletes objects whose owners are all gone (background propagation)."""
        everything = list(self._all_objects())
        alive = {_uid(obj) for _, obj in everything}
        for rt, obj in everything:
            refs = _meta(obj).get("ownerReferences") or []
            if refs and "delete" in rt.verbs and not any(ref.get("uid") in alive for ref in refs):
                self._delete(rt, obj)

    # -- persistent volume claims -----------------------------------------------------------
    def _default_class(self) -> str | None:
        for sc in self._list(self.types.storageclass):
            if (_meta(sc).get("annotations") or {}).get(DEFAULT_CLASS) == "true":
                return _name(sc)
        return None

    def _bind_claims(self) -> None:
        """A pending claim with a storage class gets a new PersistentVolume and is Bound."""
        default = self._default_class()
        for claim in self._list(self.types.pvc):
            if (claim.get("status") or {}).get("phase") == "Bound":
                continue
            spec = claim.setdefault("spec", {})
            klass = spec.get("storageClassName") or default
            if not klass:
                continue
            volume = self._provision(claim, klass)
            if volume is None:
                continue
            spec["storageClassName"], spec["volumeName"] = klass, _name(volume)
            self._update(self.types.pvc, claim)
            claim = self.api.get(self.types.pvc, _ns(claim), _name(claim))
            status = {
                "phase": "Bound",
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "capacity": volume["spec"]["capacity"],
            }
            self._set_status(self.types.pvc, claim, status)

    def _provision(self, claim: Obj, klass: str) -> Obj | None:
        name = f"pvc-{_uid(claim)}"
        existing = self.store.get("", "persistentvolumes", "", name)
        if existing is not None:
            return existing
        request = ((claim["spec"].get("resources") or {}).get("requests") or {}).get(
            "storage", "1Gi"
        )
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": name,
                "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"},
            },
            "spec": {
                "capacity": {"storage": request},
                "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": klass,
                "volumeMode": "Filesystem",
                "hostPath": {"path": f"/var/lib/local-path/{name}", "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": _ns(claim),
                    "name": _name(claim),
                    "uid": _uid(claim),
                },
            },
        }
        created = self._create(self.types.pv, volume)
        if created is not None:
            self._set_status(self.types.pv, created, {"phase": "Bound"})
        return created

    # -- Deployments ------------------------------------------------------------------------
    def _reconcile_deployment(self, deployment: Obj) -> None:
        uid, spec = _uid(deployment), deployment.get("spec") or {}
        owned = [
            rs
            for rs in self._list(self.types.replicaset, _ns(deployment))
            if _controller_uid(rs) == uid
        ]
        replicas = int(spec.get("replicas", 1))
        current = self._current_replicaset(deployment, owned)
        if current is None:
            return
        for rs in owned:
            want = replicas if _uid(rs) == _uid(current) else 0
            if rs["spec"].get("replicas") != want:
                had = int(rs["spec"].get("replicas") or 0)
                self.record(
                    deployment,
                    "ScalingReplicaSet",
                    f"Scaled {'up' if want > had else 'down'} replica set {_name(rs)} "
                    f"from {had} to {want}",
                    "deployment-controller",
                )
                rs["spec"]["replicas"] = want
                _meta(rs).setdefault("annotations", {})[
                    "deployment.kubernetes.io/desired-replicas"
                ] = str(replicas)
                self._update(self.types.replicaset, rs)
        self._prune_history(deployment, owned, current)
        self._annotate_revision(deployment, current)
        self._set_status(
            self.types.deployment, deployment, _deployment_status(deployment, owned, current)
        )

    def _current_replicaset(self, deployment: Obj, owned: list[Obj]) -> Obj | None:
        """The ReplicaSet of the current template, created (or revived by a rollback) here."""
        template = copy.deepcopy(deployment["spec"].get("template") or {})
        digest = template_hash(template)
        top = max((_revision(rs) for rs in owned), default=0)
        for rs in owned:
            if (_meta(rs).get("labels") or {}).get(TEMPLATE_HASH) == digest:
                if _revision(rs) < top:  # `rollout undo` to an older template
                    _meta(rs).setdefault("annotations", {})[REVISION] = str(top + 1)
                    revived = self._update(self.types.replicaset, rs)
                    owned[owned.index(rs)] = revived
                    return revived
                return rs
        if deployment["spec"].get("paused") and owned:
            return max(owned, key=_revision)
        rs = _replicaset_for(deployment, template, digest, top + 1)
        created = self._create(self.types.replicaset, rs)
        if created is not None:
            owned.append(created)
            if created["spec"].get("replicas"):
                self.record(
                    deployment,
                    "ScalingReplicaSet",
                    f"Scaled up replica set {_name(created)} from 0 to "
                    f"{created['spec']['replicas']}",
                    "deployment-controller",
                )
        return created

    def _prune_history(self, deployment: Obj, owned: list[Obj], current: Obj) -> None:
        """Keeps `revisionHistoryLimit` (10) scaled-down ReplicaSets, like the real one."""
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        old = sorted(
            (rs for rs in owned if _uid(rs) != _uid(current) and not rs["spec"].get("replicas")),
            key=_revision,
        )
        for rs in old[: max(len(old) - limit, 0)]:
            if not self._owned_pods(rs):
                self._delete(self.types.replicaset, rs)
                owned.remove(rs)

    def _annotate_revision(self, deployment: Obj, current: Obj) -> None:
        annotations = _meta(deployment).setdefault("annotations", {})
        revision = str(_revision(current))
        if annotations.get(REVISION) != revision:
            annotations[REVISION] = revision
            updated = self._update(self.types.deployment, deployment)
            deployment["metadata"] = updated["metadata"]

    # -- ReplicaSets ------------------------------------------------------------------------
    def _reconcile_replicaset(self, rs: Obj) -> None:
        pods = [p for p in self._owned_pods(rs) if not _finished(p)]
        want = int(rs["spec"].get("replicas", 1))
        for _ in range(want - len(pods)):
            name = self._suffix_name(_name(rs), _ns(rs))
            pod = _pod_from_template(rs, name, {})
            created = self._create(self.types.pod, pod)
            if created is not None:
                pods.append(created)
        for pod in sorted(pods, key=_deletion_cost)[: max(len(pods) - want, 0)]:
            self._delete(self.types.pod, pod)
            pods.remove(pod)
        labels_wanted = ((rs["spec"].get("selector") or {}).get("matchLabels")) or {}
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1
                for p in pods
                if all((_meta(p).get("labels") or {}).get(k) == v for k, v in labels_wanted.items())
            ),
            "readyReplicas": sum(1 for p in pods if pod_ready(p)),
            "availableReplicas": sum(1 for p in pods if pod_ready(p)),
            "observedGeneration": _meta(rs).get("generation", 1),
        }
        self._set_status(self.types.replicaset, rs, _drop_zeros(status, keep=("replicas",)))

    # -- StatefulSets -----------------------------------------------------------------------
    def _reconcile_statefulset(self, sts: Obj) -> None:
        """Pods `<name>-0..n-1` with their claims; a template change replaces them at once."""
        name, spec = _name(sts), sts.get("spec") or {}
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        want = int(spec.get("replicas", 1))
        pods = {_name(p): p for p in self._owned_pods(sts)}
        for pod_name, pod in list(pods.items()):
            ordinal = _ordinal(name, pod_name)
            stale = (_meta(pod).get("labels") or {}).get(REVISION_HASH) != revision
            if ordinal is None or ordinal >= want or stale:
                self._delete(self.types.pod, pod)
                del pods[pod_name]
        for ordinal in range(want):
            pod_name = f"{name}-{ordinal}"
            if pod_name not in pods:
                self._create_statefulset_pod(sts, ordinal, revision)
        pods = {_name(p): p for p in self._owned_pods(sts)}
        ready = sum(1 for p in pods.values() if pod_ready(p))
        updated = sum(
            1
            for p in pods.values()
            if (_meta(p).get("labels") or {}).get(REVISION_HASH) == revision
        )
        old_status = sts.get("status") or {}
        status = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": revision
            if updated == len(pods)
            else old_status.get("currentRevision", revision),
            "updateRevision": revision,
            "observedGeneration": _meta(sts).get("generation", 1),
            "collisionCount": 0,
        }
        self._set_status(
            self.types.statefulset,
            sts,
            _drop_zeros(status, keep=("replicas", "availableReplicas", "collisionCount")),
        )

    def _create_statefulset_pod(self, sts: Obj, ordinal: int, revision: str) -> None:
        name, spec = _name(sts), sts["spec"]
        pod_name = f"{name}-{ordinal}"
        labels = {
            REVISION_HASH: revision,
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod = _pod_from_template(sts, pod_name, labels)
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = pod["spec"].setdefault("volumes", [])
        for template in spec.get("volumeClaimTemplates") or []:
            claim_name = f"{_name(template)}-{pod_name}"
            self._ensure_claim(sts, template, claim_name)
            volumes.append(
                {"name": _name(template), "persistentVolumeClaim": {"claimName": claim_name}}
            )
        if not volumes:
            del pod["spec"]["volumes"]
        self._create(self.types.pod, pod)

    def _ensure_claim(self, sts: Obj, template: Obj, claim_name: str) -> None:
        if self.store.get("", "persistentvolumeclaims", _ns(sts), claim_name) is not None:
            return
        labels = dict((sts["spec"].get("selector") or {}).get("matchLabels") or {})
        labels.update(_meta(template).get("labels") or {})
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name, "namespace": _ns(sts), "labels": labels},
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        self._create(self.types.pvc, claim)

    # -- DaemonSets -------------------------------------------------------------------------
    def _reconcile_daemonset(self, ds: Obj) -> None:
        """One pod per Ready node matching the template's nodeSelector.

        Like the real controller, daemon pods tolerate cordoned nodes (`kubectl drain
        --ignore-daemonsets` relies on that).
        """
        template = (ds.get("spec") or {}).get("template") or {}
        revision = template_hash(template)
        nodes = [
            n
            for n in self._list(self.types.node)
            if node_ready(n) and _fits(template.get("spec") or {}, n)
        ]
        wanted = {_name(n) for n in nodes}
        placed: dict[str, Obj] = {}
        for pod in self._owned_pods(ds):
            node = (pod.get("spec") or {}).get("nodeName", "")
            stale = (_meta(pod).get("labels") or {}).get(REVISION_HASH) != revision
            if node not in wanted or node in placed or stale:
                self._delete(self.types.pod, pod)
            else:
                placed[node] = pod
        for node_name in sorted(wanted - placed.keys()):
            pod = _pod_from_template(
                ds, self._suffix_name(_name(ds), _ns(ds)), {REVISION_HASH: revision}
            )
            pod["spec"]["nodeName"] = node_name
            created = self._create(self.types.pod, pod)
            if created is not None:
                placed[node_name] = created
        ready = sum(1 for p in placed.values() if pod_ready(p))
        status = {
            "desiredNumberScheduled": len(wanted),
            "currentNumberScheduled": len(placed),
            "updatedNumberScheduled": len(placed),
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": len(wanted) - ready,
            "numberMisscheduled": 0,
            "observedGeneration": _meta(ds).get("generation", 1),
        }
        self._set_status(
            self.types.daemonset,
            ds,
            _drop_zeros(
                status,
                keep=(
                    "desiredNumberScheduled",
                    "currentNumberScheduled",
                    "numberReady",
                    "numberMisscheduled",
                ),
            ),
        )

    # -- Jobs -------------------------------------------------------------------------------
    def _reconcile_job(self, job: Obj) -> None:
        """Runs `completions` pods, `parallelism` at a time; the kubelet makes them succeed."""
        spec = job.get("spec") or {}
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") or 1)
        pods = self._owned_pods(job)
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        active = [p for p in pods if not _finished(p)]
        done = succeeded >= completions
        if not done and not spec.get("suspend"):
            room = min(parallelism, completions - succeeded) - len(active)
            for _ in range(max(room, 0)):
                labels = {
                    "batch.kubernetes.io/controller-uid": _uid(job),
                    "batch.kubernetes.io/job-name": _name(job),
                    "controller-uid": _uid(job),
                    "job-name": _name(job),
                }
                pod = _pod_from_template(job, self._suffix_name(_name(job), _ns(job)), labels)
                pod["spec"].setdefault("restartPolicy", "Never")
                if self._create(self.types.pod, pod) is not None:
                    active.append(pod)
        self._set_status(self.types.job, job, self._job_status(job, succeeded, failed, active))

    def _job_status(self, job: Obj, succeeded: int, failed: int, active: list[Obj]) -> Obj:
        old = job.get("status") or {}
        completions = int((job.get("spec") or {}).get("completions") or 1)
        status: Obj = {
            "startTime": old.get("startTime") or now(),
            "active": len(active),
            "ready": sum(1 for p in active if pod_ready(p)),
            "succeeded": succeeded,
            "failed": failed,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if succeeded >= completions:
            existing = old.get("conditions")
            status["completionTime"] = old.get("completionTime") or now()
            status["conditions"] = [
                condition(existing, "SuccessCriteriaMet", "True", "CompletionsReached",
                          "Reached expected number of succeeded pods"),
                condition(existing, "Complete", "True", "CompletionsReached",
                          "Reached expected number of succeeded pods"),
            ]  # fmt: skip
        return _drop_zeros(status, keep=("ready", "terminating"))

    # -- the scheduler ----------------------------------------------------------------------
    def _schedule(self) -> None:
        """Binds pending pods round-robin to Ready, schedulable nodes matching nodeSelector."""
        all_nodes = self._list(self.types.node)
        nodes = [n for n in all_nodes if node_ready(n) and not _cordoned(n)]
        for pod in self._list(self.types.pod):
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or _phase(pod) != "Pending":
                continue
            fitting = [n for n in nodes if _fits(spec, n)]
            if not fitting:
                self._mark_unschedulable(pod, all_nodes, nodes)
                continue
            node = fitting[self._next_node % len(fitting)]
            self._next_node += 1
            pod["spec"]["nodeName"] = _name(node)
            pod = self._update(self.types.pod, pod)
            conditions = (pod.get("status") or {}).get("conditions") or []
            status = dict(pod.get("status") or {})
            status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [
                condition(conditions, "PodScheduled", "True")
            ]
            self._set_status(self.types.pod, pod, status)
            self.record(
                pod,
                "Scheduled",
                f"Successfully assigned {_ns(pod)}/{_name(pod)} to {_name(node)}",
                "default-scheduler",
            )

    def _mark_unschedulable(self, pod: Obj, all_nodes: list[Obj], usable: list[Obj]) -> None:
        total = len(all_nodes)
        cordoned = sum(1 for n in all_nodes if _cordoned(n))
        not_ready = sum(1 for n in all_nodes if not node_ready(n))
        reasons = []
        if cordoned:
            reasons.append(f"{cordoned} node(s) were unschedulable")
        if not_ready:
            reasons.append(
                f"{not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
            )
        mismatched = len(usable)
        if mismatched:
            reasons.append(f"{mismatched} node(s) didn't match Pod's node affinity/selector")
        message = f"0/{total} nodes are available" + (": " + ", ".join(reasons) if reasons else "")
        message += "."
        conditions = (pod.get("status") or {}).get("conditions") or []
        status = dict(pod.get("status") or {})
        status["phase"] = "Pending"
        status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [
            condition(conditions, "PodScheduled", "False", "Unschedulable", message)
        ]
        if pod.get("status") != status:
            self.record(pod, "FailedScheduling", message, "default-scheduler", type_="Warning")
        self._set_status(self.types.pod, pod, status)

    # -- the kubelets -----------------------------------------------------------------------
    def _run_pods(self) -> None:
        """Starts every bound, pending pod on a Ready node (a Job's pods complete at once)."""
        nodes = {_name(n): n for n in self._list(self.types.node)}
        pods = self._list(self.types.pod)
        used = {(p.get("status") or {}).get("podIP") for p in pods}
        for pod in pods:
            node = nodes.get((pod.get("spec") or {}).get("nodeName", ""))
            if node is None or not node_ready(node) or _phase(pod) != "Pending":
                continue
            owner: Obj = next(
                (r for r in _meta(pod).get("ownerReferences") or [] if r.get("controller")), {}
            )
            if owner.get("kind") == "Job":
                status = _succeeded_status(pod, node)
            else:
                ip = _node_ip(node) if (pod.get("spec") or {}).get("hostNetwork") else ""
                ip = ip or self._allocate_ip(node, list(nodes), used)
                used.add(ip)
                status = _running_status(pod, node, ip)
            self._set_status(self.types.pod, pod, status)
            self.record_started(pod, _name(node))

    @staticmethod
    def _allocate_ip(node: Obj, node_names: list[str], used: set[Any]) -> str:
        """The next free address in the node's podCIDR (default 10.244.<index>.0/24)."""
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if cidr.endswith(".0/24"):
            prefix = cidr[: -len("0/24")]
        else:
            prefix = f"10.244.{sorted(node_names).index(_name(node))}."
        for host in range(2, 255):
            ip = f"{prefix}{host}"
            if ip not in used:
                return ip
        return f"{prefix}254"


def start_controllers(
    api: ObjectAPI,
    store: SandboxStore | None = None,
    *,
    ca_pem: bytes = b"",
    api_endpoint: tuple[str, int] | None = None,
) -> Controllers:
    """Starts the controllers on the running event loop; `await handle.stop()` ends them.

    `store` must be `api.store` (it is accepted so callers can pass what they hold). With the
    server's CA and address, every namespace gets `kube-root-ca.crt` and `default` the
    `kubernetes` Service.
    """
    assert store is None or store is api.store, "the controllers must watch the API's store"
    controllers = Controllers(api)
    controllers.ca_pem, controllers.api_endpoint = ca_pem, api_endpoint
    return controllers.start()


# -- object builders and status helpers -------------------------------------------------------
def _revision(rs: Obj) -> int:
    try:
        return int((_meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _replicaset_for(deployment: Obj, template: Obj, digest: str, revision: int) -> Obj:
    spec = deployment["spec"]
    template = copy.deepcopy(template)
    template_labels = _meta(template).setdefault("labels", {})
    template_labels[TEMPLATE_HASH] = digest
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = digest
    replicas = int(spec.get("replicas", 1))
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{_name(deployment)}-{digest}",
            "namespace": _ns(deployment),
            "labels": dict(template_labels),
            "annotations": {
                REVISION: str(revision),
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
            },
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": spec.get("minReadySeconds", 0),
            "selector": selector,
            "template": template,
        },
    }


def _pod_from_template(owner: Obj, name: str, extra_labels: dict[str, str]) -> Obj:
    """A pod from the owner's template, with the defaults the API server would add."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    meta = _meta(template)
    labels = {**(meta.get("labels") or {}), **extra_labels}
    pod_meta: Obj = {
        "name": name,
        "namespace": _ns(owner),
        "labels": labels,
        "ownerReferences": [owner_reference(owner)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = meta["annotations"]
    if "-" in name and name.startswith(_name(owner) + "-") and owner["kind"] != "StatefulSet":
        pod_meta["generateName"] = f"{_name(owner)}-"
    spec = template.get("spec") or {"containers": []}
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        pull = "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent"
        container.setdefault("imagePullPolicy", pull)
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _fits(pod_spec: Obj, node: Obj) -> bool:
    """The pod's nodeSelector against the node's labels (affinity and taints are ignored)."""
    labels = _meta(node).get("labels") or {}
    return all(labels.get(k) == v for k, v in (pod_spec.get("nodeSelector") or {}).items())


def _deletion_cost(pod: Obj) -> tuple[int, int, str, str]:
    """Which pods a scale-down removes first: unscheduled, then not ready, then newest."""
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    ready = 1 if pod_ready(pod) else 0
    created = str(_meta(pod).get("creationTimestamp", ""))
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in created)  # newest first
    return (scheduled, ready, inverted, _name(pod))


def _ordinal(set_name: str, pod_name: str) -> int | None:
    suffix = pod_name[len(set_name) + 1 :]
    return int(suffix) if pod_name.startswith(set_name + "-") and suffix.isdigit() else None


def _drop_zeros(status: Obj, keep: tuple[str, ...] = ()) -> Obj:
    """The real controllers omit zero counters (`omitempty`); clients expect that shape."""
    return {k: v for k, v in status.items() if v not in (0, None) or k in keep}


def _container_id(pod: Obj, container: str) -> str:
    return "containerd://" + hashlib.sha256(f"{_uid(pod)}/{container}".encode()).hexdigest()


def _image_id(image: str) -> str:
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/", 1)[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _qos_class(spec: Obj) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and all(
            r["limits"].get(k) == (r.get("requests") or r["limits"]).get(k)
            for k in ("cpu", "memory")
        )
        and {"cpu", "memory"} <= set(r["limits"])
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_conditions(pod: Obj, ready: bool, reason: str = "") -> list[Obj]:
    existing = (pod.get("status") or {}).get("conditions")
    value = "True" if ready else "False"
    return [
        condition(existing, "PodReadyToStartContainers", "True"),
        condition(existing, "Initialized", "True"),
        condition(existing, "Ready", value, reason),
        condition(existing, "ContainersReady", value, reason),
        condition(existing, "PodScheduled", "True"),
    ]


def _base_status(pod: Obj, node: Obj, phase: str) -> Obj:
    host = _node_ip(node)
    return {
        "phase": phase,
        "hostIP": host,
        "hostIPs": [{"ip": host}],
        "startTime": (pod.get("status") or {}).get("startTime") or now(),
        "qosClass": _qos_class(pod.get("spec") or {}),
    }


def _running_status(pod: Obj, node: Obj, ip: str) -> Obj:
    started = now()
    status = _base_status(pod, node, "Running")
    status.update(
        {
            "conditions": _pod_conditions(pod, ready=True),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "containerStatuses": [
                _container_status(pod, c, {"running": {"startedAt": started}}, ready=True)
                for c in (pod.get("spec") or {}).get("containers") or []
            ],
        }
    )
    init = (pod.get("spec") or {}).get("initContainers") or []
    if init:
        status["initContainerStatuses"] = [_completed_container(pod, c, started) for c in init]
    return status


def _completed_container(pod: Obj, container: Obj, at: str) -> Obj:
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": at,
        "finishedAt": at,
        "containerID": _container_id(pod, container["name"]),
    }
    return _container_status(pod, container, {"terminated": terminated}, ready=False)


def _container_status(pod: Obj, container: Obj, state: Obj, *, ready: bool) -> Obj:
    """A container's status; the sandbox's containers are started exactly when ready."""
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": _image_id(str(container.get("image", ""))),
        "containerID": _container_id(pod, container["name"]),
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _succeeded_status(pod: Obj, node: Obj) -> Obj:
    finished = now()
    status = _base_status(pod, node, "Succeeded")
    status["conditions"] = _pod_conditions(pod, ready=False, reason="PodCompleted")
    status["containerStatuses"] = [
        _completed_container(pod, c, finished)
        for c in (pod.get("spec") or {}).get("containers") or []
    ]
    return status


def _deployment_status(deployment: Obj, owned: list[Obj], current: Obj) -> Obj:
    """Counts from the ReplicaSets' statuses, and the conditions `rollout status` reads."""
    desired = int(deployment["spec"].get("replicas", 1))

    def total(key: str, sets: list[Obj]) -> int:
        return sum(int((rs.get("status") or {}).get(key, 0)) for rs in sets)

    replicas, available = total("replicas", owned), total("availableReplicas", owned)
    updated = int((current.get("status") or {}).get("replicas", 0))
    existing = (deployment.get("status") or {}).get("conditions")
    complete = updated == desired and replicas == desired and available >= desired
    rs_name = _name(current)
    progressing = (
        condition(existing, "Progressing", "True", "NewReplicaSetAvailable",
                  f'ReplicaSet "{rs_name}" has successfully progressed.')
        if complete
        else condition(existing, "Progressing", "True", "ReplicaSetUpdated",
                       f'ReplicaSet "{rs_name}" is progressing.')
    )  # fmt: skip
    available_condition = (
        condition(existing, "Available", "True", "MinimumReplicasAvailable",
                  "Deployment has minimum availability.")
        if available >= desired
        else condition(existing, "Available", "False", "MinimumReplicasUnavailable",
                       "Deployment does not have minimum availability.")
    )  # fmt: skip
    for cond in (progressing, available_condition):
        old = next((c for c in existing or [] if c.get("type") == cond["type"]), None)
        same = old and old.get("reason") == cond.get("reason")
        cond["lastUpdateTime"] = old.get("lastUpdateTime", now()) if old and same else now()
    status = {
        "observedGeneration": _meta(deployment).get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": total("readyReplicas", owned),
        "availableReplicas": available,
        "unavailableReplicas": max(desired - available, 0),
        "conditions": [available_condition, progressing],
    }
    return _drop_zeros(status, keep=("observedGeneration",))
