"""Stress through exec in the target container: the CPU really is used for the asked time and
then the workers are gone; stop ends them at once; disk stress cleans up what it wrote; a bot
killed mid-stress leaves no worker behind after its restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import VIEWER, first_pod, run, start_chaos
from .test_crash import bot_killed_at

BUSY = "while :; do :; done"


def workers(homelab, pod: str) -> int:
    """Busy loops running (the workers themselves, not the shell or `timeout` above them)."""
    return sum(p.startswith(f"sh -c {BUSY}") for p in processes(homelab, pod))


def processes(homelab, pod: str, namespace: str = "media") -> list[str]:
    """Command lines of the pod's processes, as its own /proc shows them."""
    listed = homelab.kubectl(
        "exec", pod, "-n", namespace, "--", "sh", "-c",
        'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done',
    ).stdout  # fmt: skip
    return [line for line in listed.splitlines() if line.strip()]


def tmp_files(homelab, pod: str, namespace: str = "media") -> list[str]:
    return homelab.kubectl("exec", pod, "-n", namespace, "--", "ls", "/tmp").stdout.split()


@pytest.fixture
def victim(homelab):
    name = first_pod(homelab)["metadata"]["name"]
    probe = homelab.kubectl("exec", name, "-n", "media", "--", "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"sandbox pods cannot run commands here: {probe.stderr.strip()}")
    return name


async def test_cpu_stress_uses_the_cpu_for_the_duration_then_stops(chaos, homelab, victim):
    started = time.monotonic()
    result = await run(
        chaos, f"/chaos cpu-stress pod:{victim} namespace:media percent:100 workers:1 duration:3s"
    )
    elapsed = time.monotonic() - started
    assert result.ok, result.text
    experiment = result.reply.data["experiment"]
    assert experiment["status"] == "ended" and experiment["faults"] == ["stress"]
    outcome = experiment["result"]
    print(f"cpu-stress 3 s: {outcome['cpu_seconds']} CPU-seconds in {outcome['ran_seconds']} s")
    assert 2.9 <= outcome["ran_seconds"] <= 8 and elapsed < 15
    # One busy loop for 3 s on a shared 2-core machine: most of a core, never more than one.
    assert 1.0 <= outcome["cpu_seconds"] <= 3.5
    assert not workers(homelab, victim)
    assert any(p.progress is not None for p in result.sent)  # live progress while it ran
    assert any(f.name == "CPU used" for f in result.reply.cards[0].fields)


async def test_stop_ends_a_running_stress_at_once(chaos, homelab, victim):
    task = asyncio.ensure_future(
        run(
            chaos,
            f"/chaos cpu-stress pod:{victim} namespace:media percent:50 workers:2 duration:60s",
        )
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and workers(homelab, victim) < 2:
        await asyncio.sleep(0.2)
    assert workers(homelab, victim) == 2
    (running,) = (await run(chaos, "/chaos status")).reply.data["experiments"]
    stopped = await run(chaos, f"/chaos stop experiment:{running['id']}")
    assert stopped.ok, stopped.text
    result = await asyncio.wait_for(task, 20)
    assert result.ok, result.text
    assert result.reply.data["experiment"]["result"]["ran_seconds"] < 20
    assert result.reply.data["experiment"]["status"] == "ended"
    assert not workers(homelab, victim)
    assert not [f for f in tmp_files(homelab, victim) if f.startswith("chaos-")]


async def test_disk_and_memory_stress_run_and_clean_up(chaos, homelab, victim):
    disk = await run(
        chaos, f"/chaos disk-stress pod:{victim} namespace:media workers:2 size:4Mi duration:2s"
    )
    assert disk.ok, disk.text
    assert disk.reply.data["experiment"]["status"] == "ended"
    assert not [f for f in tmp_files(homelab, victim) if f.startswith("chaos-")]
    memory = await run(
        chaos, f"/chaos memory-stress pod:{victim} namespace:media size:16Mi duration:2s"
    )
    assert memory.ok, memory.text
    assert memory.reply.data["experiment"]["result"]["ran_seconds"] >= 1.9
    dry = await run(
        chaos,
        f"/chaos memory-stress pod:{victim} namespace:media size:16Mi duration:2s dry_run:true",
    )
    assert "bs=16777216" in dry.reply.data["experiment"]["changes"][0]


async def test_bad_stress_options_and_users_without_rights_are_refused(chaos, homelab, victim):
    cases = [
        ("stress cpu", "percent:120 duration:1m", "is not a percentage"),
        ("stress cpu", "percent:50 duration:0s", "no time at all"),
        ("stress memory", "size:lots duration:1m", "is not a size"),
        ("stress disk", "workers:2 size:-1 duration:1m", "is not a size"),
        ("stress cpu", "percent:50 duration:1m container:nope", "has no container 'nope'"),
    ]
    for command, options, message in cases:
        bad = await run(chaos, f"/chaos {command} pod:{victim} namespace:media {options}")
        assert not bad.ok and message in bad.text, (command, options, bad.text)
    refused = await run(
        chaos, f"/chaos cpu-stress pod:{victim} namespace:media percent:50 duration:5s", user=VIEWER
    )
    assert not refused.ok and "may not create pods/exec" in refused.text
    assert not workers(homelab, victim)
    assert (await run(chaos, "/chaos list")).reply.data["experiments"] == []


async def test_a_bot_killed_mid_stress_leaves_no_worker_after_restart(
    clustercord_harness, homelab, victim
):
    line = f"/chaos cpu-stress pod:{victim} namespace:media percent:50 workers:1 duration:60s"
    bot_killed_at(clustercord_harness.data_dir, "during-stress", line)
    chaos = await start_chaos(clustercord_harness)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and workers(homelab, victim):
        await asyncio.sleep(0.2)
    assert not workers(homelab, victim)
    (entry,) = (await run(chaos, "/chaos list")).reply.data["experiments"]
    assert entry["status"] == "ended"
    report = await run(chaos, f"/chaos status experiment:{entry['id']}")
    assert any(
        "the bot stopped during the stress" in t["text"]
        for t in report.reply.data["experiment"]["timeline"]
    )
