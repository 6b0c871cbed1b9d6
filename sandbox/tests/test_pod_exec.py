"""`kubectl exec` against the sandbox: the command runs in the pod's namespaces over WebSocket
(what those namespaces hide and contain: test_pod_isolation.py)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time

import aiohttp
import pytest

from clustercord_testing.sandbox import process_alive

from .conftest import (
    KUBECTL,
    _read_until,
    kubectl_on_a_terminal,
    kubectl_runner,
    running_pod,
    sandbox_with_nodes,
)

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)


@pytest.fixture(scope="module")
def pod(kubeconfig) -> str:
    running_pod(kubectl_runner(kubeconfig), "exec-demo")
    return "exec-demo"


def test_exec_runs_the_command_and_prints_its_output(kubectl, pod):
    result = kubectl("exec", pod, "-c", "web", "--", "echo", "hi")
    assert result.stdout == "hi\n"


def test_stdout_and_stderr_stay_apart(kubectl, pod):
    result = kubectl("exec", pod, "-c", "web", "--", "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_a_non_zero_exit_code_becomes_kubectls_exit_code(kubectl, pod):
    result = kubectl("exec", pod, "-c", "web", "--", "sh", "-c", "exit 7", check=False)
    assert result.returncode == 7
    assert "command terminated with exit code 7" in result.stderr


def test_stdin_is_passed_through(kubectl, pod):
    result = kubectl("exec", "-i", pod, "-c", "web", "--", "tr", "a-z", "A-Z", input="shout\n")
    assert result.stdout == "SHOUT\n"


def test_the_environment_is_clean_and_the_home_the_pods(kubectl, pod):
    out = kubectl("exec", pod, "-c", "web", "--", "sh", "-c", "env; pwd").stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["HOSTNAME"] == pod
    assert env["HOME"] == "/root" and out.splitlines()[-1] == "/", "the pod's home, its root"
    # Nothing of the test process's (and so the sandbox's) environment leaks in.
    leaked = set(env) & (set(os.environ) - {"PATH", "HOME", "HOSTNAME", "PWD", "SHLVL", "_"})
    assert not leaked


def test_an_unknown_command_is_a_clear_error(kubectl, pod):
    result = kubectl("exec", pod, "-c", "web", "--", "no-such-command-xyz", check=False)
    assert result.returncode != 0
    assert "no-such-command-xyz" in result.stderr


def test_an_unknown_container_is_refused(kubectl, pod):
    result = kubectl("exec", pod, "-c", "nope", "--", "true", check=False)
    assert result.returncode != 0
    assert "container nope is not valid" in result.stderr


def test_attach_is_refused_clearly(kubectl, pod):
    result = kubectl("attach", pod, "-c", "web", check=False)
    assert result.returncode != 0
    assert "runs no container processes to attach to" in result.stderr


def test_interactive_exec_with_a_terminal(kubeconfig, pod):
    """`kubectl exec -it POD -- sh` driven through a pseudo-terminal, as a person would."""
    command = ("exec", "-it", pod, "-c", "web", "--", "sh")
    with kubectl_on_a_terminal(kubeconfig, *command) as (terminal, process):
        os.write(terminal, b"tty; echo answer=$((6*7))\n")
        seen = _read_until(terminal, b"answer=42")
        assert b"answer=42" in seen
        assert b"/dev/pts/" in seen, "the command runs with a terminal"
        os.write(terminal, b"exit 3\n")
        assert process.wait(10) == 3


SLEEPER = ("sh", "-c", "echo $$; exec sleep 60")


def test_the_process_is_killed_when_the_client_hangs_up(kubeconfig, pod, server):
    assert KUBECTL is not None
    client = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "exec", pod, "-c", "web", "--", *SLEEPER],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    # $$ is the pid in the pod's PID namespace: the host knows the process by another.
    pid = server.isolation.host_pid("default", pod, int(client.stdout.readline()))
    assert pid is not None and process_alive(pid)
    client.kill()
    client.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)
    assert not process_alive(pid)


EXEC_GET_ONLY = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: exec-get-only}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get]}
- {apiGroups: [""], resources: [pods/exec], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-exec-get-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: exec-get-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
"""


def test_exec_needs_create_on_pods_exec_not_just_get(kubectl, pod):
    kubectl("apply", "-f", "-", input=EXEC_GET_ONLY)
    result = kubectl("exec", pod, "-c", "web", "--as=carol", "--", "true", check=False)
    assert result.returncode != 0
    assert 'cannot create resource "pods/exec"' in result.stderr


async def _exec_v4(server, pod: str, command: list[str]) -> tuple[bytes, dict]:
    """A raw `v4.channel.k8s.io` client: what older kubectl and client libraries speak."""
    context = ssl.create_default_context(cadata=server.certificate.ca_pem.decode())
    query = [("container", "web"), ("stdout", "true"), ("stderr", "true")]
    query += [("command", part) for part in command]
    url = f"{server.url}/api/v1/namespaces/default/pods/{pod}/exec"
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    stdout, status = b"", {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url, params=query, headers=headers, protocols=("v4.channel.k8s.io",), ssl=context
        ) as ws,
    ):
        assert ws.protocol == "v4.channel.k8s.io"
        async for message in ws:
            channel, data = message.data[0], message.data[1:]
            if channel == 1:
                stdout += data
            elif channel == 3:
                status = json.loads(data)
    return stdout, status


def test_the_v4_protocol_reports_the_exit_status_on_channel_3(server, pod):
    stdout, status = asyncio.run(_exec_v4(server, pod, ["sh", "-c", "echo v4; exit 5"]))
    assert stdout == b"v4\n"
    assert status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c echo v4; exit 5], exit code 5",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "5"}]},
    }
    _, ok = asyncio.run(_exec_v4(server, pod, ["true"]))
    assert ok == {"metadata": {}, "status": "Success"}
