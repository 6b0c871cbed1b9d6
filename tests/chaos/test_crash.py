"""`kill -9` of the bot in the middle of a fault, then a restart: every fault is rolled back.

A bot (a kernel with the chaos plugin, in a process of its own, on the test's data directory)
is killed with SIGKILL at each point of an injection: after the experiment is recorded but
before the cluster is touched, and after the pod was changed but before the record says so.
The restarted bot leaves 0 faults, as kubectl sees the cluster. A fault whose record was lost
with the database is found by its marks in the cluster and removed too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import cluster_marks, first_pod, images, pod_named, run, start_chaos

BOT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from clustercord_testing.harness import KernelHarness, TestSigner
    from clustercord_builtins.chaos import faults

    data_dir, point, line = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def crash_at(name, original):
        async def hang(*args, **kwargs):
            if point == "after":
                await original(*args, **kwargs)
            print(point, flush=True)  # the test kills us now
            await asyncio.sleep(3600)
        return hang

    if point in ("before", "after"):
        faults.swap_images = crash_at("pod-image", faults.swap_images)
        faults.kill = crash_at("kill", faults.kill)
    if point == "after-tc":  # killed once the qdisc is set, before the record says active
        from clustercord_builtins.chaos import network
        network_inject = network.inject
        point = "after"

        async def inject_then_hang(*args, **kwargs):
            await network_inject(*args, **kwargs)
            print("after-tc", flush=True)
            await asyncio.sleep(3600)

        network.inject = inject_then_hang

    if point == "during-stress":  # killed while the stress runs
        from clustercord_builtins.chaos import stress
        stress_run = stress.run

        async def run_then_say(*args, **kwargs):
            running = asyncio.ensure_future(stress_run(*args, **kwargs))
            await asyncio.sleep(1.5)
            print("during-stress", flush=True)
            return await running

        stress.run = run_then_say

    if point.startswith("write-"):  # killed just before the cluster write number N
        from clustercord.kubernetes.service import PluginKubernetes
        wanted, writes = int(point.split("-")[1]), [0]

        def counted(method):
            async def write(self, *args, **kwargs):
                writes[0] += 1
                if writes[0] == wanted:
                    print(point, flush=True)
                    await asyncio.sleep(3600)
                return await method(self, *args, **kwargs)
            return write

        for name in ("patch", "create", "delete"):
            setattr(PluginKubernetes, name, counted(getattr(PluginKubernetes, name)))

    async def main():
        signer = TestSigner()
        harness = KernelHarness(data_dir, signer)
        harness.add_builtins(["chaos"])
        await harness.start()
        result = await harness.run(line)
        print("returned", result.status, result.text, flush=True)

    asyncio.run(main())
""")


