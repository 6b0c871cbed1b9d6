"""The stable command-line surface (README, "Command line"), run as a user would, in subprocesses.

The builtin plugins are copied into a private site folder (shadowing the installed
distribution) and signed there with a throwaway key, these tests never touch the
signatures of the working tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]


@pytest.fixture
def site(tmp_path, clustercord_signer):
    """A site folder with a signed copy of clustercord-builtins, and its environment."""
    site = tmp_path / "site"
    package = signed_builtins_site(site, clustercord_signer)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
        "CLUSTERCORD_FILES_DIR": str(tmp_path / "files"),
    }
    key = tmp_path / "test.asc"
    key.write_text(clustercord_signer.public_key)
    run(env, "keys", "trust", str(key), "--label", "test key", "--kind", "release")
    return env, package


def run(env, *args, check=True):
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def test_plugins_list_json_shows_every_builtin_verified(site):
    env, _ = site
    data = json.loads(run(env, "plugins", "list", "--json").stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    builtins = {
        ep.name
        for ep in entry_points(group="clustercord.plugins")
        if ep.value.startswith("clustercord_builtins.")
    }
    assert {"approvals", "cluster", "help", "plugins"} <= builtins
    assert set(plugins) == builtins
    for plugin in plugins.values():
        assert plugin["state"] == "enabled"
        assert plugin["signature"] == "verified"
    assert plugins["plugins"]["capabilities"] == ["plugin-admin"]
    assert run(env, "plugins", "verify").returncode == 0


def test_one_changed_byte_refuses_exactly_that_plugin(site):
    env, package = site
    target = package / "approvals" / "commands.py"
    target.write_bytes(target.read_bytes().replace(b"pending", b"pendinG", 1))
    data = json.loads(run(env, "plugins", "list", "--json").stdout)
    states = {p["name"]: (p["state"], p["reason"]) for p in data["plugins"]}
    assert states["approvals"] == ("refused", "file changed after signing: commands.py")
    assert states["help"] == states["plugins"] == ("enabled", None)
    assert run(env, "plugins", "verify", check=False).returncode == 1
    assert run(env, "run", "/help").returncode == 0


def test_run_exit_codes_and_json(site):
    env, _ = site
    ok = run(env, "run", "--json", "/plugin info name:help")
    assert json.loads(ok.stdout)["data"]["name"] == "help"
    usage = run(env, "run", "/plugin lsit", check=False)
    assert usage.returncode == 2 and "did you mean /plugin list" in usage.stdout
    bad_option = run(env, "run", "/plugin info nam:help", check=False)
    assert bad_option.returncode == 2 and "unknown option 'nam'" in bad_option.stdout
    error = run(env, "run", "/plugin info name:nope", check=False)
    assert error.returncode == 1 and "no plugin named 'nope'" in error.stdout
    unbalanced = run(env, "run", '/plugin info name:"help', check=False)
    assert unbalanced.returncode == 2 and "quote" in unbalanced.stderr
    denied = run(
        env, "run", "--as", "123", "--roles", "9", "/plugin disable name:help", check=False
    )
    assert denied.returncode == 1 and "admins only" in denied.stdout


def test_console_runs_typed_lines_and_keeps_going_after_an_error(site):
    env, _ = site
    typed = "/plugin info name:nope\n/plugin lsit\n/plugin info name:help\nexit\n"
    result = subprocess.run(
        [*CLI, "console"], env=env, input=typed, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())  # the renderer wraps long lines
    assert "no plugin named 'nope'" in shown
    assert "did you mean /plugin list" in shown
    assert "Every command you can run, with its options" in shown
    # Piped lines are shown once each (an interactive editor would echo them twice).
    for line in typed.splitlines()[:3]:
        assert result.stdout.count(f"clustercord> {line}") == 1, line


def test_piped_tables_keep_every_name_whole(site):
    # Output piped to another program is not 80 columns of wrapped cells: each plugin's
    # row is one line with its permissions whole, ready for grep.
    env, _ = site
    listed = run(env, "run", "/plugin list").stdout
    rows = [line for line in listed.splitlines() if " templates " in line]
    assert len(rows) == 1 and "storageclasses.storage.k8s.io" in rows[0]


def test_disable_persists_and_audit_verifies_then_detects_an_edit(site):
    env, _ = site
    run(env, "run", "--yes", "/plugin disable name:help reason:testing")
    data = json.loads(run(env, "plugins", "list", "--json").stdout)
    assert {p["name"]: p["state"] for p in data["plugins"]}["help"] == "disabled"

    exported = run(env, "audit", "export").stdout.splitlines()
    assert json.loads(exported[-1])["action"] == "plugin disable"
    assert "intact" in run(env, "audit", "verify").stdout

    import sqlite3

    conn = sqlite3.connect(Path(env["CLUSTERCORD_DATA_DIR"]) / "clustercord.db")
    conn.execute("DROP TRIGGER IF EXISTS _audit_no_update")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.execute("UPDATE _audit SET actor = 'someone-else' WHERE seq = 1")
    conn.commit()
    conn.close()
    tampered = run(env, "audit", "verify", check=False)
    assert tampered.returncode == 1 and "seq 1" in tampered.stderr


def test_keys_sign_with_a_release_key_from_the_environment(site, tmp_path, clustercord_signer):
    env, package = site
    secret = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(clustercord_signer.home),
            "--batch",
            "--armor",
            "--export-secret-keys",
            clustercord_signer.fingerprint,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    target = package / "help" / "commands.py"
    target.write_text(target.read_text() + "\n# release edit\n")
    assert states(env)["help"] == "refused"
    release = {**env, "CLUSTERCORD_SIGNING_KEY": secret}
    run(release, "keys", "sign", str(package / "help"))
    assert states(env)["help"] == "enabled"


def states(env):
    listed = json.loads(run(env, "plugins", "list", "--json").stdout)["plugins"]
    return {p["name"]: p["state"] for p in listed}


def test_keys_create_trust_and_list(site):
    env, _ = site
    fingerprint = run(env, "keys", "create", "--name", "Release 2026", "--trust").stdout.strip()
    assert len(fingerprint) == 40
    listed = run(env, "keys", "list").stdout
    assert f"{fingerprint}  release      Release 2026" in listed
    assert "test key" in listed
    exported = run(env, "keys", "export", fingerprint).stdout
    assert exported.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert run(env, "keys", "untrust", fingerprint).returncode == 0
    assert fingerprint not in run(env, "keys", "list").stdout.split("Trusted keys")[1]


def test_trusting_a_private_key_is_refused(site, tmp_path):
    env, _ = site
    bogus = tmp_path / "secret.asc"
    bogus.write_text("-----BEGIN PGP " + "PRIVATE KEY BLOCK-----\n\nabc\n")  # not a real key
    result = run(env, "keys", "trust", str(bogus), "--label", "x", check=False)
    assert result.returncode == 1 and "refusing a private key" in result.stderr


def test_run_with_an_embedded_homelab_sandbox(site):
    env, _ = site
    result = run(env, "run", "--json", "--sandbox", "homelab", "/pod list all_namespaces:true")
    pods = json.loads(result.stdout)["data"]["pods"]
    assert len(pods) == 9
    assert {p["status"] for p in pods} == {"Running"}
    assert {p["node"] for p in pods} == {"nas", "pi-1", "pi-2"}
    bad = run(env, "run", "--sandbox", "nope.yaml", "/cluster list", check=False)
    assert bad.returncode == 2 and "--sandbox nope.yaml" in bad.stderr
