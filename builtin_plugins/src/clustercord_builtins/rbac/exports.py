"""The report in every format: JSON, Markdown and a PDF (cover, executive summary, findings,
permissions, recommendations). Each reads the same report document (see :mod:`.report`)."""

from __future__ import annotations

import io
import json
from typing import Any

from .risks import BY_ID, SEVERITIES

SEVERITY_COLORS = {"critical": "#b91c1c", "high": "#c2410c", "medium": "#a16207", "low": "#4b5563"}


def to_json(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def executive_summary(report: dict[str, Any]) -> str:
    s = report["summary"]
    worst = next((sev for sev in SEVERITIES if s[sev]), None)
    counts = ", ".join(f"{s[sev]} {sev}" for sev in SEVERITIES)
    escalations = sum(1 for f in report["findings"] if f["id"] == "RBAC-090")
    text = (
        f"{s['findings']} findings ({counts}) across {s['subjects_with_findings']} subjects "
        f"and {s['bindings']} bindings."
    )
    if escalations:
        text += f" {escalations} escalation paths lead to cluster-admin."
    if worst is None:
        text += " No risky permission was found."
    if s["hidden_system_findings"]:
        text += (
            f" {s['hidden_system_findings']} findings on Kubernetes' own bootstrap bindings "
            "are not counted."
        )
    return text


def recommendations(report: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(id, severity, recommendation, how many findings) per rule that fired, worst first."""
    counts: dict[str, int] = {}
    for finding in report["findings"]:
        counts[finding["id"]] = counts.get(finding["id"], 0) + 1
    rows = [
        (rule_id, BY_ID[rule_id].severity, BY_ID[rule_id].recommendation, n)
        for rule_id, n in counts.items()
    ]
    return sorted(rows, key=lambda r: (SEVERITIES.index(r[1]), r[0]))


def to_markdown(report: dict[str, Any], mermaid: str | None = None) -> bytes:
    out = [
        f"# RBAC report: {report['cluster']}",
        "",
        f"Generated {report['generated']} by ClusterCord. Objects: "
        + ", ".join(f"{n} {kind}s" for kind, n in report["objects"].items())
        + ".",
        "",
        "## Executive summary",
        "",
        executive_summary(report),
        "",
        "| Severity | Findings |",
        "|---|---|",
        *(f"| {sev} | {report['summary'][sev]} |" for sev in SEVERITIES),
        "",
        "## Findings",
        "",
    ]
    if report["findings"]:
        out += ["| ID | Severity | Subject | Finding | Path |", "|---|---|---|---|---|"]
        for f in report["findings"]:
            subject = f"{f['subject']['kind']} {_subject_name(f['subject'])}"
            out.append(
                f"| {f['id']} | {f['severity']} | {_md_cell(subject)} | {_md_cell(f['message'])} "
                f"| {_md_cell(' → '.join(f['path']['steps']))} |"
            )
    else:
        out.append("No findings.")
    out += ["", "## Permissions", ""]
    for subject in report["subjects"]:
        out.append(f"- **{subject['kind']} {_subject_name(subject)}**")
        for binding in subject["bindings"]:
            where = binding["namespace"] or "cluster-wide"
            role = binding["role"]
            missing = " (missing)" if role["missing"] else ""
            out.append(
                f"  - {binding['kind']} `{binding['name']}` ({where}) → "
                f"{role['kind']} `{role['name']}`{missing}"
            )
    if mermaid:
        out += ["", "## Graph", "", "```mermaid", mermaid.rstrip(), "```"]
    out += ["", "## Recommendations", ""]
    for rule_id, severity, text, n in recommendations(report):
        out.append(f"- **{rule_id}** ({severity}, {n} findings): {text}")
    if not report["findings"]:
        out.append("Nothing to change.")
    return ("\n".join(out) + "\n").encode()


def _subject_name(subject: dict[str, Any]) -> str:
    return (
        f"{subject['namespace']}/{subject['name']}" if subject.get("namespace") else subject["name"]
    )


def to_pdf(
    report: dict[str, Any],
    graph_png: bytes | None = None,
    groups: list[tuple[str, list[str]]] | None = None,
) -> bytes:
    """A PDF report with reportlab: cover, executive summary, findings, permissions,
    recommendations (and the graph, when Graphviz drew one)."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import (
        Image,
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
    )

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        title=f"RBAC report: {report['cluster']}",
        author="ClusterCord",
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
    )

    def p(text: object, style: Any = small) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    story: list[Any] = [
        Spacer(1, 5 * cm),
        Paragraph(f"RBAC report: {escape(report['cluster'])}", styles["Title"]),
        Paragraph(f"Generated {escape(report['generated'])} by ClusterCord", styles["Normal"]),
        Spacer(1, 1 * cm),
        p(", ".join(f"{n} {kind}s" for kind, n in report["objects"].items()), styles["Normal"]),
        PageBreak(),
        Paragraph("Executive summary", styles["Heading1"]),
        p(executive_summary(report), styles["BodyText"]),
        Spacer(1, 0.4 * cm),
    ]
    counts = Table(
        [["Severity", "Findings"], *([sev, report["summary"][sev]] for sev in SEVERITIES)],
        hAlign="LEFT",
    )
    counts.setStyle(_table_style(colors))
    story += [counts, Paragraph("Findings", styles["Heading1"])]
    if report["findings"]:
        rows = [["ID", "Severity", "Subject", "Finding", "Path"]]
        for f in report["findings"]:
            rows.append(
                [
                    f["id"],
                    p(f["severity"]),
                    p(f"{f['subject']['kind']} {_subject_name(f['subject'])}"),
                    p(f["message"]),
                    p(" → ".join(f["path"]["steps"])),
                ]
            )
        table = Table(rows, colWidths=[2 * cm, 2 * cm, 4.5 * cm, 8 * cm, 10 * cm], repeatRows=1)
        style = _table_style(colors)
        for i, f in enumerate(report["findings"], start=1):
            style.add("TEXTCOLOR", (1, i), (1, i), colors.HexColor(SEVERITY_COLORS[f["severity"]]))
        table.setStyle(style)
        story.append(table)
    else:
        story.append(p("No findings.", styles["BodyText"]))
    story += [PageBreak(), Paragraph("Permissions", styles["Heading1"])]
    rows = [["Subject", "Binding", "Scope", "Role"]]
    for subject in report["subjects"]:
        for binding in subject["bindings"]:
            role = binding["role"]
            rows.append(
                [
                    p(f"{subject['kind']} {_subject_name(subject)}"),
                    p(f"{binding['kind']} {binding['name']}"),
                    p(binding["namespace"] or "cluster-wide"),
                    p(f"{role['kind']} {role['name']}" + (" (missing)" if role["missing"] else "")),
                ]
            )
    permissions = Table(rows, colWidths=[7 * cm, 7 * cm, 4 * cm, 7 * cm], repeatRows=1)
    permissions.setStyle(_table_style(colors))
    story.append(permissions)
    if graph_png:
        width, height = ImageReader(io.BytesIO(graph_png)).getSize()
        scale = min(25 * cm / width, 13 * cm / height, 1.0)  # the frame minus the heading
        image = Image(io.BytesIO(graph_png), width * scale, height * scale)
        story += [PageBreak(), Paragraph("Graph", styles["Heading1"]), image]
    if groups:
        # The graph counts the resources of a big group; the reader of a PDF cannot click it.
        story.append(Paragraph("Access groups in the graph", styles["Heading2"]))
        for label, resources in groups:
            story.append(p(f"{label}: {', '.join(resources)}", styles["BodyText"]))
    story += [PageBreak(), Paragraph("Recommendations", styles["Heading1"])]
    for rule_id, severity, text, n in recommendations(report):
        story.append(p(f"{rule_id} ({severity}, {n} findings): {text}", styles["BodyText"]))
    if not report["findings"]:
        story.append(p("Nothing to change.", styles["BodyText"]))
    doc.build(story)
    return buffer.getvalue()


def _table_style(colors: Any) -> Any:
    from reportlab.platypus import TableStyle

    return TableStyle(
        [
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f2937")),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d1d5db")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