def bot_killed_at(data_dir, point: str, line: str) -> None:
    bot = subprocess.Popen(
        [sys.executable, "-c", BOT, str(data_dir), point, line],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bot.stdout is not None
    said = bot.stdout.readline().strip()
    if said.startswith("returned") and point.startswith("write-"):
        bot.wait()
        pytest.skip(f"the command made fewer writes than {point[6:]}: no crash point there")
    if said != point:
        bot.kill()
        raise AssertionError(f"the bot said {said!r}: {bot.stderr.read() if bot.stderr else ''}")
    os.kill(bot.pid, signal.SIGKILL)
    bot.wait()


@pytest.mark.parametrize("point", ["before", "after"])
async def test_pod_failure_killed_mid_injection_is_rolled_back_at_restart(
    clustercord_harness, homelab, point
):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    line = f"/chaos pod-failure pod:{name} namespace:media duration:30m"
    bot_killed_at(clustercord_harness.data_dir, point, line)
    hit = pod_named(homelab, name)
    if point == "after":  # what the kill left: the pod on the pause image, marked
        assert set(images(hit).values()) == {"registry.k8s.io/pause:3.10"}
        assert cluster_marks(homelab) == f"pod/{name}"

    started = time.monotonic()
    chaos = await start_chaos(clustercord_harness)
    elapsed = time.monotonic() - started
    print(f"restart to 0 leftovers ({point}): {elapsed:.2f} s")
    assert images(pod_named(homelab, name)) == images(victim)
    assert cluster_marks(homelab) == ""
    history = (await run(chaos, "/chaos list")).reply.data["experiments"]
    assert [e["status"] for e in history] == ["ended"]
    report = await run(chaos, f"/chaos status experiment:{history[0]['id']}")
    timeline = [t["text"] for t in report.reply.data["experiment"]["timeline"]]
    assert any("the bot stopped during the injection" in t for t in timeline), timeline


async def test_kill_pod_killed_mid_injection_ends_cleanly_at_restart(clustercord_harness, homelab):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    bot_killed_at(
        clustercord_harness.data_dir, "after", f"/chaos kill-pod pod:{name} namespace:media"
    )
    assert pod_named(homelab, name) is None
    chaos = await start_chaos(clustercord_harness)
    (entry,) = (await run(chaos, "/chaos list")).reply.data["experiments"]
    assert entry["status"] == "ended"
    assert (await run(chaos, "/chaos status")).reply.data["experiments"] == []


async def test_a_fault_whose_record_was_lost_is_found_in_the_cluster_and_removed(
    clustercord_harness, homelab, tmp_path
):
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    # A bot with another database (this one's was lost) made the fault and died.
    bot_killed_at(
        tmp_path / "lost", "after", f"/chaos pod-failure pod:{name} namespace:media duration:30m"
    )
    assert cluster_marks(homelab) == f"pod/{name}"
    await start_chaos(clustercord_harness)
    assert images(pod_named(homelab, name)) == images(victim)
    assert cluster_marks(homelab) == ""


async def test_an_active_fault_survives_a_restart_until_it_expires(clustercord_harness, homelab):
    chaos = await start_chaos(clustercord_harness)
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    made = await run(chaos, f"/chaos pod-failure pod:{name} namespace:media duration:2s")
    assert made.ok, made.text
    chaos = await start_chaos(clustercord_harness)  # not expired: the fault is still wanted
    assert set(images(pod_named(homelab, name)).values()) == {"registry.k8s.io/pause:3.10"}
    time.sleep(2.1)
    chaos = await start_chaos(clustercord_harness)  # expired while the bot was down
    assert images(pod_named(homelab, name)) == images(victim)
    assert cluster_marks(homelab) == ""


@pytest.mark.parametrize("write", [1, 2, 3, 4])
@pytest.mark.parametrize("fault", ["pod-failure", "network-bandwidth", "drain-node"])
async def test_a_kill_before_any_write_of_a_fault_leaves_nothing_after_restart(
    clustercord_harness, homelab, fault, write
):
    """Every crash point of every fault that changes the cluster: the bot is killed just
    before its Nth write to the cluster (after the N-1 before it), then restarted."""
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    node = victim["spec"]["nodeName"]
    lines = {
        "pod-failure": f"/chaos pod-failure pod:{name} namespace:media duration:30m",
        "network-bandwidth": (
            f"/chaos network-bandwidth pod:{name} namespace:media rate:1mbit duration:30m"
        ),
        "drain-node": f"/chaos drain-node node:{node} duration:30m",
    }
    bot_killed_at(clustercord_harness.data_dir, f"write-{write}", lines[fault])
    chaos = await start_chaos(clustercord_harness)
    assert cluster_marks(homelab) == ""
    spec = json.loads(homelab.kubectl("get", "node", node, "-o", "json").stdout)["spec"]
    assert not spec.get("unschedulable")
    hit = pod_named(homelab, name)
    if hit is not None:  # a drain may have evicted it: its controller replaced it
        assert images(hit) == images(victim)
        shown = homelab.kubectl(
            "exec", name, "-n", "media", "--", "tc", "qdisc", "show", check=False
        )
        assert "tbf" not in shown.stdout
    history = (await run(chaos, "/chaos list")).reply.data["experiments"]
    assert all(e["status"] in ("ended", "failed") for e in history), history
