"""Unused permissions and unusual denials, from Kubernetes audit logs.

Input is the API server's audit log: ``audit.k8s.io/v1`` Event objects, one JSON document a
line (``--audit-log-path`` writes exactly that). A line that is not such an event is counted
and skipped, never fatal. Only ``ResponseComplete`` events (or events without a stage)
count, so a request is not seen twice.

* **Unused**: every permission a binding grants (each rule broken into one verb on one
  resource, as ``BreakdownRule`` does) that no allowed request of its subject matched during
  the log's window.
* **Anomalies**: requests the authorizer refused (annotation
  ``authorization.k8s.io/decision: forbid``) that the subject never made successfully in the
  window, rated by what they aimed at and by who tried.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk.rbac import (
    Attributes,
    Binding,
    CompiledRule,
    PolicyRule,
    RBACSnapshot,
    UserInfo,
    breakdown_rule,
    covers,
    user_info_for_subject,
)

from .audit import EVERYONE_MAY, is_builtin
from .subjects import plain_subject, subject_label

DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
SENSITIVE = {"secrets", "pods/exec", "pods/attach", "serviceaccounts/token", "roles",
             "clusterroles", "rolebindings", "clusterrolebindings", "nodes/proxy",
             "certificatesigningrequests/approval"}  # fmt: skip
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
MAX_BAD_LINES_SHOWN = 5


@dataclass(frozen=True)
class Request:
    """One audited request, reduced to what authorization saw."""

    user: str
    groups: tuple[str, ...]
    attributes: Attributes
    decision: str  # allow | forbid | "" (not annotated)
    time: str
    reason: str = ""


@dataclass
class AuditLog:
    requests: list[Request] = field(default_factory=list)
    lines: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)
    skipped_stages: int = 0

    @property
    def window(self) -> tuple[str, str]:
        times = sorted(r.time for r in self.requests if r.time)
        return (times[0], times[-1]) if times else ("", "")

    def summary(self) -> dict[str, Any]:
        start, end = self.window
        return {
            "lines": self.lines,
            "requests": len(self.requests),
            "malformed": len(self.malformed),
            "malformed_examples": [
                {"line": n, "problem": p} for n, p in self.malformed[:MAX_BAD_LINES_SHOWN]
            ],
            "other_stages": self.skipped_stages,
            "window": {"start": start, "end": end},
        }


def parse_log(data: bytes | str) -> AuditLog:
    """Events from JSON lines; every bad line is counted with its number and why."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    log = AuditLog()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        log.lines += 1
        try:
            event = json.loads(line)
        except ValueError as exc:
            log.malformed.append((number, f"not JSON ({exc.msg})"))
            continue
        problem = _event_problem(event)
        if problem:
            log.malformed.append((number, problem))
            continue
        if event.get("stage", "ResponseComplete") != "ResponseComplete":
            log.skipped_stages += 1
            continue
        log.requests.append(_request(event))
    return log


def _event_problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "not a JSON object"
    if event.get("kind") != "Event" or event.get("apiVersion") != "audit.k8s.io/v1":
        return "not an audit.k8s.io/v1 Event"
    user = event.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("username"), str):
        return "no user.username"
    if not isinstance(event.get("verb"), str):
        return "no verb"
    if not isinstance(event.get("objectRef", {}), dict):
        return "objectRef is not an object"
    return None


def _request(event: dict[str, Any]) -> Request:
    user = event["user"]
    ref = event.get("objectRef")
    annotations = event.get("annotations") or {}
    if ref:
        attributes = Attributes(
            event["verb"],
            str(ref.get("resource", "")),
            str(ref.get("apiGroup", "")),
            str(ref.get("subresource", "")),
            str(ref.get("name", "")),
            str(ref.get("namespace", "")),
        )
    else:
        path = str(event.get("requestURI", "")).split("?", 1)[0]
        attributes = Attributes.non_resource(event["verb"], path)
    return Request(
        user["username"],
        tuple(user.get("groups") or ()),
        attributes,
        str(annotations.get(DECISION, "")),
        str(event.get("requestReceivedTimestamp") or event.get("stageTimestamp") or ""),
        str(annotations.get(REASON, "")),
    )


# --- unused permissions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Unused:
    subject: dict[str, str]
    binding: Binding
    permission: PolicyRule

    def describe(self) -> str:
        rule = self.permission
        if rule.non_resource_urls:
            return f"{rule.verbs[0]} {rule.non_resource_urls[0]}"
        group = rule.api_groups[0]
        resource = rule.resources[0] + (f".{group}" if group else "")
        names = f" [{rule.resource_names[0]}]" if rule.resource_names else ""
        return f"{resource}{names}: {rule.verbs[0]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": plain_subject(self.subject),
            "permission": self.describe(),
            "rule": self.permission.to_dict(),
            "binding": {
                "kind": self.binding.kind,
                "name": self.binding.name,
                "namespace": self.binding.namespace,
            },
            "role": {"kind": self.binding.role_kind, "name": self.binding.role_name},
        }


