"""Benchmark of the Discord interaction server: 200 concurrent signed interactions.

Each burst POSTs 200 Ed25519-signed command interactions at once (the fake Discord of
the SDK's testing kit plays Discord) and times each one from sending it to its initial
response (the callback, or the HTTP reply when it carries the response). Two servers,
each in its own process, under the same load in the same run, bursts interleaved:

- the baseline: a bare hikari ``RESTBot`` with a lightbulb command that answers "pong"
  (``clustercord_testing.discord_reference``);
- ``clustercord serve --mode interactions`` answering ``/ping`` too: the command of a
  one-handler plugin installed for the benchmark (``benchping``), so that both sides
  do comparable work and the ratio is ClusterCord's own cost per command.

Targets: ClusterCord's p99 under 500 ms, and at most 1.3 times the baseline's p99.
The two answer differently: lightbulb's RESTBot flow sends its answer to the callback
endpoint (a second HTTP request, on a fresh connection with hikari's defaults), while
ClusterCord puts a quick final answer in the HTTP reply; the server CPU per interaction
printed beside the latencies shows what each side costs.
Run from benchmarks/run.py, or alone: ``python benchmarks/discord.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import Row, percentile  # benchmarks/measure.py

CONCURRENCY = 200
P99_TARGET_MS = 500.0
RATIO_TARGET = 1.3
STARTUP_TIMEOUT = 120.0
ACK_DEADLINE = 3.0  # Discord's, in seconds
CLI = Path(sys.executable).parent / "clustercord"


def clustercord_available() -> bool:
    try:
        import clustercord.frontends.discord.server  # noqa: F401
    except ImportError:
        return False
    return CLI.exists()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def _server_process(
    argv: list[str], env: dict[str, str], ready: str, log: Path
) -> AsyncIterator[int]:
    """Run a server process until it prints a line starting with ``ready``."""
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=errors
        )
    assert process.stdout is not None

    async def wait_ready() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            if line.decode().startswith(ready):
                return
        raise RuntimeError(f"{argv[0]} exited {await process.wait()}:\n{log.read_text()}")

    try:
        await asyncio.wait_for(wait_ready(), STARTUP_TIMEOUT)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _reference_argv(discord: Any, port: int) -> list[str]:
    return [
        sys.executable, __file__, "serve-reference", discord.api_url, discord.bot_token,
        discord.public_key_hex, discord.guild_id, str(port),
    ]  # fmt: skip


async def _serve_reference(api_url: str, token: str, key: str, guild: str, port: int) -> None:
    """The baseline server process: the bare lightbulb bot until terminated."""
    from clustercord_testing.discord_reference import ApplicationSettings, reference_bot

    settings = ApplicationSettings(token, key, api_url, guild)
    async with reference_bot(settings, port=port) as bot:
        print(f"ready {bot.endpoint_url}", flush=True)
        await asyncio.Event().wait()


# The like-for-like counterpart of the baseline's command: a plugin whose /ping answers
# "pong", so both sides do the same work apart from what ClusterCord adds to every command
# (resolution, option parsing, the access policy, hooks, the audit row, rendering).
PING_MANIFEST = {
    "name": "benchping",
    "version": "0.1.0",
    "api": ">=1.0,<2",
    "description": "The benchmark's /ping",
    "author": "ClusterCord benchmarks",
    "commands": [{"name": "ping", "description": "Answers pong", "handler": "commands:ping"}],
}
PING_MODULE = """from clustercord_sdk.reply import Reply


def ping(ctx):
    return Reply(text="pong")
"""


def _add_ping_plugin(package: Path) -> Path:
    """Install the ``benchping`` plugin next to the builtins copied into the site."""
    folder = package / PING_MANIFEST["name"]
    folder.mkdir()
    (folder / "__init__.py").write_text('"""The benchmark\'s /ping."""\n')
    (folder / "commands.py").write_text(PING_MODULE)
    (folder / "manifest.json").write_text(json.dumps(PING_MANIFEST))
    info = next(package.parent.glob("clustercord_builtins-*.dist-info"))
    entry_points = info / "entry_points.txt"
    module = f"{package.name}.{folder.name}"
    entry_points.write_text(entry_points.read_text() + f"{folder.name} = {module}\n")
    return folder


