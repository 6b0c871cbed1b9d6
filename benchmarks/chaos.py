"""Benchmarks of the chaos plugin against the sandbox (served from a process of its own).

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/chaos.py [--quick]

1. ``/chaos kill-pod`` to pod deleted (the invocation's start to the moment the experiment's
   timeline says the pod was deleted: options, target read, policy, SubjectAccessReviews, the
   record written, the DELETE) against ``kubectl delete pod --wait=false``, interleaved, each
   round on a fresh pod of the same Deployment; target ratio ≤ 1.0. The rest of the command
   (waiting for the replacement to be Ready) is reported apart, not timed against kubectl.
2. Probe overhead: 50 experiment files run at once, each a steady-state probe (the ready
   replicas of a Deployment, read from the sandbox) checked every second through a wait. The
   bot's own CPU time (this process; the sandbox runs in its own) over the run, less the same
   process idling for as long, as a share of one core; target < 5 %. Measured three times:
   the 50 runs watching the same Deployment (they share one GET per 0.25 s:
   ``shared_reads``); watching 50 different Deployments of one namespace with each check its
   own GET (list sharing off: the plugin before it shared LISTs, and the cost of 50 objects in
   50 namespaces); and the same 50 Deployments as the plugin reads them, one LIST of the
   namespace per 0.25 s serving every run.
3. Steady-state violation to every fault removed: an experiment file holds a pod on the pause
   image (pod-failure) through a 60 s wait while an HTTP probe of a local endpoint checks the
   steady state; the endpoint then answers 503, and the time from that moment to the pod back
   on its own images, as kubectl sees it, is measured; p50 and p99 of 20 rounds (5 with
   ``--quick``); target p99 ≤ 2 s (Chaos Mesh's default status check interval alone is 10 s).
4. Restart after a crash to 0 leftovers: a bot (a kernel with the chaos plugin, in a process
   of its own) is killed with SIGKILL in the middle of a pod-failure (the pod already on the
   pause image, the record not yet saying so); a new bot process on the same data directory
   is started and the time from its spawn (interpreter, imports and kernel start included) to
   no chaos mark left in the cluster (kubectl) is measured;
   median and max of 5 rounds (3 with ``--quick``); target ≤ 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from measure import Row, median, met, percentile, skipped, spread  # benchmarks/measure.py
from terminal import _first_pod, _kubectl, plugin_beside_sandbox

KILL_TARGET = 1.0
PROBE_TARGET = 5.0
"""Per cent of one core for the probes of 50 concurrent experiments."""
CONCURRENT = 50
ROLLBACK_TARGET = 2.0
"""Seconds, p99: steady-state violation to every fault removed."""
RESTART_TARGET = 5.0
"""Seconds: a restart after a crash to 0 leftovers."""
PAUSE = "registry.k8s.io/pause:3.10"


async def _kill_rows(reps: int, scratch: Path) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return skipped("chaos: /chaos kill-pod", "kubectl is not installed")
    print(
        f"  1. /chaos kill-pod to pod deleted against kubectl delete pod --wait=false, "
        f"{reps} rounds after a warm-up, interleaved"
    )
    with contextlib.ExitStack() as stack:
        box, harness = await plugin_beside_sandbox(stack, scratch, "chaos")

        async def ours() -> tuple[float, float]:
            pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
            wall, start = time.time(), time.perf_counter()
            result = await harness.run(f"/chaos kill-pod pod:{pod} namespace:media", user="bench")
            whole = time.perf_counter() - start
            if not result.ok:
                raise RuntimeError(f"/chaos kill-pod failed: {result.text[:300]}")
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
    print(f"     /chaos kill-pod to deleted  {spread(our_ms, 'ms', 0)}")
    print(f"     kubectl delete --wait=false {spread(their_ms, 'ms', 0)}")
    print(f"     the whole command, with the replacement Ready: {spread(whole_ms, 'ms', 0)}")
    print(f"     ratio {ratio:.2f} (target ≤ {KILL_TARGET:g}: {met(ratio <= KILL_TARGET)})")
    return [
        (
            "chaos: /chaos kill-pod to pod deleted",
            f"{median(our_ms):.0f} ms",
            f"{median(their_ms):.0f} ms (kubectl delete)",
            f"{ratio:.2f}",
            f"≤ {KILL_TARGET:g} {met(ratio <= KILL_TARGET)}",
        )
    ]


MODES = {
    "shared": "the same Deployment (reads shared)",
    "gets": "50 different Deployments, each its own GET (list sharing off)",
    "lists": "50 different Deployments of one namespace (one LIST per 0.25 s)",
}
"""The probe-overhead cases: what the 50 runs watch, and how the plugin reads it."""


async def _probe_rows(seconds: int, scratch: Path, mode: str = "shared") -> list[Row]:
    from clustercord_builtins.chaos import plans

    print(
        f"  2. probe overhead: {CONCURRENT} experiments at once, a steady-state probe each "
        f"checked every second for {seconds} s, watching {MODES[mode]}"
    )
    list_from = plans.SHARED_READS.list_from
    plans.SHARED_READS.list_from = None if mode == "gets" else list_from
    try:
        return await _probe_run(seconds, scratch, mode)
    finally:
        plans.SHARED_READS.list_from = list_from


def _deployments(count: int) -> str:
    """``count`` Deployments of no replicas in namespace media: objects to watch, no pods."""
    return "".join(
        f"---\napiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: probe-{i}, namespace: media}}\n"
        f"spec: {{replicas: 0, selector: {{matchLabels: {{app: probe-{i}}}}}, template: "
        f"{{metadata: {{labels: {{app: probe-{i}}}}}, spec: {{containers: "
        f"[{{name: c, image: registry.k8s.io/pause:3.10}}]}}}}}}\n"
        for i in range(count)
    )


async def _probe_run(seconds: int, scratch: Path, mode: str) -> list[Row]:
    users = {f"bench{i}": {"user": "admin"} for i in range(CONCURRENT)}

    def experiment(deployment: str, wait: int, name: str) -> Path:
        path = scratch / name
        path.write_text(
            "name: probe-overhead\n"
            "steady_state:\n"
            f"  - {{probe: healthy_replicas, deployment: {deployment}, namespace: media, "
            "expect: '>= 0'}\n"
            f"steps:\n  - wait: {wait}s\n"
        )
        return path

    watched = [
        "jellyfin" if mode == "shared" else f"probe-{i}" for i in range(CONCURRENT)
    ]  # fmt: skip
    files = [experiment(d, seconds, f"probe-{i}.yaml") for i, d in enumerate(watched)]
    with contextlib.ExitStack() as stack:
        box, harness = await plugin_beside_sandbox(
            stack, scratch, "chaos", users=users, folder="probe-harness"
        )
        if mode != "shared":
            kubectl = shutil.which("kubectl")
            if kubectl is None:
                return skipped(f"chaos: probes, {MODES[mode]}", "kubectl is not installed")
            objects = scratch / "deployments.yaml"
            objects.write_text(_deployments(CONCURRENT))
            await asyncio.to_thread(_kubectl, kubectl, box.kubeconfig, "apply", "-f", str(objects))
        warm_file = experiment(watched[0], 1, "probe-warm-up.yaml")
        warm = await harness.run(f"/chaos run-experiment file:{warm_file}", user="bench0")
        if not warm.ok:
            raise RuntimeError(f"/chaos run-experiment failed: {warm.text[:300]}")
        # The same process idling as long: what the event loop and kernel cost anyway.
        idle_cpu = time.process_time()
        await asyncio.sleep(seconds)
        idle_cpu = time.process_time() - idle_cpu
        from clustercord_builtins.chaos import plans

        calls = plans.SHARED_READS.calls
        cpu, wall = time.process_time(), time.perf_counter()
        running = asyncio.gather(
            *(
                harness.run(f"/chaos run-experiment file:{f}", user=f"bench{i}")
                for i, f in enumerate(files)
            )
        )
        # The steady part: every experiment started (files read, records written) and none
        # ending (reports and charts drawn): the probes and the waits alone.
        await asyncio.sleep(3)
        steady_cpu, steady_wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds - 5)
        steady_cpu = time.process_time() - steady_cpu
        steady_wall = time.perf_counter() - steady_wall
        results = await running
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        calls = plans.SHARED_READS.calls - calls
    failed = [r.text[:200] for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} experiments failed: {failed[0]}")
    checks = sum(len(r.reply.data["experiment"]["run"]["observations"]) for r in results)
    busy = max(steady_cpu - idle_cpu * steady_wall / seconds, 0.0)
    share = busy / steady_wall * 100
    per_check_ms = busy / (CONCURRENT * steady_wall) * 1000
    print(
        f"     {checks} probe checks in {wall:.1f} s, {cpu:.2f} s of CPU in all (starts and "
        f"reports with charts included: {cpu / wall * 100:.1f} % of a core); "
        f"{calls} API reads during the runs' waits"
    )
    print(
        f"     steady {steady_wall:.1f} s: {steady_cpu:.2f} s of CPU (idle: {idle_cpu:.2f} s "
        f"per {seconds} s), {per_check_ms:.2f} ms per check"
    )
    verdict = met(share < PROBE_TARGET)
    print(f"     {share:.2f} % of one core (target < {PROBE_TARGET:g} %: {verdict})")
    return [
        (
            f"chaos: probes of {CONCURRENT} concurrent experiments, 1 s interval, {MODES[mode]}",
            f"{share:.2f} % of a core",
            f"{per_check_ms:.2f} ms per check",
            "-",
            f"< {PROBE_TARGET:g} % {met(share < PROBE_TARGET)}",
        )
    ]


def _images(kubectl: str, kubeconfig: Path, pod: str) -> set[str]:
    out = _kubectl(kubectl, kubeconfig, "get", "pod", pod, "-n", "media", "-o", "json")
    return {c["image"] for c in json.loads(out)["spec"]["containers"]}


class _Health:
    """A local HTTP endpoint whose status the benchmark sets (200 until told otherwise)."""

    def __init__(self) -> None:
        self.status = 200
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(health.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"


async def _rollback_rows(rounds: int, scratch: Path) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return skipped("chaos: violation to faults removed", "kubectl is not installed")
    print(
        f"  3. steady-state violation to every fault removed: {rounds} rounds of a pod-failure "
        "held through a 60 s wait, the HTTP steady state broken mid-wait"
    )
    health = _Health()
    removed: list[float] = []
    with contextlib.ExitStack() as stack:
        stack.callback(health.server.shutdown)
        box, harness = await plugin_beside_sandbox(stack, scratch, "chaos", folder="rollback")
        for round_ in range(rounds):
            pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
            own = await asyncio.to_thread(_images, kubectl, box.kubeconfig, pod)
            path = scratch / f"rollback-{round_}.yaml"
            path.write_text(
                "name: health holds under pod failure\n"
                f"steady_state:\n  - {{probe: http, url: '{health.url}', expect: '== 200'}}\n"
                f"steps:\n  - {{fault: pod-failure, pod: {pod}, namespace: media, duration: 5m}}\n"
                "  - wait: 60s\n"
            )
            health.status = 200
            run = asyncio.ensure_future(
                harness.run(f"/chaos run-experiment file:{path}", user="bench")
            )
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(_images, kubectl, box.kubeconfig, pod) != {PAUSE}:
                if run.done() or time.monotonic() > deadline:
                    raise RuntimeError(f"the fault never came: {(await run).text[:300]}")
            await asyncio.sleep(0.5)  # into the wait, the steady state checked every second
            health.status = 503
            broke = time.monotonic()
            while await asyncio.to_thread(_images, kubectl, box.kubeconfig, pod) != own:
                if time.monotonic() - broke > 30:
                    raise RuntimeError("the fault was not removed within 30 s")
            removed.append(time.monotonic() - broke)
            result = await asyncio.wait_for(run, 60)
            experiment = result.reply.data["experiment"]
            if experiment["status"] != "fail" or not experiment["run"]["auto_rollback"]:
                raise RuntimeError(f"not an automatic rollback: {result.text[:300]}")
    p50, p99 = median(removed), percentile(removed, 99)
    print(f"     violation to the pod back on its images: {spread(removed, 's', 2)}")
    print(f"     p99 {p99:.2f} s (target ≤ {ROLLBACK_TARGET:g} s: {met(p99 <= ROLLBACK_TARGET)})")
    return [
        (
            "chaos: steady-state violation to every fault removed (kubectl sees)",
            f"p50 {p50:.2f} s, p99 {p99:.2f} s",
            "10 s (Chaos Mesh's status check interval)",
            "-",
            f"p99 ≤ {ROLLBACK_TARGET:g} s {met(p99 <= ROLLBACK_TARGET)}",
        )
    ]


BOT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from clustercord_testing.harness import KernelHarness, TestSigner
    from clustercord_builtins.chaos import faults

    data_dir, line = Path(sys.argv[1]), sys.argv[2]
    swap = faults.swap_images

    async def swap_then_hang(*args, **kwargs):  # the pod changed, the record not yet
        await swap(*args, **kwargs)
        print("swapped", flush=True)
        await asyncio.sleep(3600)

    faults.swap_images = swap_then_hang

    async def main():
        harness = KernelHarness(
            data_dir, TestSigner(), identity={"users": {"bench": {"user": "admin"}}}
        )
        harness.add_builtins(["chaos"])
        await harness.start()  # the restarted bot's reconciliation runs here
        if line == "-":
            print("started", flush=True)
            await asyncio.sleep(3600)
        result = await harness.run(line, user="bench")
        print("returned", result.text, flush=True)

    asyncio.run(main())
""")
"""A bot in a process of its own on ``argv[1]``: it runs ``argv[2]`` and hangs (to be killed)
once a pod-failure has swapped the pod's images; with ``-``, it starts and waits."""


