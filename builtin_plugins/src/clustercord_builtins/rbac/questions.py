"""The questions users ask most: who can do X, can S do X, and the permission matrix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
class WhoCan:
    """The answer to who-can: distinct subjects, and every grant with its binding."""

    attributes: Attributes
    grants: list[SubjectGrant]

    def subjects(self) -> list[dict[str, str]]:
        seen: dict[tuple[str, str, str], dict[str, str]] = {}
        for grant in self.grants:
            seen.setdefault(subject_key(grant.subject), plain_subject(grant.subject))
        return list(seen.values())

    def bindings(self) -> list[dict[str, object]]:
        seen: dict[int, dict[str, object]] = {}
        for grant in self.grants:
            if grant.binding is not None and id(grant.binding) not in seen:
                described = binding_dict(grant.binding)
                assert described is not None
                seen[id(grant.binding)] = described
        return list(seen.values())

    def rows(self) -> list[list[str]]:
        rows = []
        for grant in self.grants:
            if grant.binding is None:
                rows.append(
                    [subject_label(grant.subject), "privileged group", "(bypasses RBAC)", "all"]
                )
                continue
            scope = grant.binding.namespace or "cluster-wide"
            assert grant.role is not None
            rows.append(
                [
                    subject_label(grant.subject),
                    grant.binding.describe(),
                    grant.role.describe(),
                    scope,
                ]
            )
        return rows


def who_can(snapshot: RBACSnapshot, attributes: Attributes) -> WhoCan:
    """``AllowedSubjects``; without a namespace, RoleBindings of every namespace count (each
    in its own namespace, which the answer's scope column shows)."""
    grants = snapshot.subjects_who_can(attributes, all_namespaces=not attributes.namespace)
    return WhoCan(attributes, grants)


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
