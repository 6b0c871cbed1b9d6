"""Drill-down in Discord: subject → its bindings → a binding's role → the role's rules.

Every answer that names subjects carries a select of them; each step answers with the next
select. A select's option holds the cluster and the object's coordinates (the front end
keeps it server-side), and each step lists the cluster's RBAC again, so a click answers
from the cluster as it is now.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from clustercord_sdk import Card, CommandContext, Field, Reply, Select, SelectOption, Table
from clustercord_sdk.errors import UsageError
from clustercord_sdk.rbac import Binding, UserInfo, user_info_for_subject

from .loading import load
from .subjects import plain_subject, subject_key, subject_label

MAX_OPTIONS = 25  # Discord's limit per select


def subject_select(cluster: str, subjects: Iterable[Mapping[str, str]]) -> list[Select]:
    """A select of up to 25 subjects (privileged groups left out: they have no bindings
    to show), or nothing."""
    seen: dict[tuple[str, str, str], Mapping[str, str]] = {}
    for s in subjects:
        if s.get("kind") in ("User", "Group", "ServiceAccount"):
            seen.setdefault(subject_key(s), s)
    options = [
        SelectOption(
            label=subject_label(s)[:100],
            value=json.dumps({"cluster": cluster, "subject": plain_subject(s)}),
        )
        for s in list(seen.values())[:MAX_OPTIONS]
    ]
    if not options:
        return []
    return [Select("drill:subject", options, placeholder="Show a subject's bindings")]


def _target(value: Any, key: str) -> tuple[str, dict[str, str]]:
    try:
        data = json.loads(value)
        return str(data["cluster"]), dict(data[key])
    except (TypeError, ValueError, KeyError):
        raise UsageError("this selection is not one the rbac plugin made") from None


def _identity(subject: Mapping[str, str]) -> UserInfo:
    if subject["kind"] == "Group":
        return UserInfo("", (subject["name"],))
    return user_info_for_subject(subject)


async def subject(ctx: CommandContext, value: Any) -> Reply:
    cluster, chosen = _target(value, "subject")
    loaded = await load(ctx, cluster)
    user = _identity(chosen)
    bindings = loaded.snapshot.bindings_everywhere(user)
    label = subject_label(chosen)
    if not bindings:
        return Reply(text=f"No binding names {label} on {loaded.cluster} any more.")
    rows = []
    for binding in bindings:
        via = binding.matching_subject(user)
        how = "" if via is None or subject_key(via) == subject_key(chosen) else subject_label(via)
        rows.append(
            [
                binding.describe(),
                f"{binding.role_kind} {binding.role_name}" + ("" if binding.role else " (missing)"),
                binding.namespace or "cluster-wide",
                f"via {how}" if how else "",
            ]
        )
    options = [
        SelectOption(
            label=f"{b.kind} {b.namespace + '/' if b.namespace else ''}{b.name}"[:100],
            value=json.dumps({"cluster": loaded.cluster, "binding": _binding_ref(b)}),
            description=f"{b.role_kind} {b.role_name}"[:100],
        )
        for b in bindings[:MAX_OPTIONS]
    ]
    return Reply(
        tables=[
            Table(["BINDING", "ROLE", "SCOPE", "HOW"], rows, title=f"{label} on {loaded.cluster}")
        ],
        selects=[Select("drill:binding", options, placeholder="Show a binding and its role")],
        data={"subject": plain_subject(chosen), "bindings": [_binding_ref(b) for b in bindings]},
    )


def _binding_ref(binding: Binding) -> dict[str, str]:
    return {"kind": binding.kind, "namespace": binding.namespace, "name": binding.name}


async def binding(ctx: CommandContext, value: Any) -> Reply:
    cluster, ref = _target(value, "binding")
    loaded = await load(ctx, cluster)
    found = next(
        (
            b
            for b in loaded.snapshot.bindings
            if (b.kind, b.namespace, b.name)
            == (ref.get("kind"), ref.get("namespace"), ref.get("name"))
        ),
        None,
    )
    if found is None:
        raise UsageError(f"{ref.get('kind')} {ref.get('name')!r} is gone from {loaded.cluster}")
    card = Card(
        title=found.describe(),
        fields=[
            Field("Role", f"{found.role_kind} {found.role_name}", inline=True),
            Field("Scope", found.namespace or "cluster-wide", inline=True),
            Field("Subjects", "\n".join(subject_label(s) for s in found.subjects) or "none"),
        ],
    )
    if found.role is None:
        card.fields.append(Field("Grants nothing", found.error or "the role cannot be resolved"))
        return Reply(cards=[card], data={"binding": _binding_ref(found), "error": found.error})
    role = found.role
    option = SelectOption(
        label=role.describe()[:100],
        value=json.dumps(
            {
                "cluster": loaded.cluster,
                "role": {"kind": role.kind, "namespace": role.namespace, "name": role.name},
            }
        ),
    )
    return Reply(
        cards=[card],
        selects=[Select("drill:role", [option], placeholder="Show the role's rules")],
        data={
            "binding": _binding_ref(found),
            "subjects": [plain_subject(s) for s in found.subjects],
        },
    )


async def role(ctx: CommandContext, value: Any) -> Reply:
    cluster, ref = _target(value, "role")
    loaded = await load(ctx, cluster)
    found = loaded.snapshot.get_role(
        ref.get("kind", ""), ref.get("name", ""), ref.get("namespace", "")
    )
    if found is None:
        raise UsageError(f"{ref.get('kind')} {ref.get('name')!r} is gone from {loaded.cluster}")
    rows = [
        [
            ", ".join(r.verbs),
            ", ".join(g or '""' for g in r.api_groups),
            ", ".join(r.resources or r.non_resource_urls),
            ", ".join(r.resource_names),
        ]
        for r in found.rules
    ]
    note = " (aggregated)" if found.aggregated else ""
    return Reply(
        tables=[
            Table(
                ["VERBS", "API GROUPS", "RESOURCES / URLS", "NAMES"],
                rows,
                title=found.describe() + note,
            )
        ],
        data={"role": ref, "rules": [r.to_dict() for r in found.rules]},
    )
