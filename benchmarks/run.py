"""ClusterCord benchmarks: cold start, guarded hook dispatch, console invocations.

Run from the repository root::

    python benchmarks/run.py            # the full run (about 2 minutes)
    python benchmarks/run.py --quick    # fewer repetitions (about 30 s)

Every figure is compared with a baseline measured in the same run, interleaved
with it, and summarised by medians, because the machine is shared and noisy.
A missed target is reported, not fatal: the exit status is non-zero only when a
benchmark cannot run (a crash, or a command that does not do what it should).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chaos as chaos_bench  # benchmarks/chaos.py, beside this file
import cluster  # benchmarks/cluster.py
import discord as discord_bench  # benchmarks/discord.py
import isolation  # benchmarks/isolation.py
import operations  # benchmarks/operations.py
import rbac  # benchmarks/rbac.py
import sso  # benchmarks/sso.py
import templates  # benchmarks/templates.py
import terminal  # benchmarks/terminal.py
from measure import median, met, percentile, spread  # benchmarks/measure.py

import marketplace  # benchmarks/marketplace.py

CLI = Path(sys.executable).parent / "clustercord"
BASELINE_IMPORTS = "import hikari, kubernetes, pluggy, sqlite_utils"
EVENT_TYPE = "pod:start"
HOOK_PLUGINS = 10

COLD_START_TARGET = 1.5
DISPATCH_TARGET = 3.0


@dataclass
class Profile:
    cold_runs: int  # timed runs of each process, after one warm-up run each
    dispatch_reps: int  # timed batches of each dispatcher, interleaved
    dispatch_calls: int  # calls per batch
    invocations: int  # console invocations, each timed
    warmup_invocations: int


FULL = Profile(
    cold_runs=15, dispatch_reps=15, dispatch_calls=10_000, invocations=1_000, warmup_invocations=50
)
QUICK = Profile(
    cold_runs=4, dispatch_reps=5, dispatch_calls=10_000, invocations=1_000, warmup_invocations=20
)


@dataclass
class Row:
    """One line of the summary table."""

    name: str
    measured: str
    baseline: str
    ratio: str = "-"
    target: str = "-"


# -- helpers ----------------------------------------------------------------------------
def verdict(ratio: float, target: float) -> str:
    return f"ratio {ratio:.2f} (target ≤ {target:g}: {met(ratio <= target)})"


def header(title: str) -> None:
    print(f"\n== {title}", flush=True)


def write_hook_plugins(root: Path, count: int = HOOK_PLUGINS) -> list[Path]:
    """``count`` plugin folders, each subscribed to ``pod:start`` with a no-op ``on_event``."""
    folders = []
    for index in range(count):
        folder = root / f"bench-hook-{index}"
        folder.mkdir(parents=True)
        manifest = {
            "name": f"bench-hook-{index}",
            "version": "0.1.0",
            "api": ">=1.0,<2",
            "description": "Benchmark plugin: a no-op on_event subscriber",
            "hooks": [{"event": EVENT_TYPE}],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        (folder / "__init__.py").write_text(
            "from clustercord_sdk import hookimpl\n\n\n"
            "@hookimpl\n"
            "def on_event(event, ctx):\n"
            "    return None\n",
            "utf-8",
        )
        folders.append(folder)
    return folders


def builtin_names() -> list[str]:
    import clustercord_builtins

    root = Path(clustercord_builtins.__file__).parent
    return sorted(json.loads(m.read_text("utf-8"))["name"] for m in root.glob("*/manifest.json"))


# -- 1. cold start ----------------------------------------------------------------------
def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return (time.perf_counter() - start) * 1000, done


def _check_plugin_list(done: subprocess.CompletedProcess[str], names: list[str]) -> None:
    missing = [name for name in names if name not in done.stdout]
    if done.returncode != 0 or missing:
        raise RuntimeError(
            f'`clustercord run "/plugin list"` exited {done.returncode}'
            f"{'; missing plugins: ' + ', '.join(missing) if missing else ''}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


def bench_cold_start(profile: Profile, scratch: Path) -> list[Row]:
    from clustercord.signing import TrustStore
    from clustercord_testing.harness import TestSigner
    from clustercord_testing.site import signed_builtins_site

    header(f"1. Cold start: a fresh process, {profile.cold_runs} runs each, interleaved")
    if not CLI.exists():
        raise RuntimeError(f"no clustercord console script next to the interpreter: {CLI}")
    names = builtin_names()
    data_dir = scratch / "cold-start-data"
    data_dir.mkdir()
    env = {**os.environ, "CLUSTERCORD_DATA_DIR": str(data_dir)}
    kernel_cmd = [str(CLI), "run", "/plugin list"]
    base_cmd = [sys.executable, "-c", BASELINE_IMPORTS]
    # A signed private copy of the builtins, first on the path: the working tree's own
    # signatures are left alone.
    signer = TestSigner()
    try:
        signed_builtins_site(scratch / "site", signer)
        env["PYTHONPATH"] = str(scratch / "site")
        TrustStore(data_dir / "trust").trust(signer.public_key, label="bench", kind="release")
        _check_plugin_list(_timed(kernel_cmd, env)[1], names)  # warm-up
        _timed(base_cmd, env)
        kernel_ms, base_ms = [], []
        for _ in range(profile.cold_runs):
            elapsed, done = _timed(kernel_cmd, env)
            _check_plugin_list(done, names)
            kernel_ms.append(elapsed)
            elapsed, done = _timed(base_cmd, env)
            if done.returncode != 0:
                raise RuntimeError(f"baseline imports failed:\n{done.stderr}")
            base_ms.append(elapsed)
    finally:
        signer.cleanup()
    ratio = median(kernel_ms) / median(base_ms)
    print(f'  clustercord run "/plugin list"   {spread(kernel_ms, "ms")}')
    print(f'  python -c "{BASELINE_IMPORTS}"')
    print(f"                                   {spread(base_ms, 'ms')}")
    print(f"  {verdict(ratio, COLD_START_TARGET)}")
    return [
        Row(
            "cold start: /plugin list",
            f"{median(kernel_ms):.0f} ms",
            f"{median(base_ms):.0f} ms (imports)",
            f"{ratio:.2f}",
            _target(ratio, COLD_START_TARGET),
        )
    ]


def _target(ratio: float, target: float) -> str:
    return f"≤ {target:g} {met(ratio <= target)}"


# -- 2. guarded hook dispatch -------------------------------------------------------------
def bare_pluggy(count: int = HOOK_PLUGINS) -> Any:
    import pluggy

    spec = pluggy.HookspecMarker("bench")
    impl = pluggy.HookimplMarker("bench")

    class Spec:
        @spec
        def on_event(self, event: Any, ctx: Any) -> None:
            """The hook under test."""

    class Subscriber:
        @impl
        def on_event(self, event: Any, ctx: Any) -> None:
            return None

    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    for index in range(count):
        pm.register(Subscriber(), name=f"bench-{index}")
    return pm


def _time_loop(function: Any, calls: int) -> float:
    """Microseconds per call of ``function()``, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def bench_hook_dispatch(profile: Profile, kernel: Any) -> list[Row]:
    from clustercord_sdk import Event

    header(
        f"2. Guarded hook dispatch: {HOOK_PLUGINS} subscribers, "
        f"{profile.dispatch_reps} x {profile.dispatch_calls:,} calls each, interleaved"
    )
    event = Event(type=EVENT_TYPE, namespace="default", name="p")
    delivered = kernel.events.publish_sync(event)
    if delivered != HOOK_PLUGINS:
        raise RuntimeError(f"publish_sync delivered to {delivered} plugins, not {HOOK_PLUGINS}")
    pm = bare_pluggy()
    if len(pm.hook.on_event.get_hookimpls()) != HOOK_PLUGINS:
        raise RuntimeError("the bare pluggy baseline is not set up as expected")

    def publish() -> None:
        kernel.events.publish_sync(event)

    def pluggy_call() -> None:
        pm.hook.on_event(event=event, ctx=None)

    _time_loop(publish, 1_000)  # warm-up
    _time_loop(pluggy_call, 1_000)
    guarded, bare = [], []
    for _ in range(profile.dispatch_reps):
        guarded.append(_time_loop(publish, profile.dispatch_calls))
        bare.append(_time_loop(pluggy_call, profile.dispatch_calls))
    if kernel.events.publish_sync(event) != HOOK_PLUGINS:
        raise RuntimeError("a subscriber was lost during the benchmark")
    # Each guarded batch runs right before its pluggy batch, so the two share the
    # machine's state at that moment: the median of the batch ratios is steadier
    # than the ratio of the two medians (both are printed).
    paired = [g / b for g, b in zip(guarded, bare, strict=True)]
    ratio = median(paired)
    per_plugin = median(guarded) / HOOK_PLUGINS
    print(
        f"  kernel.events.publish_sync     {spread(guarded, 'µs/call', 2)}"
        f"  [{per_plugin:.2f} µs per plugin]"
    )
    print(
        f"  pluggy pm.hook.on_event        {spread(bare, 'µs/call', 2)}"
        f"  [{median(bare) / HOOK_PLUGINS:.2f} µs per plugin]"
    )
    print(f"  {verdict(ratio, DISPATCH_TARGET)}, the median of the per-batch ratios")
    print(f"  per-batch ratios: {spread(paired, 'x', 2)}")
    print(f"  ratio of the medians: {median(guarded) / median(bare):.2f}")
    return [
        Row(
            f"hook dispatch ({HOOK_PLUGINS} plugins)",
            f"{median(guarded):.2f} µs/call",
            f"{median(bare):.2f} µs/call (pluggy)",
            f"{ratio:.2f}",
            _target(ratio, DISPATCH_TARGET),
        )
    ]


