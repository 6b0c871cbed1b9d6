"""Graphs and reports: each export opens in its viewer (SVG parses, PNG and PDF render, DOT
compiles with Graphviz, JSON validates against the shipped schema)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import clustercord_builtins.rbac as plugin

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz 'dot' is not installed"
)


def only_file(result):
    assert result.ok, result.text
    [file] = result.reply.files
    return file


@needs_dot
async def test_visualize_a_namespace_as_png_shown_inline(rbac):
    from PIL import Image

    result = await rbac.run("/rbac visualize namespace:media")
    file = only_file(result)
    assert file.name.endswith(".png") and result.reply.cards[0].image == file.name
    image = Image.open(io.BytesIO(file.data))
    image.load()
    # what Discord shows inline well: at most 1,600 px on the long side, at most 3:1
    assert 200 < max(image.size) <= 1600 and max(image.size) / min(image.size) <= 3
    tree = result.reply.cards[0].description
    assert "👥 group:family\n└─ RoleBinding: family-view\n   └─ ClusterRole: view" in tree
    # view's many resources are one access node, not a leaf each
    [read] = [n for n in result.reply.data["nodes"] if n["kind"] == "resource"]
    assert read["access"] == "Read" and {"pods", "pods/log"} <= set(read["resources"])
    assert f"Read: {len(read['resources'])} resources in " in tree
    assert not any("secrets" in r for r in read["resources"])  # view never grants secrets
    text = only_file(await rbac.run("/rbac visualize namespace:media format:text"))
    assert "· pods/log" in text.data.decode()  # the text file lists the group's members


@needs_dot
async def test_visualize_one_subject_as_svg(rbac):
    file = only_file(await rbac.run("/rbac visualize user:sa:home/ci format:svg"))
    root = ET.fromstring(file.data)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert (
        "sa:home/ci" in texts and "RoleBinding: ci-edit" in texts and "ClusterRole: edit" in texts
    )
    assert "family" not in texts  # only this subject's bindings


@needs_dot
async def test_dot_export_compiles_and_mermaid_names_the_same_nodes(rbac, tmp_path):
    dot = only_file(await rbac.run("/rbac export format:dot"))
    compiled = subprocess.run(["dot", "-Tsvg"], input=dot.data, capture_output=True)
    assert compiled.returncode == 0, compiled.stderr
    assert b"User: admin" not in dot.data and b"user:admin" in dot.data
    mermaid = only_file(await rbac.run("/rbac export format:mermaid")).data.decode()
    assert mermaid.startswith("graph LR\n")
    assert '"ClusterRoleBinding: admin-cluster-admin<br/>cluster-wide"' in mermaid
    # the same edges, and both drawings carry the legend of the node kinds
    edges = re.findall(r"(n\d+) -> (n\d+)", dot.data.decode())
    assert edges and re.findall(r"(n\d+) --> (n\d+)", mermaid) == edges
    assert "legend_resource" in mermaid and "cluster_legend" in dot.data.decode()


async def test_json_export_validates_against_the_shipped_schema(rbac):
    import jsonschema

    schema = json.loads((Path(plugin.__file__).parent / "rbac-report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    report = json.loads(only_file(await rbac.run("/rbac export format:json")).data)
    jsonschema.validate(report, schema)
    assert report["objects"]["ClusterRoleBinding"] > 3 and report["cluster"] == "sandbox"
    subjects = {(s["kind"], s["name"]): s for s in report["subjects"]}
    ci = subjects[("ServiceAccount", "ci")]["bindings"][0]
    assert ci["name"] == "ci-edit" and ci["role"]["name"] == "edit"
    assert any("secrets" in r.get("resources", []) for r in ci["role"]["rules"])  # edit
    assert {f["id"] for f in report["findings"]} >= {"RBAC-001", "RBAC-030"}


async def test_markdown_report_has_every_section(rbac):
    text = only_file(await rbac.run("/rbac export format:markdown")).data.decode()
    for heading in ("# RBAC report: sandbox", "## Executive summary", "## Findings",
                    "## Permissions", "## Graph", "## Recommendations"):  # fmt: skip
        assert heading in text
    assert "| RBAC-001 | critical | User admin |" in text
    assert "- **ServiceAccount home/ci**" in text and "```mermaid" in text


async def test_pdf_report_renders(rbac):
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 renders the PDF in this test")
    file = only_file(await rbac.run("/rbac export format:pdf"))
    assert file.data.startswith(b"%PDF") and file.content_type == "application/pdf"
    pdf = pdfium.PdfDocument(file.data)
    assert len(pdf) >= 4  # cover, summary + findings, permissions, recommendations
    text = "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    for words in ("RBAC report: sandbox", "Executive summary", "Findings", "Permissions",
                  "Recommendations", "RBAC-001", "ci-edit"):  # fmt: skip
        assert words in text
    # the graph counts view's resources; the PDF lists them, since nobody can click paper
    if shutil.which("dot"):
        listed = " ".join(text.split())
        assert "Access groups in the graph" in listed and re.search(r"Read: \d+ resources", listed)
        assert "pods/log" in listed.split("Access groups in the graph")[1]
    bitmap = pdf[1].render(scale=0.5).to_pil()
    assert bitmap.convert("L").getextrema()[0] < 128  # dark ink on the page, not a blank


async def test_visualize_needs_one_scope_and_a_known_subject(rbac):
    both = await rbac.run("/rbac visualize namespace:media user:user:admin")
    assert both.status != "ok" and "not both" in both.text
    nothing = await rbac.run("/rbac visualize namespace:nowhere format:dot")
    assert nothing.ok and "No bindings to draw" in nothing.text


async def test_without_graphviz_visualize_says_how_to_get_it(rbac, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no `dot` anywhere
    result = await rbac.run("/rbac visualize namespace:media format:png")
    assert not result.ok
    assert "Graphviz is not installed" in result.text and "apt-get install graphviz" in result.text
    dot = await rbac.run("/rbac visualize namespace:media format:dot")
    assert dot.ok and only_file(dot).name.endswith(".dot")
