"""Deploy, list, update and delete against a sandbox cluster, checked with the real kubectl."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from datetime import UTC, datetime

import pytest

from clustercord_builtins.templates.catalog import Entry, curated
from clustercord_builtins.templates.deployer import Deployer

pytestmark = pytest.mark.usefixtures("server_side_apply")
KINDS = (
    "secrets,configmaps,services,persistentvolumeclaims,deployments,statefulsets,daemonsets,"
    "cronjobs,jobs,ingresses,serviceaccounts,roles,rolebindings"
)


def inventory(cluster, namespace, release):
    secret = json.loads(
        cluster.kubectl(
            "get", "secret", f"clustercord-release-{release}", "-n", namespace, "-o", "json"
        )
    )
    return secret, json.loads(base64.b64decode(secret["data"]["release"]))


def namespaces(cluster):
    return cluster.kubectl("get", "namespaces", "-o", "name").split()


CLUSTER_WIDE = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
}


def members(data):
    """The release's namespaced members, named as kubectl names them."""
    return {
        f"{m['kind'].lower()}/{m['name']}" for m in data["members"] if m["kind"] not in CLUSTER_WIDE
    }


def cluster_wide(data):
    """The release's cluster-wide members (an operator's CRDs and rights), as kubectl names them."""
    return {
        f"{CLUSTER_WIDE[m['kind']]}/{m['name']}"
        for m in data["members"]
        if m["kind"] in CLUSTER_WIDE
    }


def existing_cluster_wide(cluster, names):
    """Which of ``names`` (``clusterroles/x``) kubectl finds."""
    return {
        name
        for name in names
        if cluster.sandbox.kubectl("get", name, "-o", "name", check=False).returncode == 0
    }


def kubectl_names(cluster, namespace):
    """What kubectl sees, named like the inventory, without the inventory Secret itself."""
    plural = {
        "secret": "secret",
        "configmap": "configmap",
        "service": "service",
        "persistentvolumeclaim": "persistentvolumeclaim",
        "deployment.apps": "deployment",
        "statefulset.apps": "statefulset",
        "daemonset.apps": "daemonset",
        "cronjob.batch": "cronjob",
        "job.batch": "job",
        "role.rbac.authorization.k8s.io": "role",
        "rolebinding.rbac.authorization.k8s.io": "rolebinding",
        "ingress.networking.k8s.io": "ingress",
        "serviceaccount": "serviceaccount",
    }
    names = set()
    for line in cluster.names(namespace, KINDS):
        kind, name = line.split("/", 1)
        if (kind, name) in (("serviceaccount", "default"), ("configmap", "kube-root-ca.crt")):
            continue
        if name.startswith("clustercord-release-"):
            continue
        names.add(f"{plural[kind]}/{name}")
    return names


