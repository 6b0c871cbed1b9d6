"""A hostile template or variable can do nothing, through the plugin against the sandbox: each
attack is refused with the reason, nothing is deployed or stored, and the bot keeps serving.
A deploy killed with SIGKILL blocks nothing: the retry proceeds at once. How each defence
works on its own: builtin_plugins/tests/templates/test_hostile.py."""

from __future__ import annotations

import base64
import json
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.usefixtures("server_side_apply")

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: note}\n"
CHART = {"repo": "https://charts.example.com/stable", "chart": "hello", "version": "0.1.0"}
SMUGGLE = "x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: smuggled}\ndata: {a: b}"
ALICE = "4242"  # mapped to alice, who may only view
NOBODY = "5151"  # mapped to nothing
VIEW = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-view-templates}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""


def template(name="hostile", manifest=CONFIGMAP, variables=(), **extra) -> dict:
    return {
        "name": name,
        "version": "1.0.0",
        "category": "OTHER",
        "description": "A template that tries one thing",
        "author": "someone",
        "variables": list(variables),
        "manifests": [{"name": "app.yaml", "content": manifest}],
        **extra,
    }


def write(tmp_path, data, name="hostile.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def nothing_stored_and_still_serving(templates) -> None:
    found = await templates.run("/template search category:other")
    assert found.ok, found.text
    assert found.reply.data["templates"] == []
    assert (await templates.run("/template info template:nats")).ok


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    """A ``helm`` on the bot's PATH that records each call and prints one ConfigMap."""
    record = tmp_path / "helm-calls.jsonl"
    script = tmp_path / "bin" / "helm"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: from-chart}\\n"
        "data: {greeting: hello}')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return lambda: (
        [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []
    )


# -- 1. helm option injection -----------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "chart",
            "--post-renderer=/bin/sh",
            "helm_charts[0].chart: '--post-renderer=/bin/sh' "
            "starts with '-': a chart is a name, never an option",
        ),
        (
            "repo",
            "https://169.254.169.254/latest/",
            "helm_charts[0].repo: 169.254.169.254 is a "
            "cloud metadata address; a chart repository must be public",
        ),
        (
            "repo",
            "https://metadata.google.internal/",
            "helm_charts[0].repo: "
            "metadata.google.internal names this machine or a metadata service",
        ),
        (
            "repo",
            "http://charts.example.com",
            "helm_charts[0].repo: 'http://charts.example.com' must be an https:// URL (not http)",
        ),
    ],
)
async def test_helm_option_injection_is_refused_and_helm_never_runs(
    templates, tmp_path, fake_helm, field, value, message
):
    data = template(helm_charts=[{**CHART, field: value}])
    result = await templates.run(f"/template submit file:{write(tmp_path, data)}")
    assert result.status == "error"
    assert result.text.startswith("hostile.json was not accepted: the submitted template: ")
    assert message in result.text
    assert fake_helm() == []
    await nothing_stored_and_still_serving(templates)


async def test_only_users_allowed_to_submit_make_helm_run(templates, homelab, tmp_path, fake_helm):
    homelab.kubectl("apply", "-f", "-", input=VIEW)
    await templates.restart(identity={"users": {ALICE: {"user": "alice"}}})
    path = write(tmp_path, template(helm_charts=[CHART]))

    unmapped = await templates.run(f"/template submit file:{path}", user=NOBODY, frontend="discord")
    assert unmapped.status == "denied"
    assert unmapped.text.startswith("helm runs only for users allowed to submit templates: ")
    assert "is not mapped to a Kubernetes identity" in unmapped.text
    viewer = await templates.run(f"/template submit file:{path}", user=ALICE, frontend="discord")
    assert viewer.status == "denied"
    assert "your Kubernetes identity alice may not create namespaces" in viewer.text
    assert fake_helm() == []  # neither got as far as helm
    await nothing_stored_and_still_serving(templates)

    # The operator may: the access check passes, then helm runs with '--' before positionals.
    accepted = await templates.run(f"/template submit file:{path}")
    assert accepted.ok, accepted.text
    ((argv),) = fake_helm()
    assert argv[-3:] == ["--", "hostile", "hello"]
    assert all(a.startswith("--") for a in argv[1:-3])
    # Once stored, rendering it runs helm only for a user who passes the same check.
    denied = await templates.run(
        "/template render template:hostile", user=ALICE, frontend="discord"
    )
    assert denied.status == "denied" and len(fake_helm()) == 1


