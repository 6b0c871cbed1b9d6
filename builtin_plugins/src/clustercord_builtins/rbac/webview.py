"""The web view: one self-contained HTML page of the graph (no network, no CDN).

Graphviz lays the graph out as SVG; the page adds zoom (wheel, buttons) and pan (drag) on
the SVG viewBox, filters by subject and namespace, a search that highlights the resources
matching a permission and dims everyone who cannot reach them, and an export of the visible
subgraph as a standalone SVG. The graph's data travels in the page as JSON.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from .graph import Graph, dot_ids, render, to_dot

TEMPLATE = Path(__file__).with_name("webview.html")


def to_html(graph: Graph) -> bytes:
    svg = render(to_dot(graph), "svg").decode()
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
                "namespace": node.detail
                if node.kind == "binding" and node.detail != "cluster-wide"
                else "",
            }
            for node in graph.nodes.values()
        ],
        "edges": [{"from": a, "to": b} for a, b in graph.edges],
    }
    # "</" inside a script element would end it early
    payload = re.sub(r"</", r"<\\/", json.dumps(data, ensure_ascii=False))
    page = TEMPLATE.read_text("utf-8")
    page = page.replace("__TITLE__", escape(graph.title)).replace("__DATA__", payload)
    return page.replace("__SVG__", svg).encode()