async def test_deploy_tracks_everything_and_hands_out_credentials_privately(templates, homelab):
    result = await templates.run("/template deploy template:postgres namespace:db vars:size=3Gi")
    assert result.ok, result.text
    deployment = result.reply.data["deployment"]
    assert result.reply.data["not_ready"] == []  # it waited: the StatefulSet's pod is ready
    ready = [s.progress.label for s in result.sent if s.progress]
    assert "1/1 workloads ready" in ready
    assert (
        homelab.kubectl(
            "get", "statefulset", "postgres", "-n", "db", "-o", "jsonpath={.status.readyReplicas}"
        )
        == "1"
    )
    assert result.reply.data["generated"] == ["password"]
    progress = [s.progress for s in result.sent if s.progress]
    (done,) = [p for p in progress if p.label == "deployed"]
    assert done.current == done.total
    (private,) = [s for s in result.sent if s.text and "Generated credentials" in s.text]
    assert private.ephemeral
    password = private.text.split("password: ||")[1].split("||")[0]
    assert len(password) >= 24
    assert password not in json.dumps(result.reply.to_dict())

    secret, data = inventory(homelab, "db", "postgres")
    labels, notes = secret["metadata"]["labels"], secret["metadata"]["annotations"]
    set_id = labels["applyset.kubernetes.io/id"]
    assert set_id.startswith("applyset-") and set_id.endswith("-v1")
    assert labels["clustercord.dev/deployment"] == deployment
    assert notes["applyset.kubernetes.io/tooling"] == "clustercord/v1"
    assert notes["applyset.kubernetes.io/contains-group-kinds"] == (
        "PersistentVolumeClaim,Secret,Service,StatefulSet.apps"
    )
    assert secret["type"] == "clustercord.dev/release.v1"
    assert data["values"]["size"] == "3Gi" and "password" not in data["values"]
    assert [r["status"] for r in data["revisions"]] == ["deployed"]
    # kubectl sees exactly the inventory, every member labelled as ours and applied by us.
    assert kubectl_names(homelab, "db") == members(data)
    for ref in data["members"]:
        obj = json.loads(
            homelab.kubectl(
                "get", ref["kind"], ref["name"], "-n", "db", "-o", "json", "--show-managed-fields"
            )
        )
        assert obj["metadata"]["labels"]["applyset.kubernetes.io/part-of"] == set_id
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clustercord"
        assert {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]} >= {
            ("clustercord", "Apply")
        }
    stored = json.loads(
        homelab.kubectl("get", "secret", "clustercord-values-postgres", "-n", "db", "-o", "json")
    )
    assert base64.b64decode(stored["data"]["password"]).decode() == password
    # The password reached the user once, privately: never the kernel's files (audit, store).
    for path in templates.data_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path

    again = await templates.run("/template deploy template:postgres namespace:db")
    assert again.status == "error"
    assert (
        again.text == "postgres is already deployed in namespace db: use /template update "
        "(nothing was changed)"
    )

    # After a restart the cluster still says what is deployed.
    await templates.restart()
    listed = await templates.run("/template list-deployed")
    (row,) = [d for d in listed.reply.data["deployments"] if d["id"] == deployment]
    assert (row["template"], row["namespace"], row["revision"], row["status"]) == (
        "postgres",
        "db",
        1,
        "deployed",
    )

    updated = await templates.run(f"/template update deployment:{deployment} vars:memory_limit=2Gi")
    assert updated.ok, updated.text
    assert updated.reply.data["revision"] == 2 and updated.reply.data["changed"]
    diff = updated.reply.files[0].data.decode()
    changes = [line[0] + line[1:].strip() for line in diff.splitlines() if line[:1] in "+-"]
    assert diff.startswith("--- StatefulSet/postgres (live)\n+++ StatefulSet/postgres (new)\n")
    assert changes[2:] == ["-memory: 1Gi", "+memory: 2Gi"]
    assert password not in diff
    _, data = inventory(homelab, "db", "postgres")
    assert [r["revision"] for r in data["revisions"]] == [1, 2]
    stored = json.loads(
        homelab.kubectl("get", "secret", "clustercord-values-postgres", "-n", "db", "-o", "json")
    )
    assert base64.b64decode(stored["data"]["password"]).decode() == password  # kept
    unchanged = await templates.run("/template update deployment:db/postgres")
    assert (
        unchanged.ok and not unchanged.reply.data["changed"] and "nothing changed" in unchanged.text
    )

    deleted = await templates.run(f"/template delete deployment:{deployment}")
    assert deleted.ok and deleted.asked  # destructive: confirmed first
    assert deleted.reply.data["kept"] == ["PersistentVolumeClaim/postgres-data"]
    assert kubectl_names(homelab, "db") == {"persistentvolumeclaim/postgres-data"}
    assert "clustercord-release-postgres" not in homelab.kubectl("get", "secrets", "-n", "db")


async def test_a_namespace_with_objects_we_do_not_own_is_refused(templates, homelab):
    homelab.kubectl("create", "namespace", "shared")
    homelab.kubectl("create", "configmap", "their-config", "-n", "shared", "--from-literal=a=b")
    result = await templates.run("/template deploy template:redis namespace:shared")
    assert result.status == "error"
    assert result.text == (
        "namespace shared holds objects this deployment does not own, and ClusterCord never takes "
        "over silently; nothing was created:\n- ConfigMap/their-config (not managed by ClusterCord)"
    )
    assert kubectl_names(homelab, "shared") == {"configmap/their-config"}


