"""What a user finds on any cluster without having made it, and sees its controllers report.

- **Events** (core/v1), as the controllers, the scheduler and the kubelets record them:
  `ScalingReplicaSet`, `SuccessfulCreate`, `SuccessfulDelete`, `Scheduled`, `Pulled`,
  `Created`, `Started`, `Killing`; `kubectl events` and `kubectl describe` list them. A
  repeated event (same source, object, type, reason and message) updates the first one
  (`count`, `lastTimestamp`; `series` in events.k8s.io) as client-go's event recorder does,
  and so do, combined, many different messages for one object and reason (its aggregator);
  Events expire `event_ttl` after their last write (the store's leases, see `store.py`).
- **Endpoints and EndpointSlices** for every Service with a selector (its pods with an IP:
  ready ones as addresses, the others as not-ready), so `kubectl expose` and `get endpoints`
  show what a cluster shows.
- the **`default/kubernetes` Service** (10.96.0.1:443) with the API server's own address as its
  endpoint, and the **`kube-root-ca.crt` ConfigMap** (the CA of the sandbox's certificate) in
  every active namespace.

`ClusterBasics` is mixed into `controllers.Controllers`, whose level-triggered passes call
`_reconcile_basics()`; events are recorded where the controllers act (never on a pass that
changes nothing), so a reconcile stays idempotent.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from typing import Any

from . import errors
from .objects import ObjectAPI, WriteOptions, now
from .registry import ResourceType
from .store import SandboxStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]

KUBERNETES_SERVICE_IP = "10.96.0.1"
ROOT_CA = "kube-root-ca.crt"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
# The endpoints controller's mark on the Endpoints it writes (and so may delete).
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"

# Which component reports what a controller did to the pods of an owner of this kind.
COMPONENTS = {
    "ReplicaSet": "replicaset-controller",
    "StatefulSet": "statefulset-controller",
    "DaemonSet": "daemonset-controller",
    "Job": "job-controller",
    "Deployment": "deployment-controller",
}
_sequence = itertools.count()
# How many recent events the recorder remembers to aggregate repeats (client-go's LRU size).
EVENT_CACHE_SIZE = 4096
EventKey = tuple[str, ...]
# client-go's EventAggregator: from the 10th different message for one object and reason
# within 10 minutes, events are combined into one.
SIMILAR_EVENTS = 10
SIMILAR_WINDOW = 600.0


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.setdefault("metadata", {})
    return meta


def _find(api: ObjectAPI, group: str, plural: str) -> ResourceType:
    rt = api.registry.lookup(group, "v1", plural)
    assert rt is not None, f"the registry lacks {plural}.{group}"
    return rt


class ClusterBasics:
    """Events, Endpoints/EndpointSlices, the kubernetes Service and kube-root-ca.crt."""

    api: ObjectAPI
    store: SandboxStore
    # Set by the server: its CA (PEM) and where it listens; empty when unknown.
    ca_pem: bytes = b""
    api_endpoint: tuple[str, int] | None = None

    def _basics_types(self) -> None:
        # Recent events by client-go's aggregation key → the name of the Event that counts them.
        self._recent_events: OrderedDict[EventKey, str] = OrderedDict()
        # Per object and reason: the different messages recently seen, and when last.
        self._similar_events: OrderedDict[EventKey, tuple[set[str], float]] = OrderedDict()
        self._event_rt = _find(self.api, "", "events")
        self._service_rt = _find(self.api, "", "services")
        self._endpoints_rt = _find(self.api, "", "endpoints")
        self._slice_rt = _find(self.api, "discovery.k8s.io", "endpointslices")
        self._configmap_rt = _find(self.api, "", "configmaps")
        self._new_event_rt = self.api.registry.lookup("events.k8s.io", "v1", "events")

    def _basics_write(self) -> None:
        """Counts one write (so the pass repeats); `Controllers` counts its own."""

    # -- events ---------------------------------------------------------------------------------
    def record(
        self,
        involved: Obj,
        reason: str,
        message: str,
        component: str,
        *,
        type_: str = "Normal",
        field_path: str = "",
    ) -> None:
        """Records a core/v1 Event about `involved` (an object or an ownerReference + namespace)."""
        meta = involved.get("metadata") or {}
        name = meta.get("name") or involved.get("name", "")
        namespace = meta.get("namespace") or involved.get("namespace") or "default"
        reference: Obj = {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind", ""),
            "name": name,
            "namespace": namespace,
            "uid": meta.get("uid") or involved.get("uid", ""),
        }
        if meta.get("resourceVersion"):
            reference["resourceVersion"] = meta["resourceVersion"]
        if field_path:
            reference["fieldPath"] = field_path
        at = now()
        message, key = self._correlate(reference, reason, message, component, type_)
        if self._count_repeat(key, namespace, at, component, message):
            return
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name}.{time.time_ns() + next(_sequence):x}",
                "namespace": namespace,
            },
            "involvedObject": reference,
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
            "type": type_,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        with contextlib.suppress(errors.ApiError):  # e.g. a namespace being deleted
            self.api.create(self._event_rt, namespace, event, WriteOptions(field_manager=component))
            self._recent_events[key] = event["metadata"]["name"]
            while len(self._recent_events) > EVENT_CACHE_SIZE:
                self._recent_events.popitem(last=False)

    def _correlate(
        self, reference: Obj, reason: str, message: str, component: str, type_: str
    ) -> tuple[str, EventKey]:
        """client-go's EventCorrelator: the message to record and the key that counts its
        repeats. The key is the source, the object (no resourceVersion), type, reason and
        message; but once an object has had `SIMILAR_EVENTS` different messages for one
        reason within `SIMILAR_WINDOW` seconds (the EventAggregator), the later ones count on
        one Event, "(combined from similar events): <the latest message>"."""
        similar = (
            component, "", reference["kind"], reference["namespace"], reference["name"],
            reference["uid"], reference["apiVersion"], type_, reason, component, "",
        )  # fmt: skip
        clock = time.monotonic()
        messages, last = self._similar_events.get(similar, (set(), clock))
        if clock - last > SIMILAR_WINDOW:
            messages = set()
        messages.add(message)
        self._similar_events[similar] = (messages, clock)
        self._similar_events.move_to_end(similar)
        while len(self._similar_events) > EVENT_CACHE_SIZE:
            self._similar_events.popitem(last=False)
        if len(messages) >= SIMILAR_EVENTS:
            messages.pop()  # the set never grows past the threshold
            return f"(combined from similar events): {message}", similar
        key = (
            component, "", reference["kind"], reference["namespace"], reference["name"],
            reference.get("fieldPath", ""), reference["uid"], reference["apiVersion"], type_,
            reason, message,
        )  # fmt: skip
        return message, key

    def _count_repeat(
        self, key: EventKey, namespace: str, at: str, component: str, message: str
    ) -> bool:
        """Counts a repeat on the Event recorded first (with the latest message: a combined
        one changes); False when there is none (never recorded, forgotten, or expired)."""
        name = self._recent_events.get(key)
        if name is None:
            return False
        current = self.store.get("", "events", namespace, name)
        if current is None:
            del self._recent_events[key]
            return False
        current["count"] = int(current.get("count") or 1) + 1
        current["lastTimestamp"] = at
        current["message"] = message
        try:
            self.api.update(
                self._event_rt, namespace, name, current, WriteOptions(field_manager=component)
            )
        except errors.ApiError:
            return False
        self._recent_events.move_to_end(key)
        return True

    def record_owner(self, pod: Obj, reason: str, message: str) -> None:
        """An event on the pod's controlling owner (SuccessfulCreate, SuccessfulDelete)."""
        for ref in _meta(pod).get("ownerReferences") or []:
            if ref.get("controller"):
                owner = {**ref, "namespace": _meta(pod).get("namespace", "")}
                component = COMPONENTS.get(ref.get("kind", ""), "kube-controller-manager")
                self.record(owner, reason, message, component)
                return

    def record_started(self, pod: Obj, node: str) -> None:
        """The kubelet's events for a pod it starts: Pulled, Created, Started per container."""
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = container.get("name", "")
            path = f"spec.containers{{{name}}}"
            image = container.get("image", "")
            self.record(
                pod,
                "Pulled",
                f'Container image "{image}" already present on machine',
                "kubelet",
                field_path=path,
            )
            self.record(pod, "Created", f"Created container: {name}", "kubelet", field_path=path)
            self.record(pod, "Started", f"Started container {name}", "kubelet", field_path=path)

    def record_killing(self, pod: Obj) -> None:
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = container.get("name", "")
            self.record(
                pod,
                "Killing",
                f"Stopping container {name}",
                "kubelet",
                field_path=f"spec.containers{{{name}}}",
            )

    # -- what every cluster has -----------------------------------------------------------------
    def _reconcile_basics(self) -> None:
        self._root_ca_config_maps()
        self._kubernetes_service()
        self._service_endpoints()
        self._mirror_events()

    def _mirror_events(self) -> None:
        """core/v1 and events.k8s.io/v1 Events are one resource on a real cluster (two
        versions of one storage). Here each is mirrored into the other, converted as the API
        server converts them; a copy (marked `MIRROR`) goes when its source goes."""
        if self._new_event_rt is None:
            return
        groups = (("", self._event_rt, to_new_event), ("events.k8s.io", self._new_event_rt,
                  to_core_event))  # fmt: skip
        listed = {group: self.store.list(group, "events", None) for group, _, _ in groups}
        for (group, _, convert), (other, other_rt, _) in zip(groups, reversed(groups), strict=True):
            sources = {
                (_meta(e).get("namespace", ""), _meta(e)["name"])
                for e in listed[group]
                if MIRROR not in (_meta(e).get("annotations") or {})
            }
            for event in listed[group]:
                meta = _meta(event)
                if MIRROR in (meta.get("annotations") or {}):
                    continue
                self._ensure(other_rt, convert(event), EVENT_FIELDS[other])
            for copy_ in listed[other]:
                meta = _meta(copy_)
                key = (meta.get("namespace", ""), meta["name"])
                if MIRROR in (meta.get("annotations") or {}) and key not in sources:
                    with contextlib.suppress(errors.ApiError):
                        self.api.delete(other_rt, key[0], key[1])
                        self._basics_write()

    def _ensure(self, rt: ResourceType, want: Obj, compare: tuple[str, ...]) -> None:
        """Creates `want`, or updates the stored object where a `compare` key differs."""
        meta = want["metadata"]
        current = self.store.get(rt.group, rt.plural, meta.get("namespace", ""), meta["name"])
        options = WriteOptions(field_manager="kube-controller-manager")
        try:
            if current is None:
                self.api.create(rt, meta.get("namespace", ""), want, options)
            elif any(current.get(key) != want.get(key) for key in compare) or any(
                (_meta(current).get(key) or {}) != (meta.get(key) or {})
                for key in ("labels", "annotations")
                if key in meta
            ):
                body = copy.deepcopy(current)
                for key in compare:
                    if key in want:
                        body[key] = want[key]
                    else:
                        body.pop(key, None)
                for key in ("labels", "annotations"):
                    if key in meta:
                        _meta(body)[key] = {**(_meta(body).get(key) or {}), **meta[key]}
                _meta(body).pop("resourceVersion", None)
                self.api.update(rt, meta.get("namespace", ""), meta["name"], body, options)
            else:
                return
        except errors.ApiError as exc:
            log.debug("could not write %s %s: %s", rt.kind, meta["name"], exc)
            return
        self._basics_write()

    def _root_ca_config_maps(self) -> None:
        if not self.ca_pem:
            return
        for namespace in self.store.list("", "namespaces", None):
            meta = _meta(namespace)
            if meta.get("deletionTimestamp"):
                continue
            want = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA, "namespace": meta["name"]},
                "data": {"ca.crt": self.ca_pem.decode()},
            }
            self._ensure(self._configmap_rt, want, ("data",))

    def _kubernetes_service(self) -> None:
        if self.api_endpoint is None or self.store.get("", "namespaces", "", "default") is None:
            return
        host, port = self.api_endpoint
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": KUBERNETES_SERVICE_IP,
                "clusterIPs": [KUBERNETES_SERVICE_IP],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
            },
        }
        if self.store.get("", "services", "default", "kubernetes") is None:
            self._ensure(self._service_rt, service, ("spec",))
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [
                {
                    "addresses": [{"ip": host}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }
            ],
        }
        self._ensure(self._endpoints_rt, endpoints, ("subsets",))
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {SERVICE_NAME_LABEL: "kubernetes"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
        self._ensure(self._slice_rt, endpoint_slice, ("endpoints", "ports", "addressType"))

    def _service_endpoints(self) -> None:
        services = {
            (_meta(s).get("namespace", ""), _meta(s)["name"]): s
            for s in self.store.list("", "services", None)
        }
        for service in services.values():
            selector = (service.get("spec") or {}).get("selector")
            if selector and not _meta(service).get("deletionTimestamp"):
                self._endpoints_for(service, selector)
        # Endpoints this controller wrote for a Service that is gone (slices have owners).
        for endpoints in self.store.list("", "endpoints", None):
            meta = _meta(endpoints)
            key = (meta.get("namespace", ""), meta["name"])
            if TRIGGER_TIME in (meta.get("annotations") or {}) and key not in services:
                with contextlib.suppress(errors.ApiError):
                    self.api.delete(self._endpoints_rt, key[0], key[1])
                    self._basics_write()

    def _endpoints_for(self, service: Obj, selector: dict[str, str]) -> None:
        meta = _meta(service)
        namespace, name = meta.get("namespace", ""), meta["name"]
        pods = [
            pod
            for pod in self.store.list("", "pods", namespace)
            if all((_meta(pod).get("labels") or {}).get(k) == v for k, v in selector.items())
            and (pod.get("status") or {}).get("podIP")
            and not _meta(pod).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        pods.sort(key=lambda p: (p["status"]["podIP"], _meta(p)["name"]))
        ports = [
            _endpoint_port(port, pods) for port in (service.get("spec") or {}).get("ports", [])
        ]
        ready = [p for p in pods if _ready(p)]
        not_ready = [p for p in pods if not _ready(p)]
        subset: Obj = {}
        if ready:
            subset["addresses"] = [_address(p) for p in ready]
        if not_ready:
            subset["notReadyAddresses"] = [_address(p) for p in not_ready]
        if subset and ports:
            subset["ports"] = ports
        current = self.store.get("", "endpoints", namespace, name)
        annotations = (_meta(current).get("annotations") or {}) if current else {}
        endpoints: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(meta.get("labels") or {}),
                "annotations": {TRIGGER_TIME: annotations.get(TRIGGER_TIME) or now()},
            },
        }
        if subset and ports:
            endpoints["subsets"] = [subset]
        self._ensure(self._endpoints_rt, endpoints, ("subsets",))
        suffix = hashlib.sha256(str(meta.get("uid", name)).encode()).hexdigest()[:5]
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-{suffix}",
                "namespace": namespace,
                "labels": {
                    **(meta.get("labels") or {}),
                    SERVICE_NAME_LABEL: name,
                    MANAGED_BY: SLICE_CONTROLLER,
                },
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": name,
                        "uid": meta.get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "endpoints": [_slice_endpoint(p) for p in pods],
            "ports": ports,
        }
        self._ensure(self._slice_rt, endpoint_slice, ("endpoints", "ports", "addressType"))


