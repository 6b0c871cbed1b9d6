"""The stricter tier of isolated plugins (issue 14): a file view of their own through
bubblewrap, no network unless an admin granted capability ``network``, a seccomp filter, and
cgroup limits on resident memory and tasks. Real processes, real bwrap, real cgroups; each
test skips, saying why, where the machine lacks one of them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clustercord.config import load_settings
from clustercord.isolation import cgroups as cgroup_module
from clustercord.isolation import view as view_module
from clustercord_sdk.errors import UsageError
from clustercord_testing.harness import KernelHarness

from .conftest import commands

PATHS = [{"name": "path", "type": "string", "description": "paths"}]

LOOK = {
    "manifest": commands("look", options=PATHS),
    "modules": {
        "commands": """
            import json, os, sys, tempfile

            def look(ctx):
                def read(path):
                    try:
                        with open(path, "rb") as handle:
                            return f"read {len(handle.read())} bytes"
                    except OSError as exc:
                        return type(exc).__name__
                def write(path):
                    try:
                        with open(path, "w") as handle:
                            handle.write("x")
                        return "written"
                    except OSError as exc:
                        return type(exc).__name__
                site = os.path.dirname(json.__file__)  # Python's own library
                with tempfile.NamedTemporaryFile(dir=os.environ["TMPDIR"]) as scratch:
                    scratch.write(b"tmp works")
                return json.dumps({
                    "reads": {p: read(p) for p in ctx.options["path"].split(",")},
                    "tmp": sorted(os.listdir("/tmp")),
                    "uid": os.getuid(),
                    "home": write("mine.txt"),
                    "site": write(os.path.join(site, "planted.py")),
                    "next": next(iter([]), "no StopIteration hang"),
                    "processes": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                })
        """
    },
}


def _harness(tmp_path: Path, signer, name: str = "data", **settings) -> KernelHarness:
    return KernelHarness(tmp_path / name, signer, **settings)


async def _view_or_skip(harness: KernelHarness):
    kernel = await harness.start()
    view = kernel.isolation.view
    if view is None or view.bwrap is None:
        pytest.skip(f"no bubblewrap view on this machine: {kernel.isolation.status()['view']}")
    return kernel


@pytest.mark.parametrize("uids", ["own uid (root drops)", "user namespace"])
async def test_a_plugin_sees_only_its_own_directory_and_python(
    tmp_path, clustercord_signer, make_plugin, uids
):
    # "user namespace" is what a kernel that is not root gets: no uid drop, so file
    # permissions alone would let it read the kernel's files by path.
    extra = {"isolation_uids": None} if uids == "user namespace" else {}
    harness = _harness(tmp_path, clustercord_signer, isolation_timeout=15.0, **extra)
    try:
        harness.add_plugin(make_plugin("look", **LOOK), isolated=True)
        kernel = await _view_or_skip(harness)
        data = kernel.settings.data_dir
        from clustercord.secretbox import SecretBox

        SecretBox.from_settings(data)
        kubeconfig = Path.home() / ".kube-clustercord-test"
        kubeconfig.write_text("users: [{name: admin, user: {token: sekrit}}]\n")
        (tmp_path / "host-tmp-file").write_text("host")
        host_tmp = Path("/tmp") / f"clustercord-test-{os.getpid()}"
        host_tmp.write_text("host /tmp")
        try:
            secrets = [
                data / "secret.key",
                kernel.settings.database_path,
                kernel.settings.trust_dir / "pubring.kbx",
                kubeconfig,
                host_tmp,
                Path(__file__),  # the project's tests: not on the plugin's sys.path
            ]
            assert all(p.exists() for p in secrets[:2])
            ran = await harness.run(f"/look path:{','.join(map(str, secrets))}")
        finally:
            kubeconfig.unlink()
            host_tmp.unlink()
        assert ran.ok, ran.text
        seen = json.loads(ran.text)
        assert seen["reads"] == {str(p): "FileNotFoundError" for p in secrets}, seen["reads"]
        assert host_tmp.name not in seen["tmp"]  # a private /tmp
        assert seen["home"] == "written" and (data / "plugins" / "look" / "mine.txt").exists()
        assert seen["site"] in ("OSError", "PermissionError")  # Python's files: read-only
        # Its own pid namespace: bwrap's init and itself, not the kernel.
        assert str(os.getpid()) not in seen["processes"] and len(seen["processes"]) <= 3
        if uids == "user namespace":
            assert seen["uid"] == view_module.INNER_UID
        else:
            assert seen["uid"] == kernel.isolation.user("look")[0]
        assert harness.plugin("look").state == "enabled"
    finally:
        harness.close()


NET = {
    "modules": {
        "commands": """
            import json, socket

            def probe(ctx):
                def attempt(action):
                    try:
                        return action()
                    except OSError as exc:
                        return type(exc).__name__
                def local():
                    with socket.create_connection(("127.0.0.1", int(ctx.options["port"])), 3) as s:
                        return s.recv(100).decode()
                def outward():
                    with socket.create_connection(("192.0.2.1", 80), 1):
                        return "connected"
                return json.dumps({
                    "host loopback": attempt(local),
                    "outward": attempt(outward),
                    "resolve": attempt(lambda: str(socket.getaddrinfo("example.com", 443)[:1])),
                })
        """
    },
}


def _net_plugin(make_plugin, name: str, network: bool):
    manifest = commands(
        "probe", options=[{"name": "port", "type": "integer", "description": "port"}]
    )
    manifest["commands"][0]["name"] = f"probe-{name}"
    if network:
        manifest["capabilities"] = ["network"]
    return make_plugin(name, manifest=manifest, **NET)


class _Banner:
    """A TCP server on the host's 127.0.0.1 that says hello to whoever connects."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(b"hello from the host")

    def close(self) -> None:
        self.server.close()


