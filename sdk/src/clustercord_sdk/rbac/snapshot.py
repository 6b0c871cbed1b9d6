"""An indexed, immutable view of a cluster's RBAC objects, and the questions asked of it.

The answers follow the API server: ``authorize`` is ``RBACAuthorizer.Authorize`` (plus the
privileged-group shortcut the API server puts before RBAC), ``rules_for`` is
``DefaultRuleResolver.RulesFor`` (SelfSubjectRulesReview), and ``subjects_who_can`` is
``SubjectAccessEvaluator.AllowedSubjects``. Everything that does not depend on the question
is computed once in the constructor: aggregated ClusterRoles, compiled rules per role,
bindings resolved to their roles and indexed by subject and by namespace, so a check only
looks at the bindings that name the user.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from clustercord_sdk.rbac.aggregation import aggregate_cluster_roles
from clustercord_sdk.rbac.attributes import Attributes
from clustercord_sdk.rbac.rules import CompiledRule, PolicyRule, compile_rules
from clustercord_sdk.rbac.subjects import (
    GROUP_KIND,
    RBAC_API_GROUP,
    SERVICE_ACCOUNT_KIND,
    SYSTEM_PRIVILEGED_GROUP,
    USER_KIND,
    UserInfo,
    normalize_subject,
    service_account_username,
    subject_applies,
)

ROLE = "Role"
CLUSTER_ROLE = "ClusterRole"
ROLE_BINDING = "RoleBinding"
CLUSTER_ROLE_BINDING = "ClusterRoleBinding"
NO_MATCH = "no RBAC policy matched"

#: Rules a privileged-group member holds (what ``privilegedGroupAuthorizer.RulesFor`` reports).
PRIVILEGED_RULES = (
    PolicyRule(verbs=("*",), api_groups=("*",), resources=("*",)),
    PolicyRule(verbs=("*",), non_resource_urls=("*",)),
)

Object = Mapping[str, Any]
SubjectKey = tuple[str, str]


def _meta(obj: Object, key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


@dataclass(frozen=True, eq=False)
class ResolvedRole:
    """A Role or ClusterRole with its effective rules (aggregation applied).

    Rules are compiled on first use and kept: an audit touches every role, a single check
    only a few, and building a big snapshot should not pay for roles nobody asks about.
    """

    kind: str
    name: str
    namespace: str
    rules: tuple[PolicyRule, ...]
    obj: Object = field(repr=False)
    aggregated: bool = False
    _compiled: tuple[CompiledRule, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def compiled(self) -> tuple[CompiledRule, ...]:
        if self._compiled is None:
            object.__setattr__(self, "_compiled", compile_rules(self.rules))
        assert self._compiled is not None
        return self._compiled

    def matching_rule(self, attributes: Attributes) -> PolicyRule | None:
        """The first rule granting the request, or ``None``."""
        for rule in self.compiled:
            if rule.allows(attributes):
                return rule.rule
        return None

    def describe(self) -> str:
        """``ClusterRole "edit"`` or ``Role "ns/name"``."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where!r}"


@dataclass(frozen=True, eq=False)
class Binding:
    """A RoleBinding or ClusterRoleBinding, its subjects normalized and its role resolved.

    ``role`` is ``None`` when the reference cannot grant anything (missing role, a
    ClusterRoleBinding to a Role, an unknown kind); ``error`` then says why.
    """

    kind: str
    name: str
    namespace: str
    role_kind: str
    role_name: str
    subjects: tuple[dict[str, str], ...]
    obj: Object = field(repr=False)
    position: int = 0
    role: ResolvedRole | None = None
    error: str | None = None

    def describe(self) -> str:
        """``RoleBinding "ns/name"``, the way the API server's reasons name bindings."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where!r}"

    def matching_subject(self, user: UserInfo) -> dict[str, str] | None:
        """The first subject naming ``user``, for the decision's reason."""
        for subject in self.subjects:
            if subject_applies(user, subject, self.namespace):
                return subject
        return None


@dataclass(frozen=True)
class Decision:
    """The answer to one access check; truthy when allowed.

    ``reason`` names the binding, role and rule that allowed it, or says
    ``no RBAC policy matched`` (with binding errors met on the way, as the API server does).
    """

    allowed: bool
    reason: str
    binding: Binding | None = None
    role: ResolvedRole | None = None
    rule: PolicyRule | None = None
    errors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Grant:
    """One rule a user holds, with where it comes from (binding → role → rule)."""

    binding: Binding | None
    role: ResolvedRole | None
    rule: PolicyRule