async def test_requirements_the_cluster_lacks_are_refused_before_anything_exists(
    templates, homelab
):
    result = await templates.run(
        "/template deploy template:minecraft namespace:mc-refused vars:service_type=LoadBalancer,"
        "storage_class=ceph-block"
    )
    assert result.status == "error"
    assert result.text.startswith(
        "cluster sandbox does not meet the requirements of minecraft; nothing was created. "
        "Missing:\n"
    )
    assert "- StorageClass ceph-block for claim minecraft-data (classes: local-path)" in result.text
    assert "- a LoadBalancer implementation for Service minecraft" in result.text
    assert "namespace/mc-refused" not in namespaces(homelab)


async def test_bad_variables_change_nothing(templates, homelab):
    missing = await templates.run(
        "/template deploy template:valheim namespace:vh vars:world_name=a/b"
    )
    assert missing.status == "error"
    assert missing.text.startswith(
        "valheim: variable world_name (string): 'a/b' does not match the pattern"
    )
    wrong = await templates.run(
        "/template deploy template:terraria namespace:vh vars:max_players=lots"
    )
    assert wrong.text == "terraria: variable max_players (integer): 'lots' is not a whole number"
    assert "namespace/vh" not in namespaces(homelab)


async def test_an_apply_that_fails_halfway_is_rolled_back(templates, homelab):
    """Someone else creates the Service between the dry run and our apply: a field conflict."""
    plugin = templates.plugin("templates")
    entry = Entry(curated()["postgres"], "curated", "verified")

    async def meddle(current, total, label):
        if label == "applied PersistentVolumeClaim/postgres-data":
            homelab.kubectl(
                "create", "service", "clusterip", "postgres", "--tcp=5433:5433", "-n", "race"
            )

    deployer = Deployer(
        plugin.context.kubernetes, "sandbox", store=plugin.context.store, progress=meddle
    )
    plan = deployer.plan(entry, "race", {})
    with pytest.raises(Exception) as error:
        await deployer.deploy(plan)
    message = str(error.value)
    assert message.startswith(
        "deploy of postgres into race failed and was rolled back. "
        "applying Service/postgres failed: conflict"
    )
    # Ours are gone; the other party's Service stays, so does the namespace that holds it.
    assert message.endswith("Removed 3 objects it had created.")
    assert kubectl_names(homelab, "race") == {"service/postgres"}
    (record,) = [
        r for r in plugin.context.store.table("history").rows if r["status"] == "rolled-back"
    ]
    details = json.loads(record["details"])
    assert sorted(details["removed"]) == [
        "PersistentVolumeClaim/postgres-data",
        "Secret/clustercord-values-postgres",
        "Secret/postgres-credentials",
    ]
    assert "conflict" in details["reason"]


@pytest.mark.slow
async def test_every_catalog_template_deploys_updates_and_deletes(templates, homelab):
    names = sorted(curated())

    # Several at once, as several users could: each deployment only touches its own namespace.
    # Eight at a time: the 25 stacks at once (thousands of objects, their pods and garbage
    # collection) outrun the sandbox's 30 s answer time on a loaded machine.
    running = asyncio.Semaphore(8)

    async def one(command):
        async with running:
            return await templates.run(command)

    async def each(command):
        results = await asyncio.gather(*(one(command.format(n=n)) for n in names))
        failed = {n: r.text for n, r in zip(names, results, strict=True) if not r.ok}
        assert not failed, failed
        return dict(zip(names, results, strict=True))

    await each("/template deploy template:{n} namespace:all-{n} wait:false")
    wide = {}
    for name in names:
        _, data = inventory(homelab, f"all-{name}", name)
        assert kubectl_names(homelab, f"all-{name}") == members(data), name
        wide[name] = cluster_wide(data)
        assert existing_cluster_wide(homelab, wide[name]) == wide[name], name
    # Operators bring their CRDs and cluster-wide rights; nothing else is cluster-wide.
    assert {n for n in names if wide[n]} == {
        n for n in names if "clusterWide" in curated()[n].features
    }
    assert {n for n in names if wide[n]} >= {"argocd-tekton", "flux"}
    updated = await each("/template update deployment:all-{n}/{n}")
    assert not [n for n, r in updated.items() if r.reply.data["changed"]]
    await each("/template delete deployment:all-{n}/{n} delete_data:true")
    for name in names:
        assert kubectl_names(homelab, f"all-{name}") == set(), name
        assert existing_cluster_wide(homelab, wide[name]) == set(), name