async def test_no_network_unless_an_admin_grants_it(tmp_path, clustercord_signer, make_plugin):
    banner = _Banner()
    harness = _harness(tmp_path, clustercord_signer)
    try:
        harness.add_builtins(["plugins"])
        harness.add_plugin(_net_plugin(make_plugin, "closed", network=False), isolated=True)
        harness.add_plugin(_net_plugin(make_plugin, "opened", network=True), isolated=True)
        kernel = await _view_or_skip(harness)
        opened = harness.plugin("opened")
        # Declaring is asking: it waits for an admin like any other permission.
        assert opened.state == "awaiting-approval"
        assert "capability:network" in opened.reason

        closed = await harness.run(f"/probe-closed port:{banner.port}")
        assert closed.ok, closed.text
        seen = json.loads(closed.text)
        # Its loopback is its own: the host's server is not there; nothing else is routed.
        assert seen["host loopback"] == "ConnectionRefusedError", seen
        assert seen["outward"] == "OSError", seen  # Network is unreachable
        assert seen["resolve"] == "gaierror", seen
        assert banner.connections == 0

        approved = await harness.run("/plugin permissions name:opened approve:true")
        assert approved.ok, approved.text
        assert opened.state == "enabled", opened.reason
        ran = await harness.run(f"/probe-opened port:{banner.port}")
        assert ran.ok, ran.text
        assert json.loads(ran.text)["host loopback"] == "hello from the host"
        assert banner.connections == 1
        assert kernel.isolation.process("closed") is not None  # still serving
    finally:
        harness.close()
        banner.close()


SYSCALLS = {
    "manifest": commands("syscalls"),
    "modules": {
        "commands": """
            import ctypes, errno, json, os, subprocess, threading

            def syscalls(ctx):
                libc = ctypes.CDLL(None, use_errno=True)
                def call(name, *args):
                    ctypes.set_errno(0)
                    result = getattr(libc, name)(*args)
                    return "succeeded" if result == 0 else errno.errorcode[ctypes.get_errno()]
                refused = {
                    "ptrace": call("ptrace", 0, 0, 0, 0),  # PTRACE_TRACEME
                    "unshare": call("unshare", 0x10000000),  # CLONE_NEWUSER
                    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
                    "keyctl": call("syscall", 250 if os.uname().machine == "x86_64" else 219,
                                   0, 0, 0, 0, 0),
                }
                if os.uname().machine == "x86_64":  # getpid through the x32 ABI's numbers
                    refused["x32"] = call("syscall", 0x40000000 | 39)
                # Normal work goes on: threads, a child process, files.
                box = []
                worker = threading.Thread(target=lambda: box.append("thread"))
                worker.start(); worker.join()
                echoed = subprocess.run(["/bin/echo", "child"], capture_output=True, text=True)
                with open("note.txt", "w") as handle:
                    handle.write("file")
                try:
                    os.unshare(os.CLONE_NEWUSER)  # Python 3.12+
                    refused["os.unshare"] = "succeeded"
                except AttributeError:
                    pass
                except OSError as exc:
                    refused["os.unshare"] = f"{type(exc).__name__}: {exc.strerror}"
                return json.dumps({
                    "refused": refused,
                    "work": [*box, echoed.stdout.strip(), open("note.txt").read()],
                })
        """
    },
}


