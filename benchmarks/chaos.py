"""Benchmarks of the chaos plugin against the sandbox (served from a process of its own).

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/chaos.py [--quick]

1. ``/chaos pod kill`` to pod deleted (the invocation's start to the moment the experiment's
   timeline says the pod was deleted: options, target read, policy, SubjectAccessReviews, the
   record written, the DELETE) against ``kubectl delete pod --wait=false``, interleaved, each
   round on a fresh pod of the same Deployment; target ratio ≤ 1.0. The rest of the command
   (waiting for the replacement to be Ready) is reported apart, not timed against kubectl.
2. Probe overhead: 50 experiment files run at once, each a steady-state probe (the ready
   replicas of a Deployment, read from the sandbox) checked every second through a wait. The
   bot's own CPU time (this process; the sandbox runs in its own) over the run, less the same
   process idling for as long, as a share of one core; target < 5 %. Measured twice: as the
   plugin runs it (the 50 runs watch the same Deployment, so they share their reads:
   ``shared_reads``), and with sharing off, each check its own GET, as 50 runs watching 50
   different objects cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import median, met, spread  # benchmarks/measure.py
from terminal import _first_pod, _kubectl, plugin_beside_sandbox

KILL_TARGET = 1.0
PROBE_TARGET = 5.0
"""Per cent of one core for the probes of 50 concurrent experiments."""
CONCURRENT = 50
Row = tuple[str, str, str, str, str]


async def _kill_rows(reps: int, scratch: Path) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return [("chaos: /chaos pod kill", "skipped: kubectl is not installed", "-", "-", "-")]
    print(
        f"  1. /chaos pod kill to pod deleted against kubectl delete pod --wait=false, "
        f"{reps} rounds after a warm-up, interleaved"
    )
    with contextlib.ExitStack() as stack:
        box, harness = await plugin_beside_sandbox(stack, scratch, "chaos")

        async def ours() -> tuple[float, float]:
            pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
            wall, start = time.time(), time.perf_counter()
            result = await harness.run(f"/chaos pod kill pod:{pod} namespace:media", user="bench")
            whole = time.perf_counter() - start
            if not result.ok:
                raise RuntimeError(f"/chaos pod kill failed: {result.text[:300]}")
            experiment: dict[str, Any] = result.reply.data["experiment"]
            deleted = next(t["at"] for t in experiment["timeline"] if "deleted" in t["text"])
            return (deleted - wall) * 1000, whole * 1000

        async def theirs() -> float:
            pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
            start = time.perf_counter()
            args = ("delete", "pod", pod, "-n", "media", "--wait=false")
            await asyncio.to_thread(_kubectl, kubectl, box.kubeconfig, *args)
            return (time.perf_counter() - start) * 1000

        our_ms, whole_ms, their_ms = [], [], []
        for rep in range(reps + 1):  # the first round warms both up and is not counted
            if rep % 2:
                their = await theirs()
                our, whole = await ours()
            else:
                our, whole = await ours()
                their = await theirs()
            if rep:
                our_ms.append(our)
                whole_ms.append(whole)
                their_ms.append(their)
    ratio = median([o / t for o, t in zip(our_ms, their_ms, strict=True)])
    print(f"     /chaos pod kill to deleted  {spread(our_ms, 'ms', 0)}")
    print(f"     kubectl delete --wait=false {spread(their_ms, 'ms', 0)}")
    print(f"     the whole command, with the replacement Ready: {spread(whole_ms, 'ms', 0)}")
    print(f"     ratio {ratio:.2f} (target ≤ {KILL_TARGET:g}: {met(ratio <= KILL_TARGET)})")
    return [
        (
            "chaos: /chaos pod kill to pod deleted",
            f"{median(our_ms):.0f} ms",
            f"{median(their_ms):.0f} ms (kubectl delete)",
            f"{ratio:.2f}",
            f"≤ {KILL_TARGET:g} {met(ratio <= KILL_TARGET)}",
        )
    ]


async def _probe_rows(seconds: int, scratch: Path, shared: bool = True) -> list[Row]:
    from clustercord_builtins.chaos import plans

    how = "their reads shared" if shared else "each its own GET (reads not shared)"
    print(
        f"  2. probe overhead: {CONCURRENT} experiments at once, a steady-state probe each "
        f"checked every second for {seconds} s, {how}"
    )
    # Not shared: every check sends its own GET, as 50 runs watching 50 different objects do.
    max_age = plans.SHARED_READS.max_age
    plans.SHARED_READS.max_age = max_age if shared else 0.0
    try:
        return await _probe_run(seconds, scratch, shared)
    finally:
        plans.SHARED_READS.max_age = max_age


async def _probe_run(seconds: int, scratch: Path, shared: bool) -> list[Row]:
    users = {f"bench{i}": {"user": "admin"} for i in range(CONCURRENT)}
    experiment = scratch / "probe-overhead.yaml"
    experiment.write_text(
        "name: probe-overhead\n"
        "steady_state:\n"
        "  - {probe: healthy_replicas, deployment: jellyfin, namespace: media, expect: '>= 0'}\n"
        f"steps:\n  - wait: {seconds}s\n"
    )
    with contextlib.ExitStack() as stack:
        _, harness = await plugin_beside_sandbox(
            stack, scratch, "chaos", users=users, folder="probe-harness"
        )
        line = f"/chaos experiment run file:{experiment}"
        warm_file = scratch / "probe-warm-up.yaml"
        warm_file.write_text(experiment.read_text().replace(f"wait: {seconds}s", "wait: 1s"))
        warm = await harness.run(f"/chaos experiment run file:{warm_file}", user="bench0")
        if not warm.ok:
            raise RuntimeError(f"/chaos experiment run failed: {warm.text[:300]}")
        # The same process idling as long: what the event loop and kernel cost anyway.
        idle_cpu = time.process_time()
        await asyncio.sleep(seconds)
        idle_cpu = time.process_time() - idle_cpu
        cpu, wall = time.process_time(), time.perf_counter()
        running = asyncio.gather(*(harness.run(line, user=f"bench{i}") for i in range(CONCURRENT)))
        # The steady part: every experiment started (files read, records written) and none
        # ending (reports and charts drawn): the probes and the waits alone.
        await asyncio.sleep(3)
        steady_cpu, steady_wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds - 5)
        steady_cpu = time.process_time() - steady_cpu
        steady_wall = time.perf_counter() - steady_wall
        results = await running
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    failed = [r.text[:200] for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} experiments failed: {failed[0]}")
    checks = sum(len(r.reply.data["experiment"]["run"]["observations"]) for r in results)
    busy = max(steady_cpu - idle_cpu * steady_wall / seconds, 0.0)
    share = busy / steady_wall * 100
    per_check_ms = busy / (CONCURRENT * steady_wall) * 1000
    print(
        f"     {checks} probe checks in {wall:.1f} s, {cpu:.2f} s of CPU in all (starts and "
        f"reports with charts included: {cpu / wall * 100:.1f} % of a core)"
    )
    print(
        f"     steady {steady_wall:.1f} s: {steady_cpu:.2f} s of CPU (idle: {idle_cpu:.2f} s "
        f"per {seconds} s), {per_check_ms:.2f} ms per check"
    )
    verdict = met(share < PROBE_TARGET)
    print(f"     {share:.2f} % of one core (target < {PROBE_TARGET:g} %: {verdict})")
    return [
        (
            f"chaos: probes of {CONCURRENT} concurrent experiments, 1 s interval, "
            + ("same Deployment (reads shared)" if shared else "reads not shared"),
            f"{share:.2f} % of a core",
            f"{per_check_ms:.2f} ms per check",
            "-",
            f"< {PROBE_TARGET:g} % {met(share < PROBE_TARGET)}",
        )
    ]


def bench_chaos(quick: bool, scratch: Path) -> list[Row]:
    print("\n== Chaos: /chaos pod kill against kubectl delete; probe overhead")
    rows = asyncio.run(_kill_rows(3 if quick else 9, scratch))
    for shared in (True, False):
        probes = scratch / ("probes" if shared else "probes-unshared")
        probes.mkdir(exist_ok=True)
        rows += asyncio.run(_probe_rows(10 if quick else 30, probes, shared))
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ccbench-chaos"))
    began = time.perf_counter()
    try:
        for row in bench_chaos(args.quick, directory):
            print("  " + " | ".join(row))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"total {time.perf_counter() - began:.0f} s")