def _bot(data_dir: Path, line: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BOT, str(data_dir), line],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _restart_rows(rounds: int, scratch: Path) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return skipped("chaos: restart to 0 leftovers", "kubectl is not installed")
    print(
        f"  4. restart after a crash to 0 leftovers: {rounds} bots killed with SIGKILL "
        "mid pod-failure, each followed by a new bot process on the same data directory"
    )
    elapsed: list[float] = []
    with contextlib.ExitStack() as stack:
        box, first = await plugin_beside_sandbox(stack, scratch, "chaos", folder="restart-0")
        first.close()  # only the sandbox is wanted: each round has a data directory of its own

        def marked() -> str:
            args = ("get", "pods", "-A", "-l", "chaos.clustercord.io/experiment", "-o", "name")
            return _kubectl(kubectl, box.kubeconfig, *args).strip()

        for round_ in range(rounds):
            data_dir = scratch / f"restart-{round_ + 1}"
            pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
            crashing = _bot(data_dir, f"/chaos pod-failure pod:{pod} namespace:media duration:30m")
            assert crashing.stdout is not None
            said = await asyncio.to_thread(crashing.stdout.readline)
            crashing.send_signal(signal.SIGKILL)
            crashing.wait()
            if said.strip() != "swapped" or not await asyncio.to_thread(marked):
                raise RuntimeError(f"the bot did not crash mid-fault: {said.strip()[:300]}")
            # The restart as a user has it: a new process (interpreter, imports, kernel start).
            start = time.monotonic()
            restarted = _bot(data_dir, "-")
            try:
                while await asyncio.to_thread(marked):
                    if time.monotonic() - start > 60:
                        raise RuntimeError("leftovers still marked 60 s after the restart")
                    await asyncio.sleep(0.05)
                elapsed.append(time.monotonic() - start)
            finally:
                restarted.kill()
                restarted.wait()
    worst = max(elapsed)
    print(f"     restart to 0 leftovers: {spread(elapsed, 's', 2)}")
    print(
        f"     worst {worst:.2f} s (target ≤ {RESTART_TARGET:g} s: {met(worst <= RESTART_TARGET)})"
    )
    return [
        (
            "chaos: restart after a kill -9 mid-fault to 0 leftovers (kubectl sees)",
            f"median {median(elapsed):.2f} s, max {worst:.2f} s",
            "-",
            "-",
            f"≤ {RESTART_TARGET:g} s {met(worst <= RESTART_TARGET)}",
        )
    ]


def bench_chaos(quick: bool, scratch: Path) -> list[Row]:
    print(
        "\n== Chaos: /chaos kill-pod against kubectl delete; probe overhead; violation to "
        "rollback; restart to 0 leftovers"
    )
    rows = asyncio.run(_kill_rows(3 if quick else 9, scratch))
    for mode in MODES:
        probes = scratch / f"probes-{mode}"
        probes.mkdir(exist_ok=True)
        rows += asyncio.run(_probe_rows(10 if quick else 30, probes, mode))
    rows += asyncio.run(_rollback_rows(5 if quick else 20, scratch))
    rows += asyncio.run(_restart_rows(3 if quick else 5, scratch))
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