async def test_seccomp_refuses_what_a_plugin_never_needs(clustercord_harness, isolated_plugin):
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip(f"no seccomp filter for {os.uname().machine}")
    isolated_plugin("syscalls", **SYSCALLS)
    kernel = await clustercord_harness.start()
    assert kernel.isolation.seccomp
    ran = await clustercord_harness.run("/syscalls")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    refused = seen["refused"]
    assert {k: refused[k] for k in ("ptrace", "unshare", "mount", "keyctl")} == dict.fromkeys(
        ("ptrace", "unshare", "mount", "keyctl"), "EPERM"
    ), refused
    if "x32" in refused:  # another ABI: refused, its numbers cannot step around the filter
        assert refused["x32"] == "EPERM", refused
    if "os.unshare" in refused:
        assert refused["os.unshare"] == "PermissionError: Operation not permitted"
    assert seen["work"] == ["thread", "child", "file"]
    assert clustercord_harness.plugin("syscalls").state == "enabled"


HUNGRY = {
    "manifest": commands("eat", "fine"),
    "modules": {
        "commands": """
            def eat(ctx):
                kept = []
                for _ in range(60):  # 600 MB, touched: resident, within the address space
                    kept.append(b"\\x01" * (10 * 1024 * 1024))
                return f"kept {len(kept) * 10} MB"

            def fine(ctx):
                return "fine"
        """
    },
}
OTHER = {"modules": {"commands": "def run(ctx):\n    return 'other serves'\n"}}


async def test_resident_memory_beyond_the_cgroup_limit_kills_and_restarts(
    tmp_path, clustercord_signer, make_plugin
):
    harness = _harness(
        tmp_path, clustercord_signer, isolation_memory_mb=128, isolation_timeout=60.0
    )
    try:
        harness.add_plugin(make_plugin("hungry", **HUNGRY), isolated=True)
        harness.add_plugin(make_plugin("other", **OTHER), isolated=True)
        kernel = await harness.start()
        if not kernel.isolation.cgroups.memory:
            pytest.skip(f"no memory cgroup here: {kernel.isolation.cgroups.reason}")
        first = kernel.isolation.process("hungry")
        assert first is not None and first.group is not None
        directories = [path for _, path in first.group.directories]
        assert all(path.is_dir() for path in directories)
        ate = await harness.run("/eat")
        assert not ate.ok
        assert "beyond its memory limit (128 MB resident, cgroup) and was killed" in ate.text, (
            ate.text
        )
        plugin = harness.plugin("hungry")
        assert "beyond its memory limit" in (plugin.reason or ""), plugin.reason
        assert not any(path.exists() for path in directories)  # its groups are removed
        assert (await harness.run("/other")).text == "other serves"
        # Restarted on the next call (no backoff after a first failure), in a new group.
        assert (await harness.run("/fine")).text == "fine"
        assert kernel.isolation.process("hungry").pid != first.pid
    finally:
        harness.close()


BOMB = {
    "manifest": commands("bomb"),
    "modules": {
        "commands": """
            import os, time

            def bomb(ctx):
                children = []
                try:
                    while len(children) < 2000:
                        pid = os.fork()
                        if pid == 0:
                            time.sleep(60)
                            os._exit(0)
                        children.append(pid)
                except OSError as exc:
                    return f"stopped after {len(children)} processes: {exc.strerror}"
                return f"forked {len(children)} processes"
        """
    },
}


async def test_a_fork_bomb_stops_at_the_pids_cgroup_without_a_uid_drop(
    tmp_path, clustercord_signer, make_plugin
):
    # No uid of its own (a kernel that is not root): RLIMIT_NPROC cannot hold, pids.max does.
    harness = _harness(tmp_path, clustercord_signer, isolation_uids=None)
    try:
        harness.add_plugin(make_plugin("bomb", **BOMB), isolated=True)
        harness.add_plugin(make_plugin("other", **OTHER), isolated=True)
        kernel = await harness.start()
        if "pids" not in kernel.isolation.cgroups.controllers:
            pytest.skip(f"no pids cgroup here: {kernel.isolation.cgroups.reason}")
        bombed = await harness.run("/bomb")
        assert bombed.ok, bombed.text
        assert bombed.text.startswith("stopped after "), bombed.text
        assert int(bombed.text.split()[2]) <= kernel.isolation.limits.processes
        assert (await harness.run("/other")).text == "other serves"
    finally:
        harness.close()


