"""Community templates render bounded in time and memory: a hostile one is refused, named.
That nothing reaches the cluster when one is submitted or deployed is checked end to end in
tests/templates/test_render_limits.py."""

from __future__ import annotations

import os

import pytest

from clustercord_builtins.templates.limits import RenderLimits, run_limited
from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.template import TemplateError, load_template

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


def test_the_render_child_does_not_see_the_bots_secrets(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "bot-token-not-for-templates")
    monkeypatch.setenv("CLUSTERCORD_SECRET_KEY", "key-not-for-templates")
    # os.getenv runs in the child exactly as a template's code would.
    assert run_limited("probe", RenderLimits(), os.getenv, "DISCORD_TOKEN") is None
    assert run_limited("probe", RenderLimits(), os.getenv, "CLUSTERCORD_SECRET_KEY") is None
    assert run_limited("probe", RenderLimits(), os.getenv, "PATH") == os.environ["PATH"]