def _who(request: Request) -> set[tuple[str, str]]:
    return {("User", request.user), *(("Group", g) for g in request.groups)}


def unused_permissions(
    snapshot: RBACSnapshot, log: AuditLog, *, include_system: bool = False
) -> list[Unused]:
    """Permissions of people and ServiceAccounts that no allowed request used."""
    allowed = [r for r in log.requests if r.decision != "forbid"]
    by_identity: dict[tuple[str, str], list[Request]] = {}
    for request in allowed:
        for key in _who(request):
            by_identity.setdefault(key, []).append(request)
    out: list[Unused] = []
    for binding in snapshot.bindings:
        if binding.role is None or (not include_system and is_builtin(binding)):
            continue
        atoms = [a for rule in binding.role.rules for a in breakdown_rule(rule)]
        compiled = [CompiledRule(a) for a in dict.fromkeys(atoms)]
        for subject in binding.subjects:
            try:
                identity = user_info_for_subject(subject, implicit_groups=False)
            except ValueError:
                continue
            key = (
                ("Group", subject["name"])
                if subject["kind"] == "Group"
                else ("User", identity.name)
            )
            requests = [
                r
                for r in by_identity.get(key, ())
                if not binding.namespace or r.attributes.namespace == binding.namespace
            ]
            for atom in compiled:
                if not any(atom.allows(r.attributes) for r in requests):
                    out.append(Unused(subject, binding, atom.rule))
    return out


# --- denials --------------------------------------------------------------------------------


@dataclass
class Anomaly:
    user: str
    groups: tuple[str, ...]
    attributes: Attributes
    count: int
    first: str
    severity: str
    why: list[str]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "request": str(self.attributes),
            "count": self.count,
            "first_seen": self.first,
            "severity": self.severity,
            "why": self.why,
            "authorizer_reason": self.reason,
        }


def denial_anomalies(snapshot: RBACSnapshot, log: AuditLog) -> list[Anomaly]:
    """Forbidden requests the subject never made successfully in the window."""
    done: set[tuple[str, str, str, str]] = set()
    for r in log.requests:
        if r.decision != "forbid":
            done.add(_kind_of(r))
    grouped: dict[tuple[str, str, str, str], list[Request]] = {}
    for r in log.requests:
        if r.decision == "forbid" and _kind_of(r) not in done:
            grouped.setdefault(_kind_of(r), []).append(r)
    out = []
    for requests in grouped.values():
        first = requests[0]
        a = first.attributes
        why = ["never done successfully in this log"]
        sensitive = a.combined_resource in SENSITIVE
        if sensitive:
            why.append(f"aims at {a.combined_resource}")
        read_only = _read_only(snapshot, first)
        if a.verb in WRITE_VERBS and read_only:
            why.append("a write by an account that may only read")
        service_account = first.user.startswith("system:serviceaccount:")
        if service_account:
            why.append(
                "ServiceAccounts run fixed code: a new denial means changed or hijacked code"
            )
        severity = "high" if sensitive or service_account else "medium" if read_only else "low"
        out.append(
            Anomaly(
                first.user, first.groups, a, len(requests), first.time, severity, why, first.reason
            )
        )
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(out, key=lambda x: (order[x.severity], x.user, str(x.attributes)))


def _kind_of(r: Request) -> tuple[str, str, str, str]:
    a = r.attributes
    return (r.user, a.verb, a.api_group, a.combined_resource or a.path)


def _read_only(snapshot: RBACSnapshot, request: Request) -> bool:
    """Does the user hold rules, all of them read-only, where the request was made?"""
    rules = snapshot.rules_for(
        UserInfo(request.user, request.groups), request.attributes.namespace
    ).resource_rules
    # every user may create self-reviews ("can I?"): that is not a write permission
    verbs = {v for r in rules if not covers(EVERYONE_MAY, [r])[0] for v in r.verbs}
    return bool(verbs) and not verbs & (WRITE_VERBS | {"*"})


def summarize_unused(unused: Iterable[Unused]) -> dict[str, list[str]]:
    """``{"user:alice": ["configmaps: delete", ...]}`` for the reply."""
    out: dict[str, list[str]] = {}
    for item in unused:
        out.setdefault(subject_label(item.subject), []).append(item.describe())
    return out