@dataclass(frozen=True)
class RulesResult:
    """What SelfSubjectRulesReview returns: the rules, and whether the list is incomplete."""

    rules: list[PolicyRule]
    grants: list[Grant]
    errors: list[str]

    @property
    def incomplete(self) -> bool:
        """True when a binding that names the user could not be evaluated."""
        return bool(self.errors)

    @property
    def resource_rules(self) -> list[PolicyRule]:
        return [r for r in self.rules if r.resources or r.api_groups]

    @property
    def non_resource_rules(self) -> list[PolicyRule]:
        return [r for r in self.rules if r.non_resource_urls]


class SubjectGrant(NamedTuple):
    """One who-can answer: a subject and the binding and role through which it may act.

    For privileged groups and the super-user, ``binding`` and ``role`` are ``None``.
    """

    subject: dict[str, str]
    binding: Binding | None
    role: ResolvedRole | None


@dataclass(frozen=True)
class Problem:
    """Something in the policy that grants nothing although it looks like it should."""

    code: str  # "missing-role" | "invalid-role-ref" | "invalid-subject" | "aggregation"
    object: str
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


class RBACSnapshot:
    """Immutable RBAC policy with indexes; build with :meth:`from_objects`.

    ``privileged_groups`` reproduces the API server's authorizer chain, which allows members
    of ``system:masters`` everything *before* RBAC is asked (so even without the bootstrap
    ``cluster-admin`` binding). Pass ``()`` for the pure RBAC authorizer. ``super_user`` is
    the deprecated ``--authorization-rbac-super-user``.
    """

    def __init__(
        self,
        roles: Iterable[Object] = (),
        cluster_roles: Iterable[Object] = (),
        role_bindings: Iterable[Object] = (),
        cluster_role_bindings: Iterable[Object] = (),
        *,
        privileged_groups: Sequence[str] = (SYSTEM_PRIVILEGED_GROUP,),
        super_user: str | None = None,
    ) -> None:
        self.privileged_groups = tuple(privileged_groups)
        self.super_user = super_user or None
        self.problems: list[Problem] = []
        self.cluster_roles: dict[str, ResolvedRole] = {}
        self.roles: dict[tuple[str, str], ResolvedRole] = {}
        self._crb_by_subject: dict[SubjectKey, list[Binding]] = {}
        self._rb_by_namespace: dict[str, list[Binding]] = {}
        self._rb_by_ns_subject: dict[tuple[str, SubjectKey], list[Binding]] = {}
        self._rb_by_subject: dict[SubjectKey, list[Binding]] = {}
        with gc_paused():
            self._build_roles(list(roles), list(cluster_roles))
            self.cluster_role_bindings: tuple[Binding, ...] = tuple(
                self._binding(obj, CLUSTER_ROLE_BINDING, i)
                for i, obj in enumerate(cluster_role_bindings)
            )
            self.role_bindings: tuple[Binding, ...] = tuple(
                self._binding(obj, ROLE_BINDING, i) for i, obj in enumerate(role_bindings)
            )
            self._index_bindings()

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_objects(
        cls,
        objects: Iterable[Object],
        cluster_roles: Iterable[Object] | None = None,
        role_bindings: Iterable[Object] | None = None,
        cluster_role_bindings: Iterable[Object] | None = None,
        *,
        privileged_groups: Sequence[str] = (SYSTEM_PRIVILEGED_GROUP,),
        super_user: str | None = None,
    ) -> RBACSnapshot:
        """Build from the four lists (Roles first), or from one iterable of mixed objects.

        With one iterable every object is sorted by its ``kind``; ``List`` objects (as
        ``kubectl get -o yaml`` prints them) are flattened and other kinds ignored.
        """
        options: dict[str, Any] = {"privileged_groups": privileged_groups, "super_user": super_user}
        if (
            cluster_roles is not None
            or role_bindings is not None
            or cluster_role_bindings is not None
        ):
            return cls(
                objects,
                cluster_roles or (),
                role_bindings or (),
                cluster_role_bindings or (),
                **options,
            )
        by_kind: dict[str, list[Object]] = {
            ROLE: [],
            CLUSTER_ROLE: [],
            ROLE_BINDING: [],
            CLUSTER_ROLE_BINDING: [],
        }
        for obj in _flatten(objects):
            by_kind.get(str(obj.get("kind", "")), []).append(obj)
        return cls(
            by_kind[ROLE],
            by_kind[CLUSTER_ROLE],
            by_kind[ROLE_BINDING],
            by_kind[CLUSTER_ROLE_BINDING],
            **options,
        )

    def _build_roles(self, roles: list[Object], cluster_roles: list[Object]) -> None:
        effective, problems = aggregate_cluster_roles(cluster_roles)
        self.problems.extend(Problem("aggregation", "ClusterRoles", p) for p in problems)
        for obj in cluster_roles:
            name = _meta(obj, "name")
            rules = effective[name]
            self.cluster_roles[name] = ResolvedRole(
                CLUSTER_ROLE,
                name,
                "",
                rules,
                obj,
                obj.get("aggregationRule") is not None,
            )
        for obj in roles:
            name, namespace = _meta(obj, "name"), _meta(obj, "namespace")
            rules = tuple(PolicyRule.from_dict(r) for r in obj.get("rules") or ())
            self.roles[(namespace, name)] = ResolvedRole(ROLE, name, namespace, rules, obj)

    def _binding(self, obj: Object, kind: str, position: int) -> Binding:
        name = _meta(obj, "name")
        namespace = _meta(obj, "namespace") if kind == ROLE_BINDING else ""
        ref = obj.get("roleRef") or {}
        role_kind, role_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        subjects = tuple(normalize_subject(s, namespace) for s in obj.get("subjects") or ())
        role, error, code = self._resolve(kind, namespace, role_kind, role_name)
        binding = Binding(
            kind, name, namespace, role_kind, role_name, subjects, obj, position, role, error
        )
        if error is not None:
            self.problems.append(Problem(code, binding.describe(), error))
        return binding

    def _resolve(
        self, binding_kind: str, namespace: str, role_kind: str, role_name: str
    ) -> tuple[ResolvedRole | None, str | None, str]:
        """``GetRoleReferenceRules``: a ClusterRoleBinding can only grant a ClusterRole."""
        if role_kind == CLUSTER_ROLE:
            role = self.cluster_roles.get(role_name)
            if role is None:
                return (
                    None,
                    f'clusterrole.rbac.authorization.k8s.io "{role_name}" not found',
                    "missing-role",
                )
            return role, None, ""
        if role_kind == ROLE and binding_kind == ROLE_BINDING:
            local = self.roles.get((namespace, role_name))
            if local is None:
                return (
                    None,
                    f'role.rbac.authorization.k8s.io "{role_name}" not found',
                    "missing-role",
                )
            return local, None, ""
        if role_kind == ROLE:
            return None, f"a ClusterRoleBinding cannot grant Role {role_name!r}", "invalid-role-ref"
        return None, f"unsupported role reference kind: {role_kind!r}", "invalid-role-ref"

    def _index_bindings(self) -> None:
        for binding in self.cluster_role_bindings:
            for key in self._subject_keys(binding):
                self._crb_by_subject.setdefault(key, []).append(binding)
        for binding in self.role_bindings:
            self._rb_by_namespace.setdefault(binding.namespace, []).append(binding)
            for key in self._subject_keys(binding):
                self._rb_by_ns_subject.setdefault((binding.namespace, key), []).append(binding)
                self._rb_by_subject.setdefault(key, []).append(binding)

    def _subject_keys(self, binding: Binding) -> set[SubjectKey]:
        """Index keys: ``("User", name)`` or ``("Group", name)``; a ServiceAccount subject is
        indexed under its user name because that is all it matches."""
        keys: set[SubjectKey] = set()
        for subject in binding.subjects:
            kind, name = subject["kind"], subject["name"]
            if kind in (USER_KIND, GROUP_KIND):
                keys.add((kind, name))
            elif kind == SERVICE_ACCOUNT_KIND and subject.get("namespace"):
                keys.add((USER_KIND, service_account_username(subject["namespace"], name)))
            elif kind == SERVICE_ACCOUNT_KIND:
                self.problems.append(
                    Problem(
                        "invalid-subject",
                        binding.describe(),
                        f"ServiceAccount {name!r} has no namespace",
                    )
                )
            else:
                self.problems.append(
                    Problem("invalid-subject", binding.describe(), f"unknown subject kind {kind!r}")
                )
        return keys

    # --- lookups -----------------------------------------------------------------------------

    @property
    def bindings(self) -> tuple[Binding, ...]:
        """Every binding, ClusterRoleBindings first (the authorizer's visiting order)."""
        return self.cluster_role_bindings + self.role_bindings

    def get_role(self, kind: str, name: str, namespace: str = "") -> ResolvedRole | None:
        if kind == CLUSTER_ROLE:
            return self.cluster_roles.get(name)
        return self.roles.get((namespace, name))

    def namespaces(self) -> list[str]:
        """Namespaces that hold at least one Role or RoleBinding."""
        return sorted({ns for ns, _ in self.roles} | set(self._rb_by_namespace))

    def bindings_for(self, user: UserInfo, namespace: str = "") -> list[Binding]:
        """Bindings naming ``user`` that apply in ``namespace`` (``""``: cluster bindings only),
        in the authorizer's order: ClusterRoleBindings, then that namespace's RoleBindings."""
        keys = [(USER_KIND, user.name), *((GROUP_KIND, g) for g in user.groups)]
        cluster = _ordered(b for key in keys for b in self._crb_by_subject.get(key, ()))
        if not namespace:
            return cluster
        local = _ordered(
            b for key in keys for b in self._rb_by_ns_subject.get((namespace, key), ())
        )
        return cluster + local

    def bindings_everywhere(self, user: UserInfo) -> list[Binding]:
        """Every binding naming ``user`` (by name or group): the ClusterRoleBindings, then the
        RoleBindings of *every* namespace, each in its original order. What a subject's
        graph or audit shows; :meth:`bindings_for` is the per-request view."""
        keys = [(USER_KIND, user.name), *((GROUP_KIND, g) for g in user.groups)]
        cluster = _ordered(b for key in keys for b in self._crb_by_subject.get(key, ()))
        local = _ordered(b for key in keys for b in self._rb_by_subject.get(key, ()))
        return cluster + local

    def privileged_group_of(self, user: UserInfo) -> str | None:
        return next((g for g in self.privileged_groups if g in user.groups), None)

    # --- questions ---------------------------------------------------------------------------

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        """May ``user`` do ``attributes``? Exactly the API server's answer (see class doc)."""
        return self._decide(user, attributes, self.bindings_for(user, attributes.namespace))

    def authorizer_for(self, user: UserInfo) -> Callable[[Attributes], Decision]:
        """:meth:`authorize` bound to one user, for many questions about the same identity
        (a matrix row, an audit of one subject): the user's bindings are looked up once per
        namespace instead of once per question."""
        bindings: dict[str, list[Binding]] = {}

        def check(attributes: Attributes) -> Decision:
            namespace = attributes.namespace
            if namespace not in bindings:
                bindings[namespace] = self.bindings_for(user, namespace)
            return self._decide(user, attributes, bindings[namespace])

        return check

    def _decide(
        self, user: UserInfo, attributes: Attributes, bindings: Iterable[Binding]
    ) -> Decision:
        group = self.privileged_group_of(user)
        if group is not None:
            return Decision(
                True, f"user is in the privileged group {group!r} (allowed before RBAC)"
            )
        errors: list[str] = []
        for binding in bindings:
            if binding.role is None:
                errors.append(f"{binding.describe()}: {binding.error}")
                continue
            rule = binding.role.matching_rule(attributes)
            if rule is not None:
                return Decision(
                    True,
                    _allowed_reason(binding, binding.role, rule, user),
                    binding,
                    binding.role,
                    rule,
                    tuple(errors),
                )
        reason = NO_MATCH if not errors else f"{NO_MATCH} (RBAC errors: {'; '.join(errors)})"
        return Decision(False, reason, errors=tuple(errors))

    def grants_for(self, user: UserInfo, namespace: str = "") -> RulesResult:
        """Every rule ``user`` holds in ``namespace`` with its provenance (``rules_for`` plus
        where each rule comes from); ``namespace=""`` gives cluster-wide rules only."""
        grants: list[Grant] = []
        errors: list[str] = []
        if self.privileged_group_of(user) is not None:
            grants.extend(Grant(None, None, rule) for rule in PRIVILEGED_RULES)
        for binding in self.bindings_for(user, namespace):
            if binding.role is None:
                errors.append(f"{binding.describe()}: {binding.error}")
                continue
            grants.extend(Grant(binding, binding.role, rule) for rule in binding.role.rules)
        rules = list(dict.fromkeys(g.rule for g in grants))
        return RulesResult(rules, grants, errors)

    def rules_for(self, user: UserInfo, namespace: str = "") -> RulesResult:
        """SelfSubjectRulesReview (``kubectl auth can-i --list``): the distinct rules, in the
        authorizer's order, with ``incomplete``/``errors`` for bindings that could not be
        evaluated."""
        return self.grants_for(user, namespace)

    def subjects_who_can(
        self, attributes: Attributes, *, all_namespaces: bool = False
    ) -> list[SubjectGrant]:
        """Every (subject, binding, role) through which someone may do ``attributes``.

        Like ``AllowedSubjects``: privileged groups (and the super-user) first, then the
        subjects of ClusterRoleBindings whose role allows it, then those of the request
        namespace's RoleBindings. With ``all_namespaces``, RoleBindings of every namespace
        are included (each grants the action in its own namespace only). Bindings with a
        missing role grant nothing and are skipped (they are in :attr:`problems`).
        """
        out = [SubjectGrant(_group_subject(g), None, None) for g in self.privileged_groups]
        if self.super_user:
            out.append(
                SubjectGrant(
                    {"kind": USER_KIND, "apiGroup": RBAC_API_GROUP, "name": self.super_user},
                    None,
                    None,
                )
            )
        cache: dict[int, bool] = {}

        def allows(role: ResolvedRole) -> bool:
            key = id(role)
            if key not in cache:
                cache[key] = role.matching_rule(attributes) is not None
            return cache[key]

        if all_namespaces:
            local: Iterable[Binding] = self.role_bindings
        else:
            local = (
                self._rb_by_namespace.get(attributes.namespace, ()) if attributes.namespace else ()
            )
        for binding in (*self.cluster_role_bindings, *local):
            if binding.role is not None and allows(binding.role):
                out.extend(SubjectGrant(s, binding, binding.role) for s in binding.subjects)
        return out

    def allowed_subjects(
        self, attributes: Attributes, *, all_namespaces: bool = False
    ) -> list[dict[str, str]]:
        """The distinct subjects of :meth:`subjects_who_can`, in order (``AllowedSubjects``)."""
        seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for grant in self.subjects_who_can(attributes, all_namespaces=all_namespaces):
            seen.setdefault(tuple(sorted(grant.subject.items())), grant.subject)
        return list(seen.values())

    def subjects(self) -> list[dict[str, str]]:
        """Every distinct subject named by any binding (for audits and matrices)."""
        seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for binding in self.bindings:
            for subject in binding.subjects:
                seen.setdefault(tuple(sorted(subject.items())), subject)
        return list(seen.values())


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk build or audit.

    Building a big snapshot (or auditing it) allocates hundreds of thousands of small,
    acyclic objects; each allocation burst triggers collections that scan every live object
    again, which more than doubled the time of a 5,000-binding audit. Reference counting
    still frees everything as usual; the collector runs again on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _flatten(objects: Iterable[Object]) -> Iterable[Object]:
    for obj in objects:
        if str(obj.get("kind", "")).endswith("List") and "items" in obj:
            yield from _flatten(obj.get("items") or ())
        else:
            yield obj


def _ordered(bindings: Iterable[Binding]) -> list[Binding]:
    """Distinct bindings in their original order (a binding may match several user keys)."""
    unique = {id(b): b for b in bindings}
    return sorted(unique.values(), key=lambda b: b.position)


def _group_subject(name: str) -> dict[str, str]:
    return {"kind": GROUP_KIND, "apiGroup": RBAC_API_GROUP, "name": name}


def _allowed_reason(binding: Binding, role: ResolvedRole, rule: PolicyRule, user: UserInfo) -> str:
    subject = binding.matching_subject(user)
    who = f" to {subject['kind']} {subject['name']!r}" if subject else ""
    return f"RBAC: allowed by {binding.describe()} of {role.describe()}{who}: rule {rule}"
