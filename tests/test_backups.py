"""Backups and upgrades, as an operator runs them: `clustercord backup create|list|restore` in
subprocesses against a data directory with sealed rows (an uploaded kubeconfig), and the
refusals that keep a restore or an upgrade from losing data."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml

from clustercord.instance import in_use, serving

from .test_cli import run, site  # noqa: F401  (the fixture)

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "lab", "cluster": {"server": "https://192.0.2.10:6443"}}],
    "users": [{"name": "lab-admin", "user": {"token": "s3cr3t-token-value"}}],
    "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab-admin"}}],
    "current-context": "lab",
}


def data_dir(env) -> Path:
    return Path(env["CLUSTERCORD_DATA_DIR"])


def clusters(env) -> list[str]:
    listed = json.loads(run(env, "run", "--json", "/cluster list").stdout)
    return [c["name"] for c in listed["data"]["clusters"]]


@pytest.fixture
def with_sealed_rows(site, tmp_path):  # noqa: F811
    env, _ = site
    upload = tmp_path / "lab.yaml"
    upload.write_text(yaml.safe_dump(KUBECONFIG))
    run(env, "run", "--yes", f"/cluster add name:lab kubeconfig:{upload}")
    assert "lab" in clusters(env)
    return env


def test_a_backup_round_trips_a_database_with_sealed_rows(with_sealed_rows):
    env = with_sealed_rows
    made = run(env, "backup", "create")
    assert "backup written:" in made.stdout and "data key" in made.stderr  # what it lacks
    [backup] = json.loads(run(env, "backup", "list", "--json").stdout)
    path = Path(backup["path"])
    assert backup["sealed"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"s3cr3t-token-value" not in path.read_bytes()  # sealed in the copy too

    run(env, "run", "--yes", "/cluster remove name:lab")
    assert "lab" not in clusters(env)
    restored = run(env, "backup", "restore", str(path))
    assert f"restored {path.name}" in restored.stdout and "before-restore" in restored.stdout
    assert "lab" in clusters(env)  # the kubeconfig opens with the same data key
    verified = run(env, "audit", "verify")
    assert "intact" in verified.stdout, verified.stderr
    rows = [json.loads(line) for line in run(env, "audit", "export").stdout.splitlines()]
    [restore] = [row for row in rows if row["action"] == "backup restore"]
    assert restore["options"]["replaced_head"]["seq"] > restore["options"]["audit_seq"]


def test_a_restore_waits_for_every_process_to_stop(with_sealed_rows):
    env = with_sealed_rows
    run(env, "backup", "create")
    [backup] = json.loads(run(env, "backup", "list", "--json").stdout)
    before = (data_dir(env) / "clustercord.db").read_bytes()
    running = in_use(data_dir(env))  # a kernel of this directory, still running
    try:
        refused = run(env, "backup", "restore", backup["path"], check=False)
    finally:
        running.release()
    assert refused.returncode == 1
    assert "another ClusterCord process" in refused.stderr and "stop every" in refused.stderr
    assert (data_dir(env) / "clustercord.db").read_bytes() == before


def test_a_restore_without_the_data_key_changes_nothing(with_sealed_rows, tmp_path):
    env = with_sealed_rows
    run(env, "backup", "create")
    [backup] = json.loads(run(env, "backup", "list", "--json").stdout)
    key = data_dir(env) / "secret.key"
    shutil.move(key, tmp_path / "kept.key")
    before = (data_dir(env) / "clustercord.db").read_bytes()
    other = {**env, "CLUSTERCORD_SECRET_KEY": "another passphrase entirely"}
    refused = run(other, "backup", "restore", backup["path"], check=False)
    assert refused.returncode == 1
    assert "sealed with data key" in refused.stderr and "nothing was changed" in refused.stderr
    assert (data_dir(env) / "clustercord.db").read_bytes() == before


@pytest.mark.parametrize(
    "damage", [lambda p: p.write_bytes(p.read_bytes()[:5000]), lambda p: p.write_text("hello")]
)
def test_a_damaged_or_foreign_backup_is_refused(with_sealed_rows, damage):
    env = with_sealed_rows
    run(env, "backup", "create")
    [backup] = json.loads(run(env, "backup", "list", "--json").stdout)
    damage(Path(backup["path"]))
    before = (data_dir(env) / "clustercord.db").read_bytes()
    refused = run(env, "backup", "restore", backup["path"], check=False)
    assert refused.returncode == 1
    assert any(w in refused.stderr for w in ("damaged", "not a readable SQLite", "malformed"))
    assert (data_dir(env) / "clustercord.db").read_bytes() == before


def set_version(env, version: str) -> None:
    conn = sqlite3.connect(data_dir(env) / "clustercord.db")
    with conn:
        conn.execute(
            "UPDATE _kv SET value = ? WHERE scope = '_kernel' AND key = 'version'",
            (json.dumps(version),),
        )
    conn.close()


def test_a_database_from_a_newer_clustercord_is_refused(with_sealed_rows):
    env = with_sealed_rows
    set_version(env, "99.0.0")
    refused = run(env, "run", "/cluster list", check=False)
    assert refused.returncode == 1
    assert "written by ClusterCord 99.0.0, newer than this one" in refused.stderr
    assert "clustercord backup list" in refused.stderr


def test_an_upgrade_is_backed_up_before_anything_migrates(with_sealed_rows):
    env = with_sealed_rows
    set_version(env, "0.0.1")
    assert "lab" in clusters(env)  # starts, and upgrades
    names = [Path(b["path"]).name for b in json.loads(run(env, "backup", "list", "--json").stdout)]
    assert len(names) == 1 and "before-upgrade-from-0.0.1" in names[0]


def test_a_second_serve_of_the_same_data_refuses(site):  # noqa: F811
    env, _ = site
    data_dir(env).mkdir(parents=True, exist_ok=True)
    first = serving(data_dir(env))
    try:
        second = run(env, "serve", "--mode", "interactions", check=False)
    finally:
        first.release()
    assert second.returncode == 1
    assert f"(pid {os.getpid()})" in second.stderr and "answer every interaction twice" in (
        second.stderr
    )


async def test_scheduled_backups_keep_the_newest(clustercord_harness):
    from dataclasses import replace

    clustercord_harness.settings = replace(
        clustercord_harness.settings, backup_every_hours=1.0, backup_keep=2
    )
    kernel = await clustercord_harness.start()
    first = await kernel.scheduled_backup()
    assert first is not None and "-scheduled" in first.name
    assert await kernel.scheduled_backup() is None  # not an hour yet
    for _ in range(3):
        kernel._last_backup = 0.0  # an hour has passed, three times over
        assert await kernel.scheduled_backup() is not None
    kept = sorted((kernel.settings.data_dir / "backups").glob("clustercord-*-scheduled*.db"))
    assert len(kept) == 2


@pytest.mark.parametrize(
    "table, message",
    [
        ("every_hours = -1", "backup.every_hours must be a number of hours"),
        ("keep = 0", "backup.keep must be a whole number, at least 1"),
        ("evry_hours = 24", "[backup] has no evry_hours"),
    ],
)
def test_a_bad_backup_table_is_named(tmp_path, table, message):
    from clustercord.config import load_settings
    from clustercord_sdk.errors import UsageError

    config = tmp_path / "clustercord.toml"
    config.write_text(f"[backup]\n{table}\n")
    with pytest.raises(UsageError, match=message.replace("[", "\\[")):
        load_settings({"CLUSTERCORD_DATA_DIR": str(tmp_path), "CLUSTERCORD_CONFIG": str(config)})
