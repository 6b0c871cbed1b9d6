"""``clustercord serve --mode interactions`` stopped with SIGTERM, as Kubernetes stops a pod:
interactions in flight are answered within Discord's 3 s, /readyz turns 503 before anything
closes, the process exits 0, and the audit log verifies with every intent matched by its
result (nothing left "started, no result")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]
ANSWER_WITHIN = 3.0  # seconds: Discord's window for the first answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def environment(tmp_path, clustercord_signer, fake_discord):
    signed_builtins_site(tmp_path / "site", clustercord_signer)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
        "DISCORD_TOKEN": fake_discord.bot_token,
        "DISCORD_PUBLIC_KEY": fake_discord.public_key_hex,
        "CLUSTERCORD_DISCORD_API_URL": fake_discord.api_url,
        "CLUSTERCORD_DISCORD_GUILDS": fake_discord.guild_id,
        "CLUSTERCORD_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "CLUSTERCORD_HTTP_TLS": "off",
    }
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    subprocess.run(
        [*CLI, "keys", "trust", str(key), "--label", "test", "--kind", "release"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def unmatched_intents(database: Path) -> list[tuple]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(
            "SELECT seq, action FROM _audit AS i WHERE result = 'started' AND NOT EXISTS "
            "(SELECT 1 FROM _audit AS r WHERE r.intent_seq = i.seq)"
        ).fetchall()
    finally:
        conn.close()


async def _readyz(url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(url + "/readyz") as response:
        return response.status


@pytest.mark.slow
async def test_sigterm_answers_interactions_in_flight_and_exits_cleanly(
    environment, fake_discord, tmp_path
):
    port = free_port()
    health = "http://" + environment["CLUSTERCORD_HTTP_LISTEN"]
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--mode", "interactions", "--host", "127.0.0.1", "--port", str(port),
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.decode().startswith("ClusterCord interaction server on"), line
        for _ in range(50):  # the HTTP service starts beside the interaction server
            try:
                if await _readyz(health) == 200:
                    break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        assert await _readyz(health) == 200
        url = f"http://127.0.0.1:{port}/"
        in_flight = [asyncio.create_task(fake_discord.invoke(url, "help")) for _ in range(4)]
        await asyncio.sleep(0.05)  # the requests are on their way when the signal comes
        process.send_signal(signal.SIGTERM)
        answered = await asyncio.gather(*in_flight)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode()
    assert code == 0, stderr
    for interaction in answered:
        assert interaction.initial is not None, interaction
        assert interaction.initial_at - interaction.sent_at < ANSWER_WITHIN
        assert interaction.message is not None and "/plugin" in json.dumps(interaction.message)
    verified = subprocess.run(
        [*CLI, "audit", "verify"], env=environment, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert unmatched_intents(tmp_path / "data" / "clustercord.db") == []
    assert "Traceback" not in stderr


async def _line_with(stream: asyncio.StreamReader, text: str, timeout: float = 60) -> str:
    async def find() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise EOFError(f"the process ended before printing {text!r}")
            if text in line:
                return line

    return await asyncio.wait_for(find(), timeout)


def _two_replicas(environment, tmp_path, sandbox) -> tuple[dict, dict]:
    """The environments of two replicas: data directories of their own, one Discord
    application, the sandbox as their home cluster."""
    import yaml

    home = yaml.safe_load(sandbox.kubeconfig.read_text())["current-context"]
    first_env = {**environment, "KUBECONFIG": str(sandbox.kubeconfig)}
    first_env["CLUSTERCORD_HOME_CLUSTER"] = home
    second_env = {
        **first_env,
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data-2"),
        "CLUSTERCORD_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
    }
    subprocess.run(
        [*CLI, "keys", "trust", str(tmp_path / "test.asc"), "--label", "t", "--kind", "release"],
        env=second_env,
        check=True,
        capture_output=True,
    )
    return first_env, second_env


def _commands_run(database: Path, name: str) -> int:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(
            "SELECT count(*) FROM _audit WHERE action LIKE ?", (f"%{name}%",)
        ).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow
async def test_a_second_instance_waits_for_the_lease_then_takes_over(
    environment, fake_discord, tmp_path, sandbox_cluster, clustercord_signer
):
    first_env, second_env = _two_replicas(environment, tmp_path, sandbox_cluster("homelab"))
    processes = []
    try:
        for env in (first_env, second_env):
            processes.append(
                await asyncio.create_subprocess_exec(
                    *CLI,
                    "serve",
                    "--mode",
                    "interactions",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
            if len(processes) == 1:  # the first holds it before the second starts
                await _line_with(processes[0].stdout, "interaction server on")
        first, second = processes
        waiting = await _line_with(second.stdout, "is held by")
        assert "the Lease clustercord is held by" in waiting
        # Alive, not ready: it gets no traffic, and says why.
        second_url = "http://" + second_env["CLUSTERCORD_HTTP_LISTEN"]
        async with aiohttp.ClientSession() as client:
            async with client.get(second_url + "/healthz") as response:
                assert response.status == 200
            async with client.get(second_url + "/readyz") as response:
                assert response.status == 503
                assert "lease: held by" in await response.text()
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 30) == 0
        # Released on the way out: the second one takes over at once, not after 15 s.
        await _line_with(second.stdout, "interaction server on", timeout=10)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.mark.slow
async def test_a_server_frozen_past_its_lease_runs_nothing_it_reads_on_waking(
    environment, fake_discord, tmp_path, sandbox_cluster
):
    """SIGSTOP longer than the Lease: a request that waited in the frozen server's socket is
    refused (503) on waking, not run after the other instance took over; then it stops."""
    from clustercord.lease import DURATION, RENEW

    first_env, second_env = _two_replicas(environment, tmp_path, sandbox_cluster("homelab"))
    ports = [free_port(), free_port()]
    processes = []
    try:
        for env, port in zip((first_env, second_env), ports, strict=True):
            process = await asyncio.create_subprocess_exec(
                *CLI, "serve", "--mode", "interactions", "--host", "127.0.0.1",
                "--port", str(port), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(process)
            if len(processes) == 1:
                await _line_with(processes[0].stdout, "interaction server on")
        first, second = processes
        await _line_with(second.stdout, "is held by")
        first_url = f"http://127.0.0.1:{ports[0]}/"
        assert (await fake_discord.invoke(first_url, "help")).initial is not None
        database = Path(first_env["CLUSTERCORD_DATA_DIR"]) / "clustercord.db"
        ran = _commands_run(database, "help")
        first.send_signal(signal.SIGSTOP)
        waiting = asyncio.create_task(fake_discord.invoke(first_url, "help"))
        await _line_with(second.stdout, "interaction server on", timeout=DURATION + RENEW + 20)
        first.send_signal(signal.SIGCONT)
        refused = await waiting
        assert refused.status == 503, refused
        # Discord gave up on it after 3 s ("The application did not respond"), as it would.
        expected = [v for v in fake_discord.violations if refused.id in v]
        assert expected and all("not acknowledged" in v for v in expected), expected
        for violation in expected:
            fake_discord.violations.remove(violation)
        assert await asyncio.wait_for(first.wait(), 30) == 0  # it found the Lease gone
        assert _commands_run(database, "help") == ran  # nothing of it ran
        second_url = f"http://127.0.0.1:{ports[1]}/"
        assert (await fake_discord.invoke(second_url, "help")).initial is not None
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                await process.wait()
