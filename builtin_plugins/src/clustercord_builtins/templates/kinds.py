"""The kinds a template may create, and how the SDK names them.

This table is the single source of truth for three things: which kinds the security
policy accepts in a template, the order of apply (what others refer to first) and
delete (the reverse), and the permissions the plugin's manifest must declare (a test
checks the manifest against it). Templates are namespaced (a CI runner's Role and
RoleBinding stay in the release's namespace, and the policy limits what they may grant),
except operator stacks that declare the elevated ``clusterWide`` feature: their CRDs,
ClusterRoles and ClusterRoleBindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    resource: str
    """As the SDK and permissions name it: ``deployments.apps``."""
    order: int
    workload: bool = False
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def group_kind(self) -> str:
        """``Deployment.apps``, ``Service``: the ApplySet ``contains-group-kinds`` form."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


KINDS = (
    # Cluster-wide: only for templates that declare the clusterWide feature (operators).
    Kind(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions.apiextensions.k8s.io",
        -1,
        namespaced=False,
    ),
    Kind(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles.rbac.authorization.k8s.io",
        0,
        namespaced=False,
    ),
    Kind(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings.rbac.authorization.k8s.io",
        1,
        namespaced=False,
    ),
    Kind("v1", "ServiceAccount", "serviceaccounts", 0),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles.rbac.authorization.k8s.io", 0),
    Kind(
        "rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings.rbac.authorization.k8s.io", 1
    ),
    Kind("v1", "Secret", "secrets", 1),
    Kind("v1", "ConfigMap", "configmaps", 1),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", 2),
    Kind("v1", "Service", "services", 3),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies.networking.k8s.io", 3),
    Kind("apps/v1", "Deployment", "deployments.apps", 4, workload=True),
    Kind("apps/v1", "StatefulSet", "statefulsets.apps", 4, workload=True),
    Kind("apps/v1", "DaemonSet", "daemonsets.apps", 4, workload=True),
    Kind("batch/v1", "Job", "jobs.batch", 5, workload=True),
    Kind("batch/v1", "CronJob", "cronjobs.batch", 5, workload=True),
    Kind("networking.k8s.io/v1", "Ingress", "ingresses.networking.k8s.io", 6),
)
_BY_KIND = {(k.api_version, k.kind): k for k in KINDS}
_BY_GROUP_KIND = {k.group_kind: k for k in KINDS}
SUPPORTED = ", ".join(k.group_kind for k in KINDS)
NAMESPACED = tuple(k for k in KINDS if k.namespaced)
CLUSTER_WIDE = tuple(k for k in KINDS if not k.namespaced)
DATA_KINDS = ("PersistentVolumeClaim", "CustomResourceDefinition")
"""Kept on delete unless delete_data: a claim holds data, and deleting a CRD deletes every
custom resource of its kind, in every namespace."""


def namespaced(obj: dict[str, Any]) -> bool:
    kind = kind_of(obj)
    return kind is None or kind.namespaced


def kind_of(obj: dict[str, Any]) -> Kind | None:
    return _BY_KIND.get((obj.get("apiVersion", ""), obj.get("kind", "")))


def by_group_kind(group_kind: str) -> Kind | None:
    return _BY_GROUP_KIND.get(group_kind)


def describe(obj: dict[str, Any]) -> str:
    """``Deployment/jellyfin``: how messages name an object."""
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects others refer to first (accounts, secrets, claims), Ingresses last."""
    return sorted(objects, key=lambda o: k.order if (k := kind_of(o)) else 99)
