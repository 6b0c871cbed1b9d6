"""``ctx.kubernetes.exec``: a plugin runs a command in a container through the kernel, as its
own ServiceAccount, against a real sandbox API server (which runs the command in the pod's own
namespaces, with the machine's own ``sh``)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time

import pytest

from clustercord.kubernetes import exec as pod_exec
from clustercord.policy import CONSOLE_USER
from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_testing.sandbox import process_alive

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

CLUSTER = """
apiVersion: v1
kind: Node
metadata: {name: nas}
---
apiVersion: v1
kind: Pod
metadata: {name: exec-demo, namespace: default}
spec:
  containers:
  - {name: web, image: "nginx:1.27"}
  - {name: sidecar, image: "busybox:1.36", command: [sh, -c, "sleep infinity"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: exec, namespace: default}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {apiGroups: [""], resources: [pods/exec], verbs: [get, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-exec, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: exec}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pods-only, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-pods-only, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pods-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
"""

POD = "exec-demo"
EXIT_7 = ["sh", "-c", "echo out; echo err >&2; exit 7"]
# `/shell hello` runs EXIT_7 and reports what came back; `/nosy peek` tries without declaring.
SHELL = {
    "manifest": {
        "permissions": ["pods/exec:create", "pods:get"],
        "commands": [{"name": "shell", "description": "run", "handler": "commands:run"}],
    },
    "modules": {
        "commands": f"""
            async def run(ctx):
                seen = {{"stdout": b"", "stderr": b""}}
                async with await ctx.kubernetes.exec(
                    "{POD}", {EXIT_7!r}, namespace="default", container="web"
                ) as session:
                    async for stream, data in session:
                        seen[stream] += data
                out, err = (seen[s].decode().strip() for s in ("stdout", "stderr"))
                return f"stdout={{out}} stderr={{err}} exit={{session.exit_code}}"
        """
    },
}
NOSY = {
    "manifest": {
        "permissions": ["pods:read"],
        "commands": [{"name": "nosy", "description": "peek", "handler": "commands:run"}],
    },
    "modules": {
        "commands": f"""
            async def run(ctx):
                await ctx.kubernetes.exec("{POD}", ["true"], namespace="default", container="web")
        """
    },
}
NOSY_ACCOUNT = "system:serviceaccount:clustercord-system:plugin-nosy"


@pytest.fixture
def cluster(sandbox_cluster):
    cluster = sandbox_cluster()
    cluster.apply(CLUSTER)
    cluster.wait_running(POD)
    return cluster


@pytest.fixture
async def harness(clustercord_harness, make_plugin, cluster):
    clustercord_harness.add_builtins(["plugins"])
    clustercord_harness.add_plugin(make_plugin("shell", **SHELL))
    clustercord_harness.add_plugin(make_plugin("nosy", **NOSY))
    await clustercord_harness.restart(
        identity={"users": {"1001": {"user": "alice"}, "1002": {"user": "bob"}}}
    )
    for plugin in ("shell", "nosy"):
        approved = await clustercord_harness.run(f"/plugin permissions name:{plugin} approve:true")
        assert approved.ok, approved.text
    await clustercord_harness.kernel.kubernetes.plugin_identities.settle()
    return clustercord_harness


def kubernetes(harness, plugin: str = "shell"):
    """The plugin's ``ctx.kubernetes`` in a command of the console operator (no user review)."""
    console = Invocation(user_id=CONSOLE_USER, command=(plugin,))
    return harness.plugin(plugin).context.kubernetes.acting_for(console)


async def run(harness, command, *, stdin: bytes | None = None, **options):
    """Run ``command`` in the web container; → (the chunks in order, the exit code)."""
    session = await kubernetes(harness).exec(
        POD, command, namespace="default", container="web", stdin=stdin is not None, **options
    )
    async with session:
        if stdin is not None:
            await session.write(stdin)
            await session.close_stdin()
        chunks = [chunk async for chunk in session]
    return chunks, session.exit_code


def joined(chunks, stream: str = "stdout") -> bytes:
    return b"".join(data for name, data in chunks if name == stream)


async def test_output_streams_and_exit_code(harness, cluster):
    chunks, code = await run(harness, EXIT_7)
    assert joined(chunks) == b"out\n"
    assert joined(chunks, "stderr") == b"err\n"
    assert code == 7
    ok, code = await run(harness, ["echo", "hi; not a shell"])
    assert (joined(ok), code) == (b"hi; not a shell\n", 0), "argv, not a shell line"

    # The plugin's ClusterRole has get beside create: the WebSocket handshake is a GET.
    role = cluster.kubectl("get", "clusterrole", "clustercord:plugin:shell", "-o", "json")
    exec_rule = {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}
    assert exec_rule in json.loads(role.stdout)["rules"]

    # The same through a command a person runs from chat, as a user allowed to exec.
    answer = await harness.run("/shell", user="1001", frontend="discord")
    assert answer.ok, answer.text
    assert answer.text == "stdout=out stderr=err exit=7"


async def test_stdin_is_passed_and_closed(harness):
    chunks, code = await run(harness, ["tr", "a-z", "A-Z"], stdin=b"shout\n")
    assert (joined(chunks), code) == (b"SHOUT\n", 0)
    big = b"x" * 200_000 + b"\n"  # more than one WebSocket frame of stdin
    chunks, code = await run(harness, ["wc", "-c"], stdin=big)
    assert (joined(chunks).strip(), code) == (str(len(big)).encode(), 0)


async def test_a_terminal_gets_its_size_and_merges_stderr(harness):
    command = ["sh", "-c", "read go; stty size; echo oops >&2"]
    session = await kubernetes(harness).exec(
        POD, command, namespace="default", container="web", stdin=True, tty=True
    )
    async with session:
        await session.resize(100, 40)
        await session.write("go\n")
        chunks = [chunk async for chunk in session]
    output = joined(chunks)
    assert b"40 100" in output
    assert b"oops" in output and not joined(chunks, "stderr"), "a terminal has one output"
    assert session.exit_code == 0
    plain = await kubernetes(harness).exec(POD, ["true"], namespace="default", container="web")
    async with plain:
        with pytest.raises(UsageError, match="without tty=True"):
            await plain.resize(80, 24)
        with pytest.raises(UsageError, match="without stdin=True"):
            await plain.write("x")


async def test_a_read_timeout_leaves_the_session_running(harness):
    command = ["sh", "-c", "read line; echo got $line"]
    session = await kubernetes(harness).exec(
        POD, command, namespace="default", container="web", stdin=True
    )
    async with session:
        with pytest.raises(TimeoutError):
            await session.read(timeout=0.3)
        assert session.exit_code is None
        await session.write("x\n")
        assert await session.read(timeout=10) == ("stdout", b"got x\n")
        assert await session.read(timeout=10) is None
    assert session.exit_code == 0


async def test_close_kills_a_command_that_still_runs(harness, cluster):
    session = await kubernetes(harness).exec(
        POD, ["sh", "-c", "echo $$; exec sleep 60"], namespace="default", container="web"
    )
    async with session:
        stream, data = await session.read(timeout=10)
        # $$ is its pid in the pod's PID namespace; the host knows the process by another.
        pid = cluster.server.isolation.host_pid("default", POD, int(data))
        assert stream == "stdout" and pid is not None and process_alive(pid)
        with pytest.raises(TimeoutError):  # a read still waiting when the session closes
            await session.read(timeout=0.2)
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not process_alive(pid)
    assert await session.read() is None and session.exit_code is None


async def test_exec_not_declared_is_refused_in_process(harness):
    with pytest.raises(PermissionDenied) as refused:
        await kubernetes(harness, "nosy").exec(POD, ["true"], namespace="default")
    assert str(refused.value) == (
        f"plugin nosy may not create pods/exec '{POD}' in namespace default on cluster "
        "sandbox: its manifest does not declare pods/exec:create (declare pods/exec:create)"
    )
    answer = await harness.run("/nosy")
    assert answer.status == "denied" and "pods/exec:create" in answer.text


async def test_the_api_server_refuses_the_plugins_account_too(harness, monkeypatch):
    # Around the in-process guard: the plugin's own ServiceAccount has no pods/exec.
    monkeypatch.setattr("clustercord.kubernetes.service.check_declared", lambda *_: None)
    with pytest.raises(PermissionDenied) as refused:
        await kubernetes(harness, "nosy").exec(POD, ["true"], namespace="default")
    message = str(refused.value)
    assert "forbidden by the cluster's RBAC. It needs pods/exec:create" in message
    assert f'User "{NOSY_ACCOUNT}" cannot' in message and '"pods/exec"' in message
    # Without plugin identities the call is refused: the kernel's credentials (which may
    # exec anywhere) never serve a plugin.
    harness.kernel.kubernetes.plugin_identities = None
    with pytest.raises(CommandError, match="the kernel's own credentials never serve a plugin"):
        await kubernetes(harness, "nosy").exec(POD, ["true"], namespace="default", container="web")


async def test_a_user_whose_identity_may_not_exec_is_refused(harness):
    refused = await harness.run("/shell", user="1002", frontend="discord")
    assert refused.status == "denied"
    assert (
        f"your Kubernetes identity bob may not create pods/exec '{POD}' in namespace default"
        in refused.text
    )
    unmapped = await harness.run("/shell", user="1003", frontend="discord")
    assert unmapped.status == "denied" and "not mapped to a Kubernetes identity" in unmapped.text


async def test_missing_pod_wrong_container_and_unknown_command_are_clear(harness):
    shell = kubernetes(harness)
    with pytest.raises(CommandError, match='not found: pods "nope" not found'):
        await shell.exec("nope", ["true"], namespace="default")
    with pytest.raises(CommandError) as wrong:
        await shell.exec(POD, ["true"], namespace="default", container="db")
    assert str(wrong.value).endswith(
        f"container db is not valid for pod {POD} (its containers: web, sidecar)"
    )
    with pytest.raises(CommandError, match=r"choose one of: \[web sidecar\]"):
        await shell.exec(POD, ["true"], namespace="default")
    session = await shell.exec(POD, ["no-such-command-xyz"], namespace="default", container="web")
    with pytest.raises(CommandError, match=r'no-such-command-xyz did not run: .*"no-such-'):
        await session.read(timeout=10)
    with pytest.raises(UsageError, match="list of arguments"):
        await shell.exec(POD, "echo hi", namespace="default")  # type: ignore[arg-type]


async def test_an_unreachable_cluster_is_a_clear_error(harness):
    shell = kubernetes(harness)
    await run(harness, ["true"])  # the plugin's client exists, with its token
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = harness.kernel.kubernetes.plugin_identities.client(
        "sandbox", "shell", shell.permissions
    )
    client.configuration.host = f"https://127.0.0.1:{port}"
    with pytest.raises(CommandError) as unreachable:
        await shell.exec(POD, ["true"], namespace="default", container="web")
    message = str(unreachable.value)
    assert message.startswith(f"cannot create pods/exec '{POD}' in namespace default")
    assert f"Cannot connect to host 127.0.0.1:{port}" in message


async def test_an_expired_token_is_renewed_once(harness, cluster):
    assert (await run(harness, ["true"]))[1] == 0
    identities = harness.kernel.kubernetes.plugin_identities
    first = identities.token("sandbox", "shell")
    # The cluster sees the token as expired while the kernel thinks it fresh (clock skew).
    cluster.server.tokens.clock = lambda: time.time() + 2 * 3600
    chunks, code = await run(harness, ["echo", "again"])
    assert (joined(chunks), code) == (b"again\n", 0)
    assert identities.token("sandbox", "shell").value != first.value


async def test_the_v4_protocol(harness, monkeypatch):
    """Clusters before 1.30 speak v4 only: exit codes work; end of input needs a terminal."""
    monkeypatch.setattr(pod_exec, "PROTOCOLS", (pod_exec.V4,))
    session = await kubernetes(harness).exec(
        POD, ["sh", "-c", "echo v4; exit 3"], namespace="default", container="web"
    )
    async with session:
        assert session.protocol == pod_exec.V4
        chunks = [chunk async for chunk in session]
    assert (joined(chunks), session.exit_code) == (b"v4\n", 3)

    chunks, code = await run(harness, ["cat"], stdin=b"typed\n", tty=True)  # ^D ends it
    assert b"typed" in joined(chunks) and code == 0
    with pytest.raises(CommandError, match="cannot end a command's input without a terminal"):
        await run(harness, ["cat"], stdin=b"x\n")
