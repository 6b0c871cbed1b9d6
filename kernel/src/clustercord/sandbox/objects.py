"""Object lifecycle with the real API server's semantics, independent of HTTP.

The HTTP layer (`server.py`) and the fixture loader both go through `ObjectAPI`, so an object
loaded from a fixture gets the same uid, resourceVersion, defaults and validation as one
created by kubectl.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import errors
from .patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .registry import Registry, ResourceType
from .selectors import field_predicate, label_predicate
from .store import SandboxStore
from .validation import decode, validate


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Query parameters shared by create, update and patch."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore (the server default is Warn)
    field_manager: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListOptions:
    label_selector: str | None = None
    field_selector: str | None = None
    limit: int = 0
    continue_token: str | None = None


class ObjectAPI:
    """Create / get / list / update / patch / delete over a `SandboxStore`."""

    def __init__(self, store: SandboxStore, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._next_cluster_ip = 1

    # -- reads -----------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.group, rt.plural, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def list(
        self, rt: ResourceType, namespace: str | None, options: ListOptions
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The matching objects and the list metadata (resourceVersion, continue)."""
        labels = label_predicate(options.label_selector)
        fields = field_predicate(options.field_selector)
        # Filter and page over the stored objects; copy only the page returned (kubectl
        # reads large lists 500 at a time: copying everything per page was quadratic).
        stored = self.store.list(
            rt.group, rt.plural, namespace if rt.namespaced else None, copy_items=False
        )
        items = [o for o in stored if labels(o) and fields(o)]
        rv = str(self.store.resource_version)
        if options.continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(options.continue_token))
                start, rv = tuple(token["start"]), token["rv"]
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request("invalid continue token") from exc
            items = [o for o in items if _sort_key(o) > start]
        meta: dict[str, Any] = {"resourceVersion": rv}
        if options.limit and len(items) > options.limit:
            remaining = len(items) - options.limit
            items = items[: options.limit]
            token_body = {"rv": rv, "start": list(_sort_key(items[-1]))}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token_body).encode()).decode()
            meta["remainingItemCount"] = remaining
        return [copy.deepcopy(o) for o in items], meta

    # -- create ----------------------------------------------------------------------------
    def create(
        self, rt: ResourceType, namespace: str, body: Any, options: WriteOptions
    ) -> dict[str, Any]:
        obj = self._prepare(rt, namespace, body, options)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        validate(rt, obj)
        if rt.namespaced:
            self._require_namespace(meta["namespace"])
        if self.store.get(rt.group, rt.plural, meta.get("namespace", ""), meta["name"]):
            raise errors.already_exists(rt, meta["name"])
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if _has_generation(rt):
            meta["generation"] = 1
        _apply_defaults(rt, obj, self)
        if options.dry_run:
            return obj
        created = self.store.create(rt.group, rt.plural, obj)
        self._after_create(rt, created)
        return created

    def _after_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """The namespace controller's part: every namespace gets a `default` ServiceAccount."""
        if rt.group == "" and rt.plural == "namespaces":
            sa_type = self.registry.lookup("", "v1", "serviceaccounts")
            name = obj["metadata"]["name"]
            if sa_type and not self.store.get("", "serviceaccounts", name, "default"):
                sa = {"metadata": {"name": "default", "namespace": name}}
                self.create(sa_type, name, sa, WriteOptions())

    # -- update ----------------------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str = "",
    ) -> dict[str, Any]:
        current = self.get(rt, namespace, name)
        obj = self._prepare(rt, namespace, body, options)
        if obj["metadata"].get("name", name) != name:
            raise errors.bad_request(
                "the name of the object "
                f"({obj['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        wanted_rv = obj["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        return self._replace(rt, current, obj, options, subresource)

    def _replace(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        obj: dict[str, Any],
        options: WriteOptions,
        subresource: str,
    ) -> dict[str, Any]:
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
        else:
            new = obj
            if "status" in rt.subresources:  # the main resource never changes status
                new.pop("status", None)
                if "status" in current:
                    new["status"] = current["status"]
        meta, old_meta = new["metadata"], current["metadata"]
        for key in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        validate(rt, new)
        if _has_generation(rt) and new.get("spec") != current.get("spec"):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if new == current:
            return current  # a no-op update does not bump resourceVersion
        if options.dry_run:
            return new
        return self.store.update(rt.group, rt.plural, new)

    # -- patch -----------------------------------------------------------------------------
    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        options: WriteOptions,
        subresource: str = "",
    ) -> dict[str, Any]:
        if patch_type == APPLY_PATCH:
            raise errors.ApiError(
                415,
                "UnsupportedMediaType",
                "server-side apply is not implemented by the ClusterCord sandbox yet; "
                "use client-side `kubectl apply`",
            )
        current = self.get(rt, namespace, name)
        if patch_type == JSON_PATCH:
            patched = json_patch(current, patch)
        elif patch_type == MERGE_PATCH:
            patched = merge_patch(current, patch)
        elif patch_type == STRATEGIC_MERGE_PATCH:
            patched = strategic_merge_patch(current, patch, rt.definition)
        else:
            raise errors.unsupported_media_type(patch_type)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch did not produce an object")
        patched.setdefault("metadata", {})
        wanted_rv = patched["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        if patched["metadata"].get("name") != name:
            raise errors.bad_request("the patch may not change the object's name")
        obj = self._prepare(rt, namespace, patched, options)
        return self._replace(rt, current, obj, options, subresource)

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        dry_run: bool = False,
        preconditions: dict[str, Any] | None = None,
        propagation_policy: str | None = None,
    ) -> dict[str, Any]:
        """Deletes now; dependents follow `propagationPolicy` (DeleteOptions or query).

        `Background` (the default) leaves dependents to the garbage collector controller;
        `Orphan` removes their ownerReferences to this object; `Foreground` deletes them first
        (the real server waits for that with a finalizer, the sandbox does it at once).
        """
        if propagation_policy not in (None, "", "Background", "Orphan", "Foreground"):
            raise errors.bad_request(f"unknown propagationPolicy {propagation_policy!r}")
        current = self.get(rt, namespace, name)
        for key in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(key)
            if wanted and wanted != current["metadata"].get(key):
                raise errors.conflict(rt, name)
        if dry_run:
            return current
        if rt.group == "" and rt.plural == "namespaces":
            self._delete_namespace_contents(name)
        if propagation_policy in ("Orphan", "Foreground"):
            self._propagate(current["metadata"]["uid"], orphan=propagation_policy == "Orphan")
        deleted = self.store.delete(
            rt.group, rt.plural, current["metadata"].get("namespace", ""), name
        )
        assert deleted is not None
        return deleted

    def _delete_namespace_contents(self, namespace: str) -> None:
        """Namespace deletion cascades (the real server finalizes; the sandbox does it now)."""
        for rt in self.registry:
            if rt.namespaced:
                for obj in self.store.list(rt.group, rt.plural, namespace):
                    self.store.delete(rt.group, rt.plural, namespace, obj["metadata"]["name"])

    def _propagate(self, owner_uid: str, orphan: bool) -> None:
        """Orphans (drops the ownerReference) or deletes, depth first, the owner's dependents."""
        for rt in self.registry:
            for obj in self.store.list(rt.group, rt.plural):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(ref.get("uid") == owner_uid for ref in refs):
                    continue
                if orphan:
                    kept = [ref for ref in refs if ref.get("uid") != owner_uid]
                    if kept:
                        obj["metadata"]["ownerReferences"] = kept
                    else:
                        del obj["metadata"]["ownerReferences"]
                    self.store.update(rt.group, rt.plural, obj)
                else:
                    self._propagate(obj["metadata"]["uid"], orphan=False)
                    meta = obj["metadata"]
                    self.store.delete(rt.group, rt.plural, meta.get("namespace", ""), meta["name"])

    # -- helpers ---------------------------------------------------------------------------
    def _require_namespace(self, namespace: str) -> None:
        if not self.store.get("", "namespaces", "", namespace):
            raise errors.namespace_not_found(namespace)

    def _prepare(
        self, rt: ResourceType, namespace: str, body: Any, options: WriteOptions
    ) -> dict[str, Any]:
        """Checks kind, apiVersion and namespace; decodes against the schema."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if (kind and kind != rt.kind) or (api_version and api_version != rt.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if api_version != rt.api_version
                else f"{kind} is not suitable for {rt.plural}"
            )
        decoded = decode(rt, body, strict=options.field_validation == "Strict")
        if options.field_validation == "Warn":
            options.warnings += [f'unknown field "{path}"' for path in decoded.unknown]
        obj = decoded.obj
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def allocate_cluster_ip(self) -> str:
        n = self._next_cluster_ip
        self._next_cluster_ip += 1
        return f"10.96.{n // 250}.{n % 250 + 1}"


def _sort_key(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _has_generation(rt: ResourceType) -> bool:
    return rt.kind not in {
        "Namespace",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Node",
        "Event",
        "Endpoints",
        "Lease",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
    }


def _apply_defaults(rt: ResourceType, obj: dict[str, Any], api: ObjectAPI) -> None:
    """The few defaults clients notice (status on create, replicas, a Service's cluster IP)."""
    if "status" in rt.subresources:
        obj.pop("status", None)
    spec = obj.get("spec")
    if rt.kind == "Namespace":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif rt.kind == "Pod":
        obj["status"] = {"phase": "Pending"}
    elif rt.kind in ("Deployment", "ReplicaSet", "StatefulSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        if rt.kind != "ReplicaSet":
            _workload_defaults(rt.kind, spec)
    elif rt.kind == "DaemonSet" and isinstance(spec, dict):
        _workload_defaults(rt.kind, spec)
    elif rt.kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        if "clusterIP" not in spec:
            spec["clusterIP"] = api.allocate_cluster_ip()
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports", []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")


def _workload_defaults(kind: str, spec: dict[str, Any]) -> None:
    """The strategy defaults `kubectl rollout status` and `describe` read (apps/v1 defaults)."""
    rolling: dict[str, Any] = {
        "Deployment": {"maxUnavailable": "25%", "maxSurge": "25%"},
        "StatefulSet": {"partition": 0},
        "DaemonSet": {"maxUnavailable": 1, "maxSurge": 0},
    }[kind]
    key = "strategy" if kind == "Deployment" else "updateStrategy"
    strategy = spec.setdefault(key, {"type": "RollingUpdate"})
    if (
        isinstance(strategy, dict)
        and strategy.setdefault("type", "RollingUpdate") == "RollingUpdate"
    ):
        strategy.setdefault("rollingUpdate", rolling)
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
    if kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
