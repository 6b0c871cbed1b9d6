"""Benchmarks of one replica's capacity: clusters watched at once, recordings stored a day.

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/operations.py [--quick]

O1. Clusters watched: one kernel with N clusters registered (N = 1, 10, 50) and a plugin
    subscribed to ``pod:crash``, so it watches pods and nodes of every one. The clusters are
    N contexts of one sandbox API server in a process of its own (``clustercord sandbox``):
    N clients, N pod and node watches, N remembered pod sets, as with N real clusters of
    the homelab's size. Each N runs in a fresh process (its resident memory is its own).
    Measured: resident memory per watched cluster (after every watch listed, less the
    kernel's before the watches started), and the latency from a pod status change (a
    container OOMKilled, patched through the API) to the plugin's ``on_event``, in every
    watching cluster at once (the change is seen by all N watches: the worst case, every
    cluster changing together); p50 and p95 ms, the ratio of p95 at N to p95 at 1; target:
    p95 under a second at every N.
O2. Recordings per day: a typical terminal session (20 commands, about 40 KB of prompts,
    listings, kubectl tables and logs, a secret now and then) recorded (decoded, redacted)
    and stored as the terminal plugin stores it (packed, Zstandard, sealed, search-indexed, one
    commit each), against the same bytes inserted raw into SQLite with one commit each,
    interleaved in batches; recordings per second of one core, hence per day, and stored
    bytes per recording (database and index, after a checkpoint).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import Row, median, met, percentile, spread  # benchmarks/measure.py
from terminal import Output, SandboxProcess  # benchmarks/terminal.py

WATCHED = (1, 10, 50)
LISTENER = "bench-listener"
LATENCY_P95_TARGET_MS = 1000.0  # a pod's crash in chat within a second, however many clusters
SESSION_COMMANDS = 20
SESSION_LINES = (10, 40)  # lines of output a command prints


# -- O1: clusters watched ---------------------------------------------------------------
def _many_contexts(kubeconfig: Path, count: int, target: Path) -> Path:
    """A kubeconfig of ``count`` contexts ``c00``… naming the one sandbox server."""
    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0], config["users"][0]
    config["clusters"] = [{**cluster, "name": f"c{i:02d}"} for i in range(count)]
    config["users"] = [{**user, "name": f"c{i:02d}"} for i in range(count)]
    config["contexts"] = [
        {"name": f"c{i:02d}", "context": {"cluster": f"c{i:02d}", "user": f"c{i:02d}"}}
        for i in range(count)
    ]
    config["current-context"] = "c00"
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target


def _write_listener(root: Path) -> Path:
    """A plugin whose ``on_event`` notes when each ``pod:crash`` reached it."""
    folder = root / LISTENER
    folder.mkdir(parents=True)
    manifest = {
        "name": LISTENER,
        "version": "0.1.0",
        "api": ">=1.0,<2",
        "description": "Benchmark plugin: notes when pod:crash events arrive",
        "hooks": [{"event": "pod:crash"}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    (folder / "__init__.py").write_text(
        "import time\n\nfrom clustercord_sdk import hookimpl\n\nSEEN = []\n\n\n"
        "@hookimpl\n"
        "def on_event(event):\n"
        "    SEEN.append((event.cluster, event.data.get('restarts'), time.perf_counter()))\n",
        "utf-8",
    )
    return folder


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _crashed(container: str, restarts: int) -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": container,
                    "image": "bench",
                    "imageID": "",
                    "ready": False,
                    "restartCount": restarts,
                    "started": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        }
    }


async def _watch_child(count: int, kubeconfig: Path, rounds: int, scratch: Path) -> dict:
    """In a process of its own: ``count`` clusters watched; memory and event latencies."""
    import yaml
    from kubernetes import client, config

    from clustercord_testing.harness import KernelHarness, TestSigner

    os.environ["KUBECONFIG"] = str(_many_contexts(kubeconfig, count, scratch / "contexts"))
    signer = TestSigner()
    harness = KernelHarness(scratch / "data", signer)
    try:
        harness.add_plugin(_write_listener(scratch / "plugins"))
        kernel = await harness.start()
        clusters = kernel.kubernetes.registry.list()
        if len(clusters) != count:
            raise RuntimeError(f"{len(clusters)} clusters registered, not {count}")
        seen = kernel.manager.plugins[LISTENER].module.SEEN
        before = _rss_mb()
        stop = asyncio.Event()
        watchers = kernel.cluster_watchers()
        if len(watchers) != count:
            raise RuntimeError(f"{len(watchers)} watchers, not {count}")
        tasks = [asyncio.create_task(w.run(stop)) for w in watchers]
        began = time.perf_counter()
        while not all(w.pods and w.nodes for w in watchers):
            if time.perf_counter() - began > 120:
                raise RuntimeError("the watches did not list within 120 s")
            await asyncio.sleep(0.05)
        listed = time.perf_counter() - began
        await asyncio.sleep(1.0)  # the streams open after the lists
        after = _rss_mb()

        api = client.CoreV1Api(
            config.new_client_from_config_dict(yaml.safe_load(kubeconfig.read_text()))
        )
        pod = next(p for p in api.list_namespaced_pod("monitoring").items)
        name, container = pod.metadata.name, pod.spec.containers[0].name
        # An earlier N left its restarts: a crash is news only with more of them.
        done = max((s.restart_count for s in pod.status.container_statuses or []), default=0)
        latencies: list[float] = []
        for restarts in range(done + 1, done + rounds + 1):
            start = time.perf_counter()
            await asyncio.to_thread(
                api.patch_namespaced_pod_status, name, "monitoring", _crashed(container, restarts)
            )
            deadline = time.perf_counter() + 20
            while sum(1 for s in seen if s[1] == restarts) < count:
                if time.perf_counter() > deadline:
                    got = sorted(c for c, r, _ in seen if r == restarts)
                    raise RuntimeError(
                        f"round {restarts}: events from {len(got)} of {count} clusters "
                        f"({', '.join(map(str, got))}) within 20 s"
                    )
                await asyncio.sleep(0.002)
            latencies += [(at - start) * 1000 for _, r, at in seen if r == restarts]
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "count": count,
            "rss_before": before,
            "rss_after": after,
            "listed_s": listed,
            "latencies": latencies,
        }
    finally:
        harness.close()
        signer.cleanup()


def bench_watched(quick: bool, scratch: Path) -> list[Row]:
    rounds = 8 if quick else 20
    print(
        f"  1. clusters watched by one kernel: N = {', '.join(map(str, WATCHED))}, "
        f"{rounds} pod changes each, seen by every watch",
        flush=True,
    )
    directory = scratch / "operations"
    directory.mkdir(exist_ok=True)
    sandbox = SandboxProcess(directory)
    results = {}
    try:
        for count in WATCHED:
            child = directory / f"watch-{count}"
            child.mkdir()
            done = subprocess.run(
                [sys.executable, __file__, "--watch-child", str(count), "--rounds", str(rounds),
                 "--kubeconfig", str(sandbox.kubeconfig), "--scratch", str(child)],
                capture_output=True, text=True, check=False, timeout=600,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"the watch benchmark (N={count}) failed:\n{done.stderr}")
            results[count] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        sandbox.stop()
    rows: list[Row] = []
    p95_one = percentile(results[WATCHED[0]]["latencies"], 95)
    first = results[WATCHED[0]]["rss_after"] - results[WATCHED[0]]["rss_before"]
    most = results[WATCHED[-1]]["rss_after"] - results[WATCHED[-1]]["rss_before"]
    further = (most - first) / (WATCHED[-1] - WATCHED[0])
    for count, result in results.items():
        values = result["latencies"]
        grown = result["rss_after"] - result["rss_before"]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(
            f"     N={count:<3} memory +{grown:6.1f} MB ({grown / count:5.2f} MB a cluster; "
            f"kernel {result['rss_before']:.0f} MB before), all listed in "
            f"{result['listed_s']:.1f} s; event latency p50 {p50:6.1f} ms, p95 {p95:6.1f} ms "
            f"(n={len(values)})"
        )
        ratio = p95 / p95_one
        rows.append(
            (
                f"clusters watched: {count}",
                f"{grown / count:.2f} MB/cluster, p95 {p95:.0f} ms",
                f"p95 {p95_one:.0f} ms (1 cluster)",
                f"{ratio:.2f}",
                f"p95 < {LATENCY_P95_TARGET_MS / 1000:g} s {met(p95 < LATENCY_P95_TARGET_MS)}",
            )
        )
    print(
        f"     the first cluster watched costs {first:.1f} MB (the client library, its "
        f"connections, two watch threads); each further one {further:.2f} MB"
    )
    rows.append(
        (
            "memory per further cluster",
            f"{further:.2f} MB",
            f"{first:.1f} MB (the first)",
            "-",
            "-",
        )
    )
    return rows


# -- O2: recordings per day --------------------------------------------------------------
def _session_script(out: Output, rng: random.Random) -> list[tuple[str, bytes]]:
    """A typical session's commands and what each printed (made up, seeded)."""
    script = []
    for _ in range(SESSION_COMMANDS):
        command = rng.choice(["ls -la", "kubectl get pods", "tail -n 30 app.log", "env", "ps"])
        maker = rng.choice([out.ls_line, out.pod_line, out.log_line, out.log_line])
        lines = [out.prompt() + command] + [maker() for _ in range(rng.randrange(*SESSION_LINES))]
        if rng.randrange(10) == 0:  # about one command in ten shows a secret
            lines.insert(rng.randrange(1, len(lines)), out.secret())
        script.append((command + "\n", ("\r\n".join(lines) + "\r\n").encode()))
    return script


