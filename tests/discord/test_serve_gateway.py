"""``clustercord serve --mode gateway`` as a process against the fake Discord's gateway.

An application whose Developer Portal has "Server Members Intent" switched off: Discord
closes the connection with 4014 (Disallowed intent(s)). By default the bot connects again
without member events, says so once and answers commands; with ``member_events = true`` in
the config it stops at once with an error saying what to switch on. And SIGTERM stops it
cleanly, serving or still waiting for the home cluster's Lease."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from clustercord_testing.fake_discord.gateway import GUILD_MEMBERS, PRIVILEGED_INTENTS

# The process's environment (signed builtins, a trusted key, the fake Discord's URLs) is
# test_serve_cli's fixture: the tests below take it as an argument (hence F811 there).
from tests.discord.test_serve_cli import CLI, environment  # noqa: F401

REFUSED = "Discord refused the Server Members intent (gateway close code 4014)"


async def serve(env):
    return await asyncio.create_subprocess_exec(
        *CLI, "serve", "--mode", "gateway",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def connected(discord, process, seconds: float = 60.0) -> None:
    """Until the bot identified and synced its commands (or the process ended)."""
    since = len(discord.requests)
    deadline = time.monotonic() + seconds

    def synced() -> bool:  # lightbulb reads the registered commands, then may replace them
        return any(r.path.endswith("/commands") for r in discord.requests[since:])

    while not (discord.gateway_sessions and synced()):
        if process.returncode is not None or time.monotonic() > deadline:
            _, err = await process.communicate()
            pytest.fail(f"the bot did not connect: {err.decode()}")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the client starting once the sync is answered


@pytest.mark.slow
async def test_without_server_members_in_the_portal_the_bot_runs_on_and_says_so_once(
    environment,  # noqa: F811
    fake_discord,
):
    fake_discord.portal_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS
    process = await serve(environment)
    try:
        await connected(fake_discord, process)
        [refused] = fake_discord.refused_identifies
        [connection] = fake_discord.gateway_sessions
        assert refused & GUILD_MEMBERS
        assert connection.identify["intents"] == refused & ~GUILD_MEMBERS
        answered = await fake_discord.invoke(None, "help")
        assert answered.message is not None and "/plugin" in str(answered.message)
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert stderr.count(REFUSED) == 1, stderr
    assert "Switch on 'Server Members Intent' in the Developer Portal" in stderr
    assert "role loss is caught by the one-minute re-check only" in stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.slow
async def test_member_events_true_in_the_config_stops_with_what_to_switch_on(
    environment,  # noqa: F811
    fake_discord,
    tmp_path,
):
    fake_discord.portal_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS
    config = tmp_path / "clustercord.toml"
    config.write_text("[discord]\nmember_events = true\n")
    process = await serve({**environment, "CLUSTERCORD_CONFIG": str(config)})
    _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert (
        f"clustercord: error: {REFUSED}, which [discord] member_events = true requires: "
        "switch on 'Server Members Intent' in the Developer Portal → your application → Bot → "
        "Privileged Gateway Intents, or set member_events = false to rely on the one-minute "
        "role re-check"
    ) in stderr, stderr
    assert "Traceback" not in stderr, stderr
    # Refused once, not tried again without the intent; never connected.
    assert len(fake_discord.refused_identifies) == 1
    assert fake_discord.gateway_sessions == []


@pytest.mark.slow
async def test_server_members_switched_off_while_running_stops_saying_a_restart_falls_back(
    environment,  # noqa: F811
    fake_discord,
):
    process = await serve(environment)
    try:
        await connected(fake_discord, process)
        [connection] = fake_discord.gateway_sessions
        assert connection.identify["intents"] & GUILD_MEMBERS
        # Switched off in the portal meanwhile; Discord then makes the bot identify again.
        fake_discord.portal_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS
        assert await fake_discord.invalidate_sessions() == 1
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert (
        "clustercord: error: Discord refused the Server Members intent when the bot identified "
        "again (gateway close code 4014)"
    ) in stderr, stderr
    assert "Started again, ClusterCord runs without member events" in stderr
    assert "Traceback" not in stderr, stderr  # one clear line, not hikari's shard error again
    [refused] = fake_discord.refused_identifies
    assert refused & GUILD_MEMBERS

    # Started again, as Kubernetes restarts the pod: it runs without member events.
    process = await serve(environment)
    try:
        await connected(fake_discord, process)
        [connection] = fake_discord.gateway_sessions
        assert not connection.identify["intents"] & GUILD_MEMBERS
        answered = await fake_discord.invoke(None, "help")
        assert answered.message is not None and "/plugin" in str(answered.message)
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert err.decode().count(REFUSED) == 1


@pytest.mark.slow
async def test_sigterm_stops_a_bot_waiting_for_the_lease_and_the_one_holding_it(
    environment,  # noqa: F811
    fake_discord,
    sandbox_cluster,
    tmp_path,
):
    import yaml

    sandbox = sandbox_cluster("homelab")
    home = yaml.safe_load(sandbox.kubeconfig.read_text())["current-context"]
    first_env = {
        **environment,
        "KUBECONFIG": str(sandbox.kubeconfig),
        "CLUSTERCORD_HOME_CLUSTER": home,
    }
    second_env = {**first_env, "CLUSTERCORD_DATA_DIR": str(tmp_path / "data-2")}
    subprocess.run(
        [*CLI, "keys", "trust", str(tmp_path / "test.asc"), "--label", "t", "--kind", "release"],
        env=second_env,
        check=True,
        capture_output=True,
    )
    first = await serve(first_env)
    second = None
    try:
        await connected(fake_discord, first)  # holds the Lease: it synced its commands
        second = await serve(second_env)
        line = await asyncio.wait_for(second.stdout.readline(), 60)
        assert "the Lease clustercord is held by" in line.decode()
        # Waiting (connected to the gateway, serving nothing): SIGTERM ends it at once.
        second.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(second.communicate(), 15)
        assert second.returncode == 0, err.decode()
        assert "Traceback" not in err.decode(), err.decode()
        first.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(first.communicate(), 30)
        assert first.returncode == 0, err.decode()
        assert "Traceback" not in err.decode(), err.decode()
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
