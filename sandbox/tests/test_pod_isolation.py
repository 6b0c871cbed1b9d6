"""Sandbox pods' processes run in namespaces of their own (bubblewrap), with the real kubectl.

What a `kubectl exec` in a sandbox pod sees and can do: its own PID 1, hostname, home, user,
network and files; no capability unless its container is granted one; limits that contain a
fork bomb and a huge allocation; nothing that outlives the pod or the sandbox. Where the
host cannot make namespaces, the tests that need them are skipped with the sandbox's reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustercord_sandbox import fixtures, isolation
from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.isolation import Limits
from clustercord_sandbox.store import SandboxStore
from clustercord_testing.sandbox import process_alive

from .conftest import KUBECTL, kubectl_runner, running_pod

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

PIDS = 64  # the process limit per pod in these tests (the default is 512)

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: main
    image: busybox:1.36
    env: [{{name: GREETING, value: hello}}]
    resources: {{limits: {{memory: {memory}}}}}
    volumeMounts:
    - {{name: scratch, mountPath: /data}}
    - {{name: settings, mountPath: /etc/app}}
    - {{name: token, mountPath: /var/run/token}}
    - {{name: host, mountPath: /host}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: settings, configMap: {{name: settings}}}}
  - {{name: token, secret: {{secretName: token}}}}
  - {{name: host, hostPath: {{path: /}}}}
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {app.conf: "level=debug\\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {token: s3cr3t}
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundSandbox]:
    box = BackgroundSandbox(store=SandboxStore(), pod_limits=Limits(pids=PIDS))
    box.start()
    assert box.server is not None
    if box.server.isolation.refusal() is not None:
        box.stop()
        pytest.skip(f"this host cannot isolate pods: {box.server.isolation.reason}")
    fixtures.load(box.server.api, fixtures.homelab_nodes())
    yield box
    box.stop()


@pytest.fixture(scope="module")
def pods(kubeconfig) -> tuple[str, str]:
    """Two running pods (a and b) with volumes, env and a memory limit."""
    kubectl = kubectl_runner(kubeconfig)
    kubectl("apply", "-f", "-", input=CONFIG)
    for name in ("iso-a", "iso-b"):
        start_pod(kubectl, name)
    return "iso-a", "iso-b"


def start_pod(kubectl, name: str, memory: str = "256Mi") -> None:
    running_pod(kubectl, name, POD.format(name=name, memory=memory))


def sh(kubectl, pod: str, script: str, check: bool = True, container: str = "main"):
    return kubectl("exec", pod, "-c", container, "--", "sh", "-c", script, check=check)


def test_a_pod_has_its_own_pid_1_hostname_home_and_user(kubectl, pods, kubeconfig):
    pod, _ = pods
    out = sh(kubectl, pod, "echo $$; hostname; ls -A ~; id; cat /proc/1/cmdline; echo").stdout
    pid, hostname, *rest = out.splitlines()
    assert hostname == pod
    # PID 1 is the pod's init; the command is one of the pod's few processes.
    assert 1 < int(pid) < 50
    assert "clustercord-pod-init" in rest[-1]
    user = rest[-2]
    assert user.startswith("uid=") and "(pod)" in user and not user.startswith("uid=0(")
    assert len(rest) == 2, f"the pod's home is its own, empty: {rest[:-2]}"
    listing = sh(kubectl, pod, "ls /proc | grep -c '^[0-9]'").stdout
    assert int(listing) < 10, "only the pod's processes are visible"
    # Nothing of the host's home, the sandbox's kubeconfig or the host's keys.
    hidden = [str(Path.home() / entry) for entry in os.listdir(Path.home())][:5]
    hidden += [str(kubeconfig), "/etc/shadow", "/etc/ssh", "/work", "/host/etc"]
    shown = sh(kubectl, pod, f"for f in {' '.join(hidden)}; do test -e $f && echo $f; done; :")
    assert shown.stdout == ""
    caps = sh(kubectl, pod, "grep CapEff /proc/self/status").stdout
    assert caps.split() == ["CapEff:", "0000000000000000"], "no capabilities by default"


def test_env_and_volumes_are_the_pods(kubectl, pods):
    pod, _ = pods
    out = sh(kubectl, pod, "echo $GREETING; cat /etc/app/app.conf /var/run/token/token").stdout
    assert out == "hello\nlevel=debug\ns3cr3t"
    sh(kubectl, pod, "echo kept > /data/file && cat /data/file")
    refused = sh(kubectl, pod, "echo x > /etc/app/new", check=False)
    assert refused.returncode != 0, "a ConfigMap volume is read-only"
    system = sh(kubectl, pod, "touch /usr/bin/x || touch /etc/passwd", check=False)
    assert system.returncode != 0, "the system directories are read-only"


def test_files_written_in_a_pod_stay_in_that_pod(kubectl, pods, unique):
    a, b = pods
    marker = f"/tmp/{unique}"
    sh(kubectl, a, f"echo secret > {marker}; echo mine > ~/{unique}; echo x > /data/{unique}")
    assert sh(kubectl, a, f"cat {marker}").stdout == "secret\n", "execs share the pod's files"
    for path in (marker, f"~/{unique}", f"/data/{unique}"):
        assert sh(kubectl, b, f"test -e {path}", check=False).returncode == 1
    assert not os.path.exists(marker), "nor on the host"
    assert not os.path.exists(Path.home() / unique)


def test_kill_1_ends_the_pods_processes_and_nothing_else(kubectl, server, unique):
    start_pod(kubectl, unique)
    sh(kubectl, unique, "true")
    held = server.isolation.pod("default", unique)
    assert held is not None
    init = held.init
    killed = sh(kubectl, unique, "kill 1; sleep 5; echo survived", check=False)
    assert "survived" not in killed.stdout and killed.returncode != 0
    deadline = time.monotonic() + 5
    while process_alive(init) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(init), "the pod's init ended"
    assert process_alive(1), "the host's PID 1 did not"
    # The sandbox still serves, and the pod's next exec gets a fresh init.
    assert sh(kubectl, unique, "hostname").stdout == f"{unique}\n"
    assert server.isolation.pod("default", unique).init != init


def test_ip_link_shows_the_pods_own_interfaces(kubectl, pods, server):
    a, _ = pods
    links = sh(kubectl, a, "ip -o link show").stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    expected = {"lo", "eth0"} if server.isolation.network else {"lo"}
    assert names == expected
    ip = kubectl("get", "pod", a, "-o", "jsonpath={.status.podIP}").stdout
    addresses = sh(kubectl, a, "ip -o -4 addr show").stdout
    assert "127.0.0.1/8" in addresses
    if server.isolation.network:
        assert f"{ip}/32" in addresses


LISTEN = (
    "import socket; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen(1); "
    "print('ready', flush=True); c, _ = s.accept(); c.sendall(b'hello from ' + "
    "socket.gethostname().encode()); c.close()"
)
CONNECT = (
    "import socket, sys; c = socket.create_connection((sys.argv[1], 8080), timeout=5); "
    "print(c.recv(100).decode())"
)


def test_two_pods_talk_over_their_pod_ips(kubectl, kubeconfig, pods, server):
    if not server.isolation.network:
        pytest.skip("no bridge between pods on this host (veth or bridge refused)")
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 on this host to listen and connect with")
    a, b = pods
    ip_b = kubectl("get", "pod", b, "-o", "jsonpath={.status.podIP}").stdout
    listener = subprocess.Popen(
        exec_argv(kubeconfig, b, "python3", "-c", LISTEN),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
        answer = kubectl("exec", a, "-c", "main", "--", "python3", "-c", CONNECT, ip_b)
        assert answer.stdout == f"hello from {b}\n"
        assert listener.wait(10) == 0
    finally:
        listener.kill()
    # The host is not on the pods' network (checked without sending anything: with a default
    # route, a packet to a pod IP would leave the machine).
    host = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True)
    assert f" {ip_b}/" not in host.stdout


NETEM = "tc qdisc add dev lo root netem delay 10ms"
TBF = "tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 400ms"


def host_qdiscs() -> str:
    return subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("tc") is None, reason="tc (iproute2) is not installed")
def test_only_a_container_granted_net_admin_shapes_traffic_and_only_its_pods(kubectl, pods, unique):
    a, _ = pods
    before = host_qdiscs()
    refused = sh(kubectl, a, NETEM, check=False)
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    # An ephemeral container with NET_ADMIN (kubectl debug's netadmin profile) may, in the
    # pod's network namespace.
    kubectl("debug", a, "--image=busybox", "--profile=netadmin", "--target=main", "-c", unique)
    granted = sh(kubectl, a, NETEM, check=False, container=unique)
    if "qdisc kind is unknown" in granted.stderr:  # this kernel has no netem: any qdisc will do
        granted = sh(kubectl, a, TBF, check=False, container=unique)
    assert granted.returncode == 0, granted.stderr
    shown = sh(kubectl, a, "tc qdisc show dev lo").stdout
    assert "netem" in shown or "tbf" in shown, "the pod's own loopback is shaped"
    assert host_qdiscs() == before, "the host's qdiscs are unchanged"


def test_kubectl_debug_attaches_in_the_pod_with_the_capabilities_granted(kubectl, pods, unique):
    a, _ = pods
    show = ("--", "sh", "-c", "hostname; grep CapEff /proc/self/status")
    netadmin = kubectl(
        "debug", a, "-i", "--image=busybox", "--profile=netadmin", "--target=main",
        "-c", f"{unique}-net", *show,
    )  # fmt: skip
    # The target pod's namespaces; NET_ADMIN and NET_RAW (bits 12 and 13), nothing else.
    assert netadmin.stdout.splitlines()[-2:] == [a, "CapEff:\t0000000000003000"]
    privileged = kubectl(
        "debug", a, "-i", "--image=busybox", "--profile=sysadmin", "--target=main",
        "-c", f"{unique}-sys", *show,
    )  # fmt: skip
    assert privileged.stdout.splitlines()[-1] == "CapEff:\t0000000000000000"
    assert "privileged is not granted in sandbox pods" in privileged.stderr


def test_a_fork_bomb_is_contained(kubectl, kubeconfig, server, unique):
    start_pod(kubectl, unique)
    sh(kubectl, unique, "true")
    held = server.isolation.pod("default", unique)
    assert held is not None
    bomb = subprocess.Popen(
        exec_argv(kubeconfig, unique, "bash", "-c", ":(){ :|:& };:"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        count = sum(1 for pid in _pids() if _uid_of(pid) == held.user)
        assert 0 < count <= PIDS, f"{count} processes for a limit of {PIDS}"
        # The host and the sandbox keep serving.
        assert subprocess.run(["true"]).returncode == 0
        assert kubectl("get", "pod", unique, "-o", "name").stdout == f"pod/{unique}\n"
    finally:
        bomb.kill()
        bomb.wait(10)
    kubectl("delete", "pod", unique, "--wait=false")
    deadline = time.monotonic() + 10
    while any(_uid_of(pid) == held.user for pid in _pids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in _pids() if _uid_of(pid) == held.user], "the pod took them all"


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no /usr/bin/python3")
def test_a_4_gb_allocation_is_contained(kubectl, pods, unique):
    a, _ = pods  # 256Mi memory limit
    grab = "python3 -c 'b = bytearray(4 * 1024 ** 3); print(len(b))'"
    result = sh(kubectl, a, grab, check=False)
    assert result.returncode != 0 and "MemoryError" in result.stderr
    start_pod(kubectl, unique, memory="null")  # no limit: the sandbox's default applies
    unlimited = sh(kubectl, unique, grab, check=False)
    assert unlimited.returncode != 0 and "MemoryError" in unlimited.stderr
    assert kubectl("get", "pod", a, "-o", "name").stdout == f"pod/{a}\n"


def test_deleting_a_pod_or_stopping_the_sandbox_leaves_no_process(tmp_path):
    box = BackgroundSandbox(store=SandboxStore())
    server = box.start()
    try:
        fixtures.load(server.api, fixtures.homelab_nodes())
        kubectl = kubectl_runner(box.write_kubeconfig(tmp_path / "kubeconfig"))
        kubectl("apply", "-f", "-", input=CONFIG)
        for name in ("left", "right"):
            start_pod(kubectl, name)
            # Daemons that outlive the exec (their output elsewhere, or the exec would wait).
            sh(kubectl, name, "sleep 600 >/dev/null 2>&1 & sleep 600 >/dev/null 2>&1 &")
        users = {name: server.isolation.pod("default", name).user for name in ("left", "right")}
        inits = server.isolation.processes()
        state = server.isolation._state
        assert len(inits) == 2 and all(process_alive(pid) for pid in inits)
        kubectl("delete", "pod", "left")
        _wait_gone(users["left"])
        assert [pid for pid in _pids() if _uid_of(pid) == users["right"]], "the other pod runs"
    finally:
        box.stop()
    _wait_gone(users["right"])
    assert not any(process_alive(pid) for pid in inits)
    assert state is not None and not state.exists(), "the pods' private files are removed"


SANDBOX_CLI = """
import argparse, pathlib, sys, tempfile
from clustercord_sandbox import cli
parser = argparse.ArgumentParser()
cli.add_parser(parser.add_subparsers(dest="command"))
sys.exit(cli.run(parser.parse_args(sys.argv[1:]), pathlib.Path(tempfile.mkdtemp())))
"""


def test_a_sandbox_killed_with_sigkill_leaves_no_pod_process(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    sandbox = subprocess.Popen(
        [sys.executable, "-c", SANDBOX_CLI, "sandbox", "--fixture", "homelab", "--port", "0",
         "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert sandbox.stdout is not None
        lines = [sandbox.stdout.readline() for _ in range(4)]
        assert lines[3].startswith("Pod processes: isolated"), lines[3]
        kubectl = kubectl_runner(kubeconfig)
        listing = "{range .items[*]}{.metadata.namespace}/{.metadata.name} {end}"
        deadline = time.monotonic() + 10
        running: list[str] = []
        while len(running) < 2 and time.monotonic() < deadline:
            query = f"jsonpath={listing}"
            running = kubectl("get", "pods", "-A", "--field-selector=status.phase=Running",
                              "-o", query).stdout.split()  # fmt: skip
        users = []
        for ref in running[:2]:
            namespace, name = ref.split("/")
            daemon = "sleep 600 >/dev/null 2>&1 & id -u"
            out = kubectl("exec", "-n", namespace, name, "--", "sh", "-c", daemon).stdout
            users.append(int(out))
        assert all(any(_uid_of(pid) == user for pid in _pids()) for user in users)
    finally:
        sandbox.kill()
        sandbox.wait(10)
    for user in users:  # the pods' inits saw the sandbox's lifeline end
        _wait_gone(user)


ROOTLESS = """
import asyncio, json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from isolation import Isolation, Limits

