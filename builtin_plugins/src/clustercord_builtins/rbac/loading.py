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
    service_accounts: frozenset[tuple[str, str]] | None = None
    """(namespace, name) of every ServiceAccount, when the command asked for them."""

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


async def load(ctx: Any, cluster: str | None = None, *, service_accounts: bool = False) -> Loaded:
    """List Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of ``cluster`` (and its
    ServiceAccounts: the audit tells a binding to a missing one from a real identity)."""
    name, _ = ctx.kubernetes.target(cluster)
    lists = {
        plural: await ctx.kubernetes.list(f"{plural}.{GROUP}", all_namespaces=True, cluster=name)
        for plural, _ in KINDS
    }
    counts = {kind: len(lists[plural]) for plural, kind in KINDS}
    accounts = None
    if service_accounts:
        items = await ctx.kubernetes.list("serviceaccounts", all_namespaces=True, cluster=name)
        accounts = frozenset(
            (meta.get("namespace", ""), meta.get("name", ""))
            for meta in (item.get("metadata") or {} for item in items)
        )
        counts["ServiceAccount"] = len(accounts)
    return Loaded(name, snapshot_of(lists), counts, accounts)
