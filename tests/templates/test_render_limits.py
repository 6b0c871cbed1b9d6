"""Community templates render bounded in time and memory: a hostile one is refused, named,
and nothing reaches the cluster."""

from __future__ import annotations

import json
import os

import pytest

from clustercord_builtins.templates.limits import RenderLimits, run_limited
from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.template import TemplateError, load_template

pytestmark = pytest.mark.usefixtures("server_side_apply")

# Renders fine with its default (loops=1); ``loops=100000`` makes 10**15 iterations.
LOOPY = """{% for i in range(loops) %}{% for j in range(loops) %}{% for k in range(loops) %}
{% endfor %}{% endfor %}{% endfor %}apiVersion: v1
kind: ConfigMap
metadata: {name: loopy}
data: {greeting: hello}
"""
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {greeting: hello}
"""
FAST = RenderLimits(seconds=1, memory_mb=256)


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


def render(content: str, limits: RenderLimits = FAST):
    loaded = load_template(template(content), source="test")
    return render_manifests(loaded, {}, release="r", namespace="ns", limits=limits)


@pytest.mark.parametrize(
    "content",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ i }}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ],
)
def test_an_endless_loop_gives_up_at_the_limit_and_says_so(content):
    with pytest.raises(TemplateError) as refused:
        render(content)
    assert str(refused.value) == (
        "template hostile took longer than 1 s to render; nothing was deployed"
    )


@pytest.mark.parametrize(
    "content",
    [
        "{{ 'x' * 10**10 }}",
        "{% set big = [0] * 10**9 %}{{ big | length }}",
        "{{ ('y' * 10**8) * 10 }}",
    ],
)
def test_a_memory_bomb_is_refused_naming_the_memory_limit(content):
    with pytest.raises(TemplateError) as refused:
        # A generous deadline: the memory ceiling, not the clock, must be what stops these.
        render(content, RenderLimits(seconds=5, memory_mb=256))
    assert str(refused.value) == (
        "template hostile needed more than 256 MB of memory to render; nothing was deployed"
    )


def test_a_render_too_large_to_parse_is_refused():
    with pytest.raises(TemplateError, match="the rendered manifests pass 16 MB"):
        render("{{ 'y' * 20 * 2**20 }}", RenderLimits(seconds=5, memory_mb=256))


def test_endless_macro_recursion_is_refused_with_the_reason():
    with pytest.raises(TemplateError, match="recurses too deeply"):
        render("{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(0) }}")


def test_a_normal_template_renders_the_same_bounded_or_not():
    bounded = render(CONFIGMAP, RenderLimits())
    unbounded = render_manifests(
        load_template(template(CONFIGMAP), source="test"), {}, release="r", namespace="ns"
    )
    assert bounded.objects == unbounded.objects
    assert bounded.objects[0]["metadata"] == {
        "name": "plain",
        "namespace": "ns",
        "labels": {
            "app.kubernetes.io/managed-by": "clustercord",
            "app.kubernetes.io/instance": "r",
        },
    }


def test_template_errors_from_the_child_keep_their_message():
    with pytest.raises(TemplateError, match=r"app.yaml: 'nope' is undefined"):
        render("{{ nope }}")


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


def test_the_render_child_does_not_see_the_bots_secrets(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "bot-token-not-for-templates")
    monkeypatch.setenv("CLUSTERCORD_SECRET_KEY", "key-not-for-templates")
    # os.getenv runs in the child exactly as a template's code would.
    assert run_limited("probe", RenderLimits(), os.getenv, "DISCORD_TOKEN") is None
    assert run_limited("probe", RenderLimits(), os.getenv, "CLUSTERCORD_SECRET_KEY") is None
    assert run_limited("probe", RenderLimits(), os.getenv, "PATH") == os.environ["PATH"]
