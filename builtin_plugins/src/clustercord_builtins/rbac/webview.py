"""The web view: one self-contained HTML page of the graph (no network, no CDN).

Graphviz lays the graph out as SVG; the page adds zoom (wheel, buttons) and pan (drag) on
the SVG viewBox, filters by subject and namespace, a search that highlights the resources
granting a permission (verbs and resource, e.g. "create pods") and dims everyone who cannot
reach them, and an export of the visible subgraph as a standalone SVG or as JSON. The graph's
data travels in the page as JSON.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from .graph import Graph, dot_ids, render, to_dot
from .questions import CRUD, READ

TEMPLATE = Path(__file__).with_name("webview.html")


def to_html(graph: Graph) -> bytes:
    """The page for ``graph``; every name from the cluster is escaped (SVG text by Graphviz,
    the title by :func:`html.escape`, the JSON data against ``</script>``)."""
    svg = render(to_dot(graph, legend=False), "svg").decode()  # the page has its header
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG is inline
    ids = dot_ids(graph)
    data = {
        "title": graph.title,
        "nodes": [
            {
                "id": node.id,
                "dot": ids[node.id],
                "kind": node.kind,
                "label": node.label,
                "detail": node.detail,
                "access": node.access,
                "resources": node.resources,
                "namespace": node.detail
                if node.kind == "binding" and node.detail != "cluster-wide"
                else "",
            }
            for node in graph.nodes.values()
        ],
        "edges": [{"from": a, "to": b} for a, b in graph.edges],
        # what the verb summaries in resource labels stand for, so a search for a verb works
        "verbs": {"CRUD": list(CRUD), "Read": list(READ)},
    }
    # No "<" at all inside the script element: "</script" would end it early and "<!--<script"
    # would switch the parser into the script's double-escaped state; JSON reads \u003c back.
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    parts = {"__TITLE__": escape(graph.title), "__DATA__": payload, "__SVG__": svg}
    # one pass, so a name that spells a placeholder is never substituted itself
    page = re.sub("|".join(parts), lambda m: parts[m.group()], TEMPLATE.read_text("utf-8"))
    return page.encode()
