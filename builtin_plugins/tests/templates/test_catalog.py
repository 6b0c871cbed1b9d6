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


SPEC_STACKS = {
    # §17 of the spec, by category: 25 stacks (postgres and redis are also kept as single
    # servers beside their clusters).
    "GAMING": {"minecraft", "palworld", "valheim", "terraria", "counter-strike-2"},
    "MEDIA": {"media-stack", "jellyfin", "music", "photos"},
    "DEVELOPMENT": {"gitlab", "jenkins-sonarqube", "gitea", "dev-databases"},
    "MONITORING": {"observability"},
    "DATABASE": {"postgres-ha", "mysql", "redis-cluster", "mongodb", "cassandra"},
    "MESSAGING": {"rabbitmq", "kafka", "nats"},
    "CICD": {"argocd-tekton", "flux", "drone"},
}


def test_the_catalog_holds_the_specs_25_stacks_in_their_categories():
    stacks = {name for names in SPEC_STACKS.values() for name in names}
    assert len(stacks) == 25
    assert stacks <= set(TEMPLATES), stacks - set(TEMPLATES)
    for category, names in SPEC_STACKS.items():
        assert {curated()[n].category for n in names} == {category}


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
    assert "Service" in kinds
    if "PersistentVolumes" in template.features:
        assert "PersistentVolumeClaim" in kinds
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


CLUSTERS = {
    # template: (the clustered StatefulSet, its default members)
    "postgres-ha": ("postgres-ha-postgres", 3),
    "mysql": ("mysql-mariadb", 3),
    "redis-cluster": ("redis-cluster-redis", 6),
    "mongodb": ("mongodb", 3),
    "cassandra": ("cassandra", 3),
    "kafka": ("kafka", 3),
}


