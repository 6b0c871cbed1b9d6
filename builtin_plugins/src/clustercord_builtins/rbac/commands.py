"""Handlers of ``/rbac``: each loads the cluster's RBAC once and answers offline."""

from __future__ import annotations

import re
from typing import Any

from clustercord_sdk import Card, CommandContext, Field, File, Reply, Table
from clustercord_sdk.errors import UsageError
from clustercord_sdk.rbac import Attributes, chat_user_id

from . import questions
from .audit import Finding
from .audit import audit as run_audit
from .drill import subject_select
from .exports import to_json, to_markdown, to_pdf
from .graph import Graph, dot_binary, graph_for_scope, render, to_dot, to_mermaid, to_tree
from .loading import load
from .report import build_report, summary
from .resources import resolve_resource
from .risks import SEVERITIES
from .subjects import (
    Subject,
    identity_directory,
    is_named,
    parse_subject,
    plain_subject,
    subject_label,
)
from .usage import denial_anomalies, parse_log, unused_permissions
from .webview import to_html


def _subject(ctx: CommandContext, text: str) -> Subject:
    # The groups a Discord role adds are known only for the invoking user's own roles.
    own = chat_user_id(text) == ctx.invocation.user_id
    roles = tuple(ctx.invocation.roles) if own else ()
    return parse_subject(text, identity_directory(ctx), roles)


# Five finding cards (and the summary) stay inside Discord's 10 embeds and 6,000
# characters a message, with long binding → role → rule paths.
AUDIT_PAGE_FINDINGS = 5
SEVERITY_LOOK = {
    "critical": ("🔴", "red"),
    "high": ("🟠", "orange"),
    "medium": ("🟡", "yellow"),
    "low": ("🔵", "blue"),
}
UNUSED_ROWS = 50
TREE_CHARS = 3500  # a Discord embed description holds 4,096


def _asked(ctx: CommandContext, snapshot: Any) -> Any:
    """The request a who-can or can-i question names: verb, resource, namespace, name."""
    resource = resolve_resource(ctx.options["resource"], ctx.options.get("subresource"), snapshot)
    return questions.attributes_for(
        ctx.options["verb"],
        resource,
        ctx.options.get("namespace") or "",
        ctx.options.get("name") or "",
    )


