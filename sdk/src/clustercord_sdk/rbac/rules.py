"""Policy rules: matching a request, and the escalation check.

The semantics are Kubernetes' own, so an offline answer equals the API server's:

* ``RuleAllows`` and the ``*Matches`` helpers of ``pkg/apis/rbac/v1/evaluation_helpers.go``
  (:meth:`CompiledRule.allows`);
* ``Covers`` and ``BreakdownRule`` of ``pkg/registry/rbac/validation/policy_comparator.go``
  (:func:`covers`), which the API server uses to refuse a Role that grants more than its
  author holds.

Rules are compiled once into sets (:class:`CompiledRule`) because a snapshot evaluates the
same role thousands of times during a who-can or an audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.rbac.attributes import Attributes

#: The wildcard of every rule field (``VerbAll``, ``APIGroupAll``, ``ResourceAll``, …).
STAR = "*"


def _strings(value: Any) -> tuple[str, ...]:
    """A rule field as a tuple; ``null`` (as in the bootstrap YAML) and a missing key are empty."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


@dataclass(frozen=True)
class PolicyRule:
    """One ``rules[]`` entry of a Role or ClusterRole, immutable so it can be hashed and shared."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> PolicyRule:
        """Read a rule as the Kubernetes API returns it (camelCase keys)."""
        return cls(
            verbs=_strings(rule.get("verbs")),
            api_groups=_strings(rule.get("apiGroups")),
            resources=_strings(rule.get("resources")),
            resource_names=_strings(rule.get("resourceNames")),
            non_resource_urls=_strings(rule.get("nonResourceURLs")),
        )

    @classmethod
    def of(cls, rule: PolicyRule | Mapping[str, Any]) -> PolicyRule:
        """Accept either form, so callers may pass API dicts straight through."""
        return rule if isinstance(rule, PolicyRule) else cls.from_dict(rule)

    def to_dict(self) -> dict[str, list[str]]:
        """The API form, omitting empty fields as ``kubectl get -o json`` does."""
        out: dict[str, list[str]] = {}
        for key, value in (
            ("verbs", self.verbs),
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if value:
                out[key] = list(value)
        return out

    def __str__(self) -> str:
        parts = [f"verbs={list(self.verbs)}"]
        if self.non_resource_urls:
            parts.append(f"nonResourceURLs={list(self.non_resource_urls)}")
        if self.api_groups or self.resources:
            parts.append(f"apiGroups={list(self.api_groups)}")
            parts.append(f"resources={list(self.resources)}")
        if self.resource_names:
            parts.append(f"resourceNames={list(self.resource_names)}")
        return "{" + ", ".join(parts) + "}"


class CompiledRule:
    """A :class:`PolicyRule` turned into sets and flags for constant-time matching."""

    __slots__ = (
        "all_groups",
        "all_resources",
        "all_urls",
        "all_verbs",
        "groups",
        "names",
        "resources",
        "rule",
        "star_subresources",
        "url_prefixes",
        "urls",
        "verbs",
    )

    def __init__(self, rule: PolicyRule) -> None:
        self.rule = rule
        self.verbs = frozenset(rule.verbs)
        self.all_verbs = STAR in self.verbs
        self.groups = frozenset(rule.api_groups)
        self.all_groups = STAR in self.groups
        self.resources = frozenset(rule.resources)
        self.all_resources = STAR in self.resources
        # "*/scale" grants the scale subresource of every resource; "pods/*" is *not* a
        # pattern in Kubernetes and only matches a resource literally named so.
        self.star_subresources = frozenset(
            r[2:] for r in rule.resources if r.startswith("*/") and len(r) > 2
        )
        self.names = frozenset(rule.resource_names)
        self.urls = frozenset(rule.non_resource_urls)
        self.all_urls = STAR in self.urls
        self.url_prefixes = tuple(
            u.rstrip(STAR) for u in rule.non_resource_urls if u.endswith(STAR)
        )

    def allows(self, attributes: Attributes) -> bool:
        """``RuleAllows``: does this single rule grant the request?"""
        if not (self.all_verbs or attributes.verb in self.verbs):
            return False
        if attributes.is_resource_request:
            return (
                (self.all_groups or attributes.api_group in self.groups)
                and self._resource_matches(attributes)
                and (not self.names or attributes.name in self.names)
            )
        return self._url_matches(attributes.path)

    def _resource_matches(self, attributes: Attributes) -> bool:
        if self.all_resources or attributes.combined_resource in self.resources:
            return True
        return bool(attributes.subresource) and attributes.subresource in self.star_subresources

    def _url_matches(self, path: str) -> bool:
        if self.all_urls or path in self.urls:
            return True
        return any(path.startswith(prefix) for prefix in self.url_prefixes)


def rule_allows(attributes: Attributes, rule: PolicyRule | Mapping[str, Any]) -> bool:
    """Convenience form of :meth:`CompiledRule.allows` for a single, uncompiled rule."""
    return CompiledRule(PolicyRule.of(rule)).allows(attributes)


def compile_rules(rules: Iterable[PolicyRule]) -> tuple[CompiledRule, ...]:
    """Compile a role's rules once; the snapshot keeps the result per role."""
    return tuple(CompiledRule(rule) for rule in rules)


