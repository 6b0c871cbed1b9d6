"""The minecraft plugin against a real Server List Ping and RCON server started here, and a
real (sandbox) API server for the restart."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from .minecraft_server import PASSWORD, minecraft_server

pytest.importorskip("mcstatus")
PLUGIN = Path(__file__).parent.parent / "src" / "clustercord_minecraft"


@pytest.fixture
async def harness(clustercord_harness):
    clustercord_harness.add_builtins(["plugins"])
    clustercord_harness.add_plugin(PLUGIN)
    return clustercord_harness


async def configure(harness, server) -> None:
    for key, value in (
        ("host", "127.0.0.1"),
        ("port", str(server.status_port)),
        ("rcon_port", str(server.rcon_port)),
        ("rcon_password", PASSWORD),
    ):
        done = await harness.run(f"/plugin config name:minecraft key:{key} value:{value}")
        assert done.ok, done.text


async def test_status_shows_players_version_motd_and_latency(harness):
    async with minecraft_server(["Alex", "Steve"]) as server:
        await harness.start()
        await harness.run("/plugin permissions name:minecraft approve:true")
        result = await harness.run(f"/minecraft-status server:127.0.0.1:{server.status_port}")
        assert result.ok, result.text
        assert result.reply.data["online"] == 2 and result.reply.data["max"] == 20
        assert result.reply.data["players"] == ["Alex", "Steve"]
        assert result.reply.data["version"] == "1.21.1"
        assert "A ClusterCord test world" in result.text
        assert result.reply.data["latency_ms"] >= 0


async def test_status_of_a_server_that_is_down_says_so(harness):
    await harness.start()
    await harness.run("/plugin permissions name:minecraft approve:true")
    result = await harness.run("/minecraft-status server:127.0.0.1:1")
    assert result.status == "error" and "did not answer a status ping" in result.text


async def test_backup_saves_the_world_over_rcon_and_keeps_max_backups(harness):
    async with minecraft_server([]) as server:
        await harness.start()
        await harness.run("/plugin permissions name:minecraft approve:true")
        await configure(harness, server)
        await harness.run("/plugin config name:minecraft key:max_backups value:2")
        for _ in range(3):
            result = await harness.run("/minecraft-backup server:survival")
            assert result.ok, result.text
        assert server.commands == ["save-off", "save-all flush", "save-on"] * 3
        assert len(result.reply.data["backups"]) == 2
        assert "Saved the game" in result.text


async def test_a_wrong_rcon_password_is_refused(harness):
    async with minecraft_server([]) as server:
        await harness.start()
        await harness.run("/plugin permissions name:minecraft approve:true")
        await configure(harness, server)
        await harness.run("/plugin config name:minecraft key:rcon_password value:wrong")
        result = await harness.run("/minecraft-backup server:survival")
        assert result.status == "error" and "refused the password" in result.text
        assert server.commands == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_restart_warns_players_then_restarts_the_statefulset(harness, sandbox_cluster):
    cluster = sandbox_cluster("empty")
    cluster.kubectl("create", "namespace", "minecraft")
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "survival", "namespace": "minecraft"},
        "spec": {
            "serviceName": "survival",
            "selector": {"matchLabels": {"app": "survival"}},
            "template": {
                "metadata": {"labels": {"app": "survival"}},
                "spec": {"containers": [{"name": "mc", "image": "itzg/minecraft-server"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(statefulset))
    async with minecraft_server(["Alex"]) as server:
        await harness.start()
        await harness.run("/plugin permissions name:minecraft approve:true")
        await configure(harness, server)
        result = await harness.run("/minecraft-restart server:survival")
        assert result.ok, result.text
        assert server.commands[0].startswith("say Server restarting now")
    got = json.loads(
        cluster.kubectl("get", "statefulset", "survival", "-n", "minecraft", "-o", "json").stdout
    )
    annotations = got["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == result.reply.data["restarted_at"]


async def until(condition, timeout: float = 15.0) -> bool:
    for _ in range(int(timeout / 0.1)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_out_of_memory_crash_proposes_more_memory_and_an_approval_applies_it(
    clustercord_harness, sandbox_cluster
):
    cluster = sandbox_cluster("empty")
    cluster.kubectl("create", "namespace", "minecraft")
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "survival", "namespace": "minecraft"},
        "spec": {
            "serviceName": "survival",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "minecraft"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "minecraft"}},
                "spec": {
                    "containers": [
                        {
                            "name": "mc",
                            "image": "itzg/minecraft-server",
                            "resources": {"limits": {"memory": "2Gi"}},
                        }
                    ]
                },
            },
        },
    }
    harness = clustercord_harness
    harness.add_builtins(["plugins", "approvals"])
    harness.add_plugin(PLUGIN)
    kernel = await harness.start()
    assert (await harness.run("/plugin permissions name:minecraft approve:true")).ok
    stop = asyncio.Event()
    background = asyncio.create_task(kernel.run_background(stop, tick=0.1))
    try:
        await asyncio.sleep(1.0)  # the watches list first
        cluster.kubectl("apply", "-f", "-", input=json.dumps(statefulset))

        def pod_exists() -> bool:
            found = cluster.kubectl("get", "pod", "survival-0", "-n", "minecraft", check=False)
            return found.returncode == 0

        assert await until(pod_exists)

        async def crash_log() -> None:
            cluster.server.pod_logs.append(
                "minecraft", "survival-0", "mc", "java.lang.OutOfMemoryError: Java heap space"
            )

        # What the server printed as it died; the container restarted (and runs again).
        cluster.background.call(crash_log())
        crashed = {
            "status": {
                "containerStatuses": [
                    {
                        "name": "mc",
                        "image": "itzg/minecraft-server",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 2,
                        "started": True,
                        "state": {"running": {"startedAt": "2026-01-01T00:05:10Z"}},
                        "lastState": {
                            "terminated": {
                                "reason": "Error",
                                "exitCode": 1,
                                "startedAt": "2026-01-01T00:00:00Z",
                                "finishedAt": "2026-01-01T00:05:00Z",
                            }
                        },
                    }
                ]
            }
        }
        cluster.kubectl(
            "patch",
            "pod",
            "survival-0",
            "-n",
            "minecraft",
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(crashed),
        )
        pending: list[str] = []

        async def proposed() -> bool:
            listed = await harness.run("/approval list")
            pending[:] = listed.reply.data.get("pending", [])
            return bool(pending)

        for _ in range(150):
            if await proposed():
                break
            await asyncio.sleep(0.1)
        assert pending, "no approval was proposed"
        listed = await harness.run("/approval list")
        assert "2Gi → 4Gi" in str(listed.reply)
        approved = await harness.run(f"/approval approve id:{pending[0]}")
        assert approved.ok, approved.text

        def limit() -> str:
            got = json.loads(
                cluster.kubectl(
                    "get", "statefulset", "survival", "-n", "minecraft", "-o", "json"
                ).stdout
            )
            return got["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]

        assert await until(lambda: limit() == "4Gi"), limit()
    finally:
        stop.set()
        await background


async def test_backups_run_on_the_configured_interval(harness):
    async with minecraft_server([]) as server:
        kernel = await harness.start()
        await harness.run("/plugin permissions name:minecraft approve:true")
        await configure(harness, server)
        jobs = lambda: [j for j in kernel.scheduler.jobs() if j.plugin == "minecraft"]  # noqa: E731
        assert jobs() == []  # no interval yet: nothing scheduled
        target = f"127.0.0.1:{server.rcon_port}"
        await harness.run(f"/plugin config name:minecraft key:backup_servers value:{target}")
        await harness.run("/plugin config name:minecraft key:backup_interval value:6h")
        [job] = jobs()
        assert job.schedule == "every 6h" and job.handler == "commands:scheduled_backups"
        await kernel.run_job(job)  # the slot comes: the world is saved, as by the command
        assert server.commands == ["save-off", "save-all flush", "save-on"]
        listed = await harness.run("/minecraft-backup server:" + target)
        assert [b["by"] for b in listed.reply.data["backups"]][:1] == ["schedule"]
        await harness.run('/plugin config name:minecraft key:backup_interval value:""')
        assert jobs() == []  # emptied: the schedule is gone