# -- 2. YAML alias bomb -----------------------------------------------------------------
def alias_bomb(levels: int = 10) -> str:
    lines = [
        CONFIGMAP.rstrip("\n"),
        "data:",
        '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


async def test_an_alias_bomb_is_refused_fast_without_the_bot_growing(templates, tmp_path):
    bomb = alias_bomb()
    assert len(bomb) <= 728
    path = write(tmp_path, template(manifest=bomb))
    # The same path once with one alias, so what it imports the first time is not counted.
    warm = write(tmp_path, template(manifest=CONFIGMAP + "data: {a: &a x, b: *a}\n"), "warm.json")
    assert "YAML aliases" in (await templates.run(f"/template submit file:{warm}")).text
    before = peak_rss_mb()
    started = time.monotonic()
    result = await templates.run(f"/template submit file:{path}")
    elapsed = time.monotonic() - started
    grown = peak_rss_mb() - before
    assert result.status == "error"
    assert (
        "app.yaml: line 5: the rendered YAML is invalid: YAML aliases (*name) are not "
        "accepted in templates" in result.text
    )
    print(f"alias bomb: {len(bomb)} bytes, refused in {elapsed:.3f} s, peak RSS +{grown:.1f} MB")
    assert elapsed < 5, elapsed
    assert grown < 10, f"the bot's peak RSS grew by {grown:.0f} MB"
    await nothing_stored_and_still_serving(templates)


# -- 3. YAML injection through variables ------------------------------------------------
NOTE = [{"name": "note", "type": "string", "default": "hello"}]


def vars_option(**values: str) -> str:
    return "vars:" + shlex.quote(json.dumps(values))


async def test_a_smuggled_configmap_is_an_inert_string_in_a_community_template(
    templates, homelab, tmp_path
):
    data = template("noted", CONFIGMAP + "data:\n  note: {{ note }}\n", NOTE)
    assert (await templates.run(f"/template submit file:{write(tmp_path, data)}")).ok
    deployed = await templates.run(
        f"/template deploy template:noted namespace:noted wait:false {vars_option(note=SMUGGLE)}"
    )
    assert deployed.ok, deployed.text
    assert deployed.reply.data["objects"] == ["ConfigMap/note"]
    assert "smuggled" not in homelab.kubectl("get", "configmaps", "-A", "-o", "name")
    stored = json.loads(homelab.kubectl("get", "configmap", "note", "-n", "noted", "-o", "json"))
    assert stored["data"] == {"note": SMUGGLE}
    assert (await templates.run("/template delete deployment:noted/noted")).ok


async def test_a_template_that_drops_the_quoting_is_refused_and_deploys_nothing(
    templates, homelab, tmp_path
):
    data = template("leaky", CONFIGMAP + "data:\n  note: {{ note ~ '' }}\n", NOTE)
    assert (await templates.run(f"/template submit file:{write(tmp_path, data)}")).ok
    refused = await templates.run(
        f"/template deploy template:leaky namespace:leaky wait:false {vars_option(note=SMUGGLE)}"
    )
    assert refused.status == "error"
    assert "the value of note changes the structure of the rendered YAML" in refused.text
    assert "leaky" not in homelab.kubectl("get", "namespaces", "-o", "name")
    assert "smuggled" not in homelab.kubectl("get", "configmaps", "-A", "-o", "name")
    assert (await templates.run("/template search query:tries")).ok


async def test_a_curated_template_renders_the_attack_as_data(templates):
    plain = await templates.run(
        "/template render template:gitea vars:ingress_domain=git.example.com"
    )
    attacked = await templates.run(
        f"/template render template:gitea {vars_option(ingress_domain=SMUGGLE)}"
    )
    assert plain.ok, plain.text
    if attacked.ok:
        assert attacked.reply.data["objects"] == plain.reply.data["objects"]
    else:  # refused with the reason, never rendered with an extra object
        assert "ingress_domain" in attacked.text or "YAML" in attacked.text, attacked.text
    assert "smuggled" not in json.dumps(attacked.reply.data if attacked.ok else attacked.text)


# -- 4. a deploy killed with SIGKILL --------------------------------------------------------
KILLED = textwrap.dedent("""
    import asyncio, json, os, sys
    from pathlib import Path
    from clustercord.kubernetes.clusters import ClusterRegistry
    from clustercord.kubernetes.identity import IdentityMap
    from clustercord.kubernetes.plugin_identity import PluginIdentities
    from clustercord.kubernetes.service import KubernetesService
    from clustercord.secretbox import SecretBox
    from clustercord.storage import Database
    from clustercord_builtins.templates import catalog
    from clustercord_builtins.templates.deployer import Deployer
    from clustercord_sdk.permissions import parse_permissions

    data, namespace = Path(sys.argv[1]), sys.argv[2]
    data.mkdir(parents=True, exist_ok=True)
    service = KubernetesService(
        lambda: ClusterRegistry(Database(data / "db"), SecretBox.from_settings(data)),
        IdentityMap({}, {}),
    )
    service.plugin_identities = PluginIdentities(service)  # as the kernel does
    manifest = Path(catalog.__file__).with_name("manifest.json")
    kube = service.for_plugin(
        "templates", parse_permissions(json.loads(manifest.read_text())["permissions"])
    )
    deployer = Deployer(kube, kube.clusters()[0].name, by="the-killed-bot")

    async def stuck(self, ordered, done):  # the inventory is written; the first apply hangs
        print("applying", flush=True)
        await asyncio.sleep(3600)

    Deployer.apply_all = stuck
    entry = catalog.Entry(catalog.curated()["nats"], "curated", "verified")
    asyncio.run(deployer.deploy(deployer.plan(entry, namespace, {})))
""")


async def test_a_deploy_killed_midway_is_taken_over_at_once(templates, homelab, tmp_path):
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path / "killed"), "killed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    line = killed.stdout.readline()
    assert line.strip() == "applying", killed.stderr.read() if killed.stderr else ""
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    # What a kill -9 leaves: the Lease held by a dead process, the release 'deploying'.
    assert homelab.names("killed", "leases") == {"lease.coordination.k8s.io/clustercord-lock-nats"}
    secret = json.loads(
        homelab.kubectl("get", "secret", "clustercord-release-nats", "-n", "killed", "-o", "json")
    )
    release = json.loads(base64.b64decode(secret["data"]["release"]))
    assert [r["status"] for r in release["revisions"]] == ["deploying"]

    started = time.monotonic()
    retried = await templates.run("/template deploy template:nats namespace:killed wait:false")
    elapsed = time.monotonic() - started
    assert retried.ok, retried.text
    print(f"retry after kill -9: {elapsed:.2f} s")
    assert elapsed < 30, elapsed  # not the Lease's 600 s
    assert homelab.names("killed", "leases") == set()
    listed = await templates.run("/template list-deployed")
    (row,) = [d for d in listed.reply.data["deployments"] if d["namespace"] == "killed"]
    assert row["status"] == "deployed"
    assert "statefulset.apps/nats" in homelab.names("killed", "statefulsets")
    assert (await templates.run("/template delete deployment:killed/nats delete_data:true")).ok


