"""`/chaos config blast-radius max_pods: [namespace:]`: the most pods of a namespace under
experiments at once, set from chat by an admin, shown, audited, and enforced before anything
is stored or changed wherever pods are picked: single faults, experiment files (their faults
added up), node drains. The real kubectl confirms the refused targets were not touched."""

from __future__ import annotations

import asyncio
import time

from .conftest import ADMIN, cluster_marks, images, pod_named, pods, run
from .test_drain import busiest_node, node_pods, owned_by, unschedulable
from .test_experiment_files import write

PAUSE = "registry.k8s.io/pause:3.10"


def running(cluster, namespace: str) -> list[dict]:
    return [
        p
        for p in pods(cluster, namespace)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def stored(chaos, table: str) -> list[dict]:
    return chaos.plugin("chaos").context.store.query(f"select * from {table}")


def limit_shown(result) -> str:
    (table,) = result.reply.tables
    return dict(table.rows)["max pods under experiments per namespace"]


async def test_only_admins_set_it_and_bad_values_are_clear_errors(chaos, homelab):
    refused = await run(chaos, "/chaos config blast-radius max_pods:5 namespace:media")
    assert not refused.ok and refused.status == "denied", refused.text
    for value, problem in (
        ("-1", "below the minimum 1"),
        ("0", "below the minimum 1"),
        ("abc", "'abc' is not a whole number"),
        ("10000000", "above the maximum 1000"),
        ("2.5", "is not a whole number"),
    ):
        bad = await run(
            chaos, f"/chaos config blast-radius max_pods:{value} namespace:media", user=ADMIN
        )
        assert not bad.ok and bad.status == "usage", (value, bad.text)
        assert "option max_pods" in bad.text, bad.text
        assert problem in bad.text, (value, bad.text)
    for namespace in ("Media", "-media", "a" * 64, "media/x"):
        bad = await run(
            chaos, f"/chaos config blast-radius max_pods:2 namespace:{namespace}", user=ADMIN
        )
        assert not bad.ok and "is not a namespace name" in bad.text, (namespace, bad.text)
    neither = await run(chaos, "/chaos config blast-radius namespace:media", user=ADMIN)
    assert not neither.ok and "give max_pods:" in neither.text
    both = await run(chaos, "/chaos config blast-radius max_pods:2 clear:true", user=ADMIN)
    assert not both.ok and "not both" in both.text
    nothing = await run(chaos, "/chaos config blast-radius clear:true namespace:media", user=ADMIN)
    assert not nothing.ok and "no blast radius was set for namespace media" in nothing.text
    assert stored(chaos, "max_pods") == []  # every refusal changed nothing


async def test_an_admin_sets_shows_and_clears_limits_and_the_change_is_audited(chaos, homelab):
    shown = await run(chaos, "/chaos config show")
    assert limit_shown(shown) == "3 (max_pods setting)"

    since = max((r["seq"] for r in chaos.kernel.audit.iter_rows()), default=0)
    one = await run(chaos, "/chaos config blast-radius max_pods:1 namespace:monitoring", user=ADMIN)
    assert one.ok, one.text
    assert "namespace monitoring: at most 1 pod(s)" in one.text
    every = await run(chaos, "/chaos config blast-radius max_pods:7", user=ADMIN)
    assert every.ok and "every namespace: at most 7" in every.text
    again = await run(chaos, "/chaos config blast-radius max_pods:6", user=ADMIN)
    assert "(was 7)" in again.text
    assert limit_shown(await run(chaos, "/chaos config show")) == "6 (set from chat); monitoring: 1"

    rows = [r for r in chaos.kernel.audit.iter_rows(since) if "blast-radius" in r["action"]]
    done = [r for r in rows if r["result"] == "ok"]
    assert len(done) == 3, rows
    assert done[0]["actor"] == f"discord:{ADMIN}", done[0]
    assert "max_pods" in str(done[0]["options"]) and "monitoring" in str(done[0]["options"])

    cleared = await run(chaos, "/chaos config blast-radius clear:true", user=ADMIN)
    assert cleared.ok and "6 dropped; the limit is 3" in cleared.text, cleared.text
    assert (
        limit_shown(await run(chaos, "/chaos config show")) == "3 (max_pods setting); monitoring: 1"
    )
    # Set for a namespace, it survives a restart of the bot (stored, like protect).
    await chaos.restart()
    assert (
        limit_shown(await run(chaos, "/chaos config show")) == "3 (max_pods setting); monitoring: 1"
    )


async def test_a_namespaces_limit_refuses_a_fault_beyond_it_and_touches_nothing(chaos, homelab):
    assert (
        await run(chaos, "/chaos config blast-radius max_pods:1 namespace:monitoring", user=ADMIN)
    ).ok
    first, second = [p["metadata"]["name"] for p in running(homelab, "monitoring")][:2]
    before = images(pod_named(homelab, second, "monitoring"))
    hit = await run(chaos, f"/chaos pod-failure pod:{first} namespace:monitoring duration:5m")
    assert hit.ok, hit.text
    for line in (
        f"/chaos pod-failure pod:{second} namespace:monitoring duration:5m",
        f"/chaos pod-failure pod:{second} namespace:monitoring duration:5m dry_run:true",
        f"/chaos kill-pod pod:{second} namespace:monitoring",
    ):
        refused = await run(chaos, line)
        assert not refused.ok and refused.status == "denied", (line, refused.text)
        assert "blast radius: this fault hits 1 pod(s) of namespace monitoring" in refused.text
        assert hit.reply.data["experiment"]["id"] in refused.text  # the one already there
        assert "the limit is 1 (set for namespace monitoring" in refused.text, refused.text
        assert "Nothing was changed" in refused.text
    after = pod_named(homelab, second, "monitoring")  # kubectl: not killed, images as they were
    assert after is not None and images(after) == before
    assert [e["target"] for e in stored(chaos, "experiments")] == [first]

    # Another namespace keeps the default (3): a fault there still runs.
    media = running(homelab, "media")[0]["metadata"]["name"]
    assert (await run(chaos, f"/chaos pod-failure pod:{media} namespace:media duration:5m")).ok
    assert (await run(chaos, "/chaos stop all:true")).ok
    assert cluster_marks(homelab) == ""


async def test_an_experiment_whose_faults_exceed_the_limit_is_refused_before_anything(
    chaos, homelab, tmp_path
):
    """Its faults stay until the run ends, so they add up: three pods of one namespace in
    one file, with a limit of 2, is refused whole, steady state unread, nothing injected."""
    assert (await run(chaos, "/chaos config blast-radius max_pods:2", user=ADMIN)).ok
    names = [p["metadata"]["name"] for p in running(homelab, "monitoring")][:3]
    before = {n: images(pod_named(homelab, n, "monitoring")) for n in names}
    steps = "".join(
        f"  - {{fault: pod-failure, pod: {n}, namespace: monitoring, duration: 5m}}\n"
        for n in names
    )
    text = f"name: three at once\nsteady_state: []\nsteps:\n{steps}  - wait: 1s\n"
    path = write(tmp_path, text)
    for line in (
        f"/chaos run-experiment file:{path} dry_run:true",
        f"/chaos run-experiment file:{path}",
    ):
        refused = await run(chaos, line)
        assert not refused.ok and refused.status == "denied", (line, refused.text)
        assert "experiment three at once hits 3 pod(s) of namespace monitoring" in refused.text
        assert "the limit is 2 (set for every namespace" in refused.text, refused.text
    for name in names:  # kubectl: every pod as it was
        assert images(pod_named(homelab, name, "monitoring")) == before[name]
    assert stored(chaos, "experiments") == [] and stored(chaos, "runs") == []
    assert cluster_marks(homelab) == ""

    # The same file, the limit raised for monitoring: it runs, and is rolled back at its end.
    assert (
        await run(chaos, "/chaos config blast-radius max_pods:3 namespace:monitoring", user=ADMIN)
    ).ok
    result = await run(chaos, f"/chaos run-experiment file:{path}")
    assert result.ok, result.text
    assert result.reply.data["experiment"]["status"] == "pass", result.reply.data
    assert len(result.reply.data["experiment"]["experiments"]) == 3
    assert cluster_marks(homelab) == ""


async def test_a_drain_that_would_evict_more_than_the_limit_is_refused(chaos, homelab):
    node = busiest_node(homelab)
    movable = [p for p in node_pods(homelab, node) if owned_by(p) != "DaemonSet"]
    namespace = movable[0]["metadata"]["namespace"]
    on_node = sum(1 for p in movable if p["metadata"]["namespace"] == namespace)
    limit = f"/chaos config blast-radius max_pods:{on_node} namespace:{namespace}"
    assert (await run(chaos, limit, user=ADMIN)).ok
    # One pod of that namespace already under an experiment: the drain's evictions there
    # would make one more than the limit.
    victim = running(homelab, namespace)[0]["metadata"]["name"]
    hit = await run(chaos, f"/chaos pod-failure pod:{victim} namespace:{namespace} duration:5m")
    assert hit.ok, hit.text
    before = sorted(p["metadata"]["name"] for p in node_pods(homelab, node))
    refused = await run(chaos, f"/chaos drain-node node:{node}")
    assert not refused.ok and refused.status == "denied", refused.text
    assert f"draining {node} evicts {on_node} pod(s) of namespace {namespace}" in refused.text
    assert f"the limit is {on_node}" in refused.text
    assert not unschedulable(homelab, node)  # kubectl: not cordoned, nothing evicted
    assert sorted(p["metadata"]["name"] for p in node_pods(homelab, node)) == before
    assert (await run(chaos, "/chaos stop all:true")).ok
    assert cluster_marks(homelab) == ""


async def test_a_gameday_beyond_the_limit_does_not_run_and_its_owner_is_told(
    chaos, homelab, tmp_path
):
    """The limit is checked at each approved run (it may have changed since scheduling)."""
    names = [p["metadata"]["name"] for p in running(homelab, "monitoring")][:2]
    before = {n: images(pod_named(homelab, n, "monitoring")) for n in names}
    steps = "".join(
        f"  - {{fault: pod-failure, pod: {n}, namespace: monitoring, duration: 5m}}\n"
        for n in names
    )
    path = write(tmp_path, f"name: weekly pair\nsteps:\n{steps}")
    made = await run(chaos, f"/chaos schedule file:{path} cron:'0 10 * * 3'")
    assert made.ok, made.text
    assert (await run(chaos, "/chaos config blast-radius max_pods:1", user=ADMIN)).ok
    schedule_id = made.reply.data["schedule"]["id"]
    await chaos.kernel.run_job(chaos.kernel.scheduler.get(f"chaos-{schedule_id}"))
    (approval,) = (await run(chaos, "/approval list", user=ADMIN)).reply.data["pending"]
    assert (await run(chaos, f"/approval approve id:{approval}", user=ADMIN)).ok
    told: list = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not told:
        told = [
            n
            for n in chaos.kernel.notifier.pending()
            if "weekly pair" in n["reply"] and "did not run" in n["reply"]
        ]
        await asyncio.sleep(0.1)
    assert told, chaos.kernel.notifier.pending()
    assert "hits 2 pod(s) of namespace monitoring" in told[0]["reply"]
    assert "the limit is 1" in told[0]["reply"]
    for name in names:  # kubectl: untouched
        assert images(pod_named(homelab, name, "monitoring")) == before[name]
    assert stored(chaos, "experiments") == [] and cluster_marks(homelab) == ""
