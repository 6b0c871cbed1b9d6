"""CustomResourceDefinitions with the real kubectl: a created CRD serves its resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client, config

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: {scope}
  names: {{plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A widget for tests.
        properties:
          spec:
            type: object
            description: What the widget should be.
            required: [color]
            properties:
              color: {{type: string, enum: [red, blue], description: The colour of the widget.}}
              size: {{type: integer, minimum: 1, default: 1}}
"""

WIDGET = """\
apiVersion: {group}/v1
kind: Widget
metadata: {{name: {name}}}
spec: {spec}
"""


@pytest.fixture
def group(kubectl, unique) -> str:
    """A CRD of its own for each test (a namespaced `widgets` resource in a fresh group)."""
    name = f"{unique}.example.com"
    kubectl("apply", "-f", "-", input=CRD.format(group=name, scope="Namespaced"))
    return name


def _widget(kubectl, group: str, name: str, spec: str, *flags: str, check: bool = True):
    manifest = WIDGET.format(group=group, name=name, spec=spec)
    return kubectl("apply", *flags, "-f", "-", input=manifest, check=check)


def test_a_created_crd_is_established_and_served(kubectl, group):
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=5s")
    crd = json.loads(kubectl("get", "crd", f"widgets.{group}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    resources = kubectl("api-resources", f"--api-group={group}").stdout.splitlines()
    assert resources[1].split() == ["widgets", "wdg", f"{group}/v1", "true", "Widget"]
    assert "No resources found" in kubectl("get", f"widgets.{group}").stderr


def test_kubectl_applies_and_gets_custom_objects(kubectl, group, unique):
    out = _widget(kubectl, group, unique, "{color: red, size: 3}")
    assert f"widget.{group}/{unique} created" in out.stdout
    assert unique in kubectl("get", f"wdg.{group}").stdout
    obj = json.loads(kubectl("get", f"widgets.{group}", unique, "-o", "json").stdout)
    assert obj["spec"] == {"color": "red", "size": 3}
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    assert "configured" in _widget(kubectl, group, unique, "{color: blue, size: 3}").stdout
    # Server-side apply works for custom resources too (the schema drives the merge).
    _widget(kubectl, group, unique, "{color: blue, size: 4}", "--server-side")
    obj = json.loads(kubectl("get", f"widgets.{group}", unique, "-o", "json").stdout)
    assert obj["spec"] == {"color": "blue", "size": 4}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{color: red, size: big}",
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: '
            '"string"',
        ),
        ("{size: 2}", "spec.color: Required value"),
        ("{color: pink}", 'spec.color: Unsupported value: "pink": supported values: "red", "blue"'),
        (
            "{color: red, size: 0}",
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
    ],
)
def test_custom_objects_are_validated_against_the_schema(kubectl, group, unique, spec, message):
    result = _widget(kubectl, group, unique, spec, check=False)
    assert result.returncode == 1
    assert f'The Widget "{unique}" is invalid: {message}' in result.stderr
    assert kubectl("get", f"widgets.{group}", unique, check=False).returncode == 1


def test_schema_defaults_fill_absent_fields(kubectl, group, unique):
    _widget(kubectl, group, unique, "{color: red}")
    obj = json.loads(kubectl("get", f"widgets.{group}", unique, "-o", "json").stdout)
    assert obj["spec"] == {"color": "red", "size": 1}


def test_unknown_fields_are_refused_when_strict_and_pruned_otherwise(kubectl, group, unique):
    refused = _widget(kubectl, group, unique, "{color: red, bogus: 1}", check=False)
    assert 'strict decoding error: unknown field "spec.bogus"' in refused.stderr
    _widget(kubectl, group, unique, "{color: red, size: 2, bogus: 1}", "--validate=false")
    obj = json.loads(kubectl("get", f"widgets.{group}", unique, "-o", "json").stdout)
    assert obj["spec"] == {"color": "red", "size": 2}


def test_kubectl_explain_reads_the_crd_schema(kubectl, group):
    out = kubectl("explain", "widgets.spec", f"--api-version={group}/v1").stdout
    assert "KIND:       Widget" in out
    assert "What the widget should be." in out
    assert "color\t<string> -required-" in out
    assert "The colour of the widget." in out


def test_deleting_the_crd_removes_its_resources_and_objects(kubectl, group, unique, server):
    _widget(kubectl, group, unique, "{color: red}")
    kubectl("delete", "crd", f"widgets.{group}")
    assert server.store.list(group, "widgets") == []
    assert f"widgets.{group}" not in kubectl("api-resources").stdout
    assert kubectl("get", f"widgets.{group}", check=False).returncode == 1


def test_a_cluster_scoped_crd_serves_objects_without_a_namespace(kubectl, unique):
    group = f"{unique}.example.com"
    kubectl("apply", "-f", "-", input=CRD.format(group=group, scope="Cluster"))
    _widget(kubectl, group, unique, "{color: red}")
    obj = json.loads(kubectl("get", f"widgets.{group}", unique, "-o", "json").stdout)
    assert "namespace" not in obj["metadata"]


def test_a_malformed_crd_is_invalid_naming_the_field(kubectl, unique):
    manifest = CRD.format(group=f"{unique}.example.com", scope="Namespaced").replace(
        "name: widgets.", "name: gadgets."
    )
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert "metadata.name: Invalid value" in result.stderr
    assert 'must be spec.names.plural+"."+spec.group' in result.stderr


def test_the_python_clients_custom_objects_api(kubeconfig: Path, group, unique):
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": unique},
        "spec": {"color": "blue"},
    }
    custom.create_namespaced_custom_object(group, "v1", "default", "widgets", body)
    listed = custom.list_namespaced_custom_object(group, "v1", "default", "widgets")
    assert [item["metadata"]["name"] for item in listed["items"]] == [unique]