async def test_without_cgroups_start_up_goes_on_and_says_so_once(
    tmp_path, clustercord_signer, make_plugin, monkeypatch, caplog
):
    monkeypatch.setattr(cgroup_module, "_mounts", lambda: [])
    caplog.set_level(logging.WARNING, logger="clustercord.isolation")
    harness = _harness(tmp_path, clustercord_signer)
    try:
        harness.add_plugin(make_plugin("other", **OTHER), isolated=True)
        kernel = await harness.start()
        assert (await harness.run("/other")).text == "other serves"
        assert (await harness.run("/other")).text == "other serves"
        status = kernel.isolation.status()
        assert status["cgroups"].startswith("no cgroup controller available"), status
        warned = [r for r in caplog.records if "no cgroup controller" in r.getMessage()]
        assert len(warned) == 1
        assert kernel.isolation.process("other").group is None
    finally:
        harness.close()


async def test_isolation_sandbox_setting(
    tmp_path, clustercord_signer, make_plugin, monkeypatch, caplog
):
    with pytest.raises(UsageError, match="isolation_sandbox must be auto, bwrap or none"):
        load_settings(
            env={"CLUSTERCORD_DATA_DIR": str(tmp_path), "CLUSTERCORD_ISOLATION_SANDBOX": "vm"}
        )
    # Where bwrap is missing: "bwrap" refuses to start isolated plugins, saying why; "auto"
    # runs them without the view, with a warning.
    monkeypatch.setattr(view_module, "SAFE_PATH", str(tmp_path / "no-tools"))
    other = make_plugin("other", **OTHER)
    strict = _harness(tmp_path, clustercord_signer, "strict", isolation_sandbox="bwrap")
    try:
        strict.add_plugin(other, isolated=True)
        kernel = await strict.start()
        plugin = strict.plugin("other")
        assert plugin.state == "disabled" and plugin.module is None
        assert plugin.reason == (
            "failed to load: ImportError: isolation_sandbox = bwrap, but bwrap is not "
            "installed (Debian package bubblewrap): isolated plugins are not started"
        )
        assert kernel.isolation.process("other") is None
    finally:
        strict.close()
    caplog.set_level(logging.WARNING, logger="clustercord.isolation")
    lenient = _harness(tmp_path, clustercord_signer, "lenient", isolation_sandbox="auto")
    try:
        lenient.add_plugin(other, isolated=True)
        kernel = await lenient.start()
        assert (await lenient.run("/other")).text == "other serves"
        assert kernel.isolation.view is not None and kernel.isolation.view.bwrap is None
        assert "bwrap is not installed" in kernel.isolation.status()["view"]
        warned = [r.getMessage() for r in caplog.records if "WITHOUT their own file" in r.message]
        assert len(warned) == 1 and "bwrap is not installed" in warned[0], warned
    finally:
        lenient.close()
    # "none": no view, on purpose: no warning either.
    caplog.clear()
    plain = _harness(tmp_path, clustercord_signer, "plain", isolation_sandbox="none")
    try:
        plain.add_plugin(other, isolated=True)
        kernel = await plain.start()
        assert (await plain.run("/other")).text == "other serves"
        assert (
            kernel.isolation.status()["view"]
            == "no file or network view (isolation_sandbox = none)"
        )
        assert not [r for r in caplog.records if "WITHOUT their own file" in r.getMessage()]
    finally:
        plain.close()


def test_the_view_never_binds_a_directory_holding_the_data_dir(caplog):
    # A data directory inside the Python installation (a careless container image): binding
    # the installation would show the keys, so it is left out, saying so.
    prefix = os.path.realpath(sys.prefix)
    data = Path(prefix) / "var" / "clustercord"
    caplog.set_level(logging.WARNING, logger="clustercord.isolation")
    paths = view_module.python_paths(data)
    assert prefix not in paths and not any(str(data).startswith(p + "/") for p in paths)
    assert any("contains the data directory" in r.getMessage() for r in caplog.records)
    argv = view_module.View("/usr/bin/bwrap", "test", paths).command(
        home=data / "plugins" / "p", folders=(), network=False, own_uid=True
    )
    binds = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")]
    assert [b for b in binds if str(data).startswith(b.rstrip("/") + "/")] == [], binds
    assert str(data / "plugins" / "p") in binds
    assert "--unshare-net" in argv and "--unshare-user" not in argv
    opened = view_module.View("/usr/bin/bwrap", "test", paths).command(
        home=None, folders=(), network=True, own_uid=False
    )
    assert "--unshare-net" not in opened and "--unshare-user" in opened


