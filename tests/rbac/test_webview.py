"""The web view in a real headless Chromium, driven over the DevTools protocol: wheel zoom,
drag pan, filters, permission search and the export of the visible subgraph."""

from __future__ import annotations

import asyncio
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from clustercord_testing.browser import CHROMIUM, Page, open_page

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed"),
]
SVG = "{http://www.w3.org/2000/svg}"
# Names from the cluster are data, never markup: a Role and a User named like HTML.
HOSTILE_ROLE = "<script>"  # Kubernetes forbids "/" in names, so no closing tag
HOSTILE_USER = "<!--<script><img src=x onerror=window.pwned=2>"
PLANTED = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: lab}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: "{HOSTILE_ROLE}", namespace: lab}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [create]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: tinkerer, namespace: lab}}
subjects: [{{kind: User, name: "{HOSTILE_USER}", apiGroup: rbac.authorization.k8s.io}}]
roleRef: {{kind: Role, name: "{HOSTILE_ROLE}", apiGroup: rbac.authorization.k8s.io}}
"""


@pytest.fixture(scope="module")
def planted(homelab):
    """The homelab plus a namespace whose Role and User carry HTML in their names."""
    homelab.apply(PLANTED)
    return homelab


class GraphPage(Page):
    """The web view's tab, with what a user does there."""

    async def choose(self, select: str, value_js: str) -> None:
        """Set a filter as a user would pick it, and fire its change handler."""
        await self.js(
            f"(s => {{ s.value = {value_js}; s.onchange(); }})(document.getElementById('{select}'))"
        )

    async def search(self, text: str) -> list[str]:
        """Type a permission into the search box; the labels of the nodes left undimmed."""
        await self.js(
            f"(b => {{ b.value = {json.dumps(text)}; b.dispatchEvent(new Event('input')); }})"
            "(document.getElementById('search'))"
        )
        return await self.js(
            "[...element].filter(([, g]) => !g.classList.contains('dim'))"
            ".map(([id]) => byId.get(id).label)"
        )


@pytest.fixture
async def page(planted, rbac, tmp_path):
    result = await rbac.run("/rbac export format:html")
    assert result.ok, result.text
    [file] = result.reply.files
    assert file.name.endswith(".html") and file.content_type == "text/html"
    html = tmp_path / file.name
    html.write_bytes(file.data)
    async with open_page(html, tmp_path, ready="!!window.rbacView", page_class=GraphPage) as view:
        yield view


async def test_wheel_zooms_and_drag_pans(page):
    before = await page.js("rbacView.viewBox()")
    box = await page.js(
        "(r => [r.x + r.width / 2, r.y + r.height / 2])"
        "(document.querySelector('#canvas svg').getBoundingClientRect())"
    )
    await page.mouse("mouseWheel", *box, deltaX=0, deltaY=-100)
    zoomed = await page.js("rbacView.viewBox()")
    assert zoomed[2] == pytest.approx(before[2] / 1.2, rel=1e-3)
    await page.mouse("mousePressed", *box, button="left", clickCount=1)
    await page.mouse("mouseMoved", box[0] + 120, box[1] + 40, button="left")
    await page.mouse("mouseReleased", box[0] + 120, box[1] + 40, button="left", clickCount=1)
    panned = await page.js("rbacView.viewBox()")
    assert panned[0] < zoomed[0] and panned[1] < zoomed[1]  # dragged right and down
    assert panned[2:] == zoomed[2:]
    await page.js("document.getElementById('reset').click()")
    assert await page.js("rbacView.viewBox()") == before


async def test_filters_by_subject_and_namespace(page):
    total = await page.js("GRAPH.nodes.length")
    labels = "[...rbacView.visibleNodes()].map(id => GRAPH.nodes.find(n => n.id === id).label)"
    await page.choose("subject", "GRAPH.nodes.find(n => n.label.endsWith('sa:home/ci')).id")
    shown = await page.js(labels)
    assert "RoleBinding: ci-edit" in shown and "ClusterRole: edit" in shown
    assert not any("family" in label for label in shown)
    hidden = await page.js("document.querySelectorAll('#canvas g.node.hidden').length")
    assert hidden == total - len(shown)
    assert await page.js("document.getElementById('count').textContent") == (
        f"{len(shown)} of {total} nodes"
    )
    await page.js("(s => { s.value = ''; })(document.getElementById('subject'))")
    await page.choose("namespace", "'media'")
    shown = await page.js(labels)
    assert "RoleBinding: family-view" in shown and "👥 group:family" in shown
    assert not any("ci-edit" in label or "admin" in label for label in shown)


