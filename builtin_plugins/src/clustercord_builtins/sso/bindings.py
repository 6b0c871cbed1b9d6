"""RoleBindings reconciled from the role mappings, made by the plugin as its own identity.

A mapping (``/sso map role: groups: namespaces: permissions:``) says which Kubernetes groups a
Discord role gives and, optionally, which ClusterRoles (the spec's ``permissions``: ``view``,
``edit``, ``developer-role``) those groups hold in which namespaces (``*``: cluster-wide).
For each (group, ClusterRole, namespace) the plugin keeps one binding:

- a RoleBinding ``clustercord-sso:<group>:<role>`` in the namespace, or a
  ClusterRoleBinding of that name for ``*``;
- its subjects: the Group (what the gateway impersonates) and the ServiceAccount of every
  user with an active token-mode session holding that group (``clustercord-users/discord-<id>``:
  a ServiceAccount token carries no Discord groups, so the account is bound itself).

Every binding carries ``app.kubernetes.io/managed-by: clustercord-sso``; :func:`reconcile`
creates the missing, fixes the changed (``roleRef`` cannot change: deleted and made again)
and deletes the ones no mapping wants any more. Bindings an admin made by hand (without the
label) are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLEBINDINGS = f"rolebindings.{RBAC_GROUP}"
CLUSTERROLEBINDINGS = f"clusterrolebindings.{RBAC_GROUP}"
MANAGED_BY = "app.kubernetes.io/managed-by"
OURS = "clustercord-sso"
SELECTOR = f"{MANAGED_BY}={OURS}"
USERS_NAMESPACE = "clustercord-users"
"""The namespace the plugin owns: one ServiceAccount per token-mode user."""
ALL = "*"


def account_name(user_id: str) -> str:
    return f"discord-{user_id}"


@dataclass(frozen=True)
class Binding:
    namespace: str
    """``""`` for a ClusterRoleBinding (a mapping to every namespace)."""
    name: str
    role: str
    subjects: tuple[tuple[str, str], ...]
    """``(kind, name)``: ``("Group", g)`` or ``("ServiceAccount", "discord-<id>")``."""

    def body(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "labels": {MANAGED_BY: OURS}}
        if self.namespace:
            metadata["namespace"] = self.namespace
        return {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding" if self.namespace else "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": self.role},
            "subjects": subjects_json(self.subjects),
        }


def subjects_json(subjects: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for kind, name in subjects:
        if kind == "Group":
            out.append({"kind": "Group", "name": name, "apiGroup": RBAC_GROUP})
        else:
            out.append({"kind": kind, "name": name, "namespace": USERS_NAMESPACE})
    return out


def desired(
    mappings: Mapping[str, Mapping[str, list[str]]], holders: Mapping[str, Iterable[str]]
) -> dict[tuple[str, str], Binding]:
    """The bindings the mappings want, by ``(namespace, name)``. ``holders``: each token-mode
    user id → the groups of their active sessions."""
    wanted: dict[tuple[str, str], tuple[str, set[tuple[str, str]]]] = {}
    for mapping in mappings.values():
        namespaces = [ns for ns in mapping.get("namespaces") or [] if ns]
        for group in mapping.get("groups") or []:
            for role in mapping.get("roles") or []:
                for namespace in namespaces:
                    ns = "" if namespace == ALL else namespace
                    name = f"{OURS}:{group}:{role}"
                    entry = wanted.setdefault((ns, name), (role, set()))
                    entry[1].add(("Group", group))
                    for user, groups in holders.items():
                        if group in set(groups):
                            entry[1].add(("ServiceAccount", account_name(user)))
    return {
        key: Binding(key[0], key[1], role, tuple(sorted(subjects)))
        for key, (role, subjects) in wanted.items()
    }


def _current(obj: dict[str, Any]) -> Binding:
    meta = obj.get("metadata") or {}
    subjects = tuple(
        sorted((str(s.get("kind")), str(s.get("name"))) for s in obj.get("subjects") or [])
    )
    role = str((obj.get("roleRef") or {}).get("name") or "")
    return Binding(str(meta.get("namespace") or ""), str(meta["name"]), role, subjects)


async def reconcile(
    kubernetes: Any,
    cluster: str,
    mappings: Mapping[str, Mapping[str, list[str]]],
    holders: Mapping[str, Iterable[str]],
) -> dict[str, list[str]]:
    """Bring the cluster's SSO bindings to what the mappings want; returns what changed
    (``created``, ``updated``, ``deleted``: ``namespace/name``, ``*/name`` cluster-wide)."""
    want = desired(mappings, holders)
    have: dict[tuple[str, str], Binding] = {}
    for resource in (ROLEBINDINGS, CLUSTERROLEBINDINGS):
        found = await kubernetes.list(
            resource,
            all_namespaces=resource == ROLEBINDINGS,
            label_selector=SELECTOR,
            cluster=cluster,
        )
        for obj in found:
            binding = _current(obj)
            have[(binding.namespace, binding.name)] = binding
    changed: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}

    def label(b: Binding) -> str:
        return f"{b.namespace or ALL}/{b.name}"

    for key, binding in have.items():
        target = want.get(key)
        if target is not None and target.role == binding.role:
            continue
        await _delete(kubernetes, cluster, binding)
        if target is None:
            changed["deleted"].append(label(binding))
    for key, binding in want.items():
        old = have.get(key)
        resource = ROLEBINDINGS if binding.namespace else CLUSTERROLEBINDINGS
        namespace = binding.namespace or None
        if old is None or old.role != binding.role:
            await kubernetes.create(resource, binding.body(), namespace=namespace, cluster=cluster)
            changed["created" if old is None else "updated"].append(label(binding))
        elif old.subjects != binding.subjects:
            await kubernetes.patch(
                resource,
                binding.name,
                {"subjects": subjects_json(binding.subjects)},
                namespace=namespace,
                cluster=cluster,
            )
            changed["updated"].append(label(binding))
    return changed


async def _delete(kubernetes: Any, cluster: str, binding: Binding) -> None:
    resource = ROLEBINDINGS if binding.namespace else CLUSTERROLEBINDINGS
    try:
        await kubernetes.delete(
            resource, binding.name, namespace=binding.namespace or None, cluster=cluster
        )
    except Exception as exc:  # gone already: what we wanted
        if not str(exc).startswith("not found"):
            raise
