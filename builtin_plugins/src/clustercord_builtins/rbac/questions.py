"""The questions users ask most: who can do X, can S do X, and the permission matrix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clustercord_sdk.rbac import (
    Attributes,
    Binding,
    RBACSnapshot,
    SubjectGrant,
    UserInfo,
    user_info_for_subject,
)

from .audit import is_builtin
from .resources import Resource
from .subjects import plain_subject, subject_key, subject_label

#: Columns of the matrix, in the order the spec shows them.
MATRIX_RESOURCES = (
    "pods",
    "services",
    "secrets",
    "configmaps",
    "deployments",
    "statefulsets",
    "jobs",
    "ingresses",
    "persistentvolumeclaims",
    "roles",
    "rolebindings",
)
CRUD = ("create", "get", "list", "update", "delete")
READ = ("get", "list")
MATRIX_PAGE_ROWS = 20


def attributes_for(
    verb: str, resource: Resource, namespace: str = "", name: str = ""
) -> Attributes:
    return Attributes(
        verb=verb.strip().lower(),
        resource=resource.resource,
        api_group=resource.group,
        subresource=resource.subresource,
        name=name,
        namespace=namespace,
    )


def binding_dict(binding: Binding | None) -> dict[str, object] | None:
    """A binding as the JSON output shows it (``None`` for a privileged group)."""
    if binding is None:
        return None
    return {
        "kind": binding.kind,
        "name": binding.name,
        "namespace": binding.namespace,
        "role": {"kind": binding.role_kind, "name": binding.role_name},
        "subjects": [plain_subject(s) for s in binding.subjects],
    }


@dataclass(frozen=True)
class Way:
    """One way a subject is allowed: a binding and its role, or a privileged group."""

    binding: Binding | None
    role_text: str

    @property
    def via(self) -> str:
        return self.binding.describe() if self.binding is not None else "privileged group"

    @property
    def scope(self) -> str:
        if self.binding is None:
            return "all (bypasses RBAC)"
        return self.binding.namespace or "cluster-wide"


@dataclass(frozen=True)
class Allowed:
    """A subject, once, with every way it is allowed."""

    subject: dict[str, str]
    ways: list[Way]

    @property
    def label(self) -> str:
        return subject_label(self.subject)

    def row(self) -> list[str]:
        return [
            self.label,
            "; ".join(w.via for w in self.ways),
            "; ".join(dict.fromkeys(w.role_text for w in self.ways)),
            ", ".join(dict.fromkeys(w.scope for w in self.ways)),
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            **plain_subject(self.subject),
            "ways": [{"binding": binding_dict(w.binding), "scope": w.scope} for w in self.ways],
        }


@dataclass(frozen=True)
class WhoCan:
    """The answer to who-can, as Kubernetes' subject locator gives it: for a request without
    a namespace (cluster-scoped, or across all namespaces) only ClusterRoleBindings and the
    privileged groups count; with a namespace, that namespace's RoleBindings too.
    ``namespaced`` (asked for) holds the subjects allowed only in some namespaces."""

    attributes: Attributes
    grants: list[SubjectGrant]
    namespaced: list[SubjectGrant] = field(default_factory=list)

    def allowed(self) -> list[Allowed]:
        return _by_subject(self.grants)

    def only_in_namespaces(self) -> list[Allowed]:
        """Subjects a RoleBinding allows in its namespace that the answer does not name."""
        named = {subject_key(g.subject) for g in self.grants}
        return _by_subject([g for g in self.namespaced if subject_key(g.subject) not in named])

    def subjects(self) -> list[dict[str, str]]:
        return [plain_subject(a.subject) for a in self.allowed()]

    def bindings(self) -> list[dict[str, object]]:
        seen: dict[int, dict[str, object]] = {}
        for grant in self.grants:
            if grant.binding is not None and id(grant.binding) not in seen:
                described = binding_dict(grant.binding)
                assert described is not None
                seen[id(grant.binding)] = described
        return list(seen.values())

    def rows(self) -> list[list[str]]:
        return [a.row() for a in self.allowed()]


def _by_subject(grants: Iterable[SubjectGrant]) -> list[Allowed]:
    out: dict[tuple[str, str, str], Allowed] = {}
    for grant in grants:
        entry = out.setdefault(
            subject_key(grant.subject), Allowed(plain_subject(grant.subject), [])
        )
        if grant.binding is None:
            way = Way(None, "(bypasses RBAC)")
        else:
            assert grant.role is not None
            way = Way(grant.binding, grant.role.describe())
        if any(w.binding is way.binding for w in entry.ways):
            continue  # the same binding (or privileged group) naming the subject twice
        entry.ways.append(way)
    return list(out.values())


def who_can(
    snapshot: RBACSnapshot, attributes: Attributes, *, in_namespaces: bool = False
) -> WhoCan:
    """``AllowedSubjects`` of the request. Without a namespace, RoleBindings do not allow it
    (Kubernetes checks a cluster-scoped or all-namespaces request against ClusterRoleBindings
    only); ``in_namespaces`` adds, apart, who a RoleBinding allows in its own namespace."""
    grants = snapshot.subjects_who_can(attributes)
    namespaced: list[SubjectGrant] = []
    if in_namespaces and not attributes.namespace:
        namespaced = [
            g
            for g in snapshot.subjects_who_can(attributes, all_namespaces=True)
            if g.binding is not None and g.binding.kind == "RoleBinding"
        ]
    return WhoCan(attributes, grants, namespaced)


# --- matrix ----------------------------------------------------------------------------------


def cell(snapshot: RBACSnapshot, user: UserInfo, resource: Resource, namespace: str) -> str:
    """``CRUD``, ``Read``, the verbs held, or ``""`` (nothing) for one resource."""
    check = snapshot.authorizer_for(user)
    held = [
        verb
        for verb in (*CRUD, "watch", "patch")
        if check(Attributes(verb, resource.resource, resource.group, namespace=namespace)).allowed
    ]
    if all(v in held for v in CRUD):
        return "CRUD"
    if all(v in held for v in READ) and not {"create", "update", "delete", "patch"} & set(held):
        return "Read"
    return ",".join(held)


def matrix_subjects(snapshot: RBACSnapshot, namespace: str) -> list[dict[str, str]]:
    """Every subject a binding that applies in ``namespace`` names (ClusterRoleBindings
    included). Kubernetes' own bootstrap bindings are left out, as in the audit: they are
    the cluster's components (ask for them with ``subjects:``)."""
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for binding in snapshot.bindings:
        if is_builtin(binding):
            continue
        if binding.namespace in ("", namespace) and binding.role is not None:
            for subject in binding.subjects:
                seen.setdefault(subject_key(subject), subject)
    return list(seen.values())


def matrix(
    snapshot: RBACSnapshot,
    namespace: str,
    subjects: Iterable[tuple[str, dict[str, str], UserInfo]],
    resources: Iterable[Resource],
) -> list[dict[str, object]]:
    """One row per subject: ``{"subject", "label", "cells": {resource: cell}}``."""
    resources = list(resources)
    return [
        {
            "subject": plain_subject(subject),
            "label": label,
            "cells": {str(r): cell(snapshot, user, r, namespace) for r in resources},
        }
        for label, subject, user in subjects
    ]


def default_rows(
    snapshot: RBACSnapshot, namespace: str
) -> list[tuple[str, dict[str, str], UserInfo]]:
    rows = []
    for subject in matrix_subjects(snapshot, namespace):
        try:
            rows.append((subject_label(subject), subject, user_info_for_subject(subject)))
        except ValueError:  # an unknown subject kind grants nothing (an audit finding)
            continue
    return rows


def shown(value: str) -> str:
    """A matrix cell as the spec draws it."""
    if value in ("CRUD", "Read"):
        return f"✅ {value}"
    return f"◐ {value}" if value else "❌"
