"""Rendering: a sandboxed Jinja2, strict about undefined names; helm only when installed."""

from __future__ import annotations

import shutil

import pytest

from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.template import TemplateError, load_template


def one(content, variables=(), **extra):
    return load_template(
        {
            "name": "demo",
            "version": "1.0.0",
            "category": "OTHER",
            "description": "a demo",
            "variables": list(variables),
            "manifests": [{"name": "app.yaml", "content": content}],
            **extra,
        }
    )


def render(template, **values):
    return render_manifests(template, values, release="demo", namespace="games", helm_allowed=True)


def test_objects_are_put_in_the_namespace_and_marked_as_ours():
    rendered = render(
        one(
            "apiVersion: v1\nkind: ConfigMap\n"
            "metadata: {name: {{ release }}-cfg, namespace: other}\n"
        )
    )
    (obj,) = rendered.objects
    assert obj["metadata"]["name"] == "demo-cfg"
    assert obj["metadata"]["namespace"] == "games"
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clustercord"


def test_an_undeclared_variable_is_an_error_not_an_empty_string():
    with pytest.raises(TemplateError) as error:
        render(one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ nmae }}}\n"))
    assert str(error.value).startswith("app.yaml: 'nmae' is undefined")


def test_the_sandbox_refuses_python_internals():
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError, match=r"app.yaml: access to attribute '__class__'"):
        render(
            one(f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {{a: "{evil}"}}\n')
        )


def test_syntax_and_yaml_errors_name_the_manifest_and_line():
    with pytest.raises(TemplateError, match=r"app.yaml: line 2: unexpected '}'"):
        render(one("apiVersion: v1\n{{ } }}\n"))
    with pytest.raises(
        TemplateError,
        match=r"app.yaml: line 4: the rendered YAML is invalid: .*expected ',' or ']'",
    ):
        render(
            one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n")
        )  # the end of the stream is line 4
    with pytest.raises(
        TemplateError, match=r"app.yaml: document 1 \(ConfigMap\) has no metadata.name"
    ):
        render(one("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"))


CHART = {"repo": "https://charts.example.invalid", "chart": "plex", "version": "6.4.3"}


def test_a_helm_chart_without_helm_says_helm_is_required(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    template = one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", helm_charts=[CHART])
    with pytest.raises(TemplateError) as error:
        render(template)
    assert str(error.value) == (
        "template demo needs helm to render chart plex 6.4.3, and helm is not installed here "
        "(https://helm.sh/docs/intro/install/)"
    )
