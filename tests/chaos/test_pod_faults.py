"""`/chaos kill-pod` and `/chaos pod-failure` end to end through the console front end against
the sandbox, with the real kubectl observing the cluster: each fault applied and rolled back,
dry runs that change nothing, refusals before anything is stored."""

from __future__ import annotations

import asyncio
import json
import time

from .conftest import ADMIN, VIEWER, cluster_marks, first_pod, images, pod_named, pods, run


def experiments_stored(chaos) -> list[dict]:
    return chaos.plugin("chaos").context.store.query("select id, state from experiments")


async def test_kill_pod_deletes_it_and_reports_when_the_replacement_was_ready(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    result = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media")
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "ended" and experiment["targets"] == [f"media/{name}"]
    assert experiment["faults"] == ["pod-deleted"] and experiment["dry_run"] is False
    replacement = experiment["result"]["replacement"]
    assert replacement and replacement != name
    assert experiment["result"]["recovery_seconds"] > 0
    assert pod_named(homelab, name) is None  # kubectl: the old pod is gone, the new one Ready
    new = pod_named(homelab, replacement)
    assert new is not None and new["status"]["phase"] == "Running"
    card = result.reply.cards[0]
    assert any(f.name == "Recovery time" and replacement in f.value for f in card.fields)
    timeline = [t["text"] for t in experiment["timeline"]]
    assert any("deleted" in t for t in timeline) and any("Ready after" in t for t in timeline)


async def test_kill_pod_by_eviction_honours_a_pod_disruption_budget(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    labels = victim["metadata"]["labels"]
    app = labels.get("app") or labels.get("app.kubernetes.io/name")
    key = "app" if "app" in labels else "app.kubernetes.io/name"
    homelab.apply(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
        "metadata: {name: keep-one, namespace: media}\n"
        f"spec: {{minAvailable: 1, selector: {{matchLabels: {{{key}: {app}}}}}}}\n"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the sandbox's disruption controller computes status
        status = homelab.kubectl(
            "get", "pdb", "keep-one", "-n", "media", "-o", "jsonpath={.status.disruptionsAllowed}"
        ).stdout
        if status == "0":
            break
        time.sleep(0.1)
    refused = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media mode:evict")
    assert not refused.ok
    assert "PodDisruptionBudget" in refused.text and "allows no disruption" in refused.text
    assert pod_named(homelab, name) is not None  # still there
    refused = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media")
    assert not refused.ok and "media/keep-one allows no disruption" in refused.text
    # Only an admin overrides it.
    assert not (await run(chaos, f"/chaos kill-pod pod:{name} namespace:media force:true")).ok
    forced = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media force:true", user=ADMIN)
    assert forced.ok, forced.text
    assert pod_named(homelab, name) is None


async def test_pod_failure_swaps_images_until_stop_and_restores_them(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    original = images(victim)
    result = await run(chaos, f"/chaos pod-failure pod:{name} namespace:media duration:10m")
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "active" and experiment["faults"] == ["pod-image"]
    hit = pod_named(homelab, name)
    assert set(images(hit).values()) == {"registry.k8s.io/pause:3.10"}
    assert hit["metadata"]["labels"]["chaos.clustercord.io/experiment"] == experiment["id"]
    assert "chaos.clustercord.io/expires" in hit["metadata"]["annotations"]

    again = await run(chaos, f"/chaos pod-failure pod:{name} namespace:media duration:1m")
    assert not again.ok and f"already under experiment {experiment['id']}" in again.text

    status = await run(chaos, "/chaos status")
    assert [e["id"] for e in status.reply.data["experiments"]] == [experiment["id"]]
    # Someone else's experiment: only its owner or an admin stops it.
    assert not (await run(chaos, f"/chaos stop experiment:{experiment['id']}", user=VIEWER)).ok
    stopped = await run(chaos, f"/chaos stop experiment:{experiment['id']}")
    assert stopped.ok, stopped.text
    restored = pod_named(homelab, name)
    assert images(restored) == original
    assert "chaos.clustercord.io/experiment" not in restored["metadata"].get("labels", {})
    assert cluster_marks(homelab) == ""
    history = await run(chaos, "/chaos list")
    assert [(e["id"], e["status"]) for e in history.reply.data["experiments"]] == [
        (experiment["id"], "ended")
    ]
    as_json = (
        await run(chaos, f"/chaos report experiment:{experiment['id']} format:json")
    ).reply.files[0]
    exported = json.loads(as_json.data)
    assert exported["id"] == experiment["id"] and exported["status"] == "ended"
    assert any("stopped by" in t["text"] for t in exported["timeline"])
    markdown = (await run(chaos, f"/chaos report experiment:{experiment['id']}")).reply.files[0]
    text = markdown.data.decode()
    assert text.startswith(f"# 💥 Chaos experiment {experiment['id']}") and "## Rollback" in text
    assert "images restored" in text


async def test_pod_failure_is_rolled_back_by_the_job_when_it_expires(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    original = images(victim)
    result = await run(chaos, f"/chaos pod-failure pod:{name} namespace:media duration:1s")
    assert result.ok, result.text
    assert set(images(pod_named(homelab, name)).values()) == {"registry.k8s.io/pause:3.10"}
    time.sleep(1.2)
    job = chaos.kernel.scheduler.get("chaos-reconcile")
    assert job is not None and job.schedule == "every 10s"
    await chaos.kernel.run_job(job)
    assert images(pod_named(homelab, name)) == original
    (stored,) = experiments_stored(chaos)
    assert stored["state"] == "ended"
    report = await run(chaos, f"/chaos status experiment:{stored['id']}")
    assert any("expired" in t["text"] for t in report.reply.data["experiment"]["timeline"])


async def test_dry_run_changes_nothing_and_stores_nothing(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    before = homelab.kubectl("get", "pods", "-n", "media", "-o", "yaml").stdout
    for line in (
        f"/chaos kill-pod pod:{name} namespace:media dry_run:true",
        f"/chaos kill-pod pod:{name} namespace:media mode:evict dry_run:true",
        f"/chaos pod-failure pod:{name} namespace:media duration:5m dry_run:true",
    ):
        result = await run(chaos, line)
        assert result.ok, result.text
        experiment = result.reply.data["experiment"]
        assert experiment["dry_run"] is True and experiment["id"] is None
        assert experiment["targets"] == [f"media/{name}"] and experiment["changes"]
        assert "nothing was changed" in result.reply.cards[0].title
    assert homelab.kubectl("get", "pods", "-n", "media", "-o", "yaml").stdout == before
    assert experiments_stored(chaos) == []


async def test_a_user_without_rights_is_refused_before_anything_is_stored(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    for line in (
        f"/chaos kill-pod pod:{name} namespace:media",
        f"/chaos kill-pod pod:{name} namespace:media mode:evict",
        f"/chaos pod-failure pod:{name} namespace:media duration:1m",
        f"/chaos pod-failure pod:{name} namespace:media duration:1m dry_run:true",
    ):
        refused = await run(chaos, line, user=VIEWER)
        assert not refused.ok, line
        assert "your Kubernetes identity nephew may not" in refused.text, refused.text
    assert pod_named(homelab, name) is not None
    assert images(pod_named(homelab, name)) == images(victim)
    assert experiments_stored(chaos) == []


async def test_protected_namespaces_and_blast_radius_are_refused(chaos, homelab):
    system = first_pod(homelab, "kube-system") if pods(homelab, "kube-system") else None
    if system is not None:
        name = system["metadata"]["name"]
        refused = await run(chaos, f"/chaos kill-pod pod:{name} namespace:kube-system")
        assert not refused.ok and "namespace kube-system is protected" in refused.text
    victim = first_pod(homelab, "monitoring")["metadata"]["name"]
    assert not (await run(chaos, "/chaos config protect namespace:monitoring")).ok  # admins only
    assert (await run(chaos, "/chaos config protect namespace:monitoring", user=ADMIN)).ok
    refused = await run(chaos, f"/chaos pod-failure pod:{victim} namespace:monitoring duration:1m")
    assert not refused.ok and "namespace monitoring is protected" in refused.text
    assert (await run(chaos, "/chaos config unprotect namespace:monitoring", user=ADMIN)).ok
    kube_system = await run(chaos, "/chaos config unprotect namespace:kube-system", user=ADMIN)
    assert not kube_system.ok and "protected by the plugin's configuration" in kube_system.text

    await chaos.kernel.manager.set_config("chaos", "max_pods", 1, by="test")
    running = [p["metadata"]["name"] for p in pods(homelab, "monitoring")]
    first = await run(
        chaos, f"/chaos pod-failure pod:{running[0]} namespace:monitoring duration:1m"
    )
    assert first.ok, first.text
    second = await run(
        chaos, f"/chaos pod-failure pod:{running[1]} namespace:monitoring duration:1m"
    )
    assert not second.ok and "blast radius" in second.text and "limit is 1" in second.text
    assert (await run(chaos, "/chaos stop all:true")).ok
    assert cluster_marks(homelab) == ""


async def test_production_namespaces_wait_for_an_admins_approval(chaos, homelab):
    homelab.kubectl("label", "namespace", "media", "clustercord.io/environment=production")
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    asked = await run(chaos, f"/chaos pod-failure pod:{name} namespace:media duration:5m")
    assert asked.ok, asked.text
    experiment = asked.reply.data["experiment"]
    assert experiment["status"] == "awaiting-approval" and "approval" in asked.text
    assert images(pod_named(homelab, name)) == images(victim)  # nothing yet

    approved = await run(chaos, f"/approval approve id:{experiment['approval']}", user=ADMIN)
    assert approved.ok, approved.text
    status = await until_status(chaos, experiment["id"], "active")
    assert status["status"] == "active", status
    assert set(images(pod_named(homelab, name)).values()) == {"registry.k8s.io/pause:3.10"}
    assert (await run(chaos, f"/chaos stop experiment:{experiment['id']}")).ok
    assert images(pod_named(homelab, name)) == images(victim)

    denied_ask = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media")
    approval = denied_ask.reply.data["experiment"]["approval"]
    assert (await run(chaos, f"/approval deny id:{approval}", user=ADMIN)).ok
    assert pod_named(homelab, name) is not None
    refused = await run(
        chaos, f"/chaos status experiment:{denied_ask.reply.data['experiment']['id']}"
    )
    assert refused.reply.data["experiment"]["status"] == "refused"


async def test_bad_options_are_clear_errors_and_change_nothing(chaos, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    cases = {
        "-5m": "is negative",
        "0s": "no time at all",
        "999h": "longer than the maximum of 1h",
        "5x": "is not a duration",
    }
    for duration, message in cases.items():
        result = await run(
            chaos, f"/chaos pod-failure pod:{name} namespace:media duration:{duration}"
        )
        assert not result.ok and message in result.text, (duration, result.text)
    missing = await run(chaos, f"/chaos pod-failure pod:{name[:-2]} namespace:media duration:1m")
    assert not missing.ok and "did you mean" in missing.text and name in missing.text
    unknown = await run(chaos, "/chaos stop experiment:ex-nope")
    assert not unknown.ok and "no experiment 'ex-nope'" in unknown.text
    neither = await run(chaos, "/chaos stop")
    assert not neither.ok and "experiment:" in neither.text
    assert images(pod_named(homelab, name)) == images(victim)
    assert experiments_stored(chaos) == []


async def test_fault_types_can_need_approval_everywhere(chaos, homelab):
    await chaos.kernel.manager.set_config("chaos", "approval_for", "kill-pod", by="test")
    name = first_pod(homelab, "monitoring")["metadata"]["name"]
    asked = await run(chaos, f"/chaos kill-pod pod:{name} namespace:monitoring")
    assert asked.ok and asked.reply.data["experiment"]["status"] == "awaiting-approval"
    assert pod_named(homelab, name, "monitoring") is not None
    stopped = await run(chaos, f"/chaos stop experiment:{asked.reply.data['experiment']['id']}")
    assert stopped.ok and stopped.reply.data["stopped"][0]["status"] == "refused"


async def until_status(chaos, experiment_id: str, wanted: str, seconds: float = 15) -> dict:
    """The experiment once it reaches ``wanted`` (approved work runs in the background)."""
    deadline = time.monotonic() + seconds
    while True:
        found = (await run(chaos, f"/chaos status experiment:{experiment_id}")).reply.data[
            "experiment"
        ]
        if found["status"] == wanted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_an_experiment_exports_as_chaos_mesh_and_litmus_objects(chaos, homelab):
    import yaml

    name = first_pod(homelab)["metadata"]["name"]
    made = await run(chaos, f"/chaos kill-pod pod:{name} namespace:media grace:5")
    experiment_id = made.reply.data["experiment"]["id"]
    mesh = await run(chaos, f"/chaos export experiment:{experiment_id} format:chaos-mesh")
    (podchaos,) = yaml.safe_load_all(mesh.reply.files[0].data)
    assert podchaos["apiVersion"] == "chaos-mesh.org/v1alpha1" and podchaos["kind"] == "PodChaos"
    assert podchaos["spec"]["action"] == "pod-kill" and podchaos["spec"]["gracePeriod"] == 5
    assert podchaos["spec"]["selector"]["pods"] == {"media": [name]}
    litmus = await run(chaos, f"/chaos export experiment:{experiment_id} format:litmus")
    (engine,) = yaml.safe_load_all(litmus.reply.files[0].data)
    assert engine["kind"] == "ChaosEngine"
    (spec,) = engine["spec"]["experiments"]
    assert spec["name"] == "pod-delete"
    assert {"name": "TARGET_PODS", "value": name} in spec["spec"]["components"]["env"]
    missing = await run(chaos, "/chaos export experiment:ex-none format:litmus")
    assert not missing.ok and "no experiment 'ex-none'" in missing.text
