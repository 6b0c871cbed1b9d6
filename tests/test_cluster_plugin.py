"""The `cluster` builtin plugin against a real sandbox API server, end to end:
console command → dispatcher → plugin → Kubernetes service → HTTPS → sandbox."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from .conftest import deployment

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: media}
---
apiVersion: v1
kind: Pod
metadata: {name: jellyfin-0, namespace: media, labels: {app: jellyfin}}
spec:
  containers:
  - name: jellyfin
    image: jellyfin/jellyfin:10.9.11
    resources: {limits: {memory: 2Gi}}
---
""" + deployment("sonarr", "media", "linuxserver/sonarr:4.0.11")


@pytest.fixture
def sandbox(sandbox_cluster):
    cluster = sandbox_cluster()
    cluster.apply(APP)
    return cluster


def kubectl(cluster, *args):
    return cluster.kubectl(*args, check=False)


@pytest.fixture
async def harness(clustercord_harness, sandbox):
    clustercord_harness.add_builtins(["cluster", "plugins"])
    await clustercord_harness.start()
    return clustercord_harness


async def test_cluster_list_and_status(harness):
    listed = await harness.run("/cluster list")
    assert [c["name"] for c in listed.reply.data["clusters"]] == ["sandbox"]
    status = await harness.run("/cluster status")
    assert status.ok, status.text
    assert status.reply.data["version"] == "v1.32.0-sandbox"
    assert status.reply.data["latency_ms"] > 0


async def pods_once(harness, count, seconds=15.0):
    """`/pod list` once it lists `count` pods: the sandbox's Deployment controller creates
    its pod in the background, a moment after `kubectl apply` returns."""
    deadline = time.monotonic() + seconds
    while True:
        listed = await harness.run("/pod list")
        pods = listed.reply.data["pods"]
        if len(pods) >= count or time.monotonic() > deadline:
            return pods
        await asyncio.sleep(0.1)


async def test_pods_list_describe_delete(harness, sandbox):
    await harness.run("/cluster use cluster:sandbox namespace:media")
    names = sorted(p["name"] for p in await pods_once(harness, 2))
    assert len(names) == 2, names
    assert names[0] == "jellyfin-0" and names[1].startswith("sonarr-")  # the controller's pod
    running = await harness.run("/pod list selector:app=sonarr")
    assert [p["status"] for p in running.reply.data["pods"]] in (["Running"], ["Pending"])
    described = await harness.run("/pod describe name:jellyfin-0")
    fields = {f.name: f.value for f in described.reply.cards[0].fields}
    assert fields["Container jellyfin"] == "jellyfin/jellyfin:10.9.11\nlimits: memory=2Gi"

    deleted = await harness.run("/pod delete name:jellyfin-0")
    assert deleted.ok and deleted.asked  # destructive: it asked first
    gone = kubectl(sandbox, "get", "pod", "jellyfin-0", "-n", "media")
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    missing = await harness.run("/pod describe name:jellyfin-0")
    assert missing.status == "error" and 'not found: pods "jellyfin-0" not found' in missing.text


