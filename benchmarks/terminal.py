"""Benchmarks of the terminal plugin: recording output with secrets masked, and /terminal exec.

Run from benchmarks/run.py (``hatch run bench``), or alone::

    python benchmarks/terminal.py [--quick]

1. Frame latency: interactive output (200 B to 4 KB frames of shell, kubectl and log output
   with ANSI colours, a secret in about one command's output in ten) through
   ``Recorder.output`` (decode, redact,
   record an event), against a recorder without redaction (incremental UTF-8 decode and an
   asciicast event appended: what asciinema does), frame by frame, interleaved. p50 and p99
   ms per frame; target: p99 of the added time < 5 ms.
2. Bulk: a 4 MB ``kubectl logs`` stream in 32 KB frames (the sandbox's exec frame size)
   through both recorders, interleaved; MB/s. Then the recording stored as the plugin stores
   it (Zstandard in SQLite) against the raw bytes; target ≥ 10× smaller.
3. End to end: ``/terminal exec`` of ``seq 1 30000`` (169 KB) in a sandbox pod through the
   kernel (resolve the pod, exec over WebSocket, record, store, reply) against ``kubectl exec``
   of the same command line in the same pod, interleaved; target ratio ≤ 1.5. The sandbox
   serves from a process of its own, as an API server would: neither client shares its CPU
   time (Python's GIL) with it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from measure import Row, median, met, percentile, skipped, spread  # benchmarks/measure.py

FRAME_P99_TARGET_MS = 5.0
STORAGE_TARGET = 10.0
EXEC_TARGET = 1.5
EXEC_FRAME = 32 * 1024  # the most the sandbox sends in one exec frame
EXEC_LINE = "seq 1 30000"


@dataclass
class Profile:
    frames: int  # frames timed through each recorder (after 100 warm-up frames)
    bulk_mb: float
    bulk_reps: int
    exec_reps: int  # /terminal exec and kubectl exec each, after one warm-up round


FULL = Profile(frames=3000, bulk_mb=4.0, bulk_reps=5, exec_reps=9)
QUICK = Profile(frames=1000, bulk_mb=4.0, bulk_reps=2, exec_reps=4)


# -- what is measured -------------------------------------------------------------------
class PlainRecorder:
    """The baseline: a recorder that does what asciinema does with output (decode it
    incrementally, append an ``o`` event), without redaction."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._start = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def output(self, data: bytes) -> str:
        text = self._decoder.decode(data)
        if text:
            self.events.append((max(0.0, time.monotonic() - self._start), "o", text))
        return text


def recorder(command: list[str] | None = None) -> Any:
    from clustercord_builtins.terminal.recording import Recorder

    return Recorder(
        id="bench",
        user="bench",
        cluster="sandbox",
        namespace="media",
        pod="bench-0",
        container="app",
        command=command or ["/bin/sh"],
    )


# -- made-up output, seeded -------------------------------------------------------------
ALNUM = string.ascii_letters + string.digits
RESET = "\x1b[0m"
LEVELS = [("INFO", "\x1b[32m"), ("DEBUG", "\x1b[36m"), ("WARN", "\x1b[33m"), ("ERROR", "\x1b[31m")]