# --- Escalation check ("Covers") ------------------------------------------------------------


def breakdown_rule(rule: PolicyRule) -> list[PolicyRule]:
    """Split a rule into one rule per (group, resource, verb[, name]) and per (URL, verb).

    ``Covers`` compares these atoms so that several owner rules may jointly cover one
    requested rule (``BreakdownRule`` in Kubernetes).
    """
    atoms: list[PolicyRule] = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    atoms.extend(
                        PolicyRule(
                            verbs=(verb,),
                            api_groups=(group,),
                            resources=(resource,),
                            resource_names=(name,),
                        )
                        for name in rule.resource_names
                    )
                else:
                    atoms.append(
                        PolicyRule(verbs=(verb,), api_groups=(group,), resources=(resource,))
                    )
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            atoms.append(PolicyRule(verbs=(verb,), non_resource_urls=(url,)))
    return atoms


def non_resource_url_covers(owner_path: str, requested: str) -> bool:
    """An owner URL covers a requested one when equal, or as a trailing-``*`` prefix."""
    if owner_path == requested:
        return True
    return owner_path.endswith(STAR) and requested.startswith(owner_path.rstrip(STAR))


def _resources_cover_all(owned: Sequence[str], requested: Sequence[str]) -> bool:
    if STAR in owned or set(requested) <= set(owned):
        return True
    for path in requested:
        if path in owned:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """``ruleCovers``: does one owner rule cover one atom (with all its fields)?"""
    verbs_ok = STAR in owner.verbs or set(sub.verbs) <= set(owner.verbs)
    groups_ok = STAR in owner.api_groups or set(sub.api_groups) <= set(owner.api_groups)
    resources_ok = _resources_cover_all(owner.resources, sub.resources)
    urls_ok = all(
        any(non_resource_url_covers(o, r) for o in owner.non_resource_urls)
        for r in sub.non_resource_urls
    )
    if sub.resource_names:
        names_ok = not owner.resource_names or set(sub.resource_names) <= set(owner.resource_names)
    else:
        names_ok = not owner.resource_names
    return verbs_ok and groups_ok and resources_ok and names_ok and urls_ok


def covers(
    owner_rules: Iterable[PolicyRule | Mapping[str, Any]],
    requested_rules: Iterable[PolicyRule | Mapping[str, Any]],
) -> tuple[bool, list[PolicyRule]]:
    """Whether ``owner_rules`` hold every permission in ``requested_rules``.

    This is the API server's escalation check: a user may create or update a Role only with
    rules they already hold. Returns ``(covered, uncovered_atoms)``; wildcards are covered
    only by wildcards (an enumeration of every verb does not cover ``*``).
    """
    owners = [PolicyRule.of(rule) for rule in owner_rules]
    uncovered: list[PolicyRule] = []
    for requested in requested_rules:
        for atom in breakdown_rule(PolicyRule.of(requested)):
            if not any(_rule_covers(owner, atom) for owner in owners):
                uncovered.append(atom)
    return not uncovered, uncovered
