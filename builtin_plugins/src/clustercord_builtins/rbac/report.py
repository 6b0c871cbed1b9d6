"""The report every export is made from: one JSON document (schema: rbac-report.schema.json).

JSON, Markdown, PDF and the graphs all read this document, so every format tells the same
story: cluster, summary, findings with their paths, and each subject's bindings and rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clustercord_sdk.rbac import RBACSnapshot

from .audit import AuditResult
from .subjects import plain_subject, subject_key

SCHEMA_FILE = Path(__file__).with_name("rbac-report.schema.json")
SCHEMA_ID = "https://clustercord.dev/schemas/rbac-report/v1.json"


def subjects_section(
    snapshot: RBACSnapshot, *, include_system: bool = False
) -> list[dict[str, Any]]:
    """Subject → bindings → role → rules, every subject that a binding names."""
    from .audit import is_builtin

    subjects: dict[tuple[str, str, str], dict[str, Any]] = {}
    for binding in snapshot.bindings:
        if not include_system and is_builtin(binding):
            continue
        for subject in binding.subjects:
            entry = subjects.setdefault(
                subject_key(subject), {**plain_subject(subject), "bindings": []}
            )
            entry["bindings"].append(
                {
                    "kind": binding.kind,
                    "name": binding.name,
                    "namespace": binding.namespace,
                    "role": {
                        "kind": binding.role_kind,
                        "name": binding.role_name,
                        "missing": binding.role is None,
                        "rules": [r.to_dict() for r in binding.role.rules] if binding.role else [],
                    },
                }
            )
    return sorted(subjects.values(), key=lambda s: (s["kind"], s["namespace"], s["name"]))


def summary(result: AuditResult) -> dict[str, Any]:
    return {
        **result.counts(),
        "findings": len(result.findings),
        "subjects_with_findings": result.subjects,
        "bindings": result.bindings,
        "hidden_system_findings": result.hidden_system,
    }


def build_report(
    cluster: str,
    counts: dict[str, int],
    snapshot: RBACSnapshot,
    result: AuditResult,
    *,
    include_system: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole report as plain JSON data."""
    return {
        "$schema": SCHEMA_ID,
        "version": 1,
        "cluster": cluster,
        "generated": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "objects": counts,
        "summary": summary(result),
        "findings": [f.to_dict() for f in result.findings],
        "subjects": subjects_section(snapshot, include_system=include_system),
    }
