"""Escape corpus of the isolated tier (issue 14), the cases not covered elsewhere: a plugin
that tries one thing it did not declare, and fails with a clear reason while the kernel keeps
serving. (Reading the data key, the signing key or a kubeconfig, the kernel's credentials,
fork bombs, 4 GB, spinning: test_isolated_plugins.py and test_isolation_failures.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from clustercord_testing.sandbox import process_alive
from clustercord_testing.site import signed_builtins_site

from .conftest import commands

SCRIBBLE = {
    "manifest": commands(
        "scribble", options=[{"name": "path", "type": "string", "description": "files"}]
    ),
    "modules": {
        "commands": """
            import json

            def scribble(ctx):
                def write(path):
                    try:
                        with open(path, "a") as handle:
                            handle.write("planted by scribble\\n")
                        return "written"
                    except OSError as exc:
                        return type(exc).__name__
                seen = {p: write(p) for p in ctx.options["path"].split(",")}
                # Its own directory is its working directory (the data directory above it is
                # the kernel's, 0700: an absolute path through it is refused too).
                seen["own home"] = write("mine.txt")
                return json.dumps(seen)
        """
    },
}

NEIGHBOUR = {
    "manifest": commands("neighbour"),
    "init": """
        @hookimpl
        def on_enable(ctx):
            ctx.store.table("secrets").insert({"id": 1, "value": "hunter2"}, pk="id", replace=True)
    """,
    "modules": {"commands": "def neighbour(ctx):\n    return 'neighbour'\n"},
}


async def test_an_isolated_plugin_cannot_write_outside_its_directory(
    clustercord_harness, isolated_plugin, tmp_path, monkeypatch
):
    cwd = tmp_path / "kernel-cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the kernel's working directory, as a service has one
    isolated_plugin("scribble", **SCRIBBLE)
    isolated_plugin("neighbour", **NEIGHBOUR)
    kernel = await clustercord_harness.start()
    assert clustercord_harness.plugin("neighbour").state == "enabled"
    if os.geteuid() == 0 and not kernel.isolation.dropping:
        pytest.skip("running as root with no unprivileged user: file permissions do not hold")
    if os.geteuid() != 0:
        pytest.skip("not root: isolated plugins run as the kernel's own user")
    data = kernel.settings.data_dir
    neighbour_home = data / "plugins" / "neighbour"
    assert neighbour_home.is_dir()
    targets = {
        "data dir": data / "planted",
        "database": kernel.settings.database_path,
        "/etc": "/etc/clustercord-planted",
        "another plugin's directory": neighbour_home / "planted",
        "kernel cwd": cwd / "planted",
    }
    ran = await clustercord_harness.run(f"/scribble path:{','.join(map(str, targets.values()))}")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    assert seen.pop("own home") == "written"  # its own directory stays writable
    # Refused by file permissions, or (bwrap's view) not there at all: read-only /etc, no
    # database, no neighbour, no kernel working directory in the plugin's filesystem.
    refusals = {"PermissionError", "FileNotFoundError", "OSError"}
    assert set(seen) == {str(p) for p in targets.values()}, seen
    assert set(seen.values()) <= refusals, seen
    if kernel.isolation.view is not None and kernel.isolation.view.bwrap is not None:
        assert seen[str(neighbour_home / "planted")] == "FileNotFoundError", seen
    assert not (data / "planted").exists()
    assert not os.path.exists("/etc/clustercord-planted")
    assert not (neighbour_home / "planted").exists()
    assert not (cwd / "planted").exists()
    # Each plugin is a user of its own: the neighbour's directory is not the scribbler's.
    assert kernel.isolation.user("scribble") != kernel.isolation.user("neighbour")
    assert (await clustercord_harness.run("/neighbour")).text == "neighbour"  # still serving


SNOOP = {
    "manifest": commands("snoop"),
    "modules": {
        "commands": """
            import json

            def snoop(ctx):
                tries = {
                    "select": "SELECT * FROM neighbour__secrets",
                    "quoted": 'SELECT * FROM "neighbour__secrets"',
                    "schema": "SELECT * FROM main.neighbour__secrets",
                    "union": "SELECT 1 AS x UNION SELECT value FROM neighbour__secrets",
                    "subquery": "SELECT (SELECT value FROM neighbour__secrets) AS v",
                    "cte": "WITH s AS (SELECT * FROM neighbour__secrets) SELECT * FROM s",
                    "master": "SELECT name FROM sqlite_master",
                    "attach": "ATTACH DATABASE 'x.db' AS x",
                    "pragma": "PRAGMA table_info(neighbour__secrets)",
                    "kernel table": "SELECT * FROM _plugins",
                }
                seen = {}
                for name, sql in tries.items():
                    try:
                        rows = ctx.store.query(sql)
                        seen[name] = f"allowed: {rows}"
                    except Exception as exc:
                        seen[name] = f"{type(exc).__name__}: {exc}"
                return json.dumps(seen)
        """
    },
}


async def test_an_isolated_plugin_cannot_query_another_plugins_tables(
    clustercord_harness, isolated_plugin
):
    isolated_plugin("snoop", **SNOOP)
    isolated_plugin("neighbour", **NEIGHBOUR)
    kernel = await clustercord_harness.start()
    assert kernel.database.db["neighbour__secrets"].count == 1
    ran = await clustercord_harness.run("/snoop")
    assert ran.ok, ran.text
    seen = json.loads(ran.text)
    allowed = {k: v for k, v in seen.items() if v.startswith("allowed")}
    # sqlite_master through the plugin's store names only its own tables, if anything.
    master = allowed.pop("master", "allowed: []")
    assert "neighbour" not in master and "_plugins" not in master, master
    assert allowed == {}, seen
    assert not any("hunter2" in v for v in seen.values()), seen
    assert clustercord_harness.plugin("snoop").state == "enabled"  # answered, not failed
    assert kernel.database.db["neighbour__secrets"].count == 1


# -- kill -9 of `clustercord run` during `/terminal exec`, then a restart --------------------
CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]


def _cli(env, *args, check=True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def _processes_running(marker: str) -> list[int]:
    """Local processes whose command line holds ``marker`` (the sandbox runs a pod's
    processes as local processes, in namespaces of their own)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and process_alive(int(entry)):
            found.append(int(entry))
    return found


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_kill_9_during_terminal_exec_then_restart(sandbox_cluster, clustercord_signer, tmp_path):
    sandbox = sandbox_cluster("homelab")  # KUBECONFIG points at it, for the CLI too
    site = tmp_path / "site"
    signed_builtins_site(site, clustercord_signer)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CLUSTERCORD_DATA_DIR": str(data),
        "CLUSTERCORD_FILES_DIR": str(data / "files"),
    }
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    _cli(env, "keys", "trust", str(key), "--label", "test key", "--kind", "release")
    pod = sandbox.kubectl("get", "pods", "-n", "media", "-o", "name").stdout.split()[0][4:]
    seconds = f"{300 + os.getpid() % 97}.5"  # a sleep no other test runs: its marker
    line = f'/terminal exec pod:{pod} namespace:media command:"sleep {seconds}"'
    running = subprocess.Popen(
        [*CLI, "run", line], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert _wait(lambda: _processes_running(seconds) or running.poll() is not None, 60)
        assert running.poll() is None, running.stderr.read() if running.stderr else ""
    finally:
        os.kill(running.pid, signal.SIGKILL)
        running.wait()

    # No process of that exec is left in the pod once its client is gone.
    assert _wait(lambda: not _processes_running(seconds), 15), (
        f"the exec's processes outlived the killed bot: {_processes_running(seconds)}"
    )
    # The audit log shows the command started, with no result; the log is otherwise intact.
    verified = _cli(env, "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    assert "/terminal exec started at " in verified.stdout, verified.stdout
    assert "no result recorded (the process ended?)" in verified.stdout
    assert verified.stdout.count("warning:") == 1, verified.stdout
    # A restarted bot execs again at once.
    again = _cli(
        env, "run", f'/terminal exec pod:{pod} namespace:media command:"echo again-$((6*7))"'
    )
    assert "again-42" in again.stdout, again.stdout
    after = _cli(env, "audit", "verify", check=False)
    assert after.returncode == 0 and after.stdout.count("warning:") == 1, after.stdout
