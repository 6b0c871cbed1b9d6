"""Port of ``pkg/controller/clusterroleaggregation/clusterroleaggregation_controller_test.go``
(TestSyncClusterRole) plus the cases the controller reaches through repeated syncs: nested
aggregation to a fixed point, ``matchExpressions`` and invalid selectors."""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_sdk.rbac import (
    Attributes,
    PolicyRule,
    RBACSnapshot,
    SelectorError,
    aggregate_cluster_roles,
    selector_matches,
)

Obj = dict[str, Any]
HAMMER = [
    {"verbs": ["hammer"], "resources": ["nails"]},
    {"verbs": ["hammer"], "resources": ["wedges"]},
]
CHISEL = [{"verbs": ["chisel"], "resources": ["mortises"]}]
SAW = [{"verbs": ["saw"], "resources": ["boards"]}]


def role(name: str, labels: dict[str, str], rules: list[Obj]) -> Obj:
    return {"metadata": {"name": name, "labels": labels}, "rules": rules}


def combined(selectors: list[dict[str, str]], *rules: list[Obj], name: str = "combined") -> Obj:
    return {
        "metadata": {"name": name},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": s} for s in selectors]},
        "rules": [rule for group in rules for rule in group],
    }


def rules_of(*groups: list[Obj]) -> tuple[PolicyRule, ...]:
    return tuple(PolicyRule.from_dict(rule) for group in groups for rule in group)


BAR = {"foo": "bar"}
NOT_BAR = {"foo": "not-bar"}

SYNC_CASES = [
    ("remove dead rules",
     [role("hammer", BAR, HAMMER), combined([BAR], SAW)], rules_of(HAMMER)),
    ("strip rules",
     [role("hammer", NOT_BAR, HAMMER), combined([BAR], HAMMER)], rules_of()),
    ("select properly and put in order",
     [role("hammer", BAR, HAMMER), role("chisel", BAR, CHISEL), role("saw", NOT_BAR, SAW),
      combined([BAR])], rules_of(CHISEL, HAMMER)),
    ("select properly with multiple selectors",
     [role("hammer", BAR, HAMMER), role("chisel", BAR, CHISEL), role("saw", NOT_BAR, SAW),
      combined([BAR, NOT_BAR])], rules_of(CHISEL, HAMMER, SAW)),
    ("select properly remove duplicates",
     [role("hammer", BAR, HAMMER), role("chisel", BAR, CHISEL), role("saw", BAR, SAW),
      role("other-saw", NOT_BAR, SAW), combined([BAR, NOT_BAR])], rules_of(CHISEL, HAMMER, SAW)),
    ("no diff skip",
     [role("hammer", BAR, HAMMER), combined([BAR], HAMMER)], rules_of(HAMMER)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cluster_roles", "expected"), [pytest.param(c, e, id=n) for n, c, e in SYNC_CASES]
)
def test_sync_cluster_role(cluster_roles: list[Obj], expected: tuple[PolicyRule, ...]) -> None:
    """TestSyncClusterRole: the combined role's rules, in order, after a sync."""
    effective, problems = aggregate_cluster_roles(cluster_roles)
    assert effective["combined"] == expected
    assert problems == []


def test_nested_aggregation_reaches_fixed_point() -> None:
    """admin ⊇ edit ⊇ view as in the bootstrap policy, declared in the worst order."""
    roles = [
        combined([{"to": "admin"}], name="admin"),
        combined([{"to": "edit"}], name="edit")
        | {"metadata": {"name": "edit", "labels": {"to": "admin"}}},
        combined([{"to": "view"}], name="view")
        | {"metadata": {"name": "view", "labels": {"to": "edit"}}},
        role("read", {"to": "view"}, SAW),
        role("write", {"to": "edit"}, HAMMER),
        role("own", {"to": "admin"}, CHISEL),
    ]
    effective, problems = aggregate_cluster_roles(roles)
    assert problems == []
    assert effective["view"] == rules_of(SAW)
    assert set(effective["edit"]) == set(rules_of(HAMMER, SAW))
    assert set(effective["admin"]) == set(rules_of(CHISEL, HAMMER, SAW))
    snapshot = RBACSnapshot(cluster_roles=roles)
    assert snapshot.cluster_roles["admin"].aggregated
    assert PolicyRule.from_dict(SAW[0]) in snapshot.cluster_roles["admin"].rules
    # A rule without apiGroups matches no request at all, exactly as in Kubernetes.
    assert snapshot.cluster_roles["admin"].matching_rule(Attributes("saw", "boards")) is None


def test_aggregation_excludes_itself_and_survives_a_cycle() -> None:
    a = combined([{"team": "x"}], name="a") | {"metadata": {"name": "a", "labels": {"team": "x"}}}
    b = combined([{"team": "x"}], name="b") | {"metadata": {"name": "b", "labels": {"team": "x"}}}
    leaf = role("leaf", {"team": "x"}, SAW)
    effective, problems = aggregate_cluster_roles([a, b, leaf])
    assert effective["a"] == effective["b"] == rules_of(SAW)
    assert problems == []


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        (
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
            {"a": "1"},
            False,
        ),
    ],
)
def test_selector_matches(selector: Obj, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_invalid_selector_is_a_problem_not_a_crash() -> None:
    with pytest.raises(SelectorError):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {})
    bad = {
        "metadata": {"name": "bad"},
        "aggregationRule": {
            "clusterRoleSelectors": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]
        },
    }
    snapshot = RBACSnapshot(cluster_roles=[bad, role("x", {"a": "1"}, SAW)])
    assert snapshot.cluster_roles["bad"].rules == ()
    assert any("Near" in p.message for p in snapshot.problems)