def _clustercord_env(discord: Any, scratch: Path) -> dict[str, str]:
    """A data directory trusting a throwaway key, and a signed copy of the builtins."""
    from clustercord.signing import TrustStore
    from clustercord_testing.harness import TestSigner
    from clustercord_testing.site import signed_builtins_site

    data_dir = scratch / "discord-data"
    signer = TestSigner()
    try:
        package = signed_builtins_site(scratch / "discord-site", signer)
        signer.sign(_add_ping_plugin(package))
        TrustStore(data_dir / "trust").trust(signer.public_key, label="bench", kind="release")
    finally:
        signer.cleanup()
    return {
        **os.environ,
        "PYTHONPATH": str(scratch / "discord-site"),
        "CLUSTERCORD_DATA_DIR": str(data_dir),
        "DISCORD_TOKEN": discord.bot_token,
        "DISCORD_PUBLIC_KEY": discord.public_key_hex,
        "CLUSTERCORD_DISCORD_API_URL": discord.api_url,
        "CLUSTERCORD_DISCORD_GUILDS": discord.guild_id,
    }


@dataclass
class Side:
    """One interaction server under load: where it listens and what it measured."""

    label: str
    discord: Any  # its own FakeDiscord: each bot owns its application's command set
    url: str = ""
    command: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pid: int = 0
    cpu_seconds: float = 0.0
    """CPU time the server process spent on the timed bursts: unlike latencies, hardly
    affected by what else runs on the machine."""

    async def burst(self, *, timed: bool = True) -> None:
        """``CONCURRENCY`` interactions at once, each timed to its initial response.

        One that gets no initial response at all (an error answer, a dropped connection)
        is not timed but counted in ``failures``.
        """
        cpu_before = _cpu_seconds(self.pid)
        results = await asyncio.gather(
            *(
                self.discord.invoke(self.url, self.command, self.options, user_id=str(10**17 + i))
                for i in range(CONCURRENCY)
            ),
            return_exceptions=True,
        )
        if not timed:
            return
        self.cpu_seconds += _cpu_seconds(self.pid) - cpu_before
        for result in results:
            if isinstance(result, BaseException):
                self.failures.append(f"{type(result).__name__}: {result}")
            elif result.latency is None:
                self.failures.append(f"HTTP {result.status}: {result.body[:100]!r}")
            else:
                self.latencies_ms.append(result.latency * 1000)

    def cpu_ms_each(self) -> float:
        return self.cpu_seconds * 1000 / max(1, len(self.latencies_ms) + len(self.failures))

    def report(self) -> tuple[float, float] | None:
        """Print p50 and p99 (and failures); return them, or None if nothing was timed."""
        values = self.latencies_ms
        late = sum(1 for value in values if value > ACK_DEADLINE * 1000)
        failed = f", {len(self.failures)} FAILED (e.g. {self.failures[0]})" if self.failures else ""
        if not values:
            print(f"  {self.label:<34} no interaction answered{failed}")
            return None
        p50, p99 = percentile(values, 50), percentile(values, 99)
        cpu = f", CPU {self.cpu_ms_each():.2f} ms each" if self.cpu_seconds else ""
        print(
            f"  {self.label:<34} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
            f"(n={len(values)}, {late} later than Discord's 3 s{cpu}{failed})"
        )
        return p50, p99


async def _start_clustercord(side: Side, stack: AsyncExitStack, scratch: Path) -> None:
    port = _free_port()
    argv = [str(CLI), "serve", "--mode", "interactions", "--host", "127.0.0.1", "--port", str(port)]
    env = _clustercord_env(side.discord, scratch)
    ready = "ClusterCord interaction server"
    side.pid = await stack.enter_async_context(
        _server_process(argv, env, ready, scratch / "clustercord.log")
    )
    side.url = f"http://127.0.0.1:{port}/"
    registered = {c["name"] for c in side.discord.commands(side.discord.guild_id)}
    registered |= {c["name"] for c in side.discord.commands()}
    if "ping" not in registered:
        raise RuntimeError(f"ClusterCord registered no /ping; it registered {sorted(registered)}")
    side.command = "ping"