async def who_can(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"))
    attributes = _asked(ctx, loaded.snapshot)
    answer = questions.who_can(loaded.snapshot, attributes)
    subjects = answer.subjects()
    table = Table(
        ["SUBJECT", "VIA", "ROLE", "SCOPE"],
        answer.rows(),
        title=f"{len(subjects)} subjects may {attributes} on {loaded.cluster}",
    )
    return Reply(
        tables=[table],
        selects=subject_select(loaded.cluster, subjects),
        data={
            "request": _request(attributes),
            "subjects": subjects,
            "bindings": answer.bindings(),
        },
    )


async def can_i(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"))
    subject = _subject(ctx, ctx.options["subject"])
    attributes = _asked(ctx, loaded.snapshot)
    decision = loaded.snapshot.authorize(subject.user, attributes)
    known = is_named(loaded.snapshot, subject)
    verdict = "✅ yes" if decision.allowed else "❌ no"
    lines = [f"{verdict}: {subject.label} may{'' if decision else ' not'} {attributes}."]
    lines.append(decision.reason)
    if not known:
        lines.append(
            f"⚠️ No binding names {subject.label} (a typo?): only what its groups "
            f"({', '.join(subject.user.groups) or 'none'}) hold counts."
        )
    return Reply(
        text="\n".join(lines),
        selects=subject_select(loaded.cluster, [subject.subject]),
        data={
            "allowed": decision.allowed,
            "subject": {
                **plain_subject(subject.subject),
                "groups": list(subject.user.groups),
            },
            "request": _request(attributes),
            "reason": decision.reason,
            "binding": questions.binding_dict(decision.binding),
            "rule": decision.rule.to_dict() if decision.rule else None,
            "subject_known": known,
        },
    )


async def matrix(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"))
    snapshot = loaded.snapshot
    namespace = ctx.options["namespace"]
    if ctx.options.get("subjects"):
        rows = []
        for text in str(ctx.options["subjects"]).split(","):
            if text.strip():
                subject = _subject(ctx, text)
                rows.append((subject.label, subject.subject, subject.user))
    else:
        rows = questions.default_rows(snapshot, namespace)
    if not rows:
        raise UsageError(f"no binding grants anything in namespace {namespace!r}")
    resources = [resolve_resource(r, None, snapshot) for r in questions.MATRIX_RESOURCES]
    result = questions.matrix(snapshot, namespace, rows, resources)
    columns = ["SUBJECT", *(r.resource for r in resources)]
    size = questions.MATRIX_PAGE_ROWS
    chunks = [result[i : i + size] for i in range(0, len(result), size)]
    pages = [
        Reply(
            tables=[
                Table(
                    columns,
                    [
                        [row["label"], *(questions.shown(v) for v in row["cells"].values())]  # type: ignore[union-attr]
                        for row in chunk
                    ],
                    title=f"Permissions in {namespace} on {loaded.cluster} ({n + 1}/{len(chunks)})",
                )
            ]
        )
        for n, chunk in enumerate(chunks)
    ]
    data = {"namespace": namespace, "resources": [str(r) for r in resources], "rows": result}
    selects = subject_select(loaded.cluster, [subject for _, subject, _ in rows])
    if len(pages) == 1:
        return Reply(tables=pages[0].tables, selects=selects, data=data)
    return Reply(text=f"{len(result)} subjects in {len(pages)} pages", pages=pages, data=data)


def _request(attributes: Attributes) -> dict[str, str]:
    return {
        "verb": attributes.verb,
        "resource": attributes.resource,
        "group": attributes.api_group,
        "subresource": attributes.subresource,
        "namespace": attributes.namespace,
        "name": attributes.name,
    }


async def audit(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"), service_accounts=True)
    include_system = bool(ctx.options.get("include_system"))
    result = run_audit(
        loaded.snapshot, include_system=include_system, service_accounts=loaded.service_accounts
    )
    minimum = ctx.options.get("severity") or "low"
    shown = [
        f for f in result.findings if SEVERITIES.index(f.severity) <= SEVERITIES.index(minimum)
    ]
    counts = result.counts()
    headline = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
    card = Card(
        title=f"RBAC audit of {loaded.cluster}",
        description=f"{len(result.findings)} findings: {headline}",
        fields=[
            Field("Objects", loaded.summary()),
            Field(
                "Kubernetes' own bindings",
                f"{result.hidden_system} findings hidden (include_system:true shows them)"
                if not include_system
                else "included",
            ),
        ],
        color="red" if counts["critical"] else "orange" if counts["high"] else "green",
    )
    size = AUDIT_PAGE_FINDINGS
    chunks = [shown[i : i + size] for i in range(0, len(shown), size)] or [[]]
    pages = [
        Reply(cards=([card] if n == 0 else []) + [finding_card(f) for f in chunk])
        for n, chunk in enumerate(chunks)
    ]
    data = {
        "cluster": loaded.cluster,
        "summary": summary(result),
        "findings": [f.to_dict() for f in shown],
    }
    selects = subject_select(loaded.cluster, [f.subject for f in shown])
    if len(pages) == 1:
        return Reply(cards=pages[0].cards, selects=selects, data=data)
    return Reply(
        text=f"{len(shown)} findings in {len(pages)} pages", pages=pages, selects=selects, data=data
    )


def finding_card(finding: Finding) -> Card:
    """One finding as a card (a Discord embed) in its severity's colour: a wide table row
    of six long cells reads badly in a chat column; a card reads at a glance."""
    icon, color = SEVERITY_LOOK[finding.severity]
    label = subject_label(finding.subject)
    message = finding.message or finding.rule.title
    return Card(
        title=f"{icon} {finding.rule.id} · {finding.severity} · {label}",
        description=message.removeprefix(f"{label}: "),  # the title names the subject
        fields=[
            Field("Path", " → ".join(finding.steps())),
            Field("Fix", finding.rule.recommendation),
        ],
        color=color,
    )


async def visualize(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"))
    if ctx.options.get("namespace") and ctx.options.get("user"):
        raise UsageError("give namespace: or user:, not both")
    subject = _subject(ctx, ctx.options["user"]) if ctx.options.get("user") else None
    graph = graph_for_scope(
        loaded.snapshot,
        loaded.cluster,
        namespace=ctx.options.get("namespace"),
        subject=subject,
        include_system=bool(ctx.options.get("include_system")),
    )
    if not graph.nodes:
        return Reply(text=f"No bindings to draw for {graph.title}.", data=graph.to_dict())
    fmt = ctx.options.get("format") or "png"
    file = drawing(graph, fmt, f"rbac-{_slug(graph.title)}")
    tree = to_tree(graph)
    shown = tree if len(tree) <= TREE_CHARS else tree[:TREE_CHARS] + "\n… (the file has it all)"
    card = Card(
        title=f"RBAC graph: {graph.title}",
        description=f"```\n{shown}```",
        footer=f"{len(graph.nodes)} nodes, {len(graph.edges)} edges"
        + (f"; {graph.truncated} bindings left out" if graph.truncated else ""),
        image=file.name if fmt == "png" else None,
    )
    return Reply(cards=[card], files=[file], data=graph.to_dict())


async def export(ctx: CommandContext) -> Reply:
    loaded = await load(ctx, ctx.options.get("cluster"), service_accounts=True)
    include_system = bool(ctx.options.get("include_system"))
    fmt = ctx.options.get("format") or "pdf"
    result = run_audit(
        loaded.snapshot, include_system=include_system, service_accounts=loaded.service_accounts
    )
    report = build_report(
        loaded.cluster, loaded.counts, loaded.snapshot, result, include_system=include_system
    )
    graph = graph_for_scope(loaded.snapshot, loaded.cluster, include_system=include_system)
    base = f"rbac-{_slug(loaded.cluster)}"
    if fmt == "json":
        file = File(f"{base}.json", to_json(report), "RBAC report (JSON)", "application/json")
    elif fmt == "markdown":
        file = File(
            f"{base}.md", to_markdown(report, to_mermaid(graph)), "RBAC report", "text/markdown"
        )
    elif fmt == "pdf":
        png = render(to_dot(graph), "png") if graph.nodes and dot_binary() else None
        file = File(f"{base}.pdf", to_pdf(report, png), "RBAC report (PDF)", "application/pdf")
    else:
        file = drawing(graph, fmt, base)
    s = report["summary"]
    return Reply(
        text=f"📄 RBAC {fmt} of {loaded.cluster}: {s['findings']} findings "
        f"({s['critical']} critical, {s['high']} high), {len(report['subjects'])} subjects.",
        files=[file],
        data={"cluster": loaded.cluster, "format": fmt, "file": file.name, "summary": s},
    )


def drawing(graph: Graph, fmt: str, base: str) -> File:
    """The graph as a file: dot, mermaid, svg or png."""
    if fmt == "dot":
        return File(f"{base}.dot", to_dot(graph).encode(), "Graphviz DOT", "text/vnd.graphviz")
    if fmt == "mermaid":
        return File(f"{base}.mmd", to_mermaid(graph).encode(), "Mermaid", "text/plain")
    if fmt == "text":
        return File(f"{base}.txt", to_tree(graph).encode(), "RBAC tree", "text/plain")
    if fmt == "html":
        return File(f"{base}.html", to_html(graph), f"{graph.title} (web view)", "text/html")
    if fmt in ("svg", "png"):
        types = {"svg": "image/svg+xml", "png": "image/png"}
        return File(f"{base}.{fmt}", render(to_dot(graph), fmt), graph.title, types[fmt])
    raise UsageError(f"format {fmt!r}: one of png, svg, html, dot, mermaid, text")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "rbac"


async def usage(ctx: CommandContext) -> Reply:
    """Unused permissions and unusual denials from an audit log (JSON lines)."""
    loaded = await load(ctx, ctx.options.get("cluster"))
    log = parse_log(ctx.options["log"].data)
    if not log.requests:
        problems = "; ".join(f"line {n}: {p}" for n, p in log.malformed[:3])
        raise UsageError(
            f"no audit.k8s.io/v1 Event in the log ({log.lines} lines"
            + (f"; {problems}" if problems else "")
            + ")"
        )
    include_system = bool(ctx.options.get("include_system"))
    unused = unused_permissions(loaded.snapshot, log, include_system=include_system)
    anomalies = denial_anomalies(loaded.snapshot, log)
    info = log.summary()
    window = info["window"]
    skipped = (
        f"; {info['malformed']} malformed lines skipped (first: "
        + ", ".join(f"line {e['line']}: {e['problem']}" for e in info["malformed_examples"])
        + ")"
        if info["malformed"]
        else ""
    )
    card = Card(
        title=f"RBAC usage on {loaded.cluster}",
        description=f"{info['requests']} requests from {window['start']} to {window['end']}"
        + skipped,
        fields=[
            Field("Unused permissions", str(len(unused)), inline=True),
            Field("Unusual denials", str(len(anomalies)), inline=True),
        ],
    )
    tables = []
    if anomalies:
        tables.append(
            Table(
                ["SEVERITY", "WHO", "DENIED", "TIMES", "WHY"],
                [
                    [a.severity.upper(), a.user, str(a.attributes), a.count, "; ".join(a.why)]
                    for a in anomalies
                ],
                title="Suspicious denials",
            )
        )
    if unused:
        tables.append(
            Table(
                ["SUBJECT", "NEVER USED", "GRANTED BY"],
                [
                    [subject_label(u.subject), u.describe(), u.binding.describe()]
                    for u in unused[:UNUSED_ROWS]
                ],
                title=f"Granted but never used in the window ({len(unused)}"
                + (f", first {UNUSED_ROWS} shown" if len(unused) > UNUSED_ROWS else "")
                + ")",
            )
        )
    data = {
        "cluster": loaded.cluster,
        "log": info,
        "unused": [u.to_dict() for u in unused],
        "anomalies": [a.to_dict() for a in anomalies],
    }
    files = []
    if len(unused) > UNUSED_ROWS:
        files.append(
            File("rbac-unused.json", to_json(data), "Every unused permission", "application/json")
        )
    return Reply(cards=[card], tables=tables, files=files, data=data)
