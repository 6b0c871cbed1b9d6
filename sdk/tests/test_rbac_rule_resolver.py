"""Ports of ``pkg/registry/rbac/validation/rule_test.go`` (TestDefaultRuleResolver,
TestAppliesTo): which rules apply to a user in a namespace, and which subjects name a user."""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.rbac import PolicyRule, RBACSnapshot, UserInfo, applies_to

READ_PODS = {"verbs": ["GET", "WATCH"], "apiGroups": ["v1"], "resources": ["pods"]}
READ_SERVICES = {"verbs": ["GET", "WATCH"], "apiGroups": ["v1"], "resources": ["services"]}
WRITE_NODES = {"verbs": ["PUT", "CREATE", "UPDATE"], "apiGroups": ["v1"], "resources": ["nodes"]}
ADMIN = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}

STATIC_ROLES_1: dict[str, list[dict[str, Any]]] = {
    "roles": [
        {
            "metadata": {"namespace": "namespace1", "name": "readthings"},
            "rules": [READ_PODS, READ_SERVICES],
        }
    ],
    "cluster_roles": [
        {"metadata": {"name": "cluster-admin"}, "rules": [ADMIN]},
        {"metadata": {"name": "write-nodes"}, "rules": [WRITE_NODES]},
    ],
    "role_bindings": [
        {
            "metadata": {"namespace": "namespace1"},
            "subjects": [{"kind": "User", "name": "foobar"}, {"kind": "Group", "name": "group1"}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "readthings",
            },
        }
    ],
    "cluster_role_bindings": [
        {
            "subjects": [{"kind": "User", "name": "admin"}, {"kind": "Group", "name": "admin"}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
        }
    ],
}


@pytest.mark.parametrize(
    ("user", "namespace", "effective"),
    [
        pytest.param(UserInfo("foobar"), "namespace1", [READ_PODS, READ_SERVICES], id="role-in-ns"),
        pytest.param(UserInfo("foobar"), "namespace2", [], id="other-ns"),
        # Same as above but without a namespace: only cluster rules apply.
        pytest.param(UserInfo("foobar", ("admin",)), "", [ADMIN], id="cluster-only"),
        pytest.param(UserInfo(""), "", [], id="empty-user"),
    ],
)
def test_default_rule_resolver(
    user: UserInfo, namespace: str, effective: list[dict[str, Any]]
) -> None:
    """TestDefaultRuleResolver."""
    snapshot = RBACSnapshot(**STATIC_ROLES_1, privileged_groups=())
    result = snapshot.rules_for(user, namespace)
    assert sorted(result.rules, key=str) == sorted(map(PolicyRule.from_dict, effective), key=str)
    assert not result.incomplete


SA_SUBJECT = {"kind": "ServiceAccount", "namespace": "kube-system", "name": "default"}

APPLIES_TO_CASES = [
    ([{"kind": "User", "name": "foobar"}], UserInfo("foobar"), "", True,
     "single subject that matches username"),
    ([{"kind": "User", "name": "barfoo"}, {"kind": "User", "name": "foobar"}], UserInfo("foobar"),
     "", True, "multiple subjects, one that matches username"),
    ([{"kind": "User", "name": "barfoo"}, {"kind": "User", "name": "foobar"}], UserInfo("zimzam"),
     "", False, "multiple subjects, none that match username"),
    ([{"kind": "User", "name": "barfoo"}, {"kind": "Group", "name": "foobar"}],
     UserInfo("zimzam", ("foobar",)), "", True, "multiple subjects, one that match group"),
    ([{"kind": "User", "name": "barfoo"}, {"kind": "Group", "name": "foobar"}],
     UserInfo("zimzam", ("foobar",)), "namespace1", True,
     "multiple subjects, one that match group, should ignore namespace"),
    ([{"kind": "User", "name": "barfoo"}, {"kind": "Group", "name": "foobar"}, SA_SUBJECT],
     UserInfo("system:serviceaccount:kube-system:default"), "default", True,
     "multiple subjects with a service account that matches"),
    ([{"kind": "User", "name": "*"}], UserInfo("foobar"), "default", False,
     "* user subject name doesn't match all users"),
    ([{"kind": "Group", "name": "system:authenticated"},
      {"kind": "Group", "name": "system:unauthenticated"}],
     UserInfo("foobar", ("system:authenticated",)), "default", True,
     "binding to all authenticated and unauthenticated subjects matches authenticated user"),
    ([{"kind": "Group", "name": "system:authenticated"},
      {"kind": "Group", "name": "system:unauthenticated"}],
     UserInfo("system:anonymous", ("system:unauthenticated",)), "default", True,
     "binding to all authenticated and unauthenticated subjects matches anonymous user"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("subjects", "user", "namespace", "expected"),
    [pytest.param(s, u, ns, e, id=name) for s, u, ns, e, name in APPLIES_TO_CASES],
)
def test_applies_to(
    subjects: list[dict[str, Any]], user: UserInfo, namespace: str, expected: bool
) -> None:
    """TestAppliesTo."""
    assert applies_to(user, subjects, namespace) is expected


def test_applies_to_service_account_defaults_to_binding_namespace() -> None:
    """Not in the Go table but in ``appliesToUser``: a ServiceAccount subject without a
    namespace takes the binding's; in a ClusterRoleBinding (no namespace) it matches nobody."""
    sa = UserInfo.service_account("team", "builder")
    subject = [{"kind": "ServiceAccount", "name": "builder"}]
    assert applies_to(sa, subject, "team")
    assert not applies_to(sa, subject, "other")
    assert not applies_to(sa, subject, "")
