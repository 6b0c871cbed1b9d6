"""Benchmarks of the templates plugin: deploying a stack, and validating the catalog.

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/templates.py [--reps N]

1. The largest catalog template deployed end to end into a sandbox (``/template deploy``
   through the kernel: requirements, ownership, server-side dry run, inventory, apply; no
   readiness waits) against ``kubectl apply --server-side -f`` of the same rendered
   manifests, interleaved in the same run. Target ratio ≤ 1.0.
2. Validating the whole catalog (schema, render with defaults, strict Kubernetes 1.30
   schemas, policy) in a fresh process, imports included (cold), and again in that process
   (warm: what a running bot pays on a submit), against kubernetes-validate's own
   ``validate()`` over the same objects. Target < 2 s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import Row, skipped  # benchmarks/measure.py

DEPLOY_TARGET = 1.0
CATALOG_TARGET = 2.0

_COLD_CATALOG = """
import time
start = time.perf_counter()
from clustercord_builtins.templates.catalog import curated
from clustercord_builtins.templates.validation import check_template
objects = sum(len(check_template(t).rendered.objects) for t in curated().values())
cold = time.perf_counter() - start
start = time.perf_counter()  # again in the same process: what a running bot pays
for t in curated().values():
    check_template(t)
print(cold, time.perf_counter() - start, objects)
"""
_LIBRARY_CATALOG = """
import time
from clustercord_builtins.templates.catalog import curated
from clustercord_builtins.templates.render import render_manifests
from clustercord_builtins.templates.variables import resolve
import kubernetes_validate
start = time.perf_counter()
for t in curated().values():
    values = resolve(t, {})
    for obj in render_manifests(t, values.values, release=t.name, namespace="v").objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
print(time.perf_counter() - start)
"""


def largest_template() -> str:
    from clustercord_builtins.templates.catalog import curated
    from clustercord_builtins.templates.validation import check_template

    sizes = {name: len(check_template(t).rendered.objects) for name, t in curated().items()}
    return max(sizes, key=lambda name: (sizes[name], name))


def rendered_yaml(kernel_plugin: Any, name: str, namespace: str) -> tuple[str, int]:
    """The manifests our deploy applies (labels and values Secret included), plus the
    Namespace, as one YAML stream for kubectl."""
    import yaml

    from clustercord_builtins.templates.catalog import Entry, curated
    from clustercord_builtins.templates.deployer import Deployer

    deployer = Deployer(kernel_plugin.context.kubernetes, "sandbox")
    plan = deployer.plan(Entry(curated()[name], "curated", "verified"), namespace, {})
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    return yaml.safe_dump_all([namespace_doc, *plan.objects], sort_keys=False), len(plan.objects)


def _kubectl(kubectl: str, kubeconfig: Path, manifest: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--server-side",
            "--field-manager",
            "bench",
            "-f",
            "-",
        ],
        input=manifest,
        text=True,
        capture_output=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"kubectl apply --server-side failed: {done.stderr.strip()[:300]}")
    return elapsed


async def _deploy_rows(reps: int, scratch: Path) -> list[Row]:
    from clustercord_sandbox.background import BackgroundSandbox
    from clustercord_testing.harness import KernelHarness, TestSigner

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return skipped("template deploy", "kubectl is not installed")
    box = BackgroundSandbox(fixture="homelab")
    server = box.start()
    # No controllers: pods of earlier rounds would be reconciled during later ones, and
    # both sides measure the API path (as benchmarks/cluster.py does).
    box.call(server.controllers.stop())
    server.controllers = None
    kubeconfig = box.write_kubeconfig(scratch / "templates-kubeconfig")
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    signer = TestSigner()
    harness = KernelHarness(scratch / "templates-harness", signer)
    try:
        harness.add_builtins(["templates"])
        await harness.start()
        plugin = harness.plugin("templates")
        if plugin.state != "enabled":
            raise RuntimeError(f"the templates plugin is {plugin.state}: {plugin.reason}")
        name = largest_template()
        ours, theirs = [], []
        objects = 0
        for rep in range(reps + 1):  # the first round warms both up and is not counted
            manifest, objects = rendered_yaml(plugin, name, f"bench-kubectl-{rep}")
            if rep % 2:  # alternate who goes first, so neither always meets a busier server
                their_time = await asyncio.to_thread(_kubectl, kubectl, kubeconfig, manifest)
            start = time.perf_counter()
            result = await harness.run(
                f"/template deploy template:{name} namespace:bench-ours-{rep} wait:false"
            )
            our_time = time.perf_counter() - start
            if not result.ok:
                raise RuntimeError(f"/template deploy failed: {result.text}")
            if not rep % 2:
                their_time = await asyncio.to_thread(_kubectl, kubectl, kubeconfig, manifest)
            if rep:
                ours.append(our_time)
                theirs.append(their_time)
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(
            f"  {name}: {objects} objects; /template deploy {_spread(ours)}, "
            f"kubectl apply --server-side {_spread(theirs)}, ratio {ratio:.2f}"
        )
        return [
            (
                f"template deploy ({name}, {objects} objects)",
                f"{statistics.median(ours) * 1000:.0f} ms",
                f"{statistics.median(theirs) * 1000:.0f} ms (kubectl apply --server-side)",
                f"{ratio:.2f}",
                f"≤ {DEPLOY_TARGET:.1f} {_verdict(ratio <= DEPLOY_TARGET)}",
            )
        ]
    finally:
        harness.close()
        signer.cleanup()
        box.stop()
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


def _verdict(met: bool) -> str:
    return "✅" if met else "❌"


def _spread(values: list[float]) -> str:
    low, high = min(values) * 1000, max(values) * 1000
    return f"median {statistics.median(values) * 1000:.0f} ms (min {low:.0f}, max {high:.0f})"


def _catalog_rows(reps: int) -> list[Row]:
    ours, warm, objects = [], [], "0"
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", _COLD_CATALOG], capture_output=True, text=True, check=True
        )
        seconds, again, objects = out.stdout.split()
        ours.append(float(seconds))
        warm.append(float(again))
    library = [
        float(
            subprocess.run(
                [sys.executable, "-c", _LIBRARY_CATALOG], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(max(1, reps // 2))
    ]
    median = statistics.median(ours)
    print(
        f"  catalog ({objects} objects), fresh process (imports included): {_spread(ours)}; "
        f"again in that process: {_spread(warm)}; "
        f"kubernetes-validate validate() alone: {_spread(library)}"
    )
    return [
        (
            f"validate the catalog ({objects} objects, cold)",
            f"{median * 1000:.0f} ms",
            f"{statistics.median(library) * 1000:.0f} ms (kubernetes_validate.validate)",
            f"{median / statistics.median(library):.2f}",
            f"< {CATALOG_TARGET:.0f} s {_verdict(median < CATALOG_TARGET)}",
        ),
        (
            f"validate the catalog ({objects} objects, warm)",
            f"{statistics.median(warm) * 1000:.0f} ms",
            "-",
            "-",
            f"< {CATALOG_TARGET:.0f} s {_verdict(statistics.median(warm) < CATALOG_TARGET)}",
        ),
    ]


def bench_templates(reps: int, scratch: Path) -> list[Row]:
    """Both benchmarks; rows of (name, measured, baseline, ratio, target) for the summary."""
    print("\n== Templates: deploy the largest template; validate the catalog ==")
    rows = asyncio.run(_deploy_rows(reps, scratch))
    rows += _catalog_rows(reps)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ccbench-templates"))
    try:
        for row in bench_templates(args.reps, directory):
            print("  " + " | ".join(row))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