async def test_the_sdk_apply_dry_runs_conflicts_and_forces(templates, homelab):
    """The SDK's ``apply``: server-side apply as a named field manager."""
    kube = templates.plugin("templates").context.kubernetes
    homelab.kubectl("create", "namespace", "ssa")
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ssa"},
        "data": {"k": "ours"},
    }
    apply = functools.partial(kube.apply, "configmaps", namespace="ssa", cluster="sandbox")
    dry = await apply(config, field_manager="clustercord", dry_run=True)
    assert dry["data"] == {"k": "ours"}
    assert "configmap/c" not in homelab.names("ssa", "configmaps")  # the dry run persisted nothing
    await apply(config, field_manager="clustercord")
    theirs = {**config, "data": {"k": "theirs"}}
    with pytest.raises(Exception, match=r'conflict.*"clustercord"'):
        await apply(theirs, field_manager="someone")
    forced = await apply(theirs, field_manager="someone", force=True)
    assert forced["data"] == {"k": "theirs"}
    managers = {m["manager"] for m in forced["metadata"]["managedFields"]}
    assert "someone" in managers


async def test_one_operation_at_a_time_per_deployment(templates, homelab):
    homelab.kubectl("create", "namespace", "busy")
    lease = """apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: clustercord-lock-nats, namespace: busy}
spec: {holderIdentity: replica-2, leaseDurationSeconds: 600, acquireTime: "%s"}
"""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    homelab.kubectl("apply", "-f", "-", input=lease % now)
    busy = await templates.run("/template deploy template:nats namespace:busy wait:false")
    assert busy.status == "error"
    assert busy.text == (
        "another /template operation on nats is in progress (held by replica-2 since "
        f"{now}); try again when it has finished"
    )
    assert "statefulset" not in homelab.kubectl("get", "statefulsets", "-n", "busy")
    # A lease its holder never released (a crashed replica) expires and is taken over.
    homelab.kubectl("delete", "lease", "clustercord-lock-nats", "-n", "busy")
    homelab.kubectl("apply", "-f", "-", input=lease % "2020-01-01T00:00:00.000000Z")
    deployed = await templates.run("/template deploy template:nats namespace:busy wait:false")
    assert deployed.ok, deployed.text
    assert homelab.names("busy", "leases") == set()  # released when done
    # The module's later tests count the nats releases: this one goes again.
    assert (await templates.run("/template delete deployment:busy/nats delete_data:true")).ok


async def test_a_release_is_named_as_list_deployed_shows_it(templates, homelab):
    # list-deployed shows the release name and namespace; a user types the name.
    for namespace in ("name-a", "name-b"):
        deployed = await templates.run(
            f"/template deploy template:nats namespace:{namespace} wait:false"
        )
        assert deployed.ok, deployed.text
    both = await templates.run("/template delete deployment:nats")
    assert not both.ok
    assert "2 deployments are named 'nats'" in both.text
    assert "name-a/nats" in both.text and "name-b/nats" in both.text
    assert kubectl_names(homelab, "name-a") and kubectl_names(homelab, "name-b")  # untouched
    assert (await templates.run("/template delete deployment:name-a/nats delete_data:true")).ok
    only = await templates.run("/template delete deployment:nats delete_data:true")
    assert only.ok, only.text
    assert kubectl_names(homelab, "name-b") == set()
