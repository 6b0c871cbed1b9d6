"""The audit: risky grants per subject with their path, and the escalation paths between them.

Every finding names the subject, the path (binding → role → rule), the severity and a
recommendation. Kubernetes' own bootstrap bindings (labelled ``rbac-defaults`` or named
``system:…``) are the cluster's machinery: their findings are counted but hidden unless asked
for, so a fresh cluster audits clean while a planted binding of the same roles does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk.rbac import (
    Attributes,
    Binding,
    PolicyRule,
    RBACSnapshot,
    ResolvedRole,
    covers,
    gc_paused,
    user_info_for_subject,
)

from .risks import (
    ALL_AUTHENTICATED,
    ALL_SERVICE_ACCOUNTS,
    ANONYMOUS,
    BY_ID,
    ESCALATION,
    FULL_WILDCARD,
    INVALID_ROLE_REF,
    INVALID_SUBJECT,
    MISSING_ROLE,
    MISSING_SERVICE_ACCOUNT,
    NAMESPACE_WILDCARD,
    RBAC,
    RULES,
    SEVERITIES,
    Probe,
    RiskRule,
)
from .subjects import plain_subject, subject_key, subject_label

#: What every user, even an anonymous one, may hold without it being a finding: the
#: bootstrap ``system:public-info-viewer``, ``system:discovery`` and ``system:basic-user``.
EVERYONE_MAY = (
    PolicyRule(
        verbs=("get",),
        non_resource_urls=(
            "/healthz", "/livez", "/readyz", "/version", "/version/", "/api", "/api/*",
            "/apis", "/apis/*", "/openapi", "/openapi/*", "/.well-known/openid-configuration",
            "/openid/v1/jwks",
        ),
    ),
    PolicyRule(
        verbs=("create",),
        api_groups=("authorization.k8s.io", "authentication.k8s.io"),
        resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"),
    ),
)  # fmt: skip
CLUSTER_ADMIN = Attributes("*", "*", "*")
#: Risks that let a subject run as any ServiceAccount of a namespace (a namespace-wide
#: wildcard subsumes the narrower ones, so it counts too).
POD_PATHS = ("RBAC-030", "RBAC-031", "RBAC-012", NAMESPACE_WILDCARD)
IMPERSONATION = ("RBAC-020", NAMESPACE_WILDCARD)
SUBSUMED = {"RBAC-011": "RBAC-010"}  # get secrets says nothing more when list fires


@dataclass(slots=True)
class Finding:
    """One risk of one subject, and how it holds it."""

    rule: RiskRule
    subject: dict[str, str]
    binding: Binding | None = None
    role: ResolvedRole | None = None
    policy_rule: PolicyRule | None = None
    message: str = ""
    path: list[str] = field(default_factory=list)
    system: bool = False
    key: tuple[str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.key = subject_key(self.subject)

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def scope(self) -> str:
        if self.binding is None or self.binding.kind == "ClusterRoleBinding":
            return "cluster-wide"
        return f"namespace {self.binding.namespace}"

    def steps(self) -> list[str]:
        """binding → role → rule, or the escalation's steps."""
        if self.path:
            return self.path
        steps = []
        if self.binding is not None:
            steps.append(self.binding.describe())
        if self.role is not None:
            steps.append(self.role.describe())
        elif self.binding is not None:
            steps.append(f"{self.binding.role_kind} {self.binding.role_name!r} (missing)")
        if self.policy_rule is not None:
            steps.append(f"rule {self.policy_rule}")
        return steps

    def to_dict(self) -> dict[str, Any]:
        binding = self.binding
        return {
            "id": self.rule.id,
            "title": self.rule.title,
            "severity": self.severity,
            "subject": plain_subject(self.subject),
            "scope": self.scope,
            "message": self.message or self.rule.title,
            "path": {
                "binding": None
                if binding is None
                else {"kind": binding.kind, "name": binding.name, "namespace": binding.namespace},
                "role": None
                if binding is None
                else {"kind": binding.role_kind, "name": binding.role_name},
                "rule": self.policy_rule.to_dict() if self.policy_rule else None,
                "steps": self.steps(),
            },
            "recommendation": self.rule.recommendation,
            "system": self.system,
        }