POD = {"metadata": {"name": "rootless", "namespace": "default", "uid": "0123456789"},
       "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": "10.244.0.9"}}
SCRIPT = "echo $$; hostname; ls -A ~; id -u; ip -o link | wc -l; kill -0 1 && echo init-visible"


async def main():
    pods = Isolation(limits=Limits(pids=32))
    said = await pods.start()
    out = {"said": said, "uid": os.getuid()}
    if pods.refusal() is None:
        launch = await pods.launch(POD, {"name": "c"}, ["sh", "-c", SCRIPT], False, lambda *a: None)
        done = subprocess.run(launch.argv, env=launch.env, cwd=launch.cwd,
                              preexec_fn=launch.preexec, pass_fds=launch.pass_fds,
                              capture_output=True, text=True, timeout=30)
        out["run"] = [done.returncode, done.stdout, done.stderr]
        netadmin = {"name": "d", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
        launch = await pods.launch(POD, netadmin, ["true"], False, lambda *a: None)
        out["notes"] = launch.notes
        out["init"] = pods.pod("default", "rootless").init
        await pods.stop()
        out["init_alive"] = os.path.exists(f"/proc/{out['init']}")
    print(json.dumps(out))


asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a test process as nobody")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no /usr/bin/python3")
def test_without_root_pods_get_user_namespaces():
    """The isolation module needs only the standard library: run it as nobody."""
    with tempfile.TemporaryDirectory() as directory:  # pytest's own is root's alone
        where = Path(directory)
        where.chmod(0o755)
        shutil.copy(isolation.__file__, where / "isolation.py")
        (where / "rootless.py").write_text(ROOTLESS)
        for path in where.iterdir():
            path.chmod(0o644)
        done = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
             "/usr/bin/python3", str(where / "rootless.py"), str(where)],
            capture_output=True, text=True, timeout=120, cwd="/",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["uid"] == 65534
    if "unavailable" in out["said"]:
        pytest.skip(f"no user namespaces for an unprivileged user here: {out['said']}")
    assert "not root: in user namespaces" in out["said"]
    code, stdout, stderr = out["run"]
    assert code == 0, stderr
    pid, hostname, uid, links, visible = stdout.splitlines()
    assert 1 < int(pid) < 20 and hostname == "rootless" and visible == "init-visible"
    assert uid == "65534" and links == "1", "its own (empty) home, user and loopback only"
    assert out["notes"] == [
        "sandbox: capability NET_ADMIN cannot be granted: the sandbox does not run as root"
    ]
    assert out["init_alive"] is False


