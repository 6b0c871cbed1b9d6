"""Two ``clustercord serve`` processes in gateway mode, one Discord application, the home
cluster's Lease between them, as two pods of a rollout (or a replica too many) would run.

Both connect to the fake Discord's gateway, which sends every ``INTERACTION_CREATE`` to
every session as Discord does: an interaction answered twice is a violation the fake
records (and the ``fake_discord`` fixture fails the test on).

- SIGTERM to the holder: a command in flight (its API server answering slowly) still gets
  its reply, one that arrives while it drains is handed back ("restarting"), it exits 0
  with the audit whole, and the standby holds the Lease within one renewal period.
- ``kill -9`` of the holder: the standby waits for the Lease to expire (never before),
  then answers; nothing is answered twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from clustercord import lease
from clustercord.frontends.discord.app import RESTARTING
from clustercord_testing.site import signed_builtins_site

from .test_graceful_shutdown import CLI, unmatched_intents

USER = "100000000000000001"  # the fake's default user, mapped to the homelab's admin
READY = "connected to Discord's gateway"
WAITING = "is held by"


class SlowLink:
    """A TCP relay in front of the sandbox's API server: while ``delay`` is set, every
    chunk a client sends waits that long (a slow or distant API server)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> SlowLink:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
            try:
                while data := await src.read(65536):
                    if slow and self.delay:
                        await asyncio.sleep(self.delay)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


