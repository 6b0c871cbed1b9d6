"""Handlers of ``/rbac``: each loads the cluster's RBAC once and answers offline."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from clustercord_sdk import Button, Card, CommandContext, Field, File, Reply, Table
from clustercord_sdk.errors import UsageError
from clustercord_sdk.paging import Pager, command_line
from clustercord_sdk.rbac import Attributes, chat_user_id
from clustercord_sdk.reply import code_block

from . import questions, view
from .audit import audit as run_audit
from .drill import subject_select
from .exports import to_json, to_markdown, to_pdf
from .graph import (
    GROUP_INLINE,
    MAX_ASPECT,
    MAX_BINDINGS,
    PNG_MAX_INCHES,
    Graph,
    dot_binary,
    graph_for_scope,
    paginate,
    png_size,
    render,
    to_dot,
    to_mermaid,
    to_tree,
)
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


UNUSED_ROWS = 50
WHO_CAN_ROWS = 25
VISUALIZE_TOP = 15
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
    in_namespaces = bool(ctx.options.get("in_namespaces")) and not attributes.namespace
    answer = questions.who_can(loaded.snapshot, attributes, in_namespaces=in_namespaces)
    allowed = answer.allowed()
    where = (
        f"in namespace {attributes.namespace}"
        if attributes.namespace
        else "cluster-wide (ClusterRoleBindings; RoleBindings count only in their namespace)"
    )
    size = WHO_CAN_ROWS
    pager = Pager.over(len(allowed), size, ctx.options.get("page"))
    number, pages = pager.page, pager.pages
    chunk = allowed[pager.slice(size)]
    first = pager.offset(size)
    shown = f", {first + 1}–{first + len(chunk)} shown" if pages > 1 else ""
    tables = [
        Table(
            ["SUBJECT", "VIA", "ROLE", "SCOPE"],
            [a.row() for a in chunk],
            title=f"{len(allowed)} subject{'s' if len(allowed) != 1 else ''} may {attributes} "
            f"on {loaded.cluster}{shown}",
        )
    ]
    data: dict[str, Any] = {
        "request": _request(attributes),
        "scope": "namespace" if attributes.namespace else "cluster",
        "subjects": [plain_subject(a.subject) for a in allowed],
        "allowed": [a.to_dict() for a in allowed],
        "bindings": answer.bindings(),
        "page": number,
        "pages": pages,
    }
    text = [where]
    if in_namespaces:
        local = answer.only_in_namespaces()
        data["namespaced"] = [a.to_dict() for a in local]
        rows = [
            [a.label, a.row()[1], a.row()[3]] for a in local[: WHO_CAN_ROWS if number == 1 else 0]
        ]
        if rows:
            tables.append(
                Table(
                    ["SUBJECT", "VIA", "ONLY IN"],
                    rows,
                    title=f"{len(local)} more may do it only in some namespaces "
                    "(ask with namespace: to check one)"
                    + (f", first {len(rows)} shown" if len(local) > len(rows) else ""),
                )
            )
    elif not attributes.namespace:
        text.append("in_namespaces:true also lists who may do it in some namespace.")
    if pages > 1:
        text.append(pager.hint(_command_line(ctx, "who-can")))
    return Reply(
        text="\n".join(text),
        tables=tables,
        buttons=_nav(ctx, "who-can", pager),
        selects=subject_select(loaded.cluster, [a.subject for a in chunk]),
        data=data,
    )


def _command_line(ctx: CommandContext, sub: str) -> str:
    """``/rbac <sub> opt:value ...`` as typed, for a next-page hint."""
    return command_line(f"/rbac {sub}", ctx.options, exclude=("page",))


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
    # Only the page shown is computed: a namespace of a big cluster has a thousand subjects.
    size = questions.MATRIX_PAGE_ROWS
    pager = Pager.over(len(rows), size, ctx.options.get("page"))
    number, pages = pager.page, pager.pages
    chunk = rows[pager.slice(size)]
    result = questions.matrix(snapshot, namespace, chunk, resources)
    columns = ["SUBJECT", *(r.resource for r in resources)]
    title = f"Permissions in {namespace} on {loaded.cluster}"
    if pages > 1:
        first = pager.offset(size)
        title += f" ({number}/{pages}: subjects {first + 1}–{first + len(chunk)} of {len(rows)})"
    table = Table(
        columns,
        [[row["label"], *(questions.shown(v) for v in row["cells"].values())] for row in result],  # type: ignore[attr-defined]
        title=title,
    )
    data = {
        "namespace": namespace,
        "resources": [str(r) for r in resources],
        "rows": result,
        "subjects": len(rows),
        "page": number,
        "pages": pages,
    }
    return Reply(
        text=pager.hint(_command_line(ctx, "matrix")) if pages > 1 else None,
        tables=[table],
        buttons=_nav(ctx, "matrix", pager),
        selects=subject_select(loaded.cluster, [subject for _, subject, _ in chunk]),
        data=data,
    )


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
    """The summary and one page of findings grouped by (rule, subject); ``all:true`` adds
    every finding to the data (scripts), ``/rbac export`` makes the whole report a file."""
    state = {
        "cluster": ctx.options.get("cluster"),
        "severity": ctx.options.get("severity") or "low",
        "include_system": bool(ctx.options.get("include_system")),
    }
    return await _audit_page(ctx, state, ctx.options.get("page"), bool(ctx.options.get("all")))


async def page(ctx: CommandContext, value: Any) -> Reply:
    """◀ ▶ of a paged answer (audit, who-can, matrix): the command again, for the page asked
    for, from the cluster as it is now. Only that page is built."""
    if not isinstance(value, dict) or value.get("command") not in _PAGED:
        raise UsageError("this button is not one the rbac plugin made")
    options = {**(value.get("options") or {}), "page": value.get("page")}
    return await _PAGED[value["command"]](dataclasses.replace(ctx, options=options))


def _nav(ctx: CommandContext, sub: str, pager: Pager) -> list[Button]:
    """◀ ▶ that ask :func:`page` for ``/rbac <sub>`` again with the same options."""
    options = {k: v for k, v in ctx.options.items() if k not in ("page", "all")}
    return pager.buttons("commands:page", {"command": sub, "options": options})


async def _audit_page(
    ctx: CommandContext, state: dict[str, Any], page: Any, everything: bool
) -> Reply:
    loaded = await load(ctx, state["cluster"], service_accounts=True)
    include_system = bool(state["include_system"])
    minimum = state["severity"] if state["severity"] in SEVERITIES else "low"
    result = run_audit(
        loaded.snapshot, include_system=include_system, service_accounts=loaded.service_accounts
    )
    shown = [
        f for f in result.findings if SEVERITIES.index(f.severity) <= SEVERITIES.index(minimum)
    ]
    groups = view.group(shown)
    info = view.summarise(groups, shown)
    bounds = view.paginate(groups)
    pager = Pager.clamped(page, len(bounds))
    number = pager.page
    start, end = bounds[number - 1]
    on_page = groups[start:end]
    command = _audit_command(state["cluster"], minimum, include_system)
    counts = result.counts()
    cards = []
    if number == 1:
        headline = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
        cards.append(
            Card(
                title=f"RBAC audit of {loaded.cluster}",
                description=f"{len(result.findings)} findings: {headline}; {len(groups)} "
                f"(rule, subject) pairs shown"
                + (f" at {minimum} or above" if minimum != "low" else ""),
                fields=[
                    *view.summary_fields(info),
                    Field("Objects", loaded.summary()),
                    Field(
                        "Kubernetes' own bindings",
                        f"{result.hidden_system} findings hidden (include_system:true shows them)"
                        if not include_system
                        else "included",
                    ),
                ],
                footer="The whole report: /rbac export (pdf, json, markdown)",
                color="red" if counts["critical"] else "orange" if counts["high"] else "green",
            )
        )
    cards.extend(view.rule_cards(on_page))
    data: dict[str, Any] = {
        "cluster": loaded.cluster,
        "summary": {**summary(result), **info},
        "page": number,
        "pages": len(bounds),
        "groups": [g.to_dict() for g in on_page],
        "cursor": {"page": number + 1, "command": pager.next_line(command)}
        if pager.has_next
        else None,
    }
    if everything:
        data["findings"] = [f.to_dict() for f in shown]
    return Reply(
        text=pager.hint(command) if len(bounds) > 1 else None,
        cards=cards,
        buttons=_nav(ctx, "audit", pager),
        selects=subject_select(loaded.cluster, [g.subject for g in on_page]),
        data=data,
    )


_PAGED = {"audit": audit, "who-can": who_can, "matrix": matrix}


def _audit_command(cluster: str | None, severity: str, include_system: bool) -> str:
    """The command line that shows the same audit (for the next page's hint): the cluster
    as it was asked for, the severity only when not the default."""
    options = {
        "cluster": cluster,
        "severity": severity if severity != "low" else None,
        "include_system": include_system,
    }
    return command_line("/rbac audit", options)


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
    if graph.truncated:
        return _too_big_to_draw(
            loaded, graph, include_system=bool(ctx.options.get("include_system"))
        )
    fmt = ctx.options.get("format") or "png"
    base = f"rbac-{_slug(graph.title)}"
    # A picture shown inline is drawn a page at a time; the other formats zoom or scroll.
    pages = paginate(graph) if fmt == "png" else [graph]
    number = ctx.options.get("page") or 1
    if not 1 <= number <= len(pages):
        raise UsageError(f"page {number}: the graph has {len(pages)} page(s)")
    shown_graph = pages[number - 1]
    file = drawing(shown_graph, fmt, base if len(pages) == 1 else f"{base}-page-{number}")
    tree = to_tree(shown_graph)
    shown = tree if len(tree) <= TREE_CHARS else tree[:TREE_CHARS] + "\n… (the file has it all)"
    footer = f"{len(shown_graph.nodes)} nodes, {len(shown_graph.edges)} edges"
    if len(pages) > 1:
        following = f"; next: page:{number + 1}" if number < len(pages) else ""
        footer += f" · page {number} of {len(pages)}{following}; format:html draws it all"
    card = Card(
        title=f"RBAC graph: {shown_graph.title}",
        description=code_block(shown),
        footer=footer,
        image=file.name if fmt == "png" else None,
    )
    data = {**shown_graph.to_dict(), "page": number, "pages": len(pages)}
    return Reply(cards=[card], files=[file], data=data)


def _too_big_to_draw(loaded: Any, graph: Graph, *, include_system: bool) -> Reply:
    """A scope with more bindings than a drawing can hold (MAX_BINDINGS): where they are,
    and how to ask for a drawing someone can read, instead of an unreadable one."""
    from .audit import is_builtin

    per_namespace: dict[str, int] = {}
    for binding in loaded.snapshot.bindings:
        if include_system or not is_builtin(binding):
            where = binding.namespace or "cluster-wide"
            per_namespace[where] = per_namespace.get(where, 0) + 1
    total = sum(per_namespace.values())
    ranked = sorted(per_namespace.items(), key=lambda item: (-item[1], item[0]))
    rows = [[where, n] for where, n in ranked[:VISUALIZE_TOP]]
    left = len(ranked) - len(rows)
    return Reply(
        text=f"{graph.title}: {total} bindings, more than one drawing can show "
        f"({MAX_BINDINGS}). Draw a part: /rbac visualize namespace:NS or user:SUBJECT; "
        "the whole: /rbac export format:html (search and filters) or format:json.",
        tables=[
            Table(
                ["SCOPE", "BINDINGS"],
                rows,
                title="Where the bindings are"
                + (f" (top {len(rows)} of {len(ranked)} scopes)" if left else ""),
            )
        ],
        data={
            "title": graph.title,
            "drawn": False,
            "bindings": total,
            "max_bindings": MAX_BINDINGS,
            "scopes": dict(ranked),
        },
    )


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
        picture = png(graph) if graph.nodes and dot_binary() else None
        groups = [
            (node.label, node.resources)
            for node in graph.nodes.values()
            if len(node.resources) > GROUP_INLINE
        ]
        pdf = to_pdf(report, picture, groups)
        file = File(f"{base}.pdf", pdf, "RBAC report (PDF)", "application/pdf")
    else:
        file = drawing(graph, fmt, base)
    s = report["summary"]
    return Reply(
        text=f"📄 RBAC {fmt} of {loaded.cluster}: {s['findings']} findings "
        f"({s['critical']} critical, {s['high']} high), {len(report['subjects'])} subjects.",
        files=[file],
        data={"cluster": loaded.cluster, "format": fmt, "file": file.name, "summary": s},
    )


def png(graph: Graph) -> bytes:
    """The graph as a PNG a chat shows inline well: shrunk to about 1,600 px on its long
    side, and a drawing longer than 3:1 (one chain of four nodes is 5:1) drawn again with
    that aspect, so it is not a thin strip."""
    picture = render(to_dot(graph, max_inches=PNG_MAX_INCHES), "png")
    width, height = png_size(picture)
    if max(width, height) <= MAX_ASPECT * min(width, height):
        return picture
    ratio = 1 / MAX_ASPECT if width > height else MAX_ASPECT  # Graphviz: height / width
    return render(to_dot(graph, max_inches=PNG_MAX_INCHES, ratio=ratio), "png")


def drawing(graph: Graph, fmt: str, base: str) -> File:
    """The graph as a file: dot, mermaid, svg or png."""
    if fmt == "dot":
        return File(f"{base}.dot", to_dot(graph).encode(), "Graphviz DOT", "text/vnd.graphviz")
    if fmt == "mermaid":
        return File(f"{base}.mmd", to_mermaid(graph).encode(), "Mermaid", "text/plain")
    if fmt == "text":
        tree = to_tree(graph, members=True)
        return File(f"{base}.txt", tree.encode(), "RBAC tree", "text/plain")
    if fmt == "html":
        return File(f"{base}.html", to_html(graph), f"{graph.title} (web view)", "text/html")
    if fmt == "png":
        return File(f"{base}.png", png(graph), graph.title, "image/png")
    if fmt == "svg":
        return File(f"{base}.svg", render(to_dot(graph), "svg"), graph.title, "image/svg+xml")
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
