"""``ctx.kubernetes.exec`` for an isolated plugin: the kernel opens the session as the
plugin's ServiceAccount (checked as in-process) and holds the WebSocket; writes, reads with
their stream names, resizes and the exit code cross the pipe. Against the sandbox, whose pods'
commands run in namespaces of their own."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from clustercord_testing.sandbox import process_alive

from .conftest import commands

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

POD = "exec-demo"
CLUSTER = f"""
apiVersion: v1
kind: Node
metadata: {{name: nas}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {POD}, namespace: default}}
spec:
  containers:
  - {{name: web, image: "nginx:1.27"}}
"""

SHELL = {
    "manifest": {
        "permissions": ["pods/exec:create", "pods:get"],
        **commands("run", "talk", "tty", "linger", "sessions"),
    },
    "modules": {
        "commands": f"""
            import asyncio, json

            POD = {POD!r}

            async def run(ctx):
                seen = {{"stdout": b"", "stderr": b""}}
                async with await ctx.kubernetes.exec(
                    POD, ["sh", "-c", "echo out; echo err >&2; exit 7"],
                    namespace="default", container="web",
                ) as session:
                    async for stream, data in session:
                        seen[stream] += data
                out, err = (seen[s].decode().strip() for s in ("stdout", "stderr"))
                return f"stdout={{out}} stderr={{err}} exit={{session.exit_code}}"

            async def talk(ctx):
                session = await ctx.kubernetes.exec(
                    POD, ["sh", "-c", "read line; echo got $line"],
                    namespace="default", container="web", stdin=True,
                )
                steps = []
                async with session:
                    try:
                        await session.read(timeout=0.3)
                    except TimeoutError:
                        steps.append(["timeout", session.exit_code])
                    await session.write("x\\n")
                    stream, data = await session.read(timeout=10)
                    steps.append([stream, data.decode()])
                    steps.append(await session.read(timeout=10))
                steps.append(session.exit_code)
                return json.dumps(steps)

            async def tty(ctx):
                session = await ctx.kubernetes.exec(
                    POD, ["sh", "-c", "read go; stty size; echo oops >&2"],
                    namespace="default", container="web", stdin=True, tty=True,
                )
                async with session:
                    await session.resize(100, 40)
                    await session.write("go\\n")
                    chunks = [chunk async for chunk in session]
                output = b"".join(data for _, data in chunks).decode()
                streams = sorted({{stream for stream, _ in chunks}})
                plain = await ctx.kubernetes.exec(
                    POD, ["true"], namespace="default", container="web"
                )
                async with plain:
                    try:
                        await plain.resize(80, 24)
                    except Exception as exc:
                        refused = f"{{type(exc).__name__}}: {{exc}}"
                return json.dumps([output, streams, session.exit_code, refused])

            async def linger(ctx):
                # Opened and never closed: the kernel closes it when the process ends.
                session = await ctx.kubernetes.exec(
                    POD, ["sh", "-c", "echo $$; exec sleep 60"],
                    namespace="default", container="web",
                )
                stream, data = await session.read(timeout=10)
                return data.decode().strip()

            async def sessions(ctx):
                # A handle number of a session it does not hold.
                from clustercord.isolation.child import ExecProxy
                try:
                    await ExecProxy(ctx.plugin.kubernetes._channel, 424242).read()
                except Exception as exc:
                    return f"{{type(exc).__name__}}: {{exc}}"
        """
    },
}


@pytest.fixture
def cluster(sandbox_cluster):
    cluster = sandbox_cluster()
    cluster.apply(CLUSTER)
    cluster.wait_running(POD)
    return cluster


@pytest.fixture
async def harness(clustercord_harness, isolated_plugin, cluster):
    clustercord_harness.add_builtins(["plugins"])
    isolated_plugin("shell", **SHELL)
    await clustercord_harness.start()
    approved = await clustercord_harness.run("/plugin permissions name:shell approve:true")
    assert approved.ok, approved.text
    await clustercord_harness.kernel.kubernetes.plugin_identities.settle()
    assert clustercord_harness.kernel.isolation.process("shell") is not None
    return clustercord_harness


async def test_exec_output_streams_and_exit_code(harness):
    ran = await harness.run("/run")
    assert ran.text == "stdout=out stderr=err exit=7", ran.text


async def test_exec_input_read_timeout_and_terminal(harness):
    talked = await harness.run("/talk")
    assert json.loads(talked.text) == [["timeout", None], ["stdout", "got x\n"], None, 0]
    tty = await harness.run("/tty")
    output, streams, code, refused = json.loads(tty.text)
    assert "40 100" in output and "oops" in output and streams == ["stdout"]
    assert code == 0
    assert refused == "UsageError: resize: the session was opened without tty=True"


async def test_sessions_are_the_process_own_and_end_with_it(harness, cluster):
    kernel = harness.kernel
    foreign = await harness.run("/sessions")
    assert "no such session" in foreign.text, foreign.text

    lingered = await harness.run("/linger")
    assert lingered.ok, lingered.text
    pid = cluster.server.isolation.host_pid("default", POD, int(lingered.text))
    assert pid is not None and process_alive(pid)
    child = kernel.isolation.process("shell")
    assert len(child.handles) == 1
    child.kill("test")  # the plugin's process ends: the kernel closes its session
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        await _sleep(0.05)
    assert not process_alive(pid)
    assert not child.handles


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
