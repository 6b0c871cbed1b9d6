"""Ports of ``plugin/pkg/auth/authorizer/rbac/rbac_test.go`` (TestAuthorizer, TestRuleMatches).

The builders mimic the Go helpers: ``new_rule("get,list", "", "pods", "")`` splits on commas
exactly like ``strings.Split`` (so ``""`` becomes ``[""]``), and subjects are written
``"User:name"``/``"Group:name"``/``"ServiceAccount:name"``.
"""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.rbac import Attributes, PolicyRule, RBACSnapshot, UserInfo, rule_allows

from .conftest import Obj, new_rule, subjects


def new_cluster_role(name: str, *rules: Obj) -> Obj:
    return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}


def new_cluster_role_binding(role: str, *written: str) -> Obj:
    return {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"crb-{role}"},
        "roleRef": {"kind": "ClusterRole", "name": role},
        "subjects": subjects(written),
    }


def new_role_binding(namespace: str, role: str, role_kind: str, *written: str) -> Obj:
    return {
        "kind": "RoleBinding",
        "metadata": {"name": f"rb-{role}", "namespace": namespace},
        "roleRef": {"kind": role_kind, "name": role},
        "subjects": subjects(written),
    }


def default_attrs(
    user: str, groups: str, verb: str, resource: str, subresource: str, namespace: str, group: str
) -> tuple[UserInfo, Attributes]:
    """The Go ``defaultAttributes`` record: a resource request without a name."""
    return UserInfo(user, tuple(groups.split(","))), Attributes(
        verb=verb, resource=resource, subresource=subresource, namespace=namespace, api_group=group
    )


def nonresource(
    name: str = "", groups: tuple[str, ...] = (), *, verb: str, path: str
) -> tuple[UserInfo, Attributes]:
    return UserInfo(name, groups), Attributes.non_resource(verb, path)


CLUSTER_ROLE = "ClusterRole"

# (cluster roles, role bindings, cluster role bindings, should pass, should fail)
AUTHORIZER_CASES: list[tuple[list[Obj], list[Obj], list[Obj], list[Any], list[Any]]] = [
    (
        [new_cluster_role("admin", new_rule("*", "*", "*", "*"))],
        [new_role_binding("ns1", "admin", CLUSTER_ROLE, "User:admin", "Group:admins")],
        [],
        [
            default_attrs("admin", "", "get", "Pods", "", "ns1", ""),
            default_attrs("admin", "", "watch", "Pods", "", "ns1", ""),
            default_attrs("admin", "group1", "watch", "Foobar", "", "ns1", ""),
            default_attrs("joe", "admins", "watch", "Foobar", "", "ns1", ""),
            default_attrs("joe", "group1,admins", "watch", "Foobar", "", "ns1", ""),
        ],
        [
            default_attrs("admin", "", "GET", "Pods", "", "ns2", ""),
            default_attrs("admin", "", "GET", "Nodes", "", "", ""),
            default_attrs("admin", "admins", "GET", "Pods", "", "ns2", ""),
            default_attrs("admin", "admins", "GET", "Nodes", "", "", ""),
        ],
    ),
    (
        # non-resource URLs
        [
            new_cluster_role("non-resource-url-getter", new_rule("get", "", "", "/apis")),
            new_cluster_role("non-resource-url", new_rule("*", "", "", "/apis")),
            new_cluster_role("non-resource-url-prefix", new_rule("get", "", "", "/apis/*")),
        ],
        [],
        [
            new_cluster_role_binding("non-resource-url-getter", "User:foo", "Group:bar"),
            new_cluster_role_binding("non-resource-url", "User:admin", "Group:admin"),
            new_cluster_role_binding("non-resource-url-prefix", "User:prefixed", "Group:prefixed"),
        ],
        [
            nonresource("foo", verb="get", path="/apis"),
            nonresource(groups=("bar",), verb="get", path="/apis"),
            nonresource("admin", verb="get", path="/apis"),
            nonresource(groups=("admin",), verb="get", path="/apis"),
            nonresource("admin", verb="watch", path="/apis"),
            nonresource(groups=("admin",), verb="watch", path="/apis"),
            nonresource("prefixed", verb="get", path="/apis/v1"),
            nonresource(groups=("prefixed",), verb="get", path="/apis/v1"),
            nonresource("prefixed", verb="get", path="/apis/v1/foobar"),
            nonresource(groups=("prefixed",), verb="get", path="/apis/v1/foorbar"),
        ],
        [
            # wrong verb
            nonresource("foo", verb="watch", path="/apis"),
            nonresource(groups=("bar",), verb="watch", path="/apis"),
            # wrong path
            nonresource("foo", verb="get", path="/api/v1"),
            nonresource(groups=("bar",), verb="get", path="/api/v1"),
            nonresource("admin", verb="get", path="/api/v1"),
            nonresource(groups=("admin",), verb="get", path="/api/v1"),
            # not covered by prefix
            nonresource("prefixed", verb="get", path="/api/v1"),
            nonresource(groups=("prefixed",), verb="get", path="/api/v1"),
        ],
    ),
    (
        # subresource resolution: "pods" does not cover "pods/status"
        [new_cluster_role("admin", new_rule("*", "*", "pods", "*"))],
        [new_role_binding("ns1", "admin", CLUSTER_ROLE, "User:admin", "Group:admins")],
        [],
        [default_attrs("admin", "", "get", "pods", "", "ns1", "")],
        [default_attrs("admin", "", "get", "pods", "status", "ns1", "")],
    ),
    (
        # subresource resolution: "pods/status" does not cover "pods"
        [new_cluster_role("admin", new_rule("*", "*", "pods/status", "*"))],
        [new_role_binding("ns1", "admin", CLUSTER_ROLE, "User:admin", "Group:admins")],
        [],
        [default_attrs("admin", "", "get", "pods", "status", "ns1", "")],
        [default_attrs("admin", "", "get", "pods", "", "ns1", "")],
    ),
]


