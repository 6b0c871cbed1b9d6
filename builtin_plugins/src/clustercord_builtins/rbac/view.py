"""Answers that stay readable at any size: an audit grouped and summarised, paged lazily.

A big cluster's audit has tens of thousands of findings, mostly the same risk of the same
subject through many bindings. The answer a person reads is a summary (counts by severity
and rule, the riskiest subjects, the paths to cluster-admin) and then one line per (rule,
subject) with every scope it holds the risk in, a page at a time. Only the page asked for
is built: the next one comes from a button (Discord re-runs the command's page handler) or
``page:N`` (the console, ``--json``); the whole report is ``/rbac export``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk import Card, Field

from .audit import Finding
from .risks import ESCALATION, SEVERITIES
from .subjects import plain_subject, subject_label

SEVERITY_LOOK = {
    "critical": ("🔴", "red"),
    "high": ("🟠", "orange"),
    "medium": ("🟡", "yellow"),
    "low": ("🔵", "blue"),
}
WEIGHT = {"critical": 1000, "high": 100, "medium": 10, "low": 1}
#: A page: at most this many (rule, subject) lines in at most this many rule cards, so a
#: page (with the summary card on the first) stays inside one Discord message (10 embeds,
#: 6,000 characters) however long the names are.
PAGE_LINES, FIRST_PAGE_LINES, PAGE_RULES = 16, 8, 4
LINE_CHARS = 170
SCOPES_SHOWN = 4
TOP_SUBJECTS, TOP_RULES, TOP_ESCALATIONS = 5, 8, 3


@dataclass
class Group:
    """One risk of one subject, however many bindings grant it."""

    rule_id: str
    title: str
    severity: str
    subject: dict[str, str]
    recommendation: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def label(self) -> str:
        return subject_label(self.subject)

    def scopes(self) -> list[str]:
        out: dict[str, None] = {}
        for f in self.findings:
            out.setdefault(
                "cluster-wide"
                if f.binding is None or not f.binding.namespace
                else f.binding.namespace
            )
        return sorted(out, key=lambda s: (s != "cluster-wide", s))

    def line(self) -> str:
        """``sa:ns/x — 3 bindings: cluster-wide, ns-001 … — via <first path>``."""
        scopes = self.scopes()
        where = ", ".join(scopes[:SCOPES_SHOWN]) + (
            f" (+{len(scopes) - SCOPES_SHOWN})" if len(scopes) > SCOPES_SHOWN else ""
        )
        first = self.findings[0]
        if self.rule_id == ESCALATION and first.path:
            how = first.path[0].removeprefix(f"{self.label} ")
        else:
            how = " → ".join(first.steps()[:2])
        n = len(self.findings)
        text = f"{self.label} — {n} path{'s' if n != 1 else ''} in {where} — {how}"
        return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"

    def to_dict(self) -> dict[str, Any]:
        first = self.findings[0]
        return {
            "id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "subject": plain_subject(self.subject),
            "count": len(self.findings),
            "scopes": self.scopes(),
            "example": {"message": first.message or self.title, "steps": first.steps()},
            "recommendation": self.recommendation,
        }


def group(findings: Sequence[Finding]) -> list[Group]:
    """(rule, subject) groups in the findings' order (severity, rule, subject)."""
    out: dict[tuple[str, tuple[str, str, str]], Group] = {}
    for f in findings:
        key = (f.rule.id, f.key)
        g = out.get(key)
        if g is None:
            g = out[key] = Group(
                f.rule.id, f.rule.title, f.severity, f.subject, f.rule.recommendation
            )
        g.findings.append(f)
    return list(out.values())


def paginate(groups: Sequence[Group]) -> list[tuple[int, int]]:
    """(start, end) of each page over ``groups``: few lines and rule cards a page."""
    pages: list[tuple[int, int]] = []
    start = 0
    while start < len(groups):
        limit = FIRST_PAGE_LINES if not pages else PAGE_LINES
        end, rules = start, set[str]()
        while end < len(groups) and end - start < limit:
            if groups[end].rule_id not in rules and len(rules) == PAGE_RULES:
                break
            rules.add(groups[end].rule_id)
            end += 1
        pages.append((start, end))
        start = end
    return pages or [(0, 0)]