def kill_midway(tmp_path, namespace: str) -> None:
    """A deploy of nats into ``namespace``, killed with SIGKILL once its inventory is
    written: it leaves the release 'deploying' and its Lease held by a dead process."""
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path / namespace), namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    line = killed.stdout.readline()
    assert line.strip() == "applying", killed.stderr.read() if killed.stderr else ""
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()


def revisions(homelab, namespace: str) -> list[dict]:
    secret = json.loads(
        homelab.kubectl("get", "secret", "clustercord-release-nats", "-n", namespace, "-o", "json")
    )
    return json.loads(base64.b64decode(secret["data"]["release"]))["revisions"]


async def test_a_deploy_killed_midway_is_interrupted_at_the_next_start(
    clustercord_harness, homelab, tmp_path
):
    kill_midway(tmp_path, "restarted")
    assert homelab.names("restarted", "leases") == {
        "lease.coordination.k8s.io/clustercord-lock-nats"
    }
    assert [r["status"] for r in revisions(homelab, "restarted")] == ["deploying"]

    # The bot starts again: before any command, the release is marked and the Lease is gone.
    clustercord_harness.add_builtins(["templates", "cluster"])
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("templates")
    assert plugin.state == "enabled", plugin.reason
    (revision,) = revisions(homelab, "restarted")
    assert revision["status"] == "interrupted"
    assert revision["reason"].startswith("the install that left it 'deploying' died: process ")
    assert homelab.names("restarted", "leases") == set()
    history = [
        (r["action"], r["status"], r["by"])
        for r in plugin.context.store.table("history").rows_where("namespace = ?", ["restarted"])
    ]
    assert history == [("install", "interrupted", "clustercord")]

    listed = await clustercord_harness.run("/template list-deployed")
    (row,) = [d for d in listed.reply.data["deployments"] if d["namespace"] == "restarted"]
    assert row["status"] == "interrupted"
    # Deploying again goes ahead over what the killed deploy applied.
    retried = await clustercord_harness.run(
        "/template deploy template:nats namespace:restarted wait:false"
    )
    assert retried.ok, retried.text
    assert [r["status"] for r in revisions(homelab, "restarted")] == ["deployed"]
    assert (
        await clustercord_harness.run("/template delete deployment:restarted/nats delete_data:true")
    ).ok


async def test_a_release_whose_holder_lives_is_left_alone_at_start(
    clustercord_harness, homelab, tmp_path
):
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path / "alive"), "alive"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert killed.stdout is not None
        assert killed.stdout.readline().strip() == "applying"
        clustercord_harness.add_builtins(["templates", "cluster"])
        await clustercord_harness.start()  # the deploy still runs: its state is its own
        assert [r["status"] for r in revisions(homelab, "alive")] == ["deploying"]
        assert homelab.names("alive", "leases") == {
            "lease.coordination.k8s.io/clustercord-lock-nats"
        }
    finally:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
    await clustercord_harness.restart()  # now it is dead: interrupted
    assert [r["status"] for r in revisions(homelab, "alive")] == ["interrupted"]
    assert homelab.names("alive", "leases") == set()
    assert (
        await clustercord_harness.run("/template delete deployment:alive/nats delete_data:true")
    ).ok