async def test_cgroups_are_removed_when_the_kernel_closes(clustercord_harness, isolated_plugin):
    isolated_plugin("other", **OTHER)
    kernel = await clustercord_harness.start()
    if not kernel.isolation.cgroups.available:
        pytest.skip(f"no cgroups here: {kernel.isolation.cgroups.reason}")
    process = kernel.isolation.process("other")
    assert process is not None and process.group is not None
    roots = [path.parent for _, path in process.group.directories]
    assert all(root.is_dir() for root in roots)
    clustercord_harness.close()
    await asyncio.sleep(0)
    assert not any(root.exists() for root in roots), roots


async def test_a_handler_raising_stop_iteration_fails_at_once(clustercord_harness, isolated_plugin):
    # Raised into the executor's future as it is, StopIteration never reached the call: the
    # user waited for the whole isolation_timeout.
    isolated_plugin(
        "stopper",
        manifest=commands("stopper", "fine"),
        modules={
            "commands": "def stopper(ctx):\n    return next(iter([]))\n\n"
            "def fine(ctx):\n    return 'fine'\n"
        },
    )
    await clustercord_harness.start()
    started = asyncio.get_running_loop().time()
    ran = await clustercord_harness.run("/stopper")
    assert asyncio.get_running_loop().time() - started < 10
    assert not ran.ok and "StopIteration" in ran.text, ran.text
    assert (await clustercord_harness.run("/fine")).text == "fine"


LINGER = {
    "name": "linger",
    "version": "0.1.0",
    "api": ">=1.0,<2",
    "description": "leaves a process of its own behind and spins",
    "commands": [
        {
            "name": "linger",
            "description": "linger",
            "handler": "commands:linger",
            "options": [{"name": "seconds", "type": "string", "description": "marker"}],
        }
    ],
}
LINGER_CODE = """
import os, subprocess

def linger(ctx):
    # A process in a session of its own, with no pipe to the kernel: out of the reach of
    # the kernel's kill of its process group.
    subprocess.Popen(
        ["sleep", ctx.options["seconds"]], start_new_session=True, close_fds=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while True:
        pass
"""