@dataclass
class AuditResult:
    findings: list[Finding]
    hidden_system: int
    bindings: int
    subjects: int

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            out[finding.severity] += 1
        return out

    def by_rule(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for finding in self.findings:
            out.setdefault(finding.rule.id, []).append(finding)
        return out


ProbeIndex = dict[tuple[str, str], list[tuple[RiskRule, Probe]]]


def _probe_index(namespaced: bool) -> tuple[ProbeIndex, ProbeIndex]:
    """Probes by (verb, resource[/subresource]) and by (verb, ""), in rule order. A
    RoleBinding cannot grant cluster-scoped resources, so its index leaves them out."""
    exact: ProbeIndex = {}
    by_verb: ProbeIndex = {}
    for risk in RULES:
        for probe in risk.probes:
            if not (namespaced and probe.cluster_scoped):
                verb = probe.attributes.verb
                exact.setdefault((verb, probe.attributes.combined_resource), []).append(
                    (risk, probe)
                )
                by_verb.setdefault((verb, ""), []).append((risk, probe))
    return exact, by_verb


_ORDER = {risk.id: n for n, risk in enumerate(RULES)}
_PROBES = {namespaced: _probe_index(namespaced) for namespaced in (False, True)}
_ALL_PROBES = {
    namespaced: sorted(
        (pair for pairs in by_verb.values() for pair in pairs),
        key=lambda pair: _ORDER[pair[0].id],
    )
    for namespaced, (_, by_verb) in _PROBES.items()
}


def _candidates(rule: PolicyRule, namespaced: bool) -> list[tuple[RiskRule, Probe]]:
    """Only the probes a rule could grant, looked up by its verbs and resources; the
    authorizer's matching (:meth:`CompiledRule.allows`) still decides."""
    if "*" in rule.verbs:
        return _ALL_PROBES[namespaced]
    exact, by_verb = _PROBES[namespaced]
    if any(r == "*" or r.startswith("*/") for r in rule.resources) or "*" in rule.verbs:
        pairs = [pair for verb in rule.verbs for pair in by_verb.get((verb, ""), ())]
    else:
        pairs = [
            pair
            for verb in rule.verbs
            for resource in rule.resources
            for pair in exact.get((verb, resource), ())
        ]
    return sorted(pairs, key=lambda pair: _ORDER[pair[0].id])


def is_builtin(binding: Binding) -> bool:
    """Kubernetes' own bootstrap binding (its components, not people)."""
    labels = (binding.obj.get("metadata") or {}).get("labels") or {}
    return labels.get("kubernetes.io/bootstrapping") == "rbac-defaults" or binding.name.startswith(
        "system:"
    )


class Auditor:
    """Runs every risk rule over a snapshot; role-level work is cached per role.

    ``service_accounts`` ((namespace, name) pairs), when known, tells the bindings to a
    ServiceAccount that does not exist (RBAC-063) and keeps such a ServiceAccount out of
    escalation paths: no pod can run as it until someone creates it.
    """

    def __init__(
        self,
        snapshot: RBACSnapshot,
        service_accounts: frozenset[tuple[str, str]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.service_accounts = service_accounts
        self._hits: dict[tuple[int, bool], list[tuple[RiskRule, PolicyRule, Probe]]] = {}
        self._benign: dict[int, bool] = {}

    # -- rule level ------------------------------------------------------------------------
    def role_hits(
        self, role: ResolvedRole, namespaced: bool
    ) -> list[tuple[RiskRule, PolicyRule, Probe]]:
        """(risk, rule, probe) for every risk a role's rules grant, first rule per risk."""
        key = (id(role), namespaced)
        cached = self._hits.get(key)
        if cached is not None:
            return cached
        hits: list[tuple[RiskRule, PolicyRule, Probe]] = []
        for compiled in role.compiled:
            if compiled.allows(CLUSTER_ADMIN):
                risk = BY_ID[NAMESPACE_WILDCARD if namespaced else FULL_WILDCARD]
                hits.append((risk, compiled.rule, Probe(CLUSTER_ADMIN)))
                continue  # a full wildcard subsumes every narrower risk of the rule
            fired: set[str] = set()
            for risk, probe in _candidates(compiled.rule, namespaced):
                if risk.id not in fired and compiled.allows(probe.attributes):
                    if SUBSUMED.get(risk.id) not in fired:
                        hits.append((risk, compiled.rule, probe))
                    fired.add(risk.id)
        seen: set[str] = set()
        unique = []
        for hit in hits:
            if hit[0].id not in seen:
                seen.add(hit[0].id)
                unique.append(hit)
        self._hits[key] = unique
        return unique

    def benign_for_everyone(self, role: ResolvedRole) -> bool:
        key = id(role)
        if key not in self._benign:
            self._benign[key] = covers(EVERYONE_MAY, role.rules)[0]
        return self._benign[key]

    # -- binding level -----------------------------------------------------------------------
    def binding_findings(self, binding: Binding) -> Iterable[Finding]:
        system = is_builtin(binding)
        for subject in binding.subjects:
            if not _valid_subject(subject):
                yield Finding(
                    BY_ID[INVALID_SUBJECT],
                    subject,
                    binding,
                    binding.role,
                    message=f"{binding.describe()} names {subject_label(subject)}, which never "
                    "matches a request",
                    system=system,
                )
            elif self._missing(subject):
                yield Finding(
                    BY_ID[MISSING_SERVICE_ACCOUNT],
                    subject,
                    binding,
                    binding.role,
                    message=f"{binding.describe()} grants {binding.role_kind} "
                    f"{binding.role_name!r} to {subject_label(subject)}, which does not exist",
                    system=system,
                )
        if binding.role is None:
            code = MISSING_ROLE if "not found" in (binding.error or "") else INVALID_ROLE_REF
            for subject in binding.subjects:
                yield Finding(
                    BY_ID[code],
                    subject,
                    binding,
                    None,
                    message=f"{binding.describe()}: {binding.error}",
                    system=system,
                )
            return
        role = binding.role
        hits = self.role_hits(role, binding.kind == "RoleBinding")
        for subject in binding.subjects:
            if not _valid_subject(subject):
                continue
            label = subject_label(subject)
            for risk, rule, probe in hits:
                if probe.namespace and binding.namespace not in ("", probe.namespace):
                    continue
                yield Finding(
                    risk,
                    subject,
                    binding,
                    role,
                    rule,
                    message=f"{label}: {risk.title} ({_scope(binding)})",
                    system=system,
                )
            broad = _broad_subject(subject)
            if broad and not self.benign_for_everyone(role):
                yield Finding(
                    BY_ID[broad],
                    subject,
                    binding,
                    role,
                    message=f"{label} holds {role.describe()} ({_scope(binding)})",
                    system=system,
                )

    def _missing(self, subject: dict[str, str]) -> bool:
        """A ServiceAccount subject known not to exist (unknown when none were listed)."""
        return (
            self.service_accounts is not None
            and subject.get("kind") == "ServiceAccount"
            and (subject.get("namespace", ""), subject.get("name", "")) not in self.service_accounts
        )

    # -- the whole cluster --------------------------------------------------------------------
    def run(self, include_system: bool = False) -> AuditResult:
        everything: list[Finding] = []
        with gc_paused():  # tens of thousands of findings: see gc_paused
            for binding in self.snapshot.bindings:
                everything.extend(self.binding_findings(binding))
            everything.extend(self.escalations(everything))
        shown = [f for f in everything if include_system or not f.system]
        rank = {severity: n for n, severity in enumerate(SEVERITIES)}
        shown.sort(key=lambda f: (rank[f.severity], f.rule.id, *f.key))
        subjects = {f.key for f in shown}
        return AuditResult(
            shown, len(everything) - len(shown), len(self.snapshot.bindings), len(subjects)
        )

    # -- escalation paths -------------------------------------------------------------------
    def escalations(self, findings: list[Finding]) -> list[Finding]:
        """Paths from a subject to cluster-admin: pods/tokens in a namespace whose
        ServiceAccount is cluster-admin, bind, escalate and impersonate."""
        admins = self._cluster_admin_identities()
        by_subject: dict[tuple[str, str, str], list[Finding]] = {}
        for finding in findings:
            by_subject.setdefault(finding.key, []).append(finding)
        admin_sas: dict[str, list[tuple[str, str, Binding | None]]] = {}
        for (kind, namespace, name), via in admins.items():
            if kind == "ServiceAccount" and not self._missing(
                {"kind": kind, "namespace": namespace, "name": name}
            ):
                admin_sas.setdefault(namespace, []).append((namespace, name, via))
        everywhere = [sa for sas in admin_sas.values() for sa in sas]
        out: list[Finding] = []
        for items in by_subject.values():
            subject = items[0].subject
            if subject_key(subject) in admins:
                continue  # already cluster-admin: nothing to escalate to
            system = all(f.system for f in items)
            out.extend(self._via_pods(subject, items, admin_sas, everywhere, system))
            if {f.rule.id for f in items} & {*IMPERSONATION, "RBAC-021", "RBAC-022"}:
                out.extend(self._via_rbac(subject, items, admins, system))
        return out

    def _cluster_admin_identities(self) -> dict[tuple[str, str, str], Binding | None]:
        """Subjects whose own grants include ``*`` on ``*`` cluster-wide, and how."""
        out: dict[tuple[str, str, str], Binding | None] = {}
        for binding in self.snapshot.cluster_role_bindings:
            if binding.role is None or binding.role.matching_rule(CLUSTER_ADMIN) is None:
                continue
            for subject in binding.subjects:
                out.setdefault(subject_key(subject), binding)
        for group in self.snapshot.privileged_groups:
            out.setdefault(("Group", "", group), None)
        return out

    def _via_pods(
        self,
        subject: dict[str, str],
        findings: list[Finding],
        admin_sas: dict[str, list[tuple[str, str, Binding | None]]],
        everywhere: list[tuple[str, str, Binding | None]],
        system: bool,
    ) -> list[Finding]:
        out = []
        for finding in findings:
            if finding.rule.id not in POD_PATHS or finding.binding is None:
                continue
            where = finding.binding.namespace  # "" for a ClusterRoleBinding: every namespace
            reachable = admin_sas.get(where, []) if where else everywhere
            for namespace, name, admin_binding in reachable:
                how = "create tokens for" if finding.rule.id == "RBAC-012" else "create pods in"
                verb = (
                    f"{how} namespace {namespace}"
                    if finding.rule.id != "RBAC-031"
                    else f"create workloads in namespace {namespace}"
                )
                via = admin_binding.describe() if admin_binding else "a privileged group"
                path = [
                    f"{subject_label(subject)} can {verb} "
                    f"(via {finding.binding.describe()} → {finding.binding.role_kind} "
                    f"{finding.binding.role_name!r})",
                    f"ServiceAccount {namespace}/{name} is bound to cluster-admin ({via})",
                    f"so {subject_label(subject)} is effectively cluster-admin",
                ]
                out.append(
                    Finding(
                        BY_ID[ESCALATION],
                        subject,
                        finding.binding,
                        finding.role,
                        finding.policy_rule,
                        message=f"{subject_label(subject)} can {verb}, where ServiceAccount "
                        f"{name} is bound to cluster-admin, so {subject_label(subject)} is "
                        "effectively cluster-admin",
                        path=path,
                        system=system,
                    )
                )
        return out

    def _via_rbac(
        self,
        subject: dict[str, str],
        findings: list[Finding],
        admins: dict[tuple[str, str, str], Binding | None],
        system: bool,
    ) -> list[Finding]:
        """bind, escalate and impersonate, checked with the authorizer itself."""
        try:
            user = user_info_for_subject(subject)
        except ValueError:
            return []
        check = self.snapshot.authorizer_for(user)
        out = []

        def allowed(verb: str, resource: str, group: str = "", name: str = "") -> Any:
            return check(Attributes(verb, resource, group, name=name))

        def finding(how: str, decision: Any) -> Finding:
            label = subject_label(subject)
            binding = decision.binding
            return Finding(
                BY_ID[ESCALATION],
                subject,
                binding,
                decision.role,
                decision.rule,
                message=f"{label} can {how}, so {label} is effectively cluster-admin",
                path=[
                    f"{label} can {how}"
                    + (
                        f" (via {binding.describe()} → {decision.role.describe()})"
                        if binding
                        else ""
                    ),
                    f"so {label} is effectively cluster-admin",
                ],
                system=system,
            )

        ids = {f.rule.id for f in findings}
        if ids & {"RBAC-021", "RBAC-022"}:
            out.extend(self._via_roles(subject, allowed, finding))
        if not ids & set(IMPERSONATION):
            return out
        masters = allowed("impersonate", "groups", "", "system:masters")
        if masters:
            out.append(finding("impersonate the group system:masters", masters))
            return out
        kinds, namespaces = _impersonable(findings)
        for kind, namespace, name in admins:
            if kind not in kinds or (
                kind == "ServiceAccount" and not _within(namespace, namespaces)
            ):
                continue
            if kind == "User":
                decision = allowed("impersonate", "users", "", name)
            elif kind == "ServiceAccount":
                decision = check(
                    Attributes("impersonate", "serviceaccounts", namespace=namespace, name=name)
                )
            else:
                decision = allowed("impersonate", "groups", "", name)
            if decision:
                who = f"{kind} {namespace + '/' if namespace else ''}{name}"
                out.append(finding(f"impersonate {who}, who is cluster-admin", decision))
                break
        return out

    def _via_roles(
        self, subject: dict[str, str], allowed: Callable[..., Any], finding: Callable[..., Finding]
    ) -> list[Finding]:
        """bind (any ClusterRole, or cluster-admin by name) and escalate paths."""
        user = user_info_for_subject(subject)
        out = []
        bind = allowed("bind", "clusterroles", RBAC, "cluster-admin")
        create_crb = allowed("create", "clusterrolebindings", RBAC)
        if bind and create_crb:
            out.append(
                finding("bind the cluster-admin ClusterRole with a new ClusterRoleBinding", bind)
            )
        escalate = allowed("escalate", "clusterroles", RBAC)
        if escalate and (allowed("create", "clusterroles", RBAC) and create_crb):
            out.append(
                finding("create a ClusterRole with any rule (escalate) and bind it", escalate)
            )
        elif escalate:
            for binding in self.snapshot.bindings_everywhere(user):
                if binding.kind == "ClusterRoleBinding" and binding.role_kind == "ClusterRole":
                    update = allowed("update", "clusterroles", RBAC, binding.role_name)
                    if update:
                        out.append(
                            finding(
                                f"add any rule to ClusterRole {binding.role_name!r} (escalate), "
                                f"which {binding.describe()} grants it cluster-wide",
                                escalate,
                            )
                        )
                        break
        return out


IMPERSONABLE = {"users": "User", "groups": "Group", "serviceaccounts": "ServiceAccount"}


def _impersonable(findings: list[Finding]) -> tuple[set[str], set[str]]:
    """Which kinds of identity the subject's impersonate grants name, and in which
    namespaces it may impersonate ServiceAccounts (``""``: all)."""
    kinds: set[str] = set()
    namespaces: set[str] = set()
    for f in findings:
        if f.rule.id not in IMPERSONATION or f.policy_rule is None or f.binding is None:
            continue
        for resource in f.policy_rule.resources:
            kinds.update(
                IMPERSONABLE.values() if resource == "*" else {IMPERSONABLE.get(resource, "")}
            )
        namespaces.add(f.binding.namespace)
    return kinds, namespaces


def _within(namespace: str, namespaces: set[str]) -> bool:
    return "" in namespaces or namespace in namespaces


def _scope(binding: Binding) -> str:
    return f"in namespace {binding.namespace}" if binding.namespace else "cluster-wide"


def _valid_subject(subject: dict[str, str]) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return bool(subject.get("namespace"))
    return kind in ("User", "Group")


def _broad_subject(subject: dict[str, str]) -> str | None:
    kind, name = subject.get("kind"), subject.get("name", "")
    if (kind, name) in (("User", "system:anonymous"), ("Group", "system:unauthenticated")):
        return ANONYMOUS
    if (kind, name) == ("Group", "system:authenticated"):
        return ALL_AUTHENTICATED
    if kind == "Group" and (
        name == "system:serviceaccounts" or name.startswith("system:serviceaccounts:")
    ):
        return ALL_SERVICE_ACCOUNTS
    return None


def audit(
    snapshot: RBACSnapshot,
    *,
    include_system: bool = False,
    service_accounts: frozenset[tuple[str, str]] | None = None,
) -> AuditResult:
    """Every finding of the snapshot (see the module doc for what is hidden by default)."""
    return Auditor(snapshot, service_accounts).run(include_system)