class Serve:
    """One ``clustercord serve --mode gateway`` process; its stdout read line by line."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: asyncio.subprocess.Process | None = None
        self.printed: list[str] = []

    async def start(self) -> Serve:
        with open(self.log, "wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *CLI, "serve", "--mode", "gateway",
                env=self.env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        return self

    async def line_with(self, text: str, timeout: float = 90) -> str:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout

        async def find() -> str:
            while True:
                line = (await stdout.readline()).decode()
                if not line:
                    raise EOFError(f"ended before printing {text!r}: {self.stderr()}")
                self.printed.append(line)
                if text in line:
                    return line

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{text!r} not printed within {timeout:g} s; printed: {self.printed}"
            ) from None

    async def wait(self, timeout: float = 40) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
def replicas(tmp_path, clustercord_signer, fake_discord, sandbox_cluster):
    """``replicas(kubeconfig)`` → the environments of two replicas (data directories of
    their own, one Discord application, the same home cluster)."""
    signed_builtins_site(tmp_path / "site", clustercord_signer)
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    config = tmp_path / "clustercord.toml"
    config.write_text(f'[identity.users."{USER}"]\nuser = "admin"\n')

    def environments(kubeconfig: Path) -> list[dict[str, str]]:
        home = yaml.safe_load(kubeconfig.read_text())["current-context"]
        envs = []
        for name in ("a", "b"):
            env = {
                **os.environ,
                "PYTHONPATH": str(tmp_path / "site"),
                "CLUSTERCORD_DATA_DIR": str(tmp_path / f"data-{name}"),
                "CLUSTERCORD_CONFIG": str(config),
                "KUBECONFIG": str(kubeconfig),
                "CLUSTERCORD_HOME_CLUSTER": home,
                "DISCORD_TOKEN": fake_discord.bot_token,
                "CLUSTERCORD_DISCORD_API_URL": fake_discord.api_url,
                "CLUSTERCORD_DISCORD_GUILDS": fake_discord.guild_id,
            }
            subprocess.run(
                [*CLI, "keys", "trust", str(key), "--label", "test", "--kind", "release"],
                env=env,
                check=True,
                capture_output=True,
            )
            envs.append(env)
        return envs

    return environments


async def _holder_and_standby(envs: list[dict[str, str]], tmp_path: Path) -> tuple[Serve, Serve]:
    first = await Serve(envs[0], tmp_path / "a.log").start()
    await first.line_with(READY)
    second = await Serve(envs[1], tmp_path / "b.log").start()
    await second.line_with(WAITING)
    return first, second


def _answered_once(discord, interaction) -> None:
    assert interaction.initial is not None, interaction
    assert discord.violations == [], discord.violations  # nothing answered twice, or late


@pytest.mark.slow
async def test_sigterm_drains_then_the_standby_takes_over(
    replicas, fake_discord, sandbox_cluster, tmp_path
):
    sandbox = sandbox_cluster("homelab")
    server = yaml.safe_load(sandbox.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    link = await SlowLink((host, int(port))).start()
    slow = yaml.safe_load(sandbox.kubeconfig.read_text())
    slow["clusters"][0]["cluster"]["server"] = f"https://{host}:{link.port}"
    kubeconfig = tmp_path / "slow-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(slow))
    kubeconfig.chmod(0o600)
    envs = replicas(kubeconfig)
    first = second = None
    try:
        first, second = await _holder_and_standby(envs, tmp_path)
        # Two bots on the gateway, one answers (the fake sends the event to both).
        assert len(fake_discord.gateway_sessions) == 2
        warm = await fake_discord.invoke(None, "help")
        _answered_once(fake_discord, warm)

        link.delay = 0.4  # the API server is slow from now on (each chunk a client sends)
        in_flight = await fake_discord.invoke(
            None, "pod list", {"namespace": "monitoring"}, user_id=USER
        )
        assert in_flight.initial is not None  # deferred: "thinking…" while it works
        pods = sandbox.kubectl("get", "pods", "-n", "monitoring", "-o", "name").stdout.split()
        names = [p.split("/")[1] for p in pods]
        assert names and names[0] not in json.dumps(in_flight.message)  # still working
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the signal is handled: it drains
        late = await fake_discord.invoke(None, "help")
        _answered_once(fake_discord, late)
        assert "restarting" in json.dumps(late.initial).lower(), late.initial
        assert RESTARTING.split(":")[0] in json.dumps(late.initial)

        # The command in flight finished and its reply arrived, before the process ended.
        shown = await fake_discord.wait_for(
            lambda: (m := in_flight.message) and names[0] in json.dumps(m) and m, timeout=30
        )
        assert all(name in json.dumps(shown) for name in names)
        assert await first.wait() == 0, first.stderr()
        stopped = time.monotonic()
        link.delay = 0.0

        # Released on the way out: the standby holds it within one renewal period.
        await second.line_with("holding the Lease", timeout=lease.RENEW + 10)
        assert time.monotonic() - stopped < lease.RENEW + 10
        await second.line_with(READY)
        after = await fake_discord.invoke(None, "help")
        _answered_once(fake_discord, after)
        assert "/plugin" in json.dumps(after.message)
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert await second.wait() == 0, second.stderr()
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
        await link.close()
    assert "Traceback" not in first.stderr()
    verified = subprocess.run(
        [*CLI, "audit", "verify"], env=envs[0], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert unmatched_intents(Path(envs[0]["CLUSTERCORD_DATA_DIR"]) / "clustercord.db") == []


@pytest.mark.slow
async def test_after_kill_9_the_standby_waits_for_the_lease_to_expire(
    replicas, fake_discord, sandbox_cluster, tmp_path
):
    sandbox = sandbox_cluster("homelab")
    envs = replicas(sandbox.kubeconfig)
    first = second = None
    try:
        first, second = await _holder_and_standby(envs, tmp_path)
        _answered_once(fake_discord, await fake_discord.invoke(None, "help"))
        await first.kill()  # no clean stop: the Lease stays, naming a dead holder
        killed = time.monotonic()
        await second.line_with("holding the Lease", timeout=lease.DURATION + lease.RENEW + 20)
        waited = time.monotonic() - killed
        # Not before it expired (its last renewal was at most RENEW before the kill) …
        assert waited >= lease.DURATION - lease.RENEW - 1, waited
        # … and within the documented 25 s of its last renewal (and a little start-up).
        assert waited <= lease.DURATION + 2 * lease.RENEW + 5, waited
        await second.line_with(READY)
        assert len(fake_discord.gateway_sessions) == 1  # the dead one's socket closed
        after = await fake_discord.invoke(None, "help")
        _answered_once(fake_discord, after)
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert await second.wait() == 0, second.stderr()
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()
    taken = sandbox.kubectl(
        "get", "lease", "clustercord", "-n", "default", "-o", "json", check=False
    )
    # The standby released it on its clean stop.
    assert taken.returncode != 0 and "NotFound" in taken.stderr


@pytest.mark.slow
async def test_a_standby_stopped_while_waiting_exits_and_takes_nothing(
    replicas, fake_discord, sandbox_cluster, tmp_path
):
    sandbox = sandbox_cluster("homelab")
    envs = replicas(sandbox.kubeconfig)
    first = second = None
    try:
        first, second = await _holder_and_standby(envs, tmp_path)
        assert second.process is not None and first.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert await second.wait(timeout=20) == 0, second.stderr()
        assert "Traceback" not in second.stderr(), second.stderr()
        holder = json.loads(
            sandbox.kubectl("get", "lease", "clustercord", "-n", "default", "-o", "json").stdout
        )["spec"]["holderIdentity"]
        assert holder.endswith(f"/{first.process.pid}")
        _answered_once(fake_discord, await fake_discord.invoke(None, "help"))
        first.process.send_signal(signal.SIGTERM)
        assert await first.wait() == 0, first.stderr()
    finally:
        for process in (first, second):
            if process is not None:
                await process.kill()


@pytest.mark.slow
async def test_a_holder_frozen_past_its_lease_answers_nothing_when_it_wakes(
    replicas, fake_discord, sandbox_cluster, tmp_path
):
    """SIGSTOP (a long GC pause, a frozen VM, a node cut off) longer than the Lease: the
    standby takes over; what reached the frozen one meanwhile waits in its socket, and on
    waking it must neither answer that a second time nor keep answering."""
    sandbox = sandbox_cluster("homelab")
    envs = replicas(sandbox.kubeconfig)
    first = second = None
    try:
        first, second = await _holder_and_standby(envs, tmp_path)
        assert first.process is not None and second.process is not None
        first.process.send_signal(signal.SIGSTOP)
        await second.line_with("holding the Lease", timeout=lease.DURATION + lease.RENEW + 20)
        await second.line_with(READY)
        # Sent to both: the new holder answers; the frozen one has it waiting unread.
        _answered_once(fake_discord, await fake_discord.invoke(None, "help"))
        first.process.send_signal(signal.SIGCONT)
        # It wakes, finds the Lease gone to the other, and stops (exit 0, a clean stop).
        assert await first.wait(timeout=40) == 0, first.stderr()
        assert fake_discord.violations == [], fake_discord.violations
        _answered_once(fake_discord, await fake_discord.invoke(None, "help"))
        second.process.send_signal(signal.SIGTERM)
        assert await second.wait() == 0, second.stderr()
    finally:
        for process in (first, second):
            if process is not None:
                if process.process is not None and process.process.returncode is None:
                    process.process.send_signal(signal.SIGCONT)
                await process.kill()
