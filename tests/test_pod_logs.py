"""`/pod logs` of the `cluster` builtin plugin against a sandbox, end to end:
console command → dispatcher → plugin → Kubernetes service → HTTPS → sandbox `pods/log`."""

from __future__ import annotations

import time

import pytest

LONG_COMMAND = "x" * 2500
APP = f"""
apiVersion: v1
kind: Node
metadata: {{name: nas}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: media}}
---
apiVersion: v1
kind: Pod
metadata: {{name: jellyfin-0, namespace: media}}
spec:
  containers:
  - name: jellyfin
    image: jellyfin/jellyfin:10.9.11
    ports: [{{containerPort: 8096}}]
  - name: exporter
    image: prom/exporter:1.0
---
apiVersion: v1
kind: Pod
metadata: {{name: chatty, namespace: media}}
spec:
  containers:
  - name: app
    image: busybox:1.36
    command: [sh, -c, "{LONG_COMMAND}"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pods-only, namespace: media}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: bob-pods-only, namespace: media}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pods-only}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: alice-view, namespace: media}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}]
"""


@pytest.fixture
def sandbox(sandbox_cluster):
    cluster = sandbox_cluster()  # with the node in APP, so the pods run
    cluster.kubectl("apply", "-f", "-", input=APP)
    deadline = time.monotonic() + 10
    for pod in ("jellyfin-0", "chatty"):
        while time.monotonic() < deadline:
            phase = cluster.kubectl(
                "get", "pod", pod, "-n", "media", "-o", "jsonpath={.status.phase}"
            ).stdout
            if phase == "Running":
                break
            time.sleep(0.1)
    return cluster


@pytest.fixture
async def harness(clustercord_harness, sandbox):
    clustercord_harness.add_builtins(["cluster"])
    await clustercord_harness.restart(
        identity={"users": {"1001": {"user": "alice"}, "1002": {"user": "bob"}}}
    )
    return clustercord_harness


async def test_logs_are_what_kubectl_shows_with_container_and_tail(harness, sandbox):
    result = await harness.run("/pod logs name:jellyfin-0 namespace:media container:jellyfin")
    assert result.ok, result.text
    expected = sandbox.kubectl("logs", "jellyfin-0", "-n", "media", "-c", "jellyfin").stdout
    assert "Starting jellyfin (jellyfin/jellyfin:10.9.11)" in expected
    assert f"```\n{expected}```" in result.reply.text
    assert result.reply.data["lines"] == len(expected.splitlines())
    assert not result.reply.files

    # Without container: the first one, and the message names the others.
    defaulted = await harness.run("/pod logs name:jellyfin-0 namespace:media")
    assert defaulted.reply.data["container"] == "jellyfin"
    assert "(defaulted; the pod also has exporter)" in defaulted.reply.text
    other = await harness.run("/pod logs name:jellyfin-0 namespace:media container:exporter")
    assert "Starting exporter (prom/exporter:1.0)" in other.reply.text

    tail = await harness.run("/pod logs name:jellyfin-0 namespace:media tail:2")
    assert tail.reply.data["lines"] == 2
    assert "```\njellyfin: listening on tcp :8096\njellyfin: ready\n```" in tail.reply.text


async def test_a_long_log_is_attached_and_errors_are_clear(harness, sandbox):
    result = await harness.run("/pod logs name:chatty namespace:media")
    assert result.ok, result.text
    assert result.reply.data["attached"] is True
    (attachment,) = result.reply.files
    assert attachment.name == "chatty-app.log"
    full = sandbox.kubectl("logs", "chatty", "-n", "media").stdout
    assert attachment.data.decode() == full
    assert len(result.reply.text) < 2000
    assert result.reply.text.rstrip().endswith("app: ready\n```")

    missing = await harness.run("/pod logs name:nope namespace:media")
    assert missing.status == "error" and 'pods "nope" not found' in missing.text
    previous = await harness.run("/pod logs name:chatty namespace:media previous:true")
    assert previous.status == "error"
    assert 'previous terminated container "app" in pod "chatty" not found' in previous.text


async def test_a_user_whose_identity_may_not_read_logs_is_refused(harness):
    # bob may get and list pods in media, but not pods/log.
    refused = await harness.run(
        "/pod logs name:jellyfin-0 namespace:media container:jellyfin",
        user="1002",
        frontend="discord",
    )
    assert refused.status == "denied"
    assert "your Kubernetes identity bob may not get pods/log 'jellyfin-0'" in refused.text
    # alice has `view`, which includes pods/log.
    allowed = await harness.run(
        "/pod logs name:jellyfin-0 namespace:media container:jellyfin",
        user="1001",
        frontend="discord",
    )
    assert allowed.ok, allowed.text
