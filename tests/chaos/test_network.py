"""Network faults end to end: an ephemeral container with NET_ADMIN in the pod, `tc` run in it
through exec, the qdisc on the pod's own interface (kubectl exec shows it), removed at stop, at
expiry and at the restart after a kill -9. This machine's kernel may lack sch_netem: then the
netem faults are shown to fail with that reason and leave nothing, and the tbf (bandwidth)
fault, which needs no netem, carries the end-to-end checks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from .conftest import VIEWER, cluster_marks, first_pod, pod_named, pods, run, start_chaos
from .test_crash import bot_killed_at


def netem_missing() -> str | None:
    """Why netem cannot run here (None when it can): tried in a network namespace of its own."""
    if shutil.which("unshare") is None or shutil.which("tc") is None:
        return "unshare or tc is not installed"
    tried = subprocess.run(
        ["unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        text=True,
    )
    if tried.returncode != 0:
        return f"this kernel cannot run tc netem (no sch_netem module?): {tried.stderr.strip()}"
    return None


def qdiscs(cluster, pod: str, namespace: str = "media") -> str:
    return cluster.kubectl("exec", pod, "-n", namespace, "--", "tc", "qdisc", "show").stdout


def ephemeral(cluster, pod: str, namespace: str = "media") -> list[dict]:
    found = json.loads(cluster.kubectl("get", "pod", pod, "-n", namespace, "-o", "json").stdout)
    return found["spec"].get("ephemeralContainers") or []


@pytest.fixture
def victim(homelab):
    pod = first_pod(homelab)
    probe = homelab.kubectl(
        "exec", pod["metadata"]["name"], "-n", "media", "--", "tc", "qdisc", "show", check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"sandbox pods cannot run commands here: {probe.stderr.strip()}")
    return pod["metadata"]["name"]


async def test_bandwidth_limit_is_set_in_the_pod_and_removed_at_stop(chaos, homelab, victim):
    result = await run(
        chaos, f"/chaos network-bandwidth pod:{victim} namespace:media rate:1mbit duration:10m"
    )
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "active" and experiment["faults"] == ["tc-qdisc"]
    (container,) = ephemeral(homelab, victim)
    assert container["name"] == f"chaos-{experiment['id']}"
    assert container["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert "tc qdisc del" in container["command"][-1] and "sleep 601" in container["command"][-1]
    shown = qdiscs(homelab, victim)
    assert "tbf" in shown and "rate 1Mbit" in shown, shown
    timeline = " ".join(t["text"] for t in experiment["timeline"])
    assert "tc qdisc replace dev" in timeline and "root tbf rate 1mbit" in timeline

    assert (await run(chaos, f"/chaos stop experiment:{experiment['id']}")).ok
    assert "tbf" not in qdiscs(homelab, victim)
    assert cluster_marks(homelab) == ""


async def test_an_expired_network_fault_is_removed_by_the_job(chaos, homelab, victim):
    made = await run(
        chaos, f"/chaos network-bandwidth pod:{victim} namespace:media rate:500kbit duration:1s"
    )
    assert made.ok, made.text
    assert "tbf" in qdiscs(homelab, victim)
    time.sleep(1.2)
    await chaos.kernel.run_job(chaos.kernel.scheduler.get("chaos-reconcile"))
    assert "tbf" not in qdiscs(homelab, victim)
    assert cluster_marks(homelab) == ""


async def test_a_network_fault_left_by_a_killed_bot_is_removed_at_restart(
    clustercord_harness, homelab, victim
):
    bot_killed_at(
        clustercord_harness.data_dir, "after-tc",
        f"/chaos network-bandwidth pod:{victim} namespace:media rate:1mbit duration:30m",
    )  # fmt: skip
    assert "tbf" in qdiscs(homelab, victim)  # what the kill left
    await start_chaos(clustercord_harness)
    assert "tbf" not in qdiscs(homelab, victim)
    assert cluster_marks(homelab) == ""


async def test_netem_faults_shape_traffic_or_fail_with_the_reason_and_leave_nothing(
    chaos, homelab, victim
):
    lines = [
        f"/chaos network-delay pod:{victim} namespace:media latency:100ms jitter:10ms duration:1m",
        f"/chaos network-loss pod:{victim} namespace:media percent:30 duration:1m",
        f"/chaos network-corruption pod:{victim} namespace:media percent:5 duration:1m",
        f"/chaos network-duplicate pod:{victim} namespace:media percent:5 duration:1m",
    ]
    dry = await run(chaos, lines[0] + " dry_run:true")
    assert dry.ok, dry.text
    assert any("root netem delay 100ms 10ms" in c for c in dry.reply.data["experiment"]["changes"])
    assert ephemeral(homelab, victim) == []  # the dry run added nothing

    missing = netem_missing()
    for line in lines:
        result = await run(chaos, line)
        if missing is None:
            assert result.ok, result.text
            assert "netem" in qdiscs(homelab, victim)
            assert (await run(chaos, "/chaos stop all:true")).ok
        else:
            assert not result.ok
            assert "no netem queueing discipline (module sch_netem)" in result.text, result.text
            assert "rolled back" in result.text
        assert "netem" not in qdiscs(homelab, victim)
        assert cluster_marks(homelab) == ""
    if missing is not None:
        pytest.skip(f"netem measurement skipped: {missing}")
    before = round_trip_ms(homelab, victim)
    assert (await run(chaos, lines[0].replace("jitter:10ms ", ""))).ok
    during = round_trip_ms(homelab, victim)
    assert (await run(chaos, "/chaos stop all:true")).ok
    after = round_trip_ms(homelab, victim)
    print(f"round trip: {before:.1f} ms, {during:.1f} ms with 100ms delay, {after:.1f} ms after")
    assert 90 <= during - before <= 130 and after < before + 20


def round_trip_ms(homelab, victim: str) -> float:
    """The mean round trip from the victim to another pod (ping, run in the victim)."""
    other = next(p for p in pods(homelab, "monitoring") if p["status"].get("podIP"))
    pinged = homelab.kubectl(
        "exec", victim, "-n", "media", "--", "ping", "-c", "5", "-i", "0.2", "-q",
        other["status"]["podIP"], check=False,
    )  # fmt: skip
    found = re.search(r"= [\d.]+/([\d.]+)/", pinged.stdout)
    if pinged.returncode != 0 or not found:
        pytest.skip(f"no round trip to measure between sandbox pods: {pinged.stderr.strip()}")
    return float(found.group(1))


async def test_network_faults_are_refused_with_the_reason_before_anything_is_tried(
    chaos, homelab, victim
):
    homelab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: on-host, namespace: media}\n"
        "spec: {hostNetwork: true, containers: [{name: c, image: busybox}]}\n"
    )
    homelab.wait_running("on-host", "media")
    refused = await run(chaos, "/chaos network-loss pod:on-host namespace:media percent:10")
    assert not refused.ok and "hostNetwork" in refused.text
    assert ephemeral(homelab, "on-host") == []

    homelab.kubectl("label", "namespace", "games", "pod-security.kubernetes.io/enforce=baseline")
    game = first_pod(homelab, "games")["metadata"]["name"]
    refused = await run(chaos, f"/chaos network-loss pod:{game} namespace:games percent:10")
    assert not refused.ok
    assert "enforces the Pod Security level 'baseline'" in refused.text
    assert "NET_ADMIN" in refused.text
    assert ephemeral(homelab, game, "games") == []

    no_rights = await run(
        chaos, f"/chaos network-loss pod:{victim} namespace:media percent:10", user=VIEWER
    )
    assert not no_rights.ok and "may not" in no_rights.text
    for option, message in (
        ("percent:150", "is not a percentage from more than 0 to 100"),
        ("percent:-1", "is not a percentage"),
    ):
        bad = await run(chaos, f"/chaos network-loss pod:{victim} namespace:media {option}")
        assert not bad.ok and message in bad.text, bad.text
    bad = await run(chaos, f"/chaos network-delay pod:{victim} namespace:media latency:-5ms")
    assert not bad.ok and "is negative" in bad.text
    bad = await run(chaos, f"/chaos network-bandwidth pod:{victim} namespace:media rate:fast")
    assert not bad.ok and "is not a rate" in bad.text
    assert ephemeral(homelab, victim) == []
    assert pod_named(homelab, victim) is not None