# -- 3. console invocations ---------------------------------------------------------------
async def bench_invocations(profile: Profile, kernel: Any) -> list[Row]:
    from clustercord_sdk.context import CommandContext, Invocation
    from clustercord_sdk.options import parse_options
    from clustercord_sdk.reply import Confirmation, Reply

    line = "/help command:help"
    header(
        f"3. Console invocations: `{line}` through the dispatcher, {profile.invocations:,} times"
    )

    async def send(reply: Reply) -> None:
        return None

    async def ask(confirmation: Confirmation) -> bool:
        return True

    invocation = Invocation(user_id="bench", command=("help",), options={"command": "help"})
    plugin, command = kernel.dispatcher.resolve(invocation.command)
    handler = plugin.handlers[command.path]
    ctx = CommandContext(
        invocation=invocation,
        options=parse_options(list(command.options), invocation.options),
        plugin=plugin.context,
        _send=send,
        _ask=ask,
    )

    async def direct() -> Any:
        return handler(ctx)

    async def threaded() -> Any:
        return await asyncio.to_thread(handler, ctx)

    async def dispatch() -> Any:
        outcome = await kernel.dispatcher.dispatch(invocation, send=send, ask=ask)
        if outcome.status != "ok":
            raise RuntimeError(f"{line} ended {outcome.status}: {outcome.message}")
        return outcome

    timed = {"dispatch": dispatch, "direct": direct, "threaded": threaded}
    samples: dict[str, list[float]] = {key: [] for key in timed}
    for _ in range(profile.warmup_invocations):
        for function in timed.values():
            await function()
    wall = time.perf_counter()
    for _ in range(profile.invocations):  # interleaved: the noise hits all three alike
        for key, function in timed.items():
            start = time.perf_counter()
            await function()
            samples[key].append((time.perf_counter() - start) * 1000)
    wall = time.perf_counter() - wall
    labels = {
        "dispatch": "dispatcher.dispatch (full path)",
        "direct": "handler(ctx) alone, in the loop",
        "threaded": "handler via asyncio.to_thread",
    }
    for key, label in labels.items():
        values = samples[key]
        print(
            f"  {label:<33} p50 {percentile(values, 50):7.3f} ms   "
            f"p99 {percentile(values, 99):7.3f} ms   "
            f"{len(values) / (sum(values) / 1000):8,.0f}/s"
        )
    overhead = percentile(samples["dispatch"], 50) - percentile(samples["direct"], 50)
    print(
        f"  dispatcher overhead at p50: {overhead:.3f} ms per command "
        f"(all three interleaved: {wall:.1f} s)"
    )
    d50, d99 = percentile(samples["dispatch"], 50), percentile(samples["dispatch"], 99)
    h50, h99 = percentile(samples["direct"], 50), percentile(samples["direct"], 99)
    throughput = len(samples["dispatch"]) / (sum(samples["dispatch"]) / 1000)
    return [
        Row(
            "console invocation",
            f"p50 {d50:.3f} / p99 {d99:.3f} ms ({throughput:,.0f}/s)",
            f"p50 {h50:.3f} / p99 {h99:.3f} ms (handler)",
        )
    ]


