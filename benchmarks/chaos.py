"""Benchmarks of the chaos plugin against the sandbox (served from a process of its own).

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/chaos.py [--quick]

1. ``/chaos kill-pod`` to pod deleted (the invocation's start to the moment the experiment's
   timeline says the pod was deleted: options, target read, policy, SubjectAccessReviews, the
   record written, the DELETE) against ``kubectl delete pod --wait=false``, interleaved, each
   round on a fresh pod of the same Deployment; target ratio ≤ 1.0. The rest of the command
   (waiting for the replacement to be Ready) is reported apart, not timed against kubectl.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from measure import median, met, spread  # benchmarks/measure.py
from terminal import SandboxProcess, _first_pod, _kubectl  # benchmarks/terminal.py

KILL_TARGET = 1.0
Row = tuple[str, str, str, str, str]


async def _kill_rows(reps: int, scratch: Path) -> list[Row]:
    from clustercord_testing.harness import KernelHarness, TestSigner

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return [("chaos: /chaos kill-pod", "skipped: kubectl is not installed", "-", "-", "-")]
    print(
        f"  1. /chaos kill-pod to pod deleted against kubectl delete pod --wait=false, "
        f"{reps} rounds after a warm-up, interleaved"
    )
    with contextlib.ExitStack() as stack:
        box = SandboxProcess(scratch)
        stack.callback(box.stop)
        stack.enter_context(mock.patch.dict(os.environ, {"KUBECONFIG": str(box.kubeconfig)}))
        signer = TestSigner()
        stack.callback(signer.cleanup)
        harness = KernelHarness(
            scratch / "chaos-harness", signer, identity={"users": {"bench": {"user": "admin"}}}
        )
        stack.callback(harness.close)
        harness.add_builtins(["chaos"])
        await harness.start()
        plugin = harness.plugin("chaos")
        if plugin.state != "enabled":
            raise RuntimeError(f"the chaos plugin is {plugin.state}: {plugin.reason}")

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


def bench_chaos(quick: bool, scratch: Path) -> list[Row]:
    print("\n== Chaos: /chaos kill-pod against kubectl delete")
    return asyncio.run(_kill_rows(3 if quick else 9, scratch))


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
