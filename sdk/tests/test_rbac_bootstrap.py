"""The library against Kubernetes' real bootstrap policy (``/work/shared/data/k8s-bootstrap``
or ``CLUSTERCORD_K8S_BOOTSTRAP``): default ClusterRoles with aggregated ``admin``/``edit``/
``view`` (stored with ``rules: null``), default bindings, and a few bindings of our own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clustercord_sdk.rbac import Attributes, RBACSnapshot, UserInfo

yaml = pytest.importorskip("yaml")

DATA = Path(os.environ.get("CLUSTERCORD_K8S_BOOTSTRAP", "/work/shared/data/k8s-bootstrap"))
FILES = (
    "cluster-roles.yaml",
    "cluster-role-bindings.yaml",
    "namespace-roles.yaml",
    "namespace-role-bindings.yaml",
)
if not all((DATA / name).is_file() for name in FILES):
    pytest.skip(f"bootstrap policy not found in {DATA}", allow_module_level=True)

OURS: list[dict[str, Any]] = [
    {
        "kind": "RoleBinding",
        "metadata": {"name": "jane-view", "namespace": "dev"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "jane"}],
    },
    {
        "kind": "RoleBinding",
        "metadata": {"name": "ci-edit", "namespace": "dev"},
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci"}],  # namespace defaults to dev
    },
    {
        "kind": "RoleBinding",
        "metadata": {"name": "leads-admin", "namespace": "dev"},
        "roleRef": {"kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "Group", "name": "team-leads"}],
    },
]


def _load(privileged: bool = True) -> RBACSnapshot:
    objects = [yaml.safe_load((DATA / name).read_text()) for name in FILES]
    groups = ("system:masters",) if privileged else ()
    return RBACSnapshot.from_objects([*objects, *OURS], privileged_groups=groups)


@pytest.fixture(scope="module")
def snap() -> RBACSnapshot:
    return _load()


JANE = UserInfo.authenticated("jane")
CI = UserInfo.service_account("dev", "ci")
LEAD = UserInfo.authenticated("lee", ["team-leads"])


def dev(verb: str, resource: str, group: str = "", sub: str = "", name: str = "") -> Attributes:
    return Attributes(verb, resource, group, sub, name, namespace="dev")


def test_bootstrap_policy_has_no_problems(snap: RBACSnapshot) -> None:
    assert snap.problems == []
    for name in ("admin", "edit", "view"):
        assert snap.cluster_roles[name].aggregated
        assert snap.cluster_roles[name].rules, f"{name} must get rules through aggregation"
    view, edit = set(snap.cluster_roles["view"].rules), set(snap.cluster_roles["edit"].rules)
    assert view <= edit <= set(snap.cluster_roles["admin"].rules)


@pytest.mark.parametrize(
    ("user", "attrs", "expected"),
    [
        (JANE, dev("list", "pods"), True),
        (JANE, dev("watch", "deployments", "apps"), True),
        (JANE, dev("get", "pods", sub="log"), True),
        (JANE, dev("get", "secrets", name="db"), False),
        (JANE, dev("create", "deployments", "apps"), False),
        (JANE, Attributes("list", "pods", namespace="prod"), False),
        (CI, dev("create", "deployments", "apps"), True),
        (CI, dev("update", "deployments", "apps", sub="scale"), True),
        (CI, dev("get", "secrets"), True),
        (CI, dev("create", "rolebindings", "rbac.authorization.k8s.io"), False),
        (CI, Attributes("create", "deployments", "apps", namespace="prod"), False),
        (LEAD, dev("create", "rolebindings", "rbac.authorization.k8s.io"), True),
        (LEAD, dev("create", "roles", "rbac.authorization.k8s.io"), True),
        (
            LEAD,
            Attributes("create", "rolebindings", "rbac.authorization.k8s.io", namespace="x"),
            False,
        ),
        (LEAD, Attributes("list", "nodes"), False),
    ],
    ids=str,
)
def test_bootstrap_view_edit_admin(
    snap: RBACSnapshot, user: UserInfo, attrs: Attributes, expected: bool
) -> None:
    decision = snap.authorize(user, attrs)
    assert decision.allowed is expected, decision.reason


def test_system_masters_with_and_without_the_privileged_shortcut(snap: RBACSnapshot) -> None:
    root = UserInfo.authenticated("root", ["system:masters"])
    anything = Attributes("escalate", "clusterroles", "rbac.authorization.k8s.io", name="x")
    shortcut = snap.authorize(root, anything)
    assert shortcut.allowed and "privileged group" in shortcut.reason
    pure = _load(privileged=False).authorize(root, anything)
    assert pure.allowed and pure.binding is not None and pure.binding.name == "cluster-admin"
    assert _load(privileged=False).authorize(root, Attributes.non_resource("delete", "/x")).allowed


@pytest.mark.parametrize(
    ("user", "path", "expected"),
    [
        (UserInfo.anonymous(), "/healthz", True),
        (UserInfo.anonymous(), "/version", True),
        (UserInfo.anonymous(), "/livez", True),
        (UserInfo.anonymous(), "/metrics", False),
        (UserInfo.anonymous(), "/apis", False),
        (JANE, "/apis", True),
        (JANE, "/apis/apps/v1", True),
        (JANE, "/metrics", False),
    ],
)
def test_bootstrap_non_resource_urls(
    snap: RBACSnapshot, user: UserInfo, path: str, expected: bool
) -> None:
    assert snap.authorize(user, Attributes.non_resource("get", path)).allowed is expected


def test_bootstrap_authenticated_users_may_review_themselves(snap: RBACSnapshot) -> None:
    review = Attributes("create", "selfsubjectaccessreviews", "authorization.k8s.io")
    assert snap.authorize(JANE, review).allowed
    assert not snap.authorize(UserInfo.anonymous(), review).allowed


def test_bootstrap_who_can_create_deployments_in_dev(snap: RBACSnapshot) -> None:
    subjects = snap.allowed_subjects(dev("create", "deployments", "apps"))
    names = {(s["kind"], s["name"], s.get("namespace", "")) for s in subjects}
    assert ("Group", "system:masters", "") in names
    assert ("ServiceAccount", "ci", "dev") in names
    assert ("Group", "team-leads", "") in names
    assert ("User", "jane", "") not in names
    grants = snap.subjects_who_can(dev("create", "deployments", "apps"))
    ci = next(g for g in grants if g.subject["name"] == "ci")
    assert ci.binding is not None and ci.binding.name == "ci-edit"
    assert ci.role is not None and ci.role.name == "edit"


def test_bootstrap_rules_for_jane(snap: RBACSnapshot) -> None:
    result = snap.rules_for(JANE, "dev")
    assert not result.incomplete
    view_rules = set(snap.cluster_roles["view"].rules)
    assert view_rules <= set(result.rules)
    assert not view_rules <= set(snap.rules_for(JANE, "prod").rules)