def summarise(groups: Sequence[Group], findings: Sequence[Finding]) -> dict[str, Any]:
    """Counts by severity and rule, the riskiest subjects, the paths to cluster-admin."""
    by_severity = dict.fromkeys(SEVERITIES, 0)
    rules: dict[str, dict[str, Any]] = {}
    for f in findings:
        by_severity[f.severity] += 1
        entry = rules.setdefault(
            f.rule.id,
            {"id": f.rule.id, "title": f.rule.title, "severity": f.severity, "findings": 0},
        )
        entry["findings"] += 1
    subjects_per_rule: dict[str, int] = {}
    scores: dict[tuple[str, str, str], dict[str, Any]] = {}
    for g in groups:
        subjects_per_rule[g.rule_id] = subjects_per_rule.get(g.rule_id, 0) + 1
        key = g.findings[0].key
        entry = scores.setdefault(
            key,
            {"subject": plain_subject(g.subject), "label": g.label, "score": 0, "rules": []},
        )
        entry["score"] += WEIGHT[g.severity]
        entry["rules"].append(g.rule_id)
    for rule_id, entry in rules.items():
        entry["subjects"] = subjects_per_rule.get(rule_id, 0)
    escalations = [g for g in groups if g.rule_id == ESCALATION]
    riskiest = sorted(scores.values(), key=lambda e: (-e["score"], e["label"]))[:TOP_SUBJECTS]
    return {
        "findings": len(findings),
        "groups": len(groups),
        "by_severity": by_severity,
        "by_rule": list(rules.values()),
        "riskiest_subjects": [
            {"subject": e["subject"], "score": e["score"], "rules": sorted(set(e["rules"]))}
            for e in riskiest
        ],
        "escalations": {
            "subjects": len(escalations),
            "examples": [
                {"subject": plain_subject(g.subject), "path": g.findings[0].steps()}
                for g in escalations[:TOP_ESCALATIONS]
            ],
        },
    }


def summary_fields(info: dict[str, Any]) -> list[Field]:
    """The summary as card fields (severities are in the card's description)."""
    rules = sorted(info["by_rule"], key=lambda r: (SEVERITIES.index(r["severity"]), -r["findings"]))
    lines = [
        f"{SEVERITY_LOOK[r['severity']][0]} {r['id']} {r['title']}: {r['findings']} "
        f"({r['subjects']} subjects)"
        for r in rules[:TOP_RULES]
    ]
    if len(rules) > TOP_RULES:
        lines.append(f"… and {len(rules) - TOP_RULES} more rules")
    fields = [Field("By rule", _cut("\n".join(lines) or "none", 700))]
    if info["riskiest_subjects"]:
        fields.append(
            Field(
                "Riskiest subjects",
                _cut(
                    "\n".join(
                        f"{subject_label(e['subject'])}: {', '.join(e['rules'][:6])}"
                        + (" …" if len(e["rules"]) > 6 else "")
                        for e in info["riskiest_subjects"]
                    ),
                    700,
                ),
            )
        )
    esc = info["escalations"]
    if esc["subjects"]:
        fields.append(
            Field(
                f"Paths to cluster-admin ({esc['subjects']} subjects)",
                _cut(
                    "\n".join(
                        f"{subject_label(e['subject'])}: " + " → ".join(e["path"][:2])
                        for e in esc["examples"]
                    ),
                    700,
                ),
            )
        )
    return fields


def rule_cards(groups: Sequence[Group]) -> list[Card]:
    """One card per rule of the page, a line per subject."""
    cards: list[Card] = []
    current: list[Group] = []
    for g in [*groups, None]:
        if current and (g is None or g.rule_id != current[0].rule_id):
            head = current[0]
            icon, color = SEVERITY_LOOK[head.severity]
            cards.append(
                Card(
                    title=f"{icon} {head.rule_id} · {head.severity} · {head.title}",
                    description="\n".join(c.line() for c in current),
                    fields=[Field("Fix", _cut(head.recommendation, 300))],
                    color=color,
                )
            )
            current = []
        if g is not None:
            current.append(g)
    return cards


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