# Marks an Event written as the other group's copy of one (see `_mirror_events`).
MIRROR = "sandbox.clustercord.dev/mirror-of"
EVENT_FIELDS = {
    "": (
        "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp",
        "count", "type", "eventTime", "series", "action", "related", "reportingComponent",
        "reportingInstance",
    ),
    "events.k8s.io": (
        "eventTime", "series", "reportingController", "reportingInstance", "action", "reason",
        "regarding", "related", "note", "type", "deprecatedSource", "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp", "deprecatedCount",
    ),
}  # fmt: skip


def _mirror_meta(event: Obj, api_version: str) -> Obj:
    meta = _meta(event)
    annotations = {**(meta.get("annotations") or {}), MIRROR: api_version}
    out: Obj = {"name": meta["name"], "namespace": meta.get("namespace", "")}
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    out["annotations"] = annotations
    return out


def _micro(value: str | None) -> str | None:
    """A Time (`...:05Z`) as a MicroTime (`...:05.000000Z`)."""
    if value and value.endswith("Z") and "." not in value:
        return value[:-1] + ".000000Z"
    return value


def _pruned(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if v not in (None, "", {}, [])}


def to_new_event(event: Obj) -> Obj:
    """A core/v1 Event as events.k8s.io/v1 shows it."""
    source = event.get("source") or {}
    body = {
        "eventTime": event.get("eventTime") or _micro(event.get("firstTimestamp"))
        or _micro(_meta(event).get("creationTimestamp")),
        "reportingController": event.get("reportingComponent") or source.get("component"),
        "reportingInstance": event.get("reportingInstance") or source.get("host"),
        "action": event.get("action"),
        "reason": event.get("reason"),
        "regarding": event.get("involvedObject"),
        "related": event.get("related"),
        "note": event.get("message"),
        "type": event.get("type"),
        "deprecatedSource": source,
        "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp"),
        "deprecatedCount": event.get("count"),
        "series": _series(event),
    }  # fmt: skip
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": _mirror_meta(event, "v1"),
        **_pruned(body),
    }