async def test_deployment_scale_and_restart(harness, sandbox):
    scaled = await harness.run("/deployment scale name:sonarr replicas:3 namespace:media")
    assert scaled.ok and scaled.reply.data == {"name": "sonarr", "from": 1, "to": 3}
    replicas = kubectl(
        sandbox, "get", "deploy", "sonarr", "-n", "media", "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas.stdout == "3"

    restarted = await harness.run("/deployment restart name:sonarr namespace:media")
    assert restarted.ok
    annotations = yaml.safe_load(
        kubectl(sandbox, "get", "deploy", "sonarr", "-n", "media", "-o", "yaml").stdout
    )["spec"]["template"]["metadata"]
    assert (
        annotations["annotations"]["kubectl.kubernetes.io/restartedAt"]
        == (restarted.reply.data["restartedAt"])
    )
    listed = await harness.run("/deployment list namespace:media")
    assert [d["name"] for d in listed.reply.data["deployments"]] == ["sonarr"]


async def test_a_call_outside_the_declared_permissions_fails_in_process(
    clustercord_harness, sandbox, make_plugin
):
    clustercord_harness.add_plugin(
        make_plugin(
            "peek",
            manifest={"permissions": ["pods:read"]},
            modules={
                "commands": """
        async def run(ctx):
            await ctx.kubernetes.list("secrets", namespace="media")
    """
            },
        ),
        builtin=True,
    )
    await clustercord_harness.start()
    result = await clustercord_harness.run("/peek")
    assert result.status == "denied"
    assert result.text == (
        "plugin peek may not list secrets in namespace media on cluster sandbox: its manifest "
        "does not declare secrets:list (declare secrets:read)"
    )


async def test_a_chat_user_without_a_kubernetes_identity_is_refused(harness):
    result = await harness.run("/pod list namespace:media", user="4242", frontend="discord")
    assert result.status == "denied"
    assert "not mapped to a Kubernetes identity" in result.text


async def test_add_use_and_remove_an_uploaded_cluster(harness, sandbox, tmp_path):
    upload = tmp_path / "homelab.yaml"
    upload.write_text(sandbox.kubeconfig.read_text())
    added = await harness.run(f"/cluster add name:homelab kubeconfig:{upload}")
    assert added.ok and added.reply.ephemeral, added.text
    assert (await harness.run("/cluster status cluster:homelab")).ok
    assert (await harness.run("/cluster use cluster:homelab namespace:media")).ok
    assert (await harness.run("/pod list selector:app=jellyfin")).reply.data["pods"][0][
        "name"
    ] == "jellyfin-0"
    assert (await harness.run("/cluster remove name:homelab")).ok
    names = [c["name"] for c in (await harness.run("/cluster list")).reply.data["clusters"]]
    assert names == ["sandbox"]


async def test_a_bad_upload_changes_nothing(harness, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "kind": "Config",
                "clusters": [{"name": "x", "cluster": {"server": "https://192.0.2.1"}}],
                "users": [{"name": "u", "user": {"exec": {"command": "curl"}}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}],
            }
        )
    )
    result = await harness.run(f"/cluster add name:evil kubeconfig:{bad}")
    assert result.status == "usage" and "exec is refused" in result.text
    missing = await harness.run("/cluster add name:evil kubeconfig:/nonexistent.yaml")
    assert missing.status == "usage" and "cannot read /nonexistent.yaml" in missing.text
    names = [c["name"] for c in (await harness.run("/cluster list")).reply.data["clusters"]]
    assert names == ["sandbox"]


async def test_an_unreachable_cluster_is_a_message_and_the_bot_keeps_serving(
    harness, tmp_path, sandbox
):
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens
    dead = tmp_path / "dead.yaml"
    dead.write_text(yaml.safe_dump(config))
    assert (await harness.run(f"/cluster add name:dead kubeconfig:{dead}")).ok
    result = await harness.run("/cluster status cluster:dead")
    assert result.status == "error"
    assert result.text == (
        "cannot get /version on cluster dead: the cluster is unreachable (Connection refused)"
    )
    assert (await harness.run("/cluster status cluster:sandbox")).ok


VIEW_IN_MEDIA = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-view, namespace: media}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""


async def test_a_user_never_does_more_through_a_plugin_than_their_identity_may(
    clustercord_harness, sandbox
):
    sandbox.apply(VIEW_IN_MEDIA)
    harness = clustercord_harness
    harness.add_builtins(["cluster"])
    await harness.restart(identity={"users": {"4242": {"user": "alice"}}})

    listed = await harness.run("/pod list namespace:media", user="4242", frontend="discord")
    assert listed.ok, listed.text
    assert "jellyfin-0" in [p["name"] for p in listed.reply.data["pods"]]

    # The plugin may delete pods; alice (view) may not, so nothing is deleted.
    refused = await harness.run(
        "/pod delete name:jellyfin-0 namespace:media", user="4242", frontend="discord"
    )
    assert refused.status == "denied"
    assert refused.text == (
        "your Kubernetes identity alice may not delete pods 'jellyfin-0' in namespace media "
        "on cluster sandbox"
    )
    assert kubectl(sandbox, "get", "pod", "jellyfin-0", "-n", "media").returncode == 0
    elsewhere = await harness.run("/pod list namespace:default", user="4242", frontend="discord")
    assert (
        elsewhere.status == "denied" and "may not list pods in namespace default" in elsewhere.text
    )
