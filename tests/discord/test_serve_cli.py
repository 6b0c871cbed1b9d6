"""``clustercord serve --mode interactions`` and ``clustercord discord commands --json`` as
processes, with a signed copy of the builtins, against the fake Discord."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

import pytest

from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]


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


@pytest.mark.slow
async def test_serve_answers_and_registers_what_the_cli_prints(environment, fake_discord):
    printed = subprocess.run(
        [*CLI, "discord", "commands", "--json"], env=environment, capture_output=True, text=True
    )
    assert printed.returncode == 0, printed.stderr
    payload = json.loads(printed.stdout)
    assert payload["guilds"] == [fake_discord.guild_id]

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--mode", "interactions", "--host", "127.0.0.1", "--port", str(port),
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.decode().startswith("ClusterCord interaction server on http://127.0.0.1:")
        registered = fake_discord.commands(fake_discord.guild_id)
        assert sorted(c["name"] for c in registered) == sorted(
            c["name"] for c in payload["commands"]
        )
        url = f"http://127.0.0.1:{port}/"
        result = await fake_discord.invoke(url, "help")
        assert result.message is not None and "/plugin" in json.dumps(result.message)
        forged = await fake_discord.invoke(url, "help", forged=True)
        assert forged.status == 401
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