def test_exec_is_refused_where_pods_cannot_be_isolated(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(
        isolation.shutil,
        "which",
        lambda tool, **kw: None if tool == "bwrap" else real_which(tool, **kw),
    )
    with BackgroundSandbox(store=SandboxStore()) as server:
        assert server.pod_processes.startswith("Pod processes: unavailable")
        assert "bwrap is not installed" in server.pod_processes
        fixtures.load(server.api, fixtures.homelab_nodes())
        kubectl = kubectl_runner(server.write_kubeconfig(tmp_path / "kubeconfig"))
        kubectl("apply", "-f", "-", input=CONFIG)
        start_pod(kubectl, "refused")
        result = sh(kubectl, "refused", "echo ran", check=False)
    assert result.returncode != 0 and "ran" not in result.stdout
    assert "cannot isolate pod processes on this machine: bwrap is not installed" in result.stderr
    assert "--unsafe-host-exec" in result.stderr


def test_unsafe_host_exec_runs_commands_on_the_host(tmp_path):
    with BackgroundSandbox(store=SandboxStore(), host_exec=True) as server:
        assert "--unsafe-host-exec" in server.pod_processes
        fixtures.load(server.api, fixtures.homelab_nodes())
        kubectl = kubectl_runner(server.write_kubeconfig(tmp_path / "kubeconfig"))
        kubectl("apply", "-f", "-", input=CONFIG)
        start_pod(kubectl, "unsafe")
        out = sh(kubectl, "unsafe", "cat /proc/sys/kernel/hostname; echo $HOME").stdout
    hostname, home = out.splitlines()
    assert hostname == os.uname().nodename, "the host's own namespaces"
    assert "clustercord-exec-" in home and not os.path.exists(home)


# -- helpers --------------------------------------------------------------------------------


def exec_argv(kubeconfig: Path, pod: str, *command: str) -> list[str]:
    """`kubectl exec` of `command` in the pod's main container, for a process of its own."""
    assert KUBECTL is not None
    return [KUBECTL, "--kubeconfig", str(kubeconfig), "exec", pod, "-c", "main", "--", *command]


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _uid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _wait_gone(user: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_uid_of(pid) == user for pid in _pids()):
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of the pod's user {user} remain")
