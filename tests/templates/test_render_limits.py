"""A hostile community template is refused through the plugin and nothing reaches the cluster.
How the render limits themselves behave: builtin_plugins/tests/templates/test_render_limits.py."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("server_side_apply")

# Renders fine with its default (loops=1); ``loops=100000`` makes 10**15 iterations.
LOOPY = """{% for i in range(loops) %}{% for j in range(loops) %}{% for k in range(loops) %}
{% endfor %}{% endfor %}{% endfor %}apiVersion: v1
kind: ConfigMap
metadata: {name: loopy}
data: {greeting: hello}
"""


def template(content: str, name: str = "hostile", variables=None) -> dict:
    return {
        "name": name,
        "version": "1.0.0",
        "category": "OTHER",
        "description": "A template that tests the render limits",
        "author": "someone",
        "variables": variables or [],
        "manifests": [{"name": "app.yaml", "content": content}],
    }


async def test_a_submitted_memory_bomb_is_not_accepted(templates, tmp_path):
    path = tmp_path / "bomb.json"
    path.write_text(json.dumps(template("{{ 'x' * 10**10 }}", name="bomb")))
    result = await templates.run(f"/template submit file:{path}")
    assert result.status == "error"
    assert "template bomb needed more than 256 MB of memory to render" in result.text
    found = await templates.run("/template search query:limits")
    assert found.reply.data["templates"] == []


async def test_a_deploy_that_will_not_finish_rendering_changes_nothing(
    templates, homelab, tmp_path
):
    # A small limit for the test, through the plugin's config as an operator would set it.
    await templates.restart(plugin_config={"templates": {"render_timeout": 1}})
    loops = [{"name": "loops", "type": "integer", "default": 1, "description": "Loops"}]
    path = tmp_path / "loopy.json"
    path.write_text(json.dumps(template(LOOPY, name="loopy", variables=loops)))
    submitted = await templates.run(f"/template submit file:{path}")
    assert submitted.ok, submitted.text

    refused = await templates.run(
        "/template deploy template:loopy namespace:loopy-ns vars:loops=100000 wait:false"
    )
    assert refused.status == "error"
    assert "template loopy took longer than 1 s to render; nothing was deployed" in refused.text
    assert "loopy-ns" not in homelab.kubectl("get", "namespaces", "-o", "name")
    assert not homelab.kubectl(
        "get", "configmaps,secrets", "-A", "-l", "app.kubernetes.io/instance=loopy", "-o", "name"
    ).strip()

    rendered = await templates.run("/template render template:loopy vars:loops=100000")
    assert rendered.status == "error"
    assert "took longer than 1 s" in rendered.text

    # The same template with sane variables still deploys.
    deployed = await templates.run("/template deploy template:loopy namespace:loopy-ns wait:false")
    assert deployed.ok, deployed.text
    assert "configmap/loopy" in homelab.names("loopy-ns", "configmaps")
    deleted = await templates.run("/template delete deployment:loopy-ns/loopy")
    assert deleted.ok, deleted.text
