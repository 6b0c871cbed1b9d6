"""The isolated tier: a command served by a plugin in its own process, against the same
command served in-process, in the same run (issue 14's targets).

One kernel, two copies of one plugin: ``near`` in-process, ``far`` isolated. Each has
``/…-kube`` (one Kubernetes list through the kernel, as the plugin's ServiceAccount, against
a sandbox), ``/…-echo`` (a store read and write, no cluster) and ``/…-crash``. Calls are
interleaved so the machine's noise hits both alike. Also: the resident memory of the
isolated plugin's process, and the time from a crashing call to the plugin serving again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import Row, median, met, percentile

P50_ADDED_TARGET_MS = 2.0
P99_RATIO_TARGET = 1.5
RSS_TARGET_MB = 60.0
RESTART_TARGET_S = 2.0

COMMANDS = """
import os


async def kube(ctx):
    pods = await ctx.kubernetes.list("pods", namespace="default")
    return f"{len(pods)} pods"


def echo(ctx):
    count = ctx.store.get("count", 0) + 1
    ctx.store.set("count", count)
    return f"echo {count}"


def crash(ctx):
    os._exit(1)
"""


def write_plugin(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    manifest = {
        "name": name,
        "version": "0.1.0",
        "api": ">=1.0,<2",
        "description": "Benchmark plugin: one Kubernetes call, a store round trip, a crash",
        "permissions": ["pods:read"],
        "commands": [
            {"name": f"{name}-{c}", "description": c, "handler": f"commands:{c}"}
            for c in ("kube", "echo", "crash")
        ],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
    (folder / "__init__.py").write_text("", "utf-8")
    (folder / "commands.py").write_text(COMMANDS, "utf-8")
    return folder


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _timed(harness: Any, line: str, expect: str) -> float:
    start = time.perf_counter()
    result = await harness.run(line)
    elapsed = (time.perf_counter() - start) * 1000
    if not result.ok or not result.text.startswith(expect):
        raise RuntimeError(f"{line} answered {result.status}: {result.text}")
    return elapsed


async def _measure(quick: bool, scratch: Path) -> list[Row]:
    from clustercord_testing.harness import KernelHarness, TestSigner
    from clustercord_testing.sandbox import running_sandbox

    calls = 300 if quick else 1_000
    restarts = 5 if quick else 15
    signer = TestSigner()
    sandbox_dir = Path(tempfile.mkdtemp(prefix="iso-sandbox", dir=scratch))
    with running_sandbox("empty", sandbox_dir):
        harness = KernelHarness(scratch / "isolation-data", signer)
        try:
            harness.add_plugin(write_plugin(scratch / "isolation-plugins", "near"))
            harness.add_plugin(write_plugin(scratch / "isolation-plugins", "far"), isolated=True)
            kernel = await harness.start()
            for name in ("near", "far"):
                await kernel.manager.approve(name, by="bench")
            await kernel.kubernetes.plugin_identities.settle()
            if kernel.isolation.process("far") is None:
                raise RuntimeError(f"far is not isolated: {harness.plugin('far').reason}")

            samples: dict[str, list[float]] = {k: [] for k in ("near", "far", "near-e", "far-e")}
            for _ in range(20):  # warm-up: connections, tokens, caches
                for name in ("near", "far"):
                    await _timed(harness, f"/{name}-kube", "0 pods")
                    await _timed(harness, f"/{name}-echo", "echo")
            for _ in range(calls):
                samples["near"].append(await _timed(harness, "/near-kube", "0 pods"))
                samples["far"].append(await _timed(harness, "/far-kube", "0 pods"))
                samples["near-e"].append(await _timed(harness, "/near-echo", "echo"))
                samples["far-e"].append(await _timed(harness, "/far-echo", "echo"))
            process = kernel.isolation.process("far")
            # Every process of the plugin: its Python and, when wrapped, bwrap's two.
            resident = sorted(rss_mb(pid) for pid in process.processes())
            memory = sum(resident)
            wrapper = kernel.isolation.status()["view"]

            back: list[float] = []
            # Each crash is logged with its traceback by the guard: not what this measures.
            quiet = logging.getLogger("clustercord")
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)
            try:
                for _ in range(restarts):
                    start = time.perf_counter()
                    crashed = await harness.run("/far-crash")
                    if crashed.ok:
                        raise RuntimeError("/far-crash did not fail")
                    await _timed(harness, "/far-echo", "echo")  # restarts the process
                    back.append(time.perf_counter() - start)
            finally:
                quiet.setLevel(level)
        finally:
            harness.close()
            signer.cleanup()

    def p(key: str, q: float) -> float:
        return percentile(samples[key], q)

    added = p("far", 50) - p("near", 50)
    ratio = p("far", 99) / p("near", 99)
    added_echo = p("far-e", 50) - p("near-e", 50)
    print(
        f"  one Kubernetes list, in-process  p50 {p('near', 50):7.3f} ms  p99 {p('near', 99):7.3f}"
    )
    print(f"  one Kubernetes list, isolated    p50 {p('far', 50):7.3f} ms  p99 {p('far', 99):7.3f}")
    print(
        f"  added at p50 {added:.3f} ms (target ≤ {P50_ADDED_TARGET_MS:g}: "
        f"{met(added <= P50_ADDED_TARGET_MS)}); p99 ratio {ratio:.2f} "
        f"(target ≤ {P99_RATIO_TARGET:g}: {met(ratio <= P99_RATIO_TARGET)})"
    )
    print(
        f"  store round trip, in-process p50 {p('near-e', 50):.3f} ms, isolated "
        f"{p('far-e', 50):.3f} ms (added {added_echo:.3f} ms; 2 requests to the kernel)"
    )
    print(f"  wrapper: {wrapper}")
    print(
        f"  isolated plugin RSS {memory:.1f} MB, all its processes "
        f"({' + '.join(f'{r:.1f}' for r in reversed(resident))}) "
        f"(target < {RSS_TARGET_MB:g}: {met(memory < RSS_TARGET_MB)})"
    )
    print(
        f"  crash to serving again: median {median(back):.3f} s, max {max(back):.3f} s over "
        f"{len(back)} (target ≤ {RESTART_TARGET_S:g}: {met(max(back) <= RESTART_TARGET_S)})"
    )
    return [
        (
            "isolated command (1 k8s call)",
            f"p50 {p('far', 50):.2f} / p99 {p('far', 99):.2f} ms",
            f"p50 {p('near', 50):.2f} / p99 {p('near', 99):.2f} ms (in-process)",
            f"+{added:.2f} ms, p99 {ratio:.2f}",
            f"≤ +{P50_ADDED_TARGET_MS:g} ms {met(added <= P50_ADDED_TARGET_MS)}, "
            f"≤ {P99_RATIO_TARGET:g} {met(ratio <= P99_RATIO_TARGET)}",
        ),
        (
            "isolated plugin RSS",
            f"{memory:.1f} MB",
            "-",
            "-",
            f"< {RSS_TARGET_MB:g} MB {met(memory < RSS_TARGET_MB)}",
        ),
        (
            "isolated crash → serving",
            f"{median(back):.2f} s (max {max(back):.2f})",
            "-",
            "-",
            f"≤ {RESTART_TARGET_S:g} s {met(max(back) <= RESTART_TARGET_S)}",
        ),
    ]


def run(quick: bool, scratch: Path) -> list[Row]:
    """Prints its section; returns summary rows."""
    print("\n== Isolated plugins: a process of their own against in-process", flush=True)
    return asyncio.run(_measure(quick, scratch))


if __name__ == "__main__":
    import sys

    with tempfile.TemporaryDirectory(prefix="ccbench") as directory:
        for row in run("--quick" in sys.argv, Path(directory)):
            print("  " + " | ".join(row))