def test_nothing_of_a_plugin_outlives_a_kernel_killed_with_9(tmp_path, clustercord_signer):
    from clustercord_testing.harness import TestSigner
    from clustercord_testing.site import signed_builtins_site

    from .test_escape_corpus import CLI, _cli, _processes_running, _wait
    from .test_isolated_cli import install

    publisher = TestSigner()
    try:
        site = tmp_path / "site"
        signed_builtins_site(site, clustercord_signer)
        plugin = tmp_path / "linger"
        plugin.mkdir()
        (plugin / "manifest.json").write_text(json.dumps(LINGER))
        (plugin / "__init__.py").write_text("")
        (plugin / "commands.py").write_text(LINGER_CODE)
        install(site, plugin, "cc_linger", "linger", publisher)
        env = {
            **os.environ,
            "PYTHONPATH": str(site),
            "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
        }
        env.pop("CLUSTERCORD_ISOLATION", None)
        for signer, kind in ((clustercord_signer, "release"), (publisher, "third-party")):
            key = tmp_path / f"{kind}.asc"
            key.write_text(signer.public_key)
            _cli(env, "keys", "trust", str(key), "--label", kind, "--kind", kind)
        seconds = f"{400 + os.getpid() % 97}.25"  # its marker: a sleep no other test runs
        running = subprocess.Popen(
            [*CLI, "run", f"/linger seconds:{seconds}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert _wait(lambda: _processes_running(seconds) or running.poll() is not None, 60)
            assert running.poll() is None, running.stderr.read() if running.stderr else ""
        finally:
            os.kill(running.pid, signal.SIGKILL)
            running.wait()
        assert _wait(lambda: not _processes_running(seconds), 15), (
            f"a plugin's process outlived the killed kernel: {_processes_running(seconds)}"
        )
    finally:
        publisher.cleanup()


def test_cgroup_v2_groups_and_their_limits(tmp_path, monkeypatch):
    # cgroup v2 as a delegated hierarchy would show it (a plain directory stands for the
    # file system: the files the kernel reads and writes are the same).
    unified = tmp_path / "unified"
    own = unified / "system.slice" / "clustercord.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("memory pids\n")  # delegated to its children
    monkeypatch.setattr(cgroup_module, "_mounts", lambda: [(str(unified), "/", "cgroup2", {"rw"})])
    monkeypatch.setattr(
        cgroup_module, "_own_groups", lambda: {"": "/system.slice/clustercord.service"}
    )
    groups = cgroup_module.Cgroups(memory_mb=64, processes=40)
    assert groups.reason == "cgroups: memory (cgroup v2), pids (cgroup v2)"
    group = groups.create("my/plugin")

    paths = {c.name: p for c, p in group.directories}
    assert paths["memory"] == paths["pids"]  # one group, both controllers
    assert paths["memory"].parent == own / f"clustercord-{os.getpid()}"
    assert paths["memory"].name.startswith("my_plugin-")  # no path from a plugin's name
    assert (paths["memory"] / "memory.max").read_text() == str(64 * 1024 * 1024)
    assert (paths["memory"] / "memory.swap.max").read_text() == "0"
    assert (paths["pids"] / "pids.max").read_text() == "40"
    assert (paths["memory"].parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert not group.oom_killed()
    (paths["memory"] / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed()


def test_cgroup_v2_not_delegated_falls_back_saying_so(tmp_path, monkeypatch):
    # The kernel's own v2 group holds the kernel: v2 refuses to enable controllers for its
    # children (the write fails), so there is no group to make: said, not failed.
    unified = tmp_path / "unified"
    own = unified / "user.slice"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("memory pids\n")
    (own / "cgroup.subtree_control").mkdir()  # stands for a file that refuses writes
    monkeypatch.setattr(cgroup_module, "_mounts", lambda: [(str(unified), "/", "cgroup2", {"rw"})])
    monkeypatch.setattr(cgroup_module, "_own_groups", lambda: {"": "/user.slice"})
    groups = cgroup_module.Cgroups(memory_mb=64, processes=40)
    assert not groups.available
    assert groups.reason.startswith("no cgroup controller available")


def test_cgroup_v1_memory_without_a_pids_hierarchy(tmp_path, monkeypatch):
    memory = tmp_path / "memory"
    own = memory / "kernel"
    own.mkdir(parents=True)
    monkeypatch.setattr(
        cgroup_module, "_mounts", lambda: [(str(memory), "/", "cgroup", {"rw", "memory"})]
    )
    monkeypatch.setattr(cgroup_module, "_own_groups", lambda: {"memory": "/kernel"})
    groups = cgroup_module.Cgroups(memory_mb=32, processes=40)
    assert groups.memory and "pids" not in groups.controllers
    assert groups.reason == "cgroups: memory (cgroup v1); not available: pids"
    group = groups.create("p")
    (path,) = (p for _, p in group.directories)
    assert (path / "memory.limit_in_bytes").read_text() == str(32 * 1024 * 1024)
    (path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not group.oom_killed()
    (path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()
    for name in list(path.iterdir()):
        name.unlink()  # what cgroupfs does by itself
    group.remove()
    assert not path.exists()


LINKER = {
    "manifest": commands("link", "crash", "fine", options=PATHS),
    "modules": {
        "commands": """
            import os, shutil

            def link(ctx):
                # Its home is its own: swap its tmp for a link to a host path it cannot
                # reach, hoping the kernel (root) chowns it at the next start.
                shutil.rmtree("tmp")
                os.symlink(ctx.options["path"], "tmp")
                return "linked"

            def crash(ctx):
                os._exit(1)

            def fine(ctx):
                return "fine"
        """
    },
}


async def test_a_link_left_in_its_home_never_makes_a_host_file_its_own(
    clustercord_harness, isolated_plugin, tmp_path
):
    victim = tmp_path / "victim"
    victim.mkdir()
    before = victim.stat()
    isolated_plugin("linker", **LINKER)
    kernel = await clustercord_harness.start()
    if not kernel.isolation.dropping:
        pytest.skip("no uid drop here: the kernel chowns nothing")
    assert (await clustercord_harness.run(f"/link path:{victim}")).text == "linked"
    home = kernel.settings.data_dir / "plugins" / "linker"
    assert (home / "tmp").is_symlink()
    assert not (await clustercord_harness.run("/crash")).ok
    assert (await clustercord_harness.run("/fine")).text == "fine"  # restarted
    after = victim.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert (home / "tmp").is_dir() and not (home / "tmp").is_symlink()
