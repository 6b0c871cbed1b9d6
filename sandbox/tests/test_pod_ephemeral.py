"""`kubectl debug` against the sandbox: ephemeral containers, and attaching to one."""

from __future__ import annotations

import json
import os

import pytest

from .conftest import _read_until, kubectl_on_a_terminal, running_pod, sandbox_with_nodes

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)


@pytest.fixture
def pod(kubectl, unique) -> str:
    running_pod(kubectl, unique)
    return unique


def test_debug_adds_a_running_ephemeral_container(kubectl, pod):
    result = kubectl("debug", pod, "--image=busybox:1.36", "--target=web", "-c", "dbg")
    assert result.returncode == 0
    obj = json.loads(kubectl("get", "pod", pod, "-o", "json").stdout)
    (container,) = obj["spec"]["ephemeralContainers"]
    assert container["name"] == "dbg"
    assert container["image"] == "busybox:1.36"
    assert container["targetContainerName"] == "web"
    (status,) = obj["status"]["ephemeralContainerStatuses"]
    assert status["name"] == "dbg" and "running" in status["state"]
    # The pod's own containers are untouched, and the debug container has a log of its own.
    assert [c["name"] for c in obj["spec"]["containers"]] == ["web", "sidecar"]
    assert "Starting dbg (busybox:1.36)" in kubectl("logs", pod, "-c", "dbg").stdout


def test_an_unknown_target_or_a_changed_container_is_invalid(kubectl, pod):
    bad = kubectl("debug", pod, "--image=busybox", "--target=nope", "-c", "x", check=False)
    assert bad.returncode != 0
    assert 'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"' in bad.stderr
    kubectl("debug", pod, "--image=busybox", "-c", "again")
    obj = json.loads(kubectl("get", "pod", pod, "-o", "json").stdout)
    obj["spec"]["ephemeralContainers"][0]["image"] = "alpine"
    path = f"/api/v1/namespaces/default/pods/{pod}/ephemeralcontainers"
    changed = kubectl("replace", "--raw", path, "-f", "-", input=json.dumps(obj), check=False)
    assert changed.returncode != 0
    assert 'existing ephemeral containers "again" may not be changed' in changed.stderr
    obj = json.loads(kubectl("get", "pod", pod, "-o", "json").stdout)
    assert [c["image"] for c in obj["spec"]["ephemeralContainers"]] == ["busybox"]


SHELL = ("--image=busybox", "--target=web", "-c", "shell")


def test_debug_it_attaches_to_a_shell(kubeconfig, pod):
    with kubectl_on_a_terminal(kubeconfig, "debug", "-it", pod, *SHELL) as (terminal, process):
        assert b"If you don't see a command prompt" in _read_until(terminal, b"command prompt")
        os.write(terminal, b"echo debug=$((40+2))\n")
        assert b"debug=42" in _read_until(terminal, b"debug=42")
        os.write(terminal, b"exit\n")
        assert process.wait(10) == 0
