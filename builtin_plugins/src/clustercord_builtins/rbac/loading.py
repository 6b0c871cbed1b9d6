"""One list of each RBAC kind per command: everything after it is answered offline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clustercord_sdk.rbac import RBACSnapshot

GROUP = "rbac.authorization.k8s.io"
KINDS = (
    ("roles", "Role"),
    ("clusterroles", "ClusterRole"),
    ("rolebindings", "RoleBinding"),
    ("clusterrolebindings", "ClusterRoleBinding"),
)


@dataclass(frozen=True)
class Loaded:
    """A cluster's RBAC snapshot and where it came from."""

    cluster: str
    snapshot: RBACSnapshot
    counts: dict[str, int]

    def summary(self) -> str:
        return ", ".join(f"{n} {kind}s" for kind, n in self.counts.items())


def snapshot_of(lists: dict[str, list[dict[str, Any]]]) -> RBACSnapshot:
    """The snapshot of the four lists (``{"roles": [...], ...}``); list items carry no kind."""
    return RBACSnapshot(
        lists.get("roles", ()),
        lists.get("clusterroles", ()),
        lists.get("rolebindings", ()),
        lists.get("clusterrolebindings", ()),
    )


async def load(ctx: Any, cluster: str | None = None) -> Loaded:
    """List Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of ``cluster``."""
    name, _ = ctx.kubernetes.target(cluster)
    lists = {
        plural: await ctx.kubernetes.list(f"{plural}.{GROUP}", all_namespaces=True, cluster=name)
        for plural, _ in KINDS
    }
    counts = {kind: len(lists[plural]) for plural, kind in KINDS}
    return Loaded(name, snapshot_of(lists), counts)