def _authorizer_params() -> list[Any]:
    params = []
    for index, (crs, rbs, crbs, should_pass, should_fail) in enumerate(AUTHORIZER_CASES):
        for expected, requests in ((True, should_pass), (False, should_fail)):
            for user, attrs in requests:
                outcome = "pass" if expected else "fail"
                label = f"case{index}-{outcome}-{user.name or user.groups}-{attrs}"
                params.append(pytest.param(crs, rbs, crbs, user, attrs, expected, id=label))
    return params


@pytest.mark.parametrize(("crs", "rbs", "crbs", "user", "attrs", "expected"), _authorizer_params())
def test_authorizer(
    crs: list[Obj],
    rbs: list[Obj],
    crbs: list[Obj],
    user: UserInfo,
    attrs: Attributes,
    expected: bool,
) -> None:
    """TestAuthorizer."""
    snapshot = RBACSnapshot.from_objects([], crs, rbs, crbs)
    decision = snapshot.authorize(user, attrs)
    assert decision.allowed is expected, decision.reason


def _rr(verb: str, group: str, resource: str, subresource: str = "") -> Attributes:
    return Attributes(verb=verb, api_group=group, resource=resource, subresource=subresource)


def _nr(verb: str, url: str) -> Attributes:
    return Attributes.non_resource(verb, url)


def _verb_group_resource(expected: list[bool]) -> dict[Attributes, bool]:
    """The 8 requests of the Go table, in its order: verb1/2 × (group1,res1), (group2,res1),
    (group1,res2), (group2,res2)."""
    combos = [
        ("group1", "resource1"),
        ("group2", "resource1"),
        ("group1", "resource2"),
        ("group2", "resource2"),
    ]
    requests = [_rr(verb, group, res) for verb in ("verb1", "verb2") for group, res in combos]
    return dict(zip(requests, expected, strict=True))


_URLS = ["/foo", "/foo/bar", "/foo/baz", "/foo/bar/one", "/foo/baz/one"]

RULE_MATCHES_CASES: list[tuple[str, PolicyRule, dict[Attributes, bool]]] = [
    (
        "star verb, exact match other",
        PolicyRule(verbs=("*",), api_groups=("group1",), resources=("resource1",)),
        _verb_group_resource([True, False, False, False, True, False, False, False]),
    ),
    (
        "star group, exact match other",
        PolicyRule(verbs=("verb1",), api_groups=("*",), resources=("resource1",)),
        _verb_group_resource([True, True, False, False, False, False, False, False]),
    ),
    (
        "star resource, exact match other",
        PolicyRule(verbs=("verb1",), api_groups=("group1",), resources=("*",)),
        _verb_group_resource([True, False, True, False, False, False, False, False]),
    ),
    (
        "tuple expansion",
        PolicyRule(
            verbs=("verb1", "verb2"),
            api_groups=("group1", "group2"),
            resources=("resource1", "resource2"),
        ),
        _verb_group_resource([True] * 8),
    ),
    (
        "subresource expansion",
        PolicyRule(verbs=("*",), api_groups=("*",), resources=("resource1/subresource1",)),
        {
            _rr("verb1", "group1", "resource1", "subresource1"): True,
            _rr("verb1", "group2", "resource1", "subresource2"): False,
            _rr("verb1", "group1", "resource2", "subresource1"): False,
            _rr("verb1", "group2", "resource2", "subresource1"): False,
            _rr("verb2", "group1", "resource1", "subresource1"): True,
            _rr("verb2", "group2", "resource1", "subresource2"): False,
            _rr("verb2", "group1", "resource2", "subresource1"): False,
            _rr("verb2", "group2", "resource2", "subresource1"): False,
        },
    ),
    (
        "star nonresource, exact match other",
        PolicyRule(verbs=("verb1",), non_resource_urls=("*",)),
        {**{_nr("verb1", u): True for u in _URLS}, **{_nr("verb2", u): False for u in _URLS}},
    ),
    (
        "star nonresource subpath",
        PolicyRule(verbs=("verb1",), non_resource_urls=("/foo/*",)),
        {
            _nr("verb1", "/foo"): False,
            _nr("verb1", "/foo/bar"): True,
            _nr("verb1", "/foo/baz"): True,
            _nr("verb1", "/foo/bar/one"): True,
            _nr("verb1", "/foo/baz/one"): True,
            _nr("verb1", "/notfoo"): False,
            _nr("verb1", "/notfoo/bar"): False,
            _nr("verb1", "/notfoo/baz"): False,
            _nr("verb1", "/notfoo/bar/one"): False,
            _nr("verb1", "/notfoo/baz/one"): False,
        },
    ),
    (
        "star verb, exact nonresource",
        PolicyRule(verbs=("*",), non_resource_urls=("/foo", "/foo/bar/one")),
        {
            _nr(verb, url): url in ("/foo", "/foo/bar/one")
            for verb in ("verb1", "verb2")
            for url in _URLS
        },
    ),
]


@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        pytest.param(rule, request, expected, id=f"{name}: {request}")
        for name, rule, table in RULE_MATCHES_CASES
        for request, expected in table.items()
    ],
)
def test_rule_matches(rule: PolicyRule, request_: Attributes, expected: bool) -> None:
    """TestRuleMatches."""
    assert rule_allows(request_, rule) is expected