def _record(script: list[tuple[str, bytes]], n: int) -> Any:
    from clustercord_builtins.terminal.recording import Recorder

    rec = Recorder(
        id=f"s{n:07d}",
        user="100000000000000001",
        cluster="prod",
        namespace="shop",
        pod="web-7d9c-x2x4q",
        container="app",
        command=["/bin/sh"],
    )
    for typed, printed in script:
        rec.input(typed)
        for at in range(0, len(printed), 4096):  # as a PTY hands it over
            rec.output(printed[at : at + 4096])
    return rec.finish(0)


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def bench_recordings(quick: bool, scratch: Path) -> list[Row]:
    from clustercord.storage import Database, PluginStore
    from clustercord_builtins.terminal.storage import Recordings
    from clustercord_testing.stores import PluginStores

    sessions, batch = (100, 10) if quick else (400, 25)
    rng, out = random.Random(7), Output(seed=7)
    scripts = [_session_script(out, rng) for _ in range(sessions)]
    raw = [sum(len(p) + len(t) for t, p in s) for s in scripts]
    print(
        f"  2. recordings: {sessions} sessions of {SESSION_COMMANDS} commands "
        f"(median {median(raw) / 1000:.0f} KB of output), recorded and stored one commit "
        f"each, interleaved in batches of {batch} with raw inserts",
        flush=True,
    )
    ours_db = Database(scratch / "operations-recordings.db")
    raw_db = Database(scratch / "operations-raw.db")
    recordings = Recordings(
        PluginStore(ours_db, "terminal", PluginStores(scratch).sealer("terminal"))
    )
    raw_db.conn.execute("CREATE TABLE raw (id TEXT PRIMARY KEY, data BLOB)")
    ours_s: list[float] = []
    raw_s: list[float] = []
    saving_s: list[float] = []  # the part of ours that is storing (the rest: recording)
    blobs: list[int] = []
    try:
        for first in range(0, sessions, batch):
            chunk = range(first, min(first + batch, sessions))
            start = time.perf_counter()
            saving = 0.0
            for n in chunk:
                recording = _record(scripts[n], n)
                saved_at = time.perf_counter()
                blobs.append(recordings.save(recording).size)
                saving += time.perf_counter() - saved_at
            ours_s.append((time.perf_counter() - start) / len(chunk))
            saving_s.append(saving / len(chunk))
            start = time.perf_counter()
            for n in chunk:
                data = b"".join(t.encode() + p for t, p in scripts[n])
                with raw_db.transaction():
                    raw_db.conn.execute("INSERT INTO raw VALUES (?, ?)", (f"s{n}", data))
            raw_s.append((time.perf_counter() - start) / len(chunk))
        if len(recordings.search("kubectl get pods", limit=5)) == 0:
            raise RuntimeError("the stored recordings cannot be found by search")
        for database in (ours_db, raw_db):
            database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = _disk_bytes(scratch / "operations-recordings.db") / sessions
        raw_stored = _disk_bytes(scratch / "operations-raw.db") / sessions
    finally:
        ours_db.close()
        raw_db.close()
    ours_ms = [s * 1000 for s in ours_s]
    raw_ms = [s * 1000 for s in raw_s]
    per_day = 86_400 / (median(ours_s))
    ratio = median(ours_s) / median(raw_s)
    print(f"     recorded and stored     {spread(ours_ms, 'ms/recording', 2)}")
    print(
        f"       of which storing      {spread([s * 1000 for s in saving_s], 'ms', 2)}; "
        f"first batch {saving_s[0] * 1000:.0f} ms, last {saving_s[-1] * 1000:.0f} ms "
        f"({sessions - batch} recordings stored before it)"
    )
    print(f"     raw insert (baseline)   {spread(raw_ms, 'ms/recording', 2)}")
    print(
        f"     → {1 / median(ours_s):,.0f} recordings/s of one core, {per_day / 1e6:.1f} million "
        f"a day; on disk {stored / 1000:.1f} KB each (the sealed Zstandard blob "
        f"{median(blobs) / 1000:.1f} KB, the rest its search index; raw "
        f"{raw_stored / 1000:.1f} KB): {stored * 1000 / 1e6:.1f} MB per 1,000 recordings"
    )
    return [
        (
            "recordings per day",
            f"{per_day / 1e6:.1f} M/day ({median(ours_ms):.1f} ms each)",
            f"{median(raw_ms):.2f} ms (raw insert)",
            f"{ratio:.1f}",
            "-",
        ),
        (
            "recording on disk (blob + index)",
            f"{stored / 1000:.1f} KB ({median(blobs) / 1000:.1f} KB blob)",
            f"{raw_stored / 1000:.1f} KB (raw)",
            f"{stored / raw_stored:.2f}",
            "-",
        ),
    ]


def run(quick: bool, scratch: Path) -> list[Row]:
    print("\n== Operations: clusters watched at once, recordings stored a day", flush=True)
    return bench_watched(quick, scratch) + bench_recordings(quick, scratch)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--watch-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch_child is not None:  # one N, in a process of its own (bench_watched)
        result = asyncio.run(
            _watch_child(args.watch_child, args.kubeconfig, args.rounds, args.scratch)
        )
        print(json.dumps(result))
        return 0
    directory = Path(tempfile.mkdtemp(prefix="ccbench-operations"))
    began = time.perf_counter()
    try:
        for row in run(args.quick, directory):
            print("  " + " | ".join(row))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
