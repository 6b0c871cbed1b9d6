"""Unit tests of the pieces: selectors, strategic merge patch, discovery, OpenAPI, fixtures."""

from __future__ import annotations

import pytest

from clustercord_sandbox import fixtures
from clustercord_sandbox.discovery import resource_list
from clustercord_sandbox.errors import ApiError
from clustercord_sandbox.objects import ObjectAPI
from clustercord_sandbox.openapi import OpenAPIDocuments
from clustercord_sandbox.patch import merge_patch, strategic_merge_patch
from clustercord_sandbox.registry import default_registry
from clustercord_sandbox.selectors import field_predicate, label_predicate
from clustercord_sandbox.store import SandboxStore

POD = {
    "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app in (web, db)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("!tier", False),
        ("missing!=x", True),
        ("app=web,tier=be", False),
    ],
)
def test_label_selectors(selector, expected):
    assert label_predicate(selector)(POD) is expected


def test_field_selectors():
    assert field_predicate("status.phase=Running,metadata.name=p")(POD)
    assert not field_predicate("status.phase!=Running")(POD)
    with pytest.raises(ApiError):
        field_predicate("spec.whatever=1")


def test_strategic_merge_patch_merges_containers_by_name_and_honours_directives():
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                        {"name": "b", "image": "b:1"},
                    ]
                }
            }
        }
    }
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [
                        {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                        {"name": "b", "$patch": "delete"},
                    ],
                }
            }
        }
    }
    out = strategic_merge_patch(deployment, patch, "io.k8s.api.apps.v1.Deployment")
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {
            "name": "a",
            "image": "a:1",
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
        }
    ]


def test_strategic_merge_patch_replaces_lists_without_a_merge_strategy():
    out = strategic_merge_patch(
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["3"]}]}}}},
        "io.k8s.api.apps.v1.Deployment",
    )
    assert out["spec"]["template"]["spec"]["containers"][0]["args"] == ["3"]


def test_merge_patch_null_deletes():
    assert merge_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}}) == {
        "b": {"c": 2, "d": 3}
    }


def test_discovery_lists_short_names_categories_and_subresources():
    core = resource_list(default_registry(), "", "v1")
    assert core is not None
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert "pods/log" in by_name and "pods/status" in by_name
    apps = resource_list(default_registry(), "apps", "v1")
    assert apps is not None
    assert "deployments/scale" in {r["name"] for r in apps["resources"]}


def test_openapi_v3_declares_field_validation_on_patch():
    import json

    docs = OpenAPIDocuments(default_registry())
    assert "apis/apps/v1" in docs.discovery()["paths"]
    body = docs.document("apis/apps/v1")
    assert body is not None
    doc = json.loads(body)
    path = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert path["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in {p["name"] for p in path["parameters"]}
    assert "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]


def test_empty_fixture_and_a_yaml_fixture(tmp_path):
    path = tmp_path / "objects.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\n"
    )
    api = ObjectAPI(SandboxStore(), default_registry())
    fixtures.load(api, fixtures.resolve(str(path)))
    assert api.store.get("", "configmaps", "shop", "settings") is not None
    assert api.store.get("", "serviceaccounts", "kube-system", "default") is not None
    with pytest.raises(fixtures.FixtureError):
        fixtures.resolve("no-such-fixture")
