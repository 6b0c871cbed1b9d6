"""`kubectl logs` against the sandbox: deterministic boot lines, options, and `-f`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import KUBECTL, running_pod, sandbox_with_nodes

sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)


@pytest.fixture(scope="module")
def pod(kubeconfig) -> str:
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=True,
        )

    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    running_pod(run, "logs-demo")
    return "logs-demo"


def test_logs_are_believable_and_the_same_on_every_read(kubectl, pod):
    first = kubectl("logs", pod, "-c", "web").stdout
    assert first.splitlines() == [
        f"Starting web (nginx:1.27) in pod default/{pod} on node "
        + kubectl("get", "pod", pod, "-o", "jsonpath={.spec.nodeName}").stdout,
        "/docker-entrypoint.sh: Configuration complete; ready for start up",
        "nginx: start worker processes",
        "web: listening on tcp :80",
        "web: ready",
    ]
    assert kubectl("logs", pod, "-c", "web").stdout == first


def test_without_c_kubectl_defaults_to_the_first_container(kubectl, pod):
    result = kubectl("logs", pod)
    assert 'Defaulted container "web"' in result.stderr
    assert "Starting web (nginx:1.27)" in result.stdout


def test_c_picks_the_container(kubectl, pod):
    out = kubectl("logs", pod, "-c", "sidecar").stdout
    assert "Starting sidecar (busybox:1.36)" in out
    assert "sidecar: running sh -c sleep infinity" in out
    assert "nginx" not in out


def test_tail_timestamps_and_limit_bytes(kubectl, pod):
    assert kubectl("logs", pod, "-c", "web", "--tail=2").stdout.splitlines() == [
        "web: listening on tcp :80",
        "web: ready",
    ]
    stamped = kubectl("logs", pod, "-c", "web", "--tail=1", "--timestamps").stdout
    stamp, text = stamped.rstrip("\n").split(" ", 1)
    assert text == "web: ready"
    assert (
        stamp.endswith("Z") and "T" in stamp and len(stamp) == len("2026-01-01T00:00:00.123456789Z")
    )
    assert kubectl("logs", pod, "-c", "web", "--limit-bytes=8").stdout == "Starting"


def test_since_filters_by_time(kubectl, pod):
    # The boot lines are as old as the container; a short window leaves none of them.
    time.sleep(1.1)
    assert kubectl("logs", pod, "-c", "web", "--since=1s").stdout == ""
    assert "web: ready" in kubectl("logs", pod, "-c", "web", "--since=1h").stdout


def test_previous_without_a_restart_is_a_clear_error(kubectl, pod):
    result = kubectl("logs", pod, "-c", "web", "--previous", check=False)
    assert result.returncode != 0
    assert f'previous terminated container "web" in pod "{pod}" not found' in result.stderr


def test_an_unknown_container_or_pod_is_refused(kubectl, pod):
    result = kubectl("logs", pod, "-c", "nope", check=False)
    assert f"container nope is not valid for pod {pod}" in result.stderr
    missing = kubectl("logs", "no-such-pod", check=False)
    assert 'pods "no-such-pod" not found' in missing.stderr


def test_follow_streams_lines_appended_later(kubeconfig, server, sandbox, pod):
    assert KUBECTL is not None
    follower = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "logs", "-f", pod, "-c", "web", "--tail=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "web: ready\n"

        async def write() -> None:
            server.pod_logs.append("default", pod, "web", 'GET / HTTP/1.1" 200\nGET /health 200')

        sandbox.call(write())
        assert follower.stdout.readline() == 'GET / HTTP/1.1" 200\n'
        assert follower.stdout.readline() == "GET /health 200\n"
        assert follower.poll() is None, "kubectl logs -f must keep following"
    finally:
        follower.kill()
        follower.wait(5)
    # What was appended stays in the log for later reads.
    with_appended = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "logs", pod, "-c", "web", "--tail=2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert with_appended.stdout == 'GET / HTTP/1.1" 200\nGET /health 200\n'


def test_follow_ends_when_the_pod_is_deleted(kubectl, kubeconfig):
    assert KUBECTL is not None
    running_pod(kubectl, "logs-short")
    follower = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "logs", "-f", "logs-short", "-c", "web"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert "Starting web" in follower.stdout.readline()
        kubectl("delete", "pod", "logs-short", "--wait=false")
        assert follower.wait(10) == 0
    finally:
        follower.kill()
        follower.wait(5)


def test_previous_shows_the_run_before_the_restart(kubectl, unique):
    running_pod(kubectl, unique)
    crashed = {
        "terminated": {
            "exitCode": 137,
            "reason": "OOMKilled",
            "startedAt": "2026-01-01T10:00:00Z",
            "finishedAt": "2026-01-01T10:05:00Z",
        }
    }
    patch = [
        {"op": "replace", "path": "/status/containerStatuses/0/restartCount", "value": 1},
        {"op": "replace", "path": "/status/containerStatuses/0/lastState", "value": crashed},
    ]
    kubectl("patch", "pod", unique, "--subresource=status", "--type=json", "-p", json.dumps(patch))
    previous = kubectl("logs", unique, "-c", "web", "--previous", "--timestamps").stdout
    lines = previous.splitlines()
    assert lines[0].startswith("2026-01-01T10:00:00.000000000Z Starting web (nginx:1.27)")
    assert lines[-1] == "2026-01-01T10:05:00.000000000Z web: exited with code 137 (OOMKilled)"
    # The current run is still the one that started later.
    assert "exited" not in kubectl("logs", unique, "-c", "web").stdout