async def test_search_highlights_who_holds_a_permission(page):
    matched = await page.search("secrets")
    [crud] = [label for label in matched if label.startswith("CRUD: ")]  # edit's big group
    shown = await page.js(
        f"rbacView.showMembers(GRAPH.nodes.find(n => n.label === {json.dumps(crud)}).id)"
    )
    items = await page.js("[...document.querySelectorAll('#members li')].map(li => li.textContent)")
    assert len(items) == shown > 3 and "secrets" in items  # the group opens to its resources
    assert "ClusterRoleBinding: admin-cluster-admin" in matched  # through cluster-admin's "*"
    assert any(label.endswith("sa:home/ci") for label in matched)
    assert not any("family" in label for label in matched)  # view reads no secrets
    assert await page.js("document.querySelectorAll('#canvas g.node.match').length") >= 2
    dimmed = await page.js("document.querySelectorAll('#canvas g.node.dim').length")
    assert dimmed == await page.js("GRAPH.nodes.length") - len(matched)


async def test_export_of_the_visible_subgraph(page, tmp_path):
    await page.choose("namespace", "'media'")
    visible = await page.js("rbacView.visibleNodes().size")
    root = ET.fromstring(await page.js("rbacView.exportSubgraph()"))
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == visible
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "family-view" in text and "ci-edit" not in text
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == await page.js(
        "document.querySelectorAll('#canvas g.edge:not(.hidden)').length"
    )
    assert len(edges) == len(nodes) - 1  # group:family → family-view → view → its resources: a tree


async def test_every_subject_is_drawn_and_names_stay_text(page, planted):
    listed = planted.kubectl("get", "rolebindings", "-A", "-o", "json").stdout
    bindings = json.loads(listed)["items"]
    planted_subjects = {
        s["name"]
        for b in bindings
        if b["metadata"]["namespace"] in ("home", "media", "lab")
        for s in b.get("subjects", [])
    }
    assert HOSTILE_USER in planted_subjects
    drawn = await page.js(
        "[...document.querySelectorAll('#canvas g.node:not(.hidden) text')].map(t => t.textContent)"
    )
    for name in planted_subjects:
        assert any(name in text for text in drawn), name
    assert any(HOSTILE_ROLE in text for text in drawn)  # shown as text …
    assert await page.js("window.pwned === undefined")  # … and never run
    assert await page.js("document.querySelectorAll('script').length") == 2  # data and ours
    assert await page.js("document.querySelectorAll('#canvas img').length") == 0
    # self-contained: the file:// page fetched nothing (no CDN, no fonts, no images)
    assert await page.js("performance.getEntriesByType('resource').length") == 0
    options = await page.js(
        "[...document.getElementById('subject').options].map(o => o.textContent)"
    )
    assert any(HOSTILE_USER in option for option in options)


async def test_search_by_verb_and_resource(page):
    create_pods = await page.search("create pods")
    assert f"Role: {HOSTILE_ROLE}" in create_pods  # its one rule: create pods
    assert "ClusterRole: edit" in create_pods
    assert not any("family" in label or label == "ClusterRole: view" for label in create_pods)
    get_secrets = await page.search("secrets get")
    assert "ClusterRole: edit" in get_secrets
    assert f"Role: {HOSTILE_ROLE}" not in get_secrets  # it creates pods, reads no secrets
    delete_pods = await page.search("delete pods")
    assert f"Role: {HOSTILE_ROLE}" not in delete_pods and "ClusterRole: edit" in delete_pods


async def test_export_of_the_filtered_subgraph_as_json(page):
    await page.choose("subject", "GRAPH.nodes.find(n => n.label.endsWith('sa:home/ci')).id")
    exported = json.loads(await page.js("rbacView.exportSubgraphJSON()"))
    labels = {node["label"] for node in exported["nodes"]}
    assert labels == set(
        await page.js(
            "[...rbacView.visibleNodes()].map(id => GRAPH.nodes.find(n => n.id === id).label)"
        )
    )
    assert "RoleBinding: ci-edit" in labels and not any("family" in label for label in labels)
    ids = {node["id"] for node in exported["nodes"]}
    assert exported["edges"] and all(e["from"] in ids and e["to"] in ids for e in exported["edges"])
    assert exported["filters"]["subject"].endswith("home:ci")


async def test_export_buttons_download_the_filtered_subgraph(page, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    await page.send("Page.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    await page.choose("namespace", "'lab'")
    await page.js("document.getElementById('export').click()")
    await page.js("document.getElementById('export-json').click()")
    for _ in range(50):
        names = {p.name for p in downloads.iterdir()}
        if {"rbac-subgraph.svg", "rbac-subgraph.json"} <= names:
            break
        await asyncio.sleep(0.1)
    svg_text = (downloads / "rbac-subgraph.svg").read_text("utf-8")
    texts = " ".join(t.text or "" for t in ET.fromstring(svg_text).iter(f"{SVG}text"))
    assert "RoleBinding: tinkerer" in texts and "ci-edit" not in texts
    exported = json.loads((downloads / "rbac-subgraph.json").read_text("utf-8"))
    assert {n["label"] for n in exported["nodes"]} >= {"RoleBinding: tinkerer", "pods: create"}
    assert not any("family" in n["label"] for n in exported["nodes"])