async def measure(rounds: int, scratch: Path) -> list[Row]:
    from clustercord_testing.fake_discord import FakeDiscord

    # Discord drops an answer later than 3 s; here every answer is timed, however late,
    # and the late ones are counted.
    patience = {"ack_deadline": 60.0, "delivery_timeout": 60.0}
    async with AsyncExitStack() as stack:
        base = Side(
            "bare lightbulb /ping", await stack.enter_async_context(FakeDiscord(**patience))
        )
        port = _free_port()
        base.pid = await stack.enter_async_context(
            _server_process(
                _reference_argv(base.discord, port), dict(os.environ), "ready",
                scratch / "reference.log",
            )
        )  # fmt: skip
        base.url, base.command = f"http://127.0.0.1:{port}/", "ping"
        sides = [base]
        if clustercord_available():
            ours = Side(
                "clustercord serve /ping (benchping)",
                await stack.enter_async_context(FakeDiscord(**patience)),
            )
            await _start_clustercord(ours, stack, scratch)
            sides.append(ours)
        for side in sides:  # warm-up: imports, connections and caches
            await side.burst(timed=False)
        for _ in range(rounds):  # interleaved: the noise hits both alike
            for side in sides:
                await side.burst()
        violations = [v for side in sides for v in side.discord.violations]
    name = f"discord: {CONCURRENCY} concurrent interactions"
    base_figures = base.report()
    if base_figures is None:
        raise RuntimeError(f"the bare lightbulb bot answered nothing: {base.failures[:3]}")
    b50, b99 = base_figures
    baseline = f"p50 {b50:.0f} / p99 {b99:.0f} ms (bare lightbulb)"
    if len(sides) == 1:
        print("  clustercord serve --mode interactions: not available yet")
        return [(name, "not available yet", baseline, "-", "-")]
    figures = sides[1].report()
    failed = f", {len(sides[1].failures)} failed" if sides[1].failures else ""
    if figures is None:
        return [(name, f"nothing answered{failed}", baseline, "-", "MISSED")]
    c50, c99 = figures
    ratio = c99 / b99
    p99_ok = c99 < P99_TARGET_MS and not sides[1].failures
    ratio_ok = ratio <= RATIO_TARGET
    print(
        f"  p99 {c99:.0f} ms (target < {P99_TARGET_MS:.0f} ms: {'met' if p99_ok else 'MISSED'}), "
        f"ratio of the p99s {ratio:.2f} (target ≤ {RATIO_TARGET:g}: "
        f"{'met' if ratio_ok else 'MISSED'})"
    )
    if base.cpu_seconds and sides[1].cpu_seconds:
        ours_cpu, base_cpu = sides[1].cpu_ms_each(), base.cpu_ms_each()
        print(
            f"  server CPU per interaction {ours_cpu:.2f} ms vs {base_cpu:.2f} ms "
            f"(ratio {ours_cpu / base_cpu:.2f}): the cost the latencies queue behind"
        )
    if violations:
        print(f"  payloads Discord would reject: {len(violations)}, e.g. {violations[0]}")
    return [
        (
            name,
            f"p50 {c50:.0f} / p99 {c99:.0f} ms{failed}",
            baseline,
            f"{ratio:.2f}",
            f"p99 < {P99_TARGET_MS:.0f} ms {'met' if p99_ok else 'MISSED'}, "
            f"≤ {RATIO_TARGET:g} {'met' if ratio_ok else 'MISSED'}",
        )
    ]


def run(quick: bool) -> list[Row]:
    """The benchmark's summary rows (``Row(*row)`` in benchmarks/run.py)."""
    print(
        f"\n== Discord interactions: {CONCURRENCY} concurrent signed interactions, "
        f"time to the initial response",
        flush=True,
    )
    scratch = Path(tempfile.mkdtemp(prefix="ccbench-discord"))
    try:
        return asyncio.run(measure(1 if quick else 3, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one burst of each")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve-reference", help=argparse.SUPPRESS)
    for argument in ("api_url", "token", "public_key", "guild"):
        serve.add_argument(argument)
    serve.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve-reference":
        asyncio.run(
            _serve_reference(args.api_url, args.token, args.public_key, args.guild, args.port)
        )
        return 0
    for row in run(args.quick):
        print("  " + "  |  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