def _series(event: Obj) -> Obj | None:
    """A repeated core/v1 Event's count as events.k8s.io's `series` (how the events API
    says "seen N times"); None for an event seen once."""
    if event.get("series"):
        return dict(event["series"])
    count = event.get("count") or 0
    if count < 2:
        return None
    return {"count": count, "lastObservedTime": _micro(event.get("lastTimestamp"))}


def to_core_event(event: Obj) -> Obj:
    """An events.k8s.io/v1 Event as core/v1 shows it."""
    source = event.get("deprecatedSource") or {}
    if not source and event.get("reportingController"):
        source = {"component": event["reportingController"]}
    body = {
        "involvedObject": event.get("regarding") or {},
        "reason": event.get("reason"),
        "message": event.get("note"),
        "source": source,
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount"),
        "type": event.get("type"),
        "eventTime": event.get("eventTime"),
        "series": event.get("series"),
        "action": event.get("action"),
        "related": event.get("related"),
        "reportingComponent": event.get("reportingController"),
        "reportingInstance": event.get("reportingInstance"),
    }
    out = {"apiVersion": "v1", "kind": "Event", "metadata": _mirror_meta(event, "events.k8s.io/v1")}
    out.update(_pruned(body))
    out.setdefault("involvedObject", {})
    return out


def _ready(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _target(pod: Obj) -> Obj:
    meta = _meta(pod)
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }


def _address(pod: Obj) -> Obj:
    address: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    return address


def _slice_endpoint(pod: Obj) -> Obj:
    ready = _ready(pod)
    endpoint: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
        "targetRef": _target(pod),
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


def _endpoint_port(port: Obj, pods: list[Obj]) -> Obj:
    """A Service port as its endpoints list it: the target port, a named one resolved."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, str):
        resolved = None
        for pod in pods:
            for container in (pod.get("spec") or {}).get("containers") or []:
                for declared in container.get("ports") or []:
                    if declared.get("name") == target:
                        resolved = declared.get("containerPort")
        target = resolved if resolved is not None else port.get("port")
    out: Obj = {"port": int(target), "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        out = {"name": port["name"], **out}
    return out
