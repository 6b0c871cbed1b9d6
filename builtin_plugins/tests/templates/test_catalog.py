"""The curated catalog: every template renders with its defaults, every object validates
against the Kubernetes 1.30 schemas in strict mode, and every workload follows the rules."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from clustercord_builtins.templates import policy
from clustercord_builtins.templates.catalog import CATALOG, curated
from clustercord_builtins.templates.kinds import describe
from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.validation import ManifestError, check_template, validate_object
from clustercord_builtins.templates.variables import resolve

TEMPLATES = sorted(curated())
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def rendered(name, **given):
    template = curated()[name]
    values = resolve(template, given)
    return render_manifests(template, values.values, release=name, namespace="catalog").objects


def test_the_catalog_covers_the_issue():
    assert len(TEMPLATES) >= 15
    assert {
        "minecraft",
        "palworld",
        "valheim",
        "terraria",
        "jellyfin",
        "media-stack",
        "music",
        "photos",
        "gitea",
        "dev-databases",
        "observability",
        "postgres",
        "redis",
        "rabbitmq",
        "nats",
    } <= set(TEMPLATES)
    assert {curated()[n].category for n in TEMPLATES} >= {
        "GAMING",
        "MEDIA",
        "DEVELOPMENT",
        "MONITORING",
        "DATABASE",
        "MESSAGING",
    }


def with_ingress(name):
    """Every object a template can make: with its Ingress when it has one."""
    if curated()[name].variable("ingress_domain"):
        return rendered(name, ingress_domain="home.example.com")
    return rendered(name)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_object_validates_strictly_for_kubernetes_1_30(name):
    # validate_object uses kubernetes-validate's strict 1.30 schemas, loaded once per process
    # (the library's validate() re-reads them per object: ten times slower over the catalog).
    for obj in with_ingress(name):
        validate_object(obj, "1.30")


def test_the_cached_validator_agrees_with_kubernetes_validate():
    objects = with_ingress("minecraft")
    broken = json.loads(json.dumps(objects[1]))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    for obj in objects:
        assert kubernetes_validate.validate(obj, "1.30.0", strict=True) == "1.30"
        validate_object(obj, "1.30")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
    with pytest.raises(ManifestError, match="imagePullPolicy: 3 is not of type"):
        validate_object(broken, "1.30")


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_follows_the_catalog_rules(name):
    template = curated()[name]
    checked = check_template(template)
    assert checked.report.ok, checked.report.errors
    assert checked.warnings == []  # every container has requests and limits
    assert set(checked.report.elevated) == set(template.elevated)
    objects = checked.rendered.objects
    kinds = {o["kind"] for o in objects}
    assert {"Service", "PersistentVolumeClaim"} <= kinds
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "clustercord"
        assert labels["app.kubernetes.io/instance"] == name
        assert len(obj["metadata"]["name"]) <= 63
        spec, _ = policy.pod_spec(obj)
        if obj["kind"] not in WORKLOADS:
            continue
        assert "app.kubernetes.io/name" in labels and "app.kubernetes.io/version" in labels
        for container in spec["containers"]:
            assert policy.image_problem(container["image"]) is None
            assert container["readinessProbe"] and container["livenessProbe"], describe(obj)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", [n for n in TEMPLATES if curated()[n].variable("ingress_domain")])
def test_ingress_is_optional(name):
    assert "Ingress" not in {o["kind"] for o in rendered(name)}
    with_ingress = [
        o for o in rendered(name, ingress_domain="home.example.com") if o["kind"] == "Ingress"
    ]
    assert with_ingress
    assert all(
        r["host"].endswith(".home.example.com") for o in with_ingress for r in o["spec"]["rules"]
    )


def test_minecraft_has_rcon_a_web_map_and_a_backup_cron_job():
    objects = {describe(o): o for o in rendered("minecraft")}
    ports = {p["name"]: p["port"] for p in objects["Service/minecraft"]["spec"]["ports"]}
    assert ports == {"game": 25565, "rcon": 25575}
    assert objects["CronJob/minecraft-backup"]["spec"]["schedule"] == "0 */6 * * *"
    assert "Service/minecraft-map" in objects and "Deployment/minecraft-map" in objects


def test_the_media_stack_has_every_app():
    names = {o["metadata"]["name"] for o in rendered("media-stack") if o["kind"] == "Deployment"}
    assert names == {
        f"media-stack-{a}"
        for a in ("jellyfin", "sonarr", "radarr", "prowlarr", "qbittorrent", "overseerr")
    }


def test_a_manifest_that_fails_its_schema_names_the_object_and_path():
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    with pytest.raises(ManifestError) as error:
        validate_object(bad)
    assert str(error.value) == (
        "Deployment/web: spec.replicas: 'two' is not of type 'integer', 'null' "
        "(Kubernetes 1.30 schema)"
    )
    with pytest.raises(ManifestError, match=r"unknown field|Additional properties"):
        validate_object(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dat": {}}
        )


def test_the_schema_file_ships_with_the_plugin():
    schema = json.loads((CATALOG.parent / "template.schema.json").read_text())
    assert schema["$id"] == "https://clustercord.dev/schemas/template-1.json"


def test_the_manifest_declares_exactly_what_the_plugin_calls():
    from clustercord_builtins.templates.kinds import KINDS

    manifest = json.loads((CATALOG.parent / "manifest.json").read_text())
    expected = {
        f"{k.resource}:{verb}" for k in KINDS for verb in ("list", "create", "patch", "delete")
    }
    expected |= {f"leases.coordination.k8s.io:{verb}" for verb in ("list", "create", "delete")}
    expected |= {
        "namespaces:list",
        "namespaces:create",
        "namespaces:delete",
        "nodes:list",
        "storageclasses.storage.k8s.io:list",
    }
    assert set(manifest["permissions"]) == expected
    assert len(manifest["permissions"]) == len(expected)
