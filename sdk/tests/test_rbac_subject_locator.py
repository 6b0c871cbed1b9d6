"""Port of ``plugin/pkg/auth/authorizer/rbac/subject_locator_test.go`` (TestSubjectLocator).

``AllowedSubjects`` always lists ``system:masters`` first, then the super-user (the
deprecated ``--authorization-rbac-super-user``), then the subjects of ClusterRoleBindings,
then those of the request namespace's RoleBindings, each in object order.
"""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.rbac import Attributes, RBACSnapshot

from .conftest import Obj, new_rule, subjects

RBAC = "rbac.authorization.k8s.io"


def crb(role: str, *written: str) -> Obj:
    return {
        "metadata": {"name": role},
        "roleRef": {"kind": "ClusterRole", "name": role},
        "subjects": subjects(written),
    }


def rb(namespace: str, role: str, kind: str, *written: str) -> Obj:
    return {
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"kind": kind, "name": role},
        "subjects": subjects(written),
    }


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def pods(verb: str, namespace: str) -> Attributes:
    """The Go ``defaultAttributes{"", "", verb, "Pods", "", namespace, ""}``."""
    return Attributes(verb=verb, resource="Pods", namespace=namespace)


STAR_ADMIN = {"metadata": {"name": "admin"}, "rules": [new_rule("*", "*", "*", "*")]}

CASES: list[
    tuple[str, dict[str, Any], str | None, list[tuple[Attributes, list[dict[str, str]]]]]
] = [
    (
        "no super user, star matches star",
        {
            "cluster_roles": [STAR_ADMIN],
            "cluster_role_bindings": [crb("admin", "User:super-admin", "Group:super-admins")],
            "role_bindings": [rb("ns1", "admin", "ClusterRole", "User:admin", "Group:admins")],
        },
        None,
        [
            (
                pods("get", "ns1"),
                [
                    group("system:masters"),
                    user("super-admin"),
                    group("super-admins"),
                    user("admin"),
                    group("admins"),
                ],
            ),
            # cluster role matches star in namespace
            (
                pods("*", "*"),
                [group("system:masters"), user("super-admin"), group("super-admins")],
            ),
            # empty namespace
            (
                pods("*", ""),
                [group("system:masters"), user("super-admin"), group("super-admins")],
            ),
        ],
    ),
    (
        "super user, local roles work",
        {
            "cluster_roles": [STAR_ADMIN],
            "cluster_role_bindings": [crb("admin", "User:super-admin", "Group:super-admins")],
            "roles": [
                {
                    "metadata": {"name": "admin", "namespace": "ns1"},
                    "rules": [new_rule("get", "*", "Pods", "*")],
                }
            ],
            "role_bindings": [rb("ns1", "admin", "Role", "User:admin", "Group:admins")],
        },
        "foo",
        [
            (
                pods("get", "ns1"),
                [
                    group("system:masters"),
                    user("foo"),
                    user("super-admin"),
                    group("super-admins"),
                    user("admin"),
                    group("admins"),
                ],
            ),
            # verb matches correctly
            (
                pods("create", "ns1"),
                [group("system:masters"), user("foo"), user("super-admin"), group("super-admins")],
            ),
            # binding only works in correct namespace
            (
                pods("get", "ns2"),
                [group("system:masters"), user("foo"), user("super-admin"), group("super-admins")],
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("objects", "super_user", "attrs", "expected"),
    [
        pytest.param(objects, super_user, attrs, expected, id=f"{name}-{i}")
        for name, objects, super_user, actions in CASES
        for i, (attrs, expected) in enumerate(actions)
    ],
)
def test_subject_locator(
    objects: dict[str, Any],
    super_user: str | None,
    attrs: Attributes,
    expected: list[dict[str, str]],
) -> None:
    """TestSubjectLocator."""
    snapshot = RBACSnapshot(**objects, super_user=super_user)
    assert snapshot.allowed_subjects(attrs) == expected
    assert not snapshot.problems