def by_name(objects):
    return {describe(o): o for o in objects}


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_cluster_members_have_stable_names_and_their_own_tracked_volumes(name):
    statefulset, members = CLUSTERS[name]
    objects = by_name(rendered(name))
    sts = objects[f"StatefulSet/{statefulset}"]["spec"]
    assert sts["replicas"] == members
    # Members find each other through the headless Service, which publishes them before
    # they are ready (they must talk to become ready).
    assert sts["serviceName"] == f"{statefulset}-peers"
    peers = objects[f"Service/{statefulset}-peers"]["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    # Each member's claim is one the release renders (and so tracks), with the name the
    # StatefulSet controller looks for before it would make an untracked one.
    templates = [t["metadata"]["name"] for t in sts["volumeClaimTemplates"]]
    claims = {n for n in objects if n.startswith("PersistentVolumeClaim/")}
    assert claims == {
        f"PersistentVolumeClaim/{t}-{statefulset}-{i}" for t in templates for i in range(members)
    }
    pod_volumes = {v["name"] for v in sts["template"]["spec"].get("volumes", [])}
    assert not pod_volumes & set(templates)


def test_more_members_render_more_claims():
    objects = by_name(rendered("mysql", members=5))
    assert objects["StatefulSet/mysql-mariadb"]["spec"]["replicas"] == 5
    assert "PersistentVolumeClaim/data-mysql-mariadb-4" in objects


def job_script(objects, name):
    return objects[f"Job/{name}"]["spec"]["template"]["spec"]["containers"][0]["args"][0]


@pytest.mark.parametrize(("nodes", "replicas"), [(6, 1), (3, 0), (9, 2)])
def test_the_redis_cluster_is_formed_by_a_job_once(nodes, replicas):
    objects = by_name(rendered("redis-cluster", nodes=nodes))
    script = job_script(objects, f"redis-cluster-create-{nodes}")
    assert f"--cluster-replicas {replicas} --cluster-yes" in script
    peers = "redis-cluster-redis-peers.catalog.svc.cluster.local"
    for i in range(nodes):
        assert f"until redis-cli -h redis-cluster-redis-{i}.{peers} ping" in script
        assert f"getent hosts redis-cluster-redis-{i}.{peers}" in script
    assert f"redis-cluster-redis-{nodes}." not in script
    # Created only while the first node knows no other: never re-created over kept data;
    # a formed cluster only gets the nodes it does not know, as replicas.
    assert script.index("cluster_known_nodes:1") < script.index("--cluster create")
    assert script.index("--cluster create") < script.index("--cluster add-node")
    assert '--cluster add-node "$address" "$first:6379" --cluster-slave' in script
    start = objects["ConfigMap/redis-cluster-scripts"]["data"]["start.sh"]
    assert "--cluster-enabled yes" in start and '--masterauth "$REDIS_PASSWORD"' in start


def test_postgres_ha_standbys_clone_and_follow_the_primary():
    objects = by_name(rendered("postgres-ha"))
    scripts = objects["ConfigMap/postgres-ha-replication"]["data"]
    primary = "postgres-ha-postgres-0.postgres-ha-postgres-peers.catalog.svc.cluster.local"
    assert f"pg_basebackup -h {primary} -U replicator" in scripts["start.sh"]
    assert " -R " in scripts["start.sh"]  # standby.signal and primary_conninfo
    assert "CREATE ROLE replicator WITH REPLICATION" in scripts["10-replication.sh"]
    assert "host replication replicator" in scripts["10-replication.sh"]
    selector = objects["Service/postgres-ha-primary"]["spec"]["selector"]
    assert selector["statefulset.kubernetes.io/pod-name"] == "postgres-ha-postgres-0"
    assert (
        "statefulset.kubernetes.io/pod-name"
        not in (objects["Service/postgres-ha-replicas"]["spec"]["selector"])
    )
    bouncer = objects["Deployment/postgres-ha-pgbouncer"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in bouncer["containers"][0]["env"]}
    assert env["POSTGRESQL_HOST"] == "postgres-ha-primary"


def test_the_mongodb_replica_set_is_initiated_with_every_member():
    objects = by_name(rendered("mongodb", members=5))
    script = job_script(objects, "mongodb-initiate-5")
    for i in range(5):
        assert (
            f'{{_id: {i}, host: "mongodb-{i}.mongodb-peers.catalog.svc.cluster.local:27017"}}'
            in script
        )
    assert script.index("rs.status()") < script.index("rs.initiate(")
    # An initiated set is never re-initiated: the primary adds the members it lacks.
    assert script.index("rs.add(host)") < script.index("rs.initiate(")
    assert "?replicaSet=rs0" in script
    args = objects["StatefulSet/mongodb"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--replSet", "rs0"] and "--keyFile" in args


def test_kafka_runs_kraft_with_every_node_a_voter():
    objects = by_name(rendered("kafka", nodes=5))
    container = objects["StatefulSet/kafka"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{i}@kafka-{i}.kafka-peers.catalog.svc.cluster.local:9093" for i in range(5)]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(env)
    assert "KAFKA_NODE_ID=${HOSTNAME##*-}" in container["command"][2]


def test_cassandra_bootstraps_one_node_at_a_time_through_its_seeds():
    objects = by_name(rendered("cassandra"))
    spec = objects["StatefulSet/cassandra"]["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["CASSANDRA_SEEDS"] == (
        "cassandra-0.cassandra-peers.catalog.svc.cluster.local,"
        "cassandra-1.cassandra-peers.catalog.svc.cluster.local"
    )


@pytest.mark.parametrize("name", ["gitlab", "drone", "jenkins-sonarqube"])
def test_ci_runners_get_a_role_in_their_namespace_only(name):
    objects = rendered(name)
    roles = [o for o in objects if o["kind"] == "Role"]
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert roles and bindings
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert {s["namespace"] for s in binding["subjects"]} == {"catalog"}
    accounts = {
        o["spec"]["template"]["spec"].get("serviceAccountName")
        for o in objects
        if o["kind"] in WORKLOADS
    }
    assert {s["name"] for b in bindings for s in b["subjects"]} <= accounts
