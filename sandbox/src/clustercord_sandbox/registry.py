"""The table of resource types the sandbox serves.

One row per resource: discovery, routing, the OpenAPI documents and the table printer all read
this table, so adding a resource type is one line here (and CRDs, later, add rows at run time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives in the URL space and what kind of object it holds."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # The OpenAPI definition name, e.g. io.k8s.api.apps.v1.Deployment.
    definition: str = ""
    singular: str = field(default="")
    # A custom resource's structural schema (from its CRD); built-ins use `definition`.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    # Set on a version served by converting the stored one (`conversion.py`): the version the
    # objects are stored in. Empty: this version is the stored one.
    storage_version: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def group_resource(self) -> str:
        """`deployments.apps` style name used in error messages (`pods` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(kind: str, plural: str, namespaced: bool, **kw: object) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, **kw)  # type: ignore[arg-type]


def _defn(group: str, version: str, kind: str) -> str:
    if group == "apiregistration.k8s.io":  # served by the aggregator, its own Go module
        return f"io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}.{kind}"
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


_ROWS: list[ResourceType] = [
    _core("Namespace", "namespaces", False, short_names=("ns",), subresources=("status",)),
    _core(
        "Pod",
        "pods",
        True,
        short_names=("po",),
        categories=("all",),
        subresources=(
            "status",
            "log",
            "eviction",
            "ephemeralcontainers",
            "exec",
            "attach",
            "portforward",
            "binding",
        ),
    ),
    _core(
        "Service",
        "services",
        True,
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
    ),
    _core("ConfigMap", "configmaps", True, short_names=("cm",)),
    _core("Secret", "secrets", True),
    _core("ServiceAccount", "serviceaccounts", True, short_names=("sa",), subresources=("token",)),
    _core("Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _core("Event", "events", True, short_names=("ev",)),
    _core(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        short_names=("pvc",),
        subresources=("status",),
    ),
    _core(
        "PersistentVolume",
        "persistentvolumes",
        False,
        short_names=("pv",),
        subresources=("status",),
    ),
    _core("Endpoints", "endpoints", True, short_names=("ep",), singular="endpoints"),
    _core(
        "ReplicationController",
        "replicationcontrollers",
        True,
        short_names=("rc",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _core(
        "ResourceQuota", "resourcequotas", True, short_names=("quota",), subresources=("status",)
    ),
    _core("LimitRange", "limitranges", True, short_names=("limits",)),
    _core("PodTemplate", "podtemplates", True),
    _core(
        "ComponentStatus", "componentstatuses", False, short_names=("cs",), verbs=("get", "list")
    ),
]

# Workloads are in `kubectl get all` and have a status; the apps/v1 ones that scale, a scale.
_WORKLOAD = dict(categories=("all",), subresources=("status",))
_APPS = dict(categories=("all",), subresources=("status", "scale"))
_ROWS += [
    ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",), **_APPS),  # type: ignore[arg-type]
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), **_APPS),  # type: ignore[arg-type]
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), **_APPS),  # type: ignore[arg-type]
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), **_WORKLOAD),  # type: ignore[arg-type]
    ResourceType("batch", "v1", "Job", "jobs", True, **_WORKLOAD),  # type: ignore[arg-type]
    ResourceType("batch", "v1", "CronJob", "cronjobs", True, ("cj",), **_WORKLOAD),  # type: ignore[arg-type]
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        subresources=("status",),
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        ("ing",),
        subresources=("status",),
    ),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    ResourceType("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    ResourceType("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    ResourceType("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", True),
    ResourceType(
        "storage.k8s.io",
        "v1",
        "VolumeAttachment",
        "volumeattachments",
        False,
        subresources=("status",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
        definition="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "CustomResourceDefinition",
    ),
]

# The rest of a stock v1.32 cluster's discovery (its default-enabled, GA resources): stored
# objects, validated against their OpenAPI definitions; no controller acts on them. Each
# group-version's rows are together, the preferred version first (autoscaling: v2, stored,
# and v1, converted from it as the API server converts: `autoscaling.py`).
_STATUS = ("status",)
_EXTENSIONS = ("api-extensions",)
_ROWS += [
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        categories=("all",),
        subresources=_STATUS,
    ),
    ResourceType(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        categories=("all",),
        subresources=_STATUS,
        storage_version="v2",
    ),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    # No `ev` short name here: kubectl 1.32 warns on every `get ev` when two groups claim it.
    ResourceType("events.k8s.io", "v1", "Event", "events", True),
    ResourceType("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    ResourceType(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        False,
        categories=_EXTENSIONS,
        subresources=_STATUS,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        categories=_EXTENSIONS,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        categories=_EXTENSIONS,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        False,
        categories=_EXTENSIONS,
        subresources=_STATUS,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        False,
        categories=_EXTENSIONS,
    ),
    ResourceType(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        ("csr",),
        subresources=("approval", "status"),
    ),
    ResourceType(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "FlowSchema",
        "flowschemas",
        False,
        subresources=_STATUS,
    ),
    ResourceType(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        False,
        subresources=_STATUS,
    ),
    ResourceType("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    ResourceType("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
]


def _review(group: str, kind: str, namespaced: bool = False) -> ResourceType:
    """A review resource: POST a question, get it back answered; nothing is stored."""
    package = group.split(".")[0]
    return ResourceType(
        group,
        "v1",
        kind,
        kind.lower() + "s",
        namespaced,
        verbs=("create",),
        definition=f"io.k8s.api.{package}.v1.{kind}",
    )


_ROWS += [
    _review("authorization.k8s.io", "SelfSubjectAccessReview"),
    _review("authorization.k8s.io", "SubjectAccessReview"),
    _review("authorization.k8s.io", "LocalSubjectAccessReview", namespaced=True),
    _review("authorization.k8s.io", "SelfSubjectRulesReview"),
    _review("authentication.k8s.io", "SelfSubjectReview"),
]


class Registry:
    """Lookup of resource types by URL parts, kind or short name."""

    def __init__(self, rows: list[ResourceType] | None = None) -> None:
        self._rows: list[ResourceType] = []
        # Bumped on every change, so caches built from the table (OpenAPI) know to rebuild.
        self.generation = 0
        for row in rows if rows is not None else _ROWS:
            self.add(row)

    def add(self, row: ResourceType) -> None:
        if not row.definition:
            row = ResourceType(
                **{**row.__dict__, "definition": _defn(row.group, row.version, row.kind)}
            )
        self._rows.append(row)
        self.generation += 1

    def remove(self, group: str, plural: str) -> None:
        """Drops every version of a resource (a deleted CustomResourceDefinition's)."""
        self._rows = [r for r in self._rows if (r.group, r.plural) != (group, plural)]
        self.generation += 1

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._rows))  # a snapshot: CRD writes may change the table

    def stored(self) -> list[ResourceType]:
        """One row per stored resource (versions served by conversion left out): for passes
        over every object, which would otherwise meet an object once per version."""
        return [r for r in self._rows if not r.storage_version]

    def group_versions(self) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for row in self._rows:
            if row.group_version not in seen:
                seen.append(row.group_version)
        return seen

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._rows if r.group == group and r.version == version]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for row in self._rows:
            if row.group == group and row.version == version and row.plural == plural:
                return row
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for row in self._rows:
            if row.api_version == api_version and row.kind == kind:
                return row
        return None


def default_registry() -> Registry:
    return Registry()