# -- main -------------------------------------------------------------------------------
async def in_process(profile: Profile, scratch: Path) -> list[Row]:
    from clustercord_testing.harness import KernelHarness, TestSigner

    signer = TestSigner()
    harness = KernelHarness(scratch / "harness-data", signer)
    try:
        for folder in write_hook_plugins(scratch / "hook-plugins"):
            harness.add_plugin(folder)
        harness.add_builtins()
        kernel = await harness.start()
        wanted = [f"bench-hook-{i}" for i in range(HOOK_PLUGINS)] + builtin_names()
        states = {
            name: kernel.manager.plugins[name].state
            for name in wanted
            if name in kernel.manager.plugins
        }
        not_enabled = {
            name: states.get(name, "missing") for name in wanted if states.get(name) != "enabled"
        }
        if not_enabled:
            raise RuntimeError(f"plugins not enabled in the harness kernel: {not_enabled}")
        rows = bench_hook_dispatch(profile, kernel)
        rows += await bench_invocations(profile, kernel)
        header("4. Pod events: watch changes derived and delivered to hooks")
        rows.append(Row(*cluster.bench_pod_events(kernel)))
        return rows
    finally:
        harness.close()
        signer.cleanup()


def summary(rows: list[Row]) -> None:
    header("Summary")
    titles = Row("benchmark", "measured (median)", "baseline (median)", "ratio", "target")
    fields = ("name", "measured", "baseline", "ratio", "target")
    widths = [max(len(getattr(row, f)) for row in [titles, *rows]) for f in fields]
    for row in [titles, *rows]:
        print(
            "  "
            + "  ".join(
                getattr(row, f).ljust(w) for f, w in zip(fields, widths, strict=True)
            ).rstrip()
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (under 40 s)")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    began = time.perf_counter()
    print(
        f"ClusterCord benchmarks ({'quick' if args.quick else 'full'} run), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    scratch = Path(tempfile.mkdtemp(prefix="ccbench"))
    try:
        rows = bench_cold_start(profile, scratch)
        rows += asyncio.run(in_process(profile, scratch))
        header(f"5. The sandbox with {cluster.PODS:,} pods")
        rows += [Row(*row) for row in cluster.bench_sandbox(profile.dispatch_reps, scratch)]
        rows += [Row(*row) for row in discord_bench.run(args.quick)]  # prints its own header
        header("7. RBAC on a big cluster, audited offline; baseline SubjectAccessReviews")
        rows += [Row(*row) for row in rbac.bench_rbac(profile.dispatch_reps, scratch)]
        rows += [
            Row(*r) for r in templates.bench_templates(max(3, profile.cold_runs // 3), scratch)
        ]
        rows += [Row(*r) for r in terminal.bench_terminal(args.quick, scratch)]
        rows += [Row(*r) for r in isolation.run(args.quick, scratch)]  # prints its header
        rows += [Row(*r) for r in marketplace.run(args.quick, scratch)]  # prints its header
        rows += [Row(*r) for r in chaos_bench.bench_chaos(args.quick, scratch)]
        rows += [Row(*r) for r in sso.run(args.quick, scratch)]  # prints its header
        rows += [Row(*r) for r in operations.run(args.quick, scratch)]  # prints its header
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary(rows)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
