"""ClusterRole aggregation, as the ``clusterrole-aggregation`` controller computes it.

A ClusterRole with ``aggregationRule.clusterRoleSelectors`` has no rules of its own: the
controller overwrites them with the rules of every *other* ClusterRole matching any selector
(selector by selector, roles sorted by name, exact duplicates dropped). Because an aggregated
role may itself be selected by another (``admin`` ⊇ ``edit`` ⊇ ``view``), the controller's
repeated syncs converge to a fixed point; we compute that fixed point directly. Snapshots
from a live cluster already hold aggregated rules, but fixtures and the bootstrap policy
(``rules: null``) do not, and an offline answer must not depend on that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clustercord_sdk.rbac.rules import PolicyRule


class SelectorError(ValueError):
    """A label selector Kubernetes would refuse to parse."""


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """``metav1.LabelSelector`` semantics: all ``matchLabels`` and all ``matchExpressions``.

    An empty selector matches everything. Raises :class:`SelectorError` for an unknown
    operator or a malformed expression.
    """
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or ())


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = expression.get("key")
    operator = expression.get("operator")
    values = list(expression.get("values") or ())
    if not isinstance(key, str) or not key:
        raise SelectorError(f"matchExpressions entry without a key: {dict(expression)}")
    if operator in ("In", "NotIn") and not values:
        raise SelectorError(f"operator {operator} on {key!r} needs values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SelectorError(f"operator {operator} on {key!r} takes no values")
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise SelectorError(f"unknown selector operator {operator!r} on {key!r}")


def _name(role: Mapping[str, Any]) -> str:
    return str((role.get("metadata") or {}).get("name", ""))


def _labels(role: Mapping[str, Any]) -> dict[str, str]:
    return dict((role.get("metadata") or {}).get("labels") or {})


def _selectors(role: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The role's selectors, or ``None`` when the role is not aggregated."""
    rule = role.get("aggregationRule")
    if rule is None:
        return None
    return list(rule.get("clusterRoleSelectors") or ())


def aggregate_cluster_roles(
    cluster_roles: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, tuple[PolicyRule, ...]], list[str]]:
    """Effective rules of every ClusterRole by name, and the problems met on the way.

    Starts from the stored rules (what a live controller would see) and re-syncs every
    aggregated role, in name order, until nothing changes. Without cycles this is the unique
    answer whatever the stored rules; a cycle settles where the real controller would.
    """
    problems: list[str] = []
    rules: dict[str, tuple[PolicyRule, ...]] = {}
    labels: dict[str, dict[str, str]] = {}
    for role in cluster_roles:
        name = _name(role)
        rules[name] = tuple(PolicyRule.from_dict(r) for r in role.get("rules") or ())
        labels[name] = _labels(role)
    names_sorted = sorted(rules)

    # Which roles each aggregated role draws from, selector by selector (labels never change).
    sources: dict[str, list[list[str]]] = {}
    for role in cluster_roles:
        selectors = _selectors(role)
        if selectors is None:
            continue
        name = _name(role)
        per_selector: list[list[str]] = []
        for selector in selectors:
            try:
                matched = [
                    n for n in names_sorted if n != name and selector_matches(selector, labels[n])
                ]
            except SelectorError as exc:
                problems.append(f"ClusterRole {name!r}: invalid aggregation selector: {exc}")
                matched = []
            per_selector.append(matched)
        sources[name] = per_selector

    for _ in range(len(sources) + 2):
        changed = False
        for name in sorted(sources):
            merged = _merge(rules, sources[name])
            if merged != rules[name]:
                rules[name] = merged
                changed = True
        if not changed:
            return rules, problems
    problems.append(
        "ClusterRole aggregation did not reach a fixed point (aggregation cycle?): "
        + ", ".join(sorted(sources))
    )
    return rules, problems


def _merge(
    rules: Mapping[str, tuple[PolicyRule, ...]], per_selector: list[list[str]]
) -> tuple[PolicyRule, ...]:
    merged: list[PolicyRule] = []
    seen: set[PolicyRule] = set()
    for matched in per_selector:
        for source in matched:
            for rule in rules[source]:
                if rule not in seen:
                    seen.add(rule)
                    merged.append(rule)
    return tuple(merged)
