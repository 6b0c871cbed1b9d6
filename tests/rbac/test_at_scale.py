"""Answers that stay readable on a big cluster: who-can and the matrix come a page at a
time (only the page shown is computed), and a scope too big to draw is summarised, not
drawn. 405 RoleBindings in one namespace are enough to cross every limit."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from clustercord_builtins.rbac.graph import MAX_BINDINGS

from .conftest import start_rbac
from .test_who_can_property import Api

RBAC = "rbac.authorization.k8s.io"
USERS = 405


@pytest.fixture
async def crowded(clustercord_harness, fresh, monkeypatch):
    api = Api(fresh.server)
    try:
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "crowd"}})
    except Exception:  # the module's second test: already there
        pass
    else:
        for i in range(USERS):
            api.call(
                "POST",
                f"/apis/{RBAC}/v1/namespaces/crowd/rolebindings",
                {
                    "metadata": {"name": f"rb-{i}"},
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"apiGroup": RBAC, "kind": "User", "name": f"u{i:03d}"}],
                },
            )
    return await start_rbac(clustercord_harness, fresh, monkeypatch)


async def test_who_can_and_the_matrix_come_in_pages(crowded):
    line = "/rbac who-can verb:list resource:pods namespace:crowd"
    first = await crowded.run(line)
    data = first.reply.data
    pages = data["pages"]
    assert pages == -(-len(data["subjects"]) // 25) and len(data["subjects"]) > USERS
    assert first.reply.tables[0].title.startswith(f"{len(data['subjects'])} subjects may ")
    assert len(first.reply.tables[0].rows) == 25
    assert f"Page 1/{pages} · next: {line} page:2" in first.text
    rows = [
        r
        for n in range(1, pages + 1)
        for r in (await crowded.run(f"{line} page:{n}")).reply.tables[0].rows
    ]
    assert [r[0] for r in rows] == [
        f"{s['kind'].lower()}:{s['name']}"
        if s["kind"] != "ServiceAccount"
        else f"sa:{s['namespace']}/{s['name']}"
        for s in data["subjects"]
    ]
    matrix = await crowded.run("/rbac matrix namespace:crowd")
    subjects = matrix.reply.data["subjects"]
    assert subjects >= USERS  # and the fixture's own cluster-wide bindings
    assert matrix.reply.data["pages"] == -(-subjects // 20)
    assert len(matrix.reply.data["rows"]) == len(matrix.reply.tables[0].rows) == 20
    assert len(matrix.reply.tables[0].columns) == 12  # the subject and 11 resources, never more


async def test_a_scope_too_big_to_draw_is_summarised(crowded):
    result = await crowded.run("/rbac visualize")
    assert result.ok, result.text
    assert not result.reply.files and result.reply.data["drawn"] is False
    assert result.reply.data["scopes"]["crowd"] == USERS > MAX_BINDINGS
    assert "/rbac visualize namespace:NS" in result.text
    assert result.reply.tables[0].rows[0] == ["crowd", USERS]
    assert len(json.dumps(result.reply.to_dict())) < 20_000


@pytest.fixture
async def middling(clustercord_harness, fresh, monkeypatch):
    """60 RoleBindings in one namespace: drawable, but not in one picture."""
    api = Api(fresh.server)
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "middling"}})
    for i in range(60):
        api.call(
            "POST",
            f"/apis/{RBAC}/v1/namespaces/middling/rolebindings",
            {
                "metadata": {"name": f"rb-{i}"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ROLES[i % 3]},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": f"m{i:02d}"}],
            },
        )
    return await start_rbac(clustercord_harness, fresh, monkeypatch)


ROLES = ("view", "edit", "admin")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
async def test_a_big_namespace_is_drawn_in_pages_discord_can_show(middling):
    from PIL import Image

    line = "/rbac visualize namespace:middling"
    first = await middling.run(line)
    assert first.ok, first.text
    pages = first.reply.data["pages"]
    assert pages > 1 and f"page 1 of {pages}; next: page:2" in first.reply.cards[0].footer
    seen = set()
    for number in range(1, pages + 1):
        result = await middling.run(f"{line} page:{number}")
        [file] = result.reply.files
        image = Image.open(io.BytesIO(file.data))
        assert max(image.size) <= 1600 and max(image.size) / min(image.size) <= 3, image.size
        seen |= {n["label"] for n in result.reply.data["nodes"] if n["kind"] == "subject"}
    assert {f"👤 user:m{i:02d}" for i in range(60)} <= seen  # every subject on some page
    beyond = await middling.run(f"{line} page:{pages + 1}")
    assert not beyond.ok and f"the graph has {pages} page(s)" in beyond.text