class Output:
    """Realistic terminal output. The secrets are made up at run time, so the tree holds
    nothing a scanner would take for a real one."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = 1714564800.0  # log time: 2024-05-01, on at about 200 lines a second
        self.clients = [  # the addresses a service hears from
            ".".join(str(self.rng.randrange(1, 255)) for _ in range(4)) for _ in range(50)
        ]

    def chars(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def secret(self) -> str:
        r = self.rng.randrange(6)
        if r == 0:
            return f"DB_PASSWORD={self.chars(16)}"
        if r == 1:
            return f"> Authorization: Bearer {self.chars(40)}"
        if r == 2:
            return f"STRIPE_KEY=sk_live_{self.chars(24)}"
        if r == 3:
            return f"DATABASE_URL=postgres://app:{self.chars(14)}@db.prod:5432/app"
        if r == 4:
            return f'  "apiKey": "{self.chars(32)}",'
        return f"aws_access_key_id = AKIA{self.chars(16, string.ascii_uppercase + string.digits)}"

    def prompt(self) -> str:
        where = self.rng.choice(["/app", "/var/log", "/etc/nginx", "~"])
        return f"\x1b[1;32mroot@web-{self.chars(5).lower()}\x1b[0m:\x1b[1;34m{where}\x1b[0m# "

    def ls_line(self) -> str:
        name = self.rng.choice(["config", "data", "logs", "static", "node_modules", "bin"])
        colour = self.rng.choice(["\x1b[01;34m", "\x1b[01;32m", ""])
        size = self.rng.randrange(10, 10**6)
        return (
            f"{self.rng.choice(['drwxr-xr-x', '-rw-r--r--', '-rwxr-xr-x'])} 1 app app "
            f"{size:>8} Mar {self.rng.randrange(1, 29):2d} 12:{self.rng.randrange(60):02d} "
            f"{colour}{name}-{self.rng.randrange(100)}{RESET if colour else ''}"
        )

    def pod_line(self) -> str:
        status = self.rng.choice(
            ["\x1b[32mRunning\x1b[0m"] * 6
            + ["\x1b[33mPending\x1b[0m", "\x1b[31mCrashLoopBackOff\x1b[0m"]
        )
        name = f"{self.rng.choice(['api', 'web', 'worker', 'redis'])}-{self.chars(10).lower()}"
        restarts, age = self.rng.randrange(5), self.rng.randrange(60)
        return f"{name:<40} 1/1     {status:<28} {restarts:<8} {age}m"

    def log_line(self, colour: bool = True) -> str:
        level, code = self.rng.choice(LEVELS)
        shown = f"{code}{level:<5}{RESET}" if colour else f"{level:<5}"
        self.clock += self.rng.expovariate(200)  # about 200 lines a second
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock))
        stamp += f".{int(self.clock * 1000) % 1000:03d}Z"
        kind = self.rng.randrange(4)
        if kind == 0:
            path = self.rng.choice(["/api/v1/orders", "/api/v1/users", "/healthz", "/metrics"])
            method = self.rng.choice(["GET", "GET", "POST", "PUT"])
            return (
                f"{stamp} {shown} [http] {method} {path}/{self.rng.randrange(10**5)} "
                f"{self.rng.choice([200, 200, 200, 201, 404, 500])} {self.rng.randrange(300)}ms "
                f"request_id={self.rng.getrandbits(64):016x}"
            )
        if kind == 1:
            return (
                f'{{"ts":"{stamp}","level":"{level.lower()}","logger":"worker",'
                f'"msg":"job finished","job":"sync-{self.rng.randrange(1000)}",'
                f'"duration_ms":{self.rng.randrange(5000)},"attempt":{self.rng.randrange(1, 4)}}}'
            )
        if kind == 2:
            client = self.rng.choice(self.clients)
            when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.clock))
            return (
                f'{client} - - [{when}] "GET /static/app.{self.rng.randrange(100)}.js HTTP/1.1" '
                f'200 {self.rng.randrange(10**5)} "-" "Mozilla/5.0 (X11; Linux x86_64)"'
            )
        return (
            f"{stamp} {shown} [db] pool stats: active={self.rng.randrange(20)} "
            f"idle={self.rng.randrange(20)} waiting={self.rng.randrange(3)} (über-pool ✓)"
        )

    def session_text(self, size: int) -> str:
        """Interactive output: prompts, listings, kubectl tables, logs; a secret now and then."""
        lines: list[str] = []
        total = 0
        while total < size:
            kind = self.rng.randrange(10)
            maker = [self.ls_line, self.pod_line, self.log_line, self.log_line][kind % 4]
            command = self.rng.choice(["ls -la", "kubectl get pods", "tail app.log"])
            block = [self.prompt() + command]
            block += [maker() for _ in range(self.rng.randrange(3, 40))]
            if kind == 0:  # about one block in ten shows a secret
                block.insert(self.rng.randrange(1, len(block)), self.secret())
            text = "\r\n".join(block) + "\r\n"
            lines.append(text)
            total += len(text.encode())
        return "".join(lines)

    def frames(self, count: int, low: int = 200, high: int = 4096) -> list[bytes]:
        """``count`` frames of 200 B to 4 KB cut from a session's output anywhere, as a PTY
        read cuts it (mid-line, mid-character)."""
        data = self.session_text(count * (low + high) // 2 + high).encode()
        frames, at = [], 0
        for _ in range(count):
            size = self.rng.randrange(low, high + 1)
            frames.append(data[at : at + size])
            at += size
        return frames

    def logs(self, size: int) -> bytes:
        """``kubectl logs`` output: plain lines, a few coloured, a secret once in a while."""
        lines: list[str] = []
        total = 0
        while total < size:
            line = (
                self.secret()
                if self.rng.random() < 0.002
                else self.log_line(colour=self.rng.random() < 0.1)
            )
            lines.append(line)
            total += len(line) + 1
        return ("\n".join(lines) + "\n").encode()


# -- helpers ----------------------------------------------------------------------------
# -- 1. frame latency -------------------------------------------------------------------
def _one_frame(first: Any, second: Any, frame: bytes) -> tuple[int, int]:
    """Nanoseconds each recorder takes to record ``frame``, one right after the other."""
    start = time.perf_counter_ns()
    first.output(frame)
    middle = time.perf_counter_ns()
    second.output(frame)
    return middle - start, time.perf_counter_ns() - middle


def bench_frames(profile: Profile) -> list[Row]:
    print(
        f"  1. {profile.frames:,} frames of 200 B-4 KB (ANSI colours, secrets in about one "
        "block in ten), each through both recorders, interleaved"
    )
    frames = Output(seed=1).frames(profile.frames + 100)
    ours, plain = recorder(), PlainRecorder()
    added, ours_ms, plain_ms = [], [], []
    for index, frame in enumerate(frames):
        if index % 2:  # alternate who goes first
            plain_ns, ours_ns = _one_frame(plain, ours, frame)
        else:
            ours_ns, plain_ns = _one_frame(ours, plain, frame)
        if index >= 100:  # the first 100 warm both up
            ours_ms.append(ours_ns / 1e6)
            plain_ms.append(plain_ns / 1e6)
            added.append((ours_ns - plain_ns) / 1e6)
    recording = ours.finish(0)
    if not recording.redactions:
        raise RuntimeError("the recorder masked nothing in output that holds secrets")
    sizes = [len(f) for f in frames[100:]]
    print(
        f"     frame sizes: median {median(sizes):,.0f} B, "
        f"{sum(sizes) / 1e6:.1f} MB in all; {recording.redactions} secrets masked"
    )
    for label, values in (
        ("Recorder.output (redacted)", ours_ms),
        ("decode + event (baseline)", plain_ms),
        ("added by redaction", added),
    ):
        print(
            f"     {label:<28} p50 {percentile(values, 50):7.3f} ms   "
            f"p99 {percentile(values, 99):7.3f} ms   max {max(values):7.3f} ms"
        )
    p99 = percentile(added, 99)
    verdict = met(p99 < FRAME_P99_TARGET_MS)
    print(f"     p99 added {p99:.2f} ms (target < {FRAME_P99_TARGET_MS:g} ms: {verdict})")
    return [
        (
            "terminal: output frame, 200 B-4 KB",
            f"p50 {percentile(ours_ms, 50):.2f} / p99 {percentile(ours_ms, 99):.2f} ms",
            f"p50 {percentile(plain_ms, 50):.3f} / p99 {percentile(plain_ms, 99):.3f} ms "
            "(decode + event)",
            f"+{p99:.2f} ms p99",
            f"added p99 < {FRAME_P99_TARGET_MS:g} ms {verdict}",
        )
    ]


# -- 2. bulk throughput and storage -----------------------------------------------------
def _feed(target: Any, data: bytes) -> tuple[float, Any]:
    """Seconds ``target`` takes to record ``data`` in exec frames (and to finish, for a
    Recorder), and the recording."""
    start = time.perf_counter()
    for at in range(0, len(data), EXEC_FRAME):
        target.output(data[at : at + EXEC_FRAME])
    recording = target.finish(0) if hasattr(target, "finish") else target.events
    return time.perf_counter() - start, recording


def stored_size(recording: Any, directory: Path) -> int:
    """Bytes the recording takes as the plugin stores it (its ``size`` column)."""
    from clustercord.storage import Database, PluginStore
    from clustercord_builtins.terminal.storage import Recordings

    database = Database(directory / "terminal-bench.db")
    try:
        return Recordings(PluginStore(database, "terminal")).save(recording).size
    finally:
        database.close()


def bench_bulk(profile: Profile, scratch: Path) -> list[Row]:
    import gzip

    data = Output(seed=2).logs(int(profile.bulk_mb * 1e6))
    megabytes = len(data) / 1e6
    print(
        f"  2. {megabytes:.1f} MB of kubectl logs in {EXEC_FRAME // 1024} KB frames, "
        f"{profile.bulk_reps} runs of each recorder, interleaved"
    )
    ours, plain, paired = [], [], []
    for rep in range(profile.bulk_reps):
        if rep % 2:  # alternate who goes first
            plain_s, _ = _feed(PlainRecorder(), data)
            ours_s, recording = _feed(recorder(), data)
        else:
            ours_s, recording = _feed(recorder(), data)
            plain_s, _ = _feed(PlainRecorder(), data)
        ours.append(megabytes / ours_s)
        plain.append(megabytes / plain_s)
        paired.append(ours_s / plain_s)
    if not recording.redactions:
        raise RuntimeError("the recorder masked nothing in logs that hold secrets")
    size = stored_size(recording, scratch)
    gzipped = len(gzip.compress(data, compresslevel=9, mtime=0))
    slower = median(paired)
    print(f"     Recorder.output (redacted)   {spread(ours, 'MB/s', 2)}")
    print(f"     decode + event (baseline)    {spread(plain, 'MB/s', 1)}")
    print(f"     time ratio {slower:.0f}x (median of the per-run ratios)")
    print(
        f"     stored {size / 1e3:,.0f} KB for {megabytes:.1f} MB raw: "
        f"{len(data) / size:.1f}x smaller (gzip -9 of the raw bytes alone: "
        f"{len(data) / gzipped:.1f}x); {recording.redactions} secrets masked"
    )
    ratio = len(data) / size
    return [
        (
            f"terminal: record {megabytes:.0f} MB of logs",
            f"{median(ours):.2f} MB/s",
            f"{median(plain):.0f} MB/s (decode + event)",
            f"{slower:.0f}x slower",
            "-",
        ),
        (
            "terminal: stored size of those logs",
            f"{size / 1e3:,.0f} KB",
            f"{megabytes:.1f} MB raw",
            f"{ratio:.1f}x smaller",
            f"≥ {STORAGE_TARGET:g}x {met(ratio >= STORAGE_TARGET)}",
        ),
    ]


# -- 3. /terminal exec end to end -------------------------------------------------------
async def plugin_beside_sandbox(
    stack: contextlib.ExitStack,
    scratch: Path,
    name: str,
    *,
    users: dict[str, Any] | None = None,
    folder: str | None = None,
) -> tuple[SandboxProcess, Any]:
    """A sandbox API server in a process of its own and a kernel harness with builtin ``name``
    enabled against it, both closed by ``stack``. ``users``: the identity map's users (default:
    ``bench`` acting as the cluster admin)."""
    from clustercord_testing.harness import KernelHarness, TestSigner

    box = SandboxProcess(scratch)
    stack.callback(box.stop)
    stack.enter_context(mock.patch.dict(os.environ, {"KUBECONFIG": str(box.kubeconfig)}))
    signer = TestSigner()
    stack.callback(signer.cleanup)
    harness = KernelHarness(
        scratch / (folder or f"{name}-harness"),
        signer,
        identity={"users": users or {"bench": {"user": "admin"}}},
    )
    stack.callback(harness.close)
    harness.add_builtins([name])
    await harness.start()
    plugin = harness.plugin(name)
    if plugin.state != "enabled":
        raise RuntimeError(f"the {name} plugin is {plugin.state}: {plugin.reason}")
    return box, harness


class SandboxProcess:
    """``clustercord sandbox --fixture homelab`` in a process of its own, its output in a
    file (a pipe nobody reads would fill and stop it)."""

    def __init__(self, directory: Path) -> None:
        cli = Path(sys.executable).parent / "clustercord"
        self.kubeconfig = directory / "terminal-kubeconfig"
        self.log = directory / "terminal-sandbox.log"
        argv = [str(cli), "sandbox", "--fixture", "homelab", "--port", "0"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*argv, "--kubeconfig", str(self.kubeconfig)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in self.log.read_text():  # printed once it serves
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _kubectl(kubectl: str, kubeconfig: Path, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:2])} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def _timed_kubectl(kubectl: str, kubeconfig: Path, argv: list[str], expected: str) -> float:
    """Seconds ``kubectl ARGV`` takes, checking that it printed ``expected``."""
    start = time.perf_counter()
    out = _kubectl(kubectl, kubeconfig, *argv)
    elapsed = time.perf_counter() - start
    if out != expected:
        raise RuntimeError(f"kubectl exec printed {len(out):,} characters, not {len(expected):,}")
    return elapsed


def _first_pod(kubectl: str, kubeconfig: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the sandbox's controllers make the pods
        out = _kubectl(
            kubectl,
            kubeconfig,
            "get",
            "pods",
            "-n",
            "media",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        )
        if out.split():
            return out.split()[0].removeprefix("pod/")
        time.sleep(0.2)
    raise RuntimeError("no running pod in namespace media")


async def _exec_rows(reps: int, scratch: Path) -> list[Row]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return skipped("terminal: /terminal exec", "kubectl is not installed")
    expected = "".join(f"{n}\n" for n in range(1, 30001))
    print(
        f"  3. /terminal exec of `{EXEC_LINE}` ({len(expected) / 1e3:.0f} KB) against kubectl "
        f"exec of the same, in one sandbox pod, {reps} rounds after a warm-up, interleaved"
    )
    with contextlib.ExitStack() as stack:
        box, harness = await plugin_beside_sandbox(stack, scratch, "terminal")
        plugin = harness.plugin("terminal")
        shell = plugin.context.config.get("shell") or ""
        pod = await asyncio.to_thread(_first_pod, kubectl, box.kubeconfig)
        # The same argv both ways: the plugin runs a command line with its configured shell.
        argv = ["exec", pod, "-n", "media", "--", shell, "-c", EXEC_LINE]
        line = f'/terminal exec pod:{pod} namespace:media command:"{EXEC_LINE}"'

        async def ours() -> float:
            start = time.perf_counter()
            result = await harness.run(line, user="bench", frontend="discord")
            elapsed = time.perf_counter() - start
            if not result.ok or result.reply.data.get("exit_code") != 0:
                raise RuntimeError(f"/terminal exec failed: {result.text[:300]}")
            if result.reply.data["output"] != expected:
                raise RuntimeError("/terminal exec did not record the whole output")
            return elapsed * 1000

        async def theirs() -> float:
            args = (kubectl, box.kubeconfig, argv, expected)
            return await asyncio.to_thread(_timed_kubectl, *args) * 1000

        async def start_up() -> float:  # kubectl exec of a command that prints nothing
            args = (kubectl, box.kubeconfig, [*argv[:5], "true"], "")
            return await asyncio.to_thread(_timed_kubectl, *args) * 1000

        our_ms, their_ms, bare_ms = [], [], []
        for rep in range(reps + 1):  # the first round warms both up and is not counted
            if rep % 2:  # alternate who goes first
                their, our = await theirs(), await ours()
            else:
                our, their = await ours(), await theirs()
            bare = await start_up()
            if rep:
                our_ms.append(our)
                their_ms.append(their)
                bare_ms.append(bare)
        # What recording alone costs of that: the same output through a Recorder.
        data = expected.encode()
        recording_ms = [_feed(recorder([shell, "-c", EXEC_LINE]), data)[0] * 1000 for _ in range(3)]
    paired = [our / their for our, their in zip(our_ms, their_ms, strict=True)]
    ratio = median(paired)
    print(f"     /terminal exec      {spread(our_ms, 'ms', 0)}")
    print(f"     kubectl exec        {spread(their_ms, 'ms', 0)}")
    print(
        f"     ratio {ratio:.2f}, the median of the per-round ratios (target ≤ {EXEC_TARGET:g}: "
        f"{met(ratio <= EXEC_TARGET)}); ratio of the medians "
        f"{median(our_ms) / median(their_ms):.2f}"
    )
    print(
        f"     of which: recording the output (decode, redaction, events) "
        f"{median(recording_ms):.0f} ms; kubectl exec of `true` (kubectl's start-up "
        f"and connection alone) {median(bare_ms):.0f} ms"
    )
    return [
        (
            f"terminal: /terminal exec `{EXEC_LINE}`",
            f"{median(our_ms):.0f} ms",
            f"{median(their_ms):.0f} ms (kubectl exec)",
            f"{ratio:.2f}",
            f"≤ {EXEC_TARGET:g} {met(ratio <= EXEC_TARGET)}",
        )
    ]


# -- 4. search through the index ---------------------------------------------------------
SEARCH_SESSIONS = int(os.environ.get("CLUSTERCORD_BENCH_SEARCH_SESSIONS", "10000"))
SEARCH_P95_TARGET_MS = 50.0


def _search_session(out: Output, rng: random.Random, n: int) -> Any:
    """A short shell session (5 to 15 commands) as the plugin records it, on a clock that
    moves a second a read."""
    from clustercord_builtins.terminal.recording import Recorder

    ticks = iter(range(10**6))
    rec = Recorder(
        id=f"s{n:07d}",
        user=str(1000 + n % 20),
        cluster="prod",
        namespace=rng.choice(["media", "shop", "monitoring"]),
        pod=out.pod_line().split()[0],
        container="app",
        command=["/bin/sh"],
        clock=lambda: float(next(ticks)),
        wall=lambda: 1_700_000_000.0 + n * 60,
    )
    for _ in range(rng.randrange(5, 16)):
        command = rng.choice(["ls -la", "kubectl get pods", "env", "tail app.log", "ps aux"])
        rec.input(command + "\n")
        lines = [rng.choice([out.ls_line, out.pod_line, out.log_line])() for _ in range(8)]
        rec.output(("\n".join(lines) + "\n").encode())
    return rec.finish(0)


def bench_search(quick: bool, scratch: Path) -> list[Row]:
    """``Recordings.search`` over 10,000 stored (sealed) sessions: words of the sessions,
    a rare word planted in 20 of them, a word in none, and a pod name; p50 and p95 ms per
    query (each query's first 50 matches, as /terminal search asks), against the scan the
    index replaced (every recording opened), timed on a few queries."""
    from clustercord.storage import Database, PluginStore
    from clustercord_builtins.terminal.storage import Recordings
    from clustercord_testing.stores import PluginStores

    sealer = PluginStores(scratch).sealer("terminal")
    database = Database(scratch / "terminal-search.db")
    store = PluginStore(database, "terminal", sealer)
    recordings = Recordings(store)
    rng, out = random.Random(4), Output(seed=4)
    print(f"  4. search: {SEARCH_SESSIONS:,} sessions stored (sealed, indexed)", flush=True)
    began = time.perf_counter()
    planted = set(rng.sample(range(SEARCH_SESSIONS), 20))
    pods = []
    for first in range(0, SEARCH_SESSIONS, 500):
        with database.transaction():  # 500 a commit: the disk is not what is measured here
            for n in range(first, min(first + 500, SEARCH_SESSIONS)):
                rec = _search_session(out, rng, n)
                if n in planted:
                    event = (rec.duration, "o", "restored from snapshot-zebra-42\n")
                    rec.events.insert(-1, event)
                recordings.save(rec)
                pods.append(rec.pod)
    saving = time.perf_counter() - began
    queries = ["snapshot-zebra", "no-such-thing-anywhere", "kubectl get pods", "ERROR"]
    queries += [*rng.sample(pods, 6), "Running", "DEBUG worker", "node-1"]
    times = []
    for _ in range(3 if quick else 10):
        for query in queries:
            start = time.perf_counter()
            found = recordings.search(query, limit=50)
            times.append((time.perf_counter() - start) * 1000)
            if query == "snapshot-zebra" and len({m.session for m in found}) != 20:
                raise RuntimeError(f"search found {len(found)} of the 20 planted sessions")
    index = recordings._index.table
    entries = database.conn.execute(f"SELECT count(*) FROM [{index}]").fetchone()[0]
    start = time.perf_counter()
    scanned = [len(recordings.search(q, limit=50)) for q in ("zz", "no")]  # 2 chars: a scan
    scan_ms = (time.perf_counter() - start) * 1000 / len(scanned)
    database.close()
    p50, p95 = percentile(times, 50), percentile(times, 95)
    print(
        f"     stored and indexed in {saving:.0f} s ({entries:,} index rows); "
        f"query p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} queries; "
        f"a 2-character query (no trigram: every recording opened) {scan_ms:,.0f} ms"
    )
    return [
        (
            f"terminal: search {SEARCH_SESSIONS:,} sessions (FTS5)",
            f"p95 {p95:.1f} ms",
            f"{scan_ms:,.0f} ms scanning",
            f"{scan_ms / max(p95, 1e-6):.0f}x faster",
            f"< {SEARCH_P95_TARGET_MS:g} ms {met(p95 < SEARCH_P95_TARGET_MS)}",
        )
    ]


# -- 5. against asciinema ------------------------------------------------------------------
ASCIINEMA_MB = float(os.environ.get("CLUSTERCORD_BENCH_ASCIINEMA_MB", "100"))
CPU_TARGET = 1.0  # ours / asciinema's CPU seconds per MB
SIZE_TARGET = 5.0  # asciinema's .cast / ours


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_asciinema(scratch: Path, runs: int = 3) -> list[Row]:
    """The same output stream (kubectl logs with colours and secrets, 100 MB) recorded by
    ``asciinema rec`` (``cat`` of it on a pseudo-terminal: asciinema 2's CPU is its own plus
    cat's, a rounding error) and by ours, redaction on, up to the stored recording (Zstandard,
    at its fastest level for a recording of 8 MB or more, as the plugin packs one; sealed,
    search-indexed, in SQLite); CPU seconds per MB and stored bytes of each, the medians of
    ``runs`` runs of each, interleaved (the ratio: the median of the per-run ratios)."""
    import gzip

    from clustercord.storage import Database, PluginStore
    from clustercord_builtins.terminal import storage as packing
    from clustercord_builtins.terminal.storage import Recordings
    from clustercord_testing.stores import PluginStores

    asciinema = shutil.which("asciinema")
    if asciinema is None:
        print("  5. asciinema is not installed: skipped")
        return skipped("terminal: against asciinema rec", "asciinema is not installed")
    data = Output(seed=5).logs(int(ASCIINEMA_MB * 1e6))
    megabytes = len(data) / 1e6
    source = scratch / "stream.txt"
    source.write_bytes(data)
    print(
        f"  5. {megabytes:.0f} MB of logs: asciinema rec against our recorder, {runs} "
        f"run{'s' if runs != 1 else ''} of each" + (", interleaved" if runs > 1 else ""),
        flush=True,
    )
    tty = data.replace(b"\n", b"\r\n")  # what the pseudo-terminal hands asciinema
    sealer = PluginStores(scratch).sealer("terminal")

    def theirs() -> tuple[float, int]:
        cast = scratch / "stream.cast"
        before = _children_cpu()
        subprocess.run(
            [asciinema, "rec", "-q", "--overwrite", "-c", f"cat {source}", str(cast)],
            stdin=subprocess.DEVNULL,
            env={**os.environ, "ASCIINEMA_CONFIG_HOME": str(scratch / "asciinema")},
            check=True,
            timeout=3600,
        )
        return _children_cpu() - before, cast.stat().st_size

    def ours(run: int) -> tuple[float, int, int, Any]:
        database = Database(scratch / f"terminal-asciinema-{run}.db")
        store = PluginStore(database, "terminal", sealer)
        start = time.process_time()
        rec = recorder(["cat", "stream.txt"])
        for at in range(0, len(tty), EXEC_FRAME):
            rec.output(tty[at : at + EXEC_FRAME])
        recording = rec.finish(0)
        summary = Recordings(store).save(recording)
        cpu = time.process_time() - start
        # The index's bytes on disk: its FTS5 tables and the tokens kept for removal.
        index = store.table("search").name
        grams = database.conn.execute(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE ?", [f"{index}%"]
        ).fetchone()[0]
        database.close()
        return cpu, summary.size, grams, recording

    their_cpu, our_cpu, ratios = [], [], []
    for run in range(runs):
        if run % 2:  # alternate who goes first
            our, blob, grams, recording = ours(run)
            their, theirs_size = theirs()
        else:
            their, theirs_size = theirs()
            our, blob, grams, recording = ours(run)
        their_cpu.append(their / megabytes)
        our_cpu.append(our / megabytes)
        ratios.append(our / their)
    ours_size = blob + grams
    cast_gzip = len(gzip.compress((scratch / "stream.cast").read_bytes(), compresslevel=6))
    cpu_ratio = median(ratios)
    size_ratio = theirs_size / ours_size
    print(
        f"     asciinema rec   {spread(their_cpu, 'CPU s/MB', 3)}, "
        f".cast {theirs_size / 1e6:.1f} MB (gzip: {cast_gzip / 1e6:.1f} MB)\n"
        f"     ours, redacted  {spread(our_cpu, 'CPU s/MB', 3)}, "
        f"stored {ours_size / 1e6:.2f} MB "
        f"(blob {blob / 1e6:.2f} MB, Zstandard level "
        f"{packing.ZSTD_LEVEL_LARGE if len(tty) >= packing.LARGE else packing.ZSTD_LEVEL}, "
        f"+ index {grams / 1e6:.2f} MB); "
        f"{recording.redactions} secrets masked\n"
        f"     CPU ratio {cpu_ratio:.1f}x (median of the per-run ratios "
        f"{', '.join(f'{r:.1f}' for r in ratios)})"
    )
    return [
        (
            f"terminal: record {megabytes:.0f} MB, CPU",
            f"{median(our_cpu):.3f} s/MB",
            f"{median(their_cpu):.3f} s/MB (asciinema rec)",
            f"{cpu_ratio:.1f}x",
            f"≤ {CPU_TARGET:g}x {met(cpu_ratio <= CPU_TARGET)}",
        ),
        (
            f"terminal: record {megabytes:.0f} MB, stored",
            f"{ours_size / 1e6:.2f} MB",
            f"{theirs_size / 1e6:.1f} MB (.cast)",
            f"{size_ratio:.1f}x smaller",
            f"≥ {SIZE_TARGET:g}x {met(size_ratio >= SIZE_TARGET)}",
        ),
    ]


def bench_terminal(quick: bool, scratch: Path) -> list[Row]:
    """All of them; rows of (name, measured, baseline, ratio, target) for the summary."""
    profile = QUICK if quick else FULL
    print("\n== Terminal: recording with secrets masked; /terminal exec against kubectl exec")
    rows = bench_frames(profile)
    rows += bench_bulk(profile, scratch)
    rows += asyncio.run(_exec_rows(profile.exec_reps, scratch))
    rows += bench_search(quick, scratch)
    rows += bench_asciinema(scratch, runs=1 if quick else 3)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ccbench-terminal"))
    began = time.perf_counter()
    try:
        for row in bench_terminal(args.quick, directory):
            print("  " + " | ".join(row))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"total {time.perf_counter() - began:.0f} s")
