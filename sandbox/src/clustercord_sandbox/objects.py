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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import autoscaling, crds, errors
from .apply import apply, validate_manager
from .managedfields import default_manager, record_update
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

Obj = dict[str, Any]
Convert = Callable[[Obj], Obj]

# Versions served by converting the stored object, as the API server converts through its
# internal version: (group, plural, served version) → (stored → served, served → stored).
CONVERSIONS: dict[tuple[str, str, str], tuple[Convert, Convert]] = {
    ("autoscaling", "horizontalpodautoscalers", "v1"): (autoscaling.to_v1, autoscaling.to_v2),
}
# Defaults a schema cannot express, on the stored form, by (group, kind), applied on every
# write as the API server defaults every decoded body (their checks: validation.KIND_CHECKS).
DEFAULTS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("autoscaling", "HorizontalPodAutoscaler"): autoscaling.default_hpa,
}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Query parameters shared by create, update and patch."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore (the server default is Warn)
    field_manager: str = ""
    user_agent: str = ""  # names the manager of a write without `fieldManager`
    force: bool = False  # server-side apply takes over conflicting fields
    warnings: list[str] = field(default_factory=list)

    @property
    def manager(self) -> str:
        return self.field_manager or default_manager(self.user_agent)


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

    # -- versions ----------------------------------------------------------------------------
    def _converted(self, rt: ResourceType) -> tuple[ResourceType, Convert, Convert] | None:
        """For a version served by conversion: the stored version's row and both ways."""
        if not rt.storage_version:
            return None
        stored = self.registry.lookup(rt.group, rt.storage_version, rt.plural)
        down_up = CONVERSIONS.get((rt.group, rt.plural, rt.version))
        assert stored is not None and down_up is not None, f"no conversion for {rt}"
        return stored, *down_up

    def present(self, rt: ResourceType, obj: Obj) -> Obj:
        """A stored object as `rt`'s version serves it (watches and tables use it too)."""
        converted = self._converted(rt)
        return converted[1](obj) if converted is not None else obj

    def _to_storage(
        self, rt: ResourceType, namespace: str, body: Any, options: WriteOptions
    ) -> Obj:
        """A body of a converted version, checked against its own schema, in stored form."""
        converted = self._converted(rt)
        assert converted is not None
        return converted[2](self._prepare(rt, namespace, body, options))

    # -- reads -----------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.group, rt.plural, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return self.present(rt, obj)

    def list(
        self, rt: ResourceType, namespace: str | None, options: ListOptions
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The matching objects and the list metadata (resourceVersion, continue).

        The objects are the stored ones, not copies: callers serialize them (or copy what
        they keep) and never change them. Copying 5,000 pods cost more than encoding them.
        """
        labels = label_predicate(options.label_selector)
        fields = field_predicate(options.field_selector)
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
        if rt.storage_version:
            items = [self.present(rt, o) for o in items]
        return items, meta

    # -- create ----------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        options: WriteOptions,
        *,
        managed: bool = False,
    ) -> dict[str, Any]:
        """Creates an object; `managed` means its managedFields are already set (apply)."""
        if (converted := self._converted(rt)) is not None:
            stored = converted[0]
            body = self._to_storage(rt, namespace, body, options)
            return self.present(rt, self.create(stored, namespace, body, options, managed=managed))
        obj = self._prepare(rt, namespace, body, options)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if rt.schema is not None:
            crds.apply_schema_defaults(obj, rt.schema)
        validate(rt, obj)
        crds.check_if_crd(rt, obj)
        if rt.namespaced:
            self._require_namespace(rt, meta.get("name", ""), meta["namespace"])
        if self.store.get(rt.group, rt.plural, meta.get("namespace", ""), meta["name"]):
            raise errors.already_exists(rt, meta["name"])
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = created_at = now()
        if _has_generation(rt):
            meta["generation"] = 1
        _apply_defaults(rt, obj, self)
        if not managed:
            record_update(rt, None, obj, options.manager, "", created_at)
        if options.dry_run:
            return obj
        created = self.store.create(rt.group, rt.plural, obj)
        self._after_create(rt, created)
        return created

    def _after_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """The namespace controller's part: every namespace gets a `default` ServiceAccount;
        a CustomResourceDefinition starts serving its resources."""
        if crds.is_crd(rt):
            crds.register(self.registry, obj)
        if rt.group == "" and rt.plural == "namespaces":
            sa_type = self.registry.lookup("", "v1", "serviceaccounts")
            name = obj["metadata"]["name"]
            if sa_type and not self.store.get("", "serviceaccounts", name, "default"):
                sa = {"metadata": {"name": "default", "namespace": name}}
                self.create(
                    sa_type, name, sa, WriteOptions(field_manager="kube-controller-manager")
                )

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
        if (converted := self._converted(rt)) is not None:
            body = self._to_storage(rt, namespace, body, options)
            updated = self.update(converted[0], namespace, name, body, options, subresource)
            return self.present(rt, updated)
        current = self.get(rt, namespace, name)
        obj = self._prepare(rt, namespace, body, options)
        _check_name(obj, name)
        _check_resource_version(rt, name, obj, current)
        return self._replace(rt, current, obj, options, subresource)

    def _replace(
        self,
        rt: ResourceType,
        current: dict[str, Any],
        obj: dict[str, Any],
        options: WriteOptions,
        subresource: str,
        managed: bool = False,
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
        for key in (
            "uid",
            "creationTimestamp",
            "namespace",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if rt.schema is not None:
            crds.apply_schema_defaults(new, rt.schema)
        if (defaults := DEFAULTS.get((rt.group, rt.kind))) is not None:
            defaults(new)
        validate(rt, new)
        crds.check_if_crd(rt, new)
        if _has_generation(rt) and new.get("spec") != current.get("spec"):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if not managed:
            record_update(rt, current, new, options.manager, subresource, now())
        if new == current:
            return current  # a no-op update does not bump resourceVersion
        if options.dry_run:
            return new
        updated = self.store.update(rt.group, rt.plural, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not _is_namespace(rt):
            # The last finalizer of an object being deleted is gone: now it goes.
            self.store.delete(rt.group, rt.plural, meta.get("namespace", ""), meta["name"])
        elif crds.is_crd(rt):
            crds.register(self.registry, updated)
        return updated

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
            return self._apply(rt, namespace, name, patch, options, subresource)
        current = self.get(rt, namespace, name)  # (in `rt`'s version: the patch is)
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
        _check_resource_version(rt, name, patched, current)
        if patched["metadata"].get("name") != name:
            raise errors.bad_request("the patch may not change the object's name")
        if rt.storage_version:
            return self.update(rt, namespace, name, patched, options, subresource)
        obj = self._prepare(rt, namespace, patched, options)
        return self._replace(rt, current, obj, options, subresource)

    def _apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str,
    ) -> dict[str, Any]:
        """Server-side apply (see `apply.py`); creates the object when it does not exist."""
        validate_manager(options.field_manager)
        if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
            raise errors.bad_request("apply configurations must set apiVersion and kind")
        config = self._prepare(rt, namespace, body, options)
        _check_name(config, name)
        current = self.store.get(rt.group, rt.plural, namespace if rt.namespaced else "", name)
        _check_resource_version(rt, name, config, current)
        manager, force = options.field_manager, options.force
        if (converted := self._converted(rt)) is not None:
            # Fields are merged in the version applied, then stored converted.
            stored_rt, down, up = converted
            view = down(current) if current is not None else None
            merged = up(apply(rt, view, config, manager, force, now(), subresource))
            if current is None:
                return down(self.create(stored_rt, namespace, merged, options, managed=True))
            merged = self._prepare(stored_rt, namespace, merged, options)
            return down(
                self._replace(stored_rt, current, merged, options, subresource, managed=True)
            )
        merged = apply(rt, current, config, manager, force, now(), subresource)
        if current is None:
            return self.create(rt, namespace, merged, options, managed=True)
        return self._replace(rt, current, merged, options, subresource, managed=True)

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
        """Deletes; dependents follow `propagationPolicy` (DeleteOptions or query).

        `Background` (the default) leaves dependents to the garbage collector controller;
        `Orphan` removes their ownerReferences to this object; `Foreground` deletes them first
        (the real server waits for that with a finalizer, the sandbox does it at once).
        An object with `metadata.finalizers` only gets a deletionTimestamp: it goes when its
        last finalizer is removed. A namespace turns Terminating; the namespace controller
        (`finalize_namespace`) removes its contents, then the namespace.
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
        meta = current["metadata"]
        if _is_namespace(rt):
            if meta.get("deletionTimestamp"):
                raise errors.ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on namespaces "{name}": The system is '
                    "ensuring all content is removed from this namespace.  Upon completion, "
                    "this namespace will automatically be purged by the system.",
                    {"name": name, "kind": "namespaces"},
                )
            meta["deletionTimestamp"] = now()
            current["status"] = {**current.get("status", {}), "phase": "Terminating"}
            return self.store.update(rt.group, rt.plural, current)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return current
            meta["deletionTimestamp"], meta["deletionGracePeriodSeconds"] = now(), 0
            return self.store.update(rt.group, rt.plural, current)
        if propagation_policy in ("Orphan", "Foreground"):
            self._propagate(meta["uid"], orphan=propagation_policy == "Orphan")
        deleted = self.store.delete(rt.group, rt.plural, meta.get("namespace", ""), name)
        assert deleted is not None
        if crds.is_crd(rt):
            crds.unregister(self.registry, self.store, deleted)
        return self.present(rt, deleted)

    def finalize_namespace(self, namespace: str) -> bool:
        """The namespace controller's pass over a Terminating namespace: deletes its contents
        and, once nothing is left, the namespace. Returns whether it changed anything."""
        changed, holding = False, []
        for rt in self.registry.stored():
            if not rt.namespaced or "delete" not in rt.verbs:
                continue
            for obj in self.store.list(rt.group, rt.plural, namespace, copy_items=False):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    holding.append((rt.plural, meta.get("finalizers") or []))
                else:
                    self.delete(rt, namespace, meta["name"])
                    changed = True
                    if self.store.exists(rt.group, rt.plural, namespace, meta["name"]):
                        holding.append((rt.plural, meta.get("finalizers") or []))
        if not holding:
            return self.store.delete("", "namespaces", "", namespace) is not None or changed
        ns = self.store.get("", "namespaces", "", namespace)
        if ns is None:
            return changed
        before = (ns.get("status") or {}).get("conditions") or []
        status = {**ns.get("status", {}), "conditions": _terminating_conditions(holding, before)}
        if status != ns.get("status"):
            ns["status"] = status
            self.store.update("", "namespaces", ns)
            changed = True
        return changed

    def _propagate(self, owner_uid: str, orphan: bool) -> None:
        """Orphans (drops the ownerReference) or deletes, depth first, the owner's dependents."""
        for rt in self.registry.stored():
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
    def _require_namespace(self, rt: ResourceType, name: str, namespace: str) -> None:
        """Creating needs the namespace, and one not being terminated (the real server's
        NamespaceLifecycle admission answers 403 then)."""
        ns = self.store.get_stored("", "namespaces", "", namespace)
        if ns is None:
            raise errors.namespace_not_found(namespace)
        if ns["metadata"].get("deletionTimestamp"):
            reason = (
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated"
            )
            raise errors.ApiError(
                403,
                "Forbidden",
                f'{rt.group_resource} "{name}" is forbidden: {reason}',
                {
                    "name": name,
                    "kind": rt.plural,
                    **({"group": rt.group} if rt.group else {}),
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

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


def _is_namespace(rt: ResourceType) -> bool:
    return rt.group == "" and rt.plural == "namespaces"


def _terminating_conditions(
    holding: list[tuple[str, list[str]]], before: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The conditions the namespace controller reports while content remains (a condition
    that was already true keeps its transition time, so an unchanged state writes nothing)."""
    since = {c.get("type"): c.get("lastTransitionTime") for c in before}
    counts: dict[str, int] = {}
    finalizers: dict[str, int] = {}
    for plural, names in holding:
        counts[plural] = counts.get(plural, 0) + 1
        for finalizer in names:
            finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
    remaining = ", ".join(f"{p}. has {n} resource instances" for p, n in sorted(counts.items()))
    held = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
    conditions = [
        {
            "type": "NamespaceContentRemaining",
            "status": "True",
            "reason": "SomeResourcesRemain",
            "message": f"Some resources are remaining: {remaining}",
            "lastTransitionTime": since.get("NamespaceContentRemaining") or now(),
        }
    ]
    if finalizers:
        conditions.append(
            {
                "type": "NamespaceFinalizersRemaining",
                "status": "True",
                "reason": "SomeFinalizersRemain",
                "message": f"Some content in the namespace has finalizers remaining: {held}",
                "lastTransitionTime": since.get("NamespaceFinalizersRemaining") or now(),
            }
        )
    return conditions


def _check_name(obj: dict[str, Any], name: str) -> None:
    """A body may leave out its name (it is the URL's), but may not name another object."""
    if obj["metadata"].setdefault("name", name) != name:
        raise errors.bad_request(
            "the name of the object "
            f"({obj['metadata']['name']}) does not match the name on the URL ({name})"
        )


def _check_resource_version(
    rt: ResourceType, name: str, obj: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """A resourceVersion in the body is a precondition: the stored object must still be it."""
    wanted = obj["metadata"].get("resourceVersion")
    if wanted and (current is None or wanted != current["metadata"]["resourceVersion"]):
        raise errors.conflict(rt, name)


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
    elif crds.is_crd(rt):
        obj["status"] = crds.status(obj, now())
    if (defaults := DEFAULTS.get((rt.group, rt.kind))) is not None:
        defaults(obj)


def _workload_defaults(kind: str, spec: dict[str, Any]) -> None:
    """The strategy defaults `kubectl rollout status` and `describe` read (apps/v1 defaults)."""
    rolling: dict[str, Any] = {  # type: ignore[assignment]
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
