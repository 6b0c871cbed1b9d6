"""At rest: modes of the data directory, the database and the key files (real files, real
stat), and the data key: never silently replaced over sealed data, never a changed key
accepted over it; plugins' sealers are their own."""

from __future__ import annotations

import io
import logging
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml

from clustercord.config import Settings
from clustercord.kernel import Kernel
from clustercord.secretbox import DataKeyError, SecretBox, forget_sealed, sealed_inventory
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import File, Reply
from clustercord_sdk.services import Sealer

TOKEN = "at-rest-token-0123456789abcdef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def kubeconfig(name: str = "home") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": "https://10.0.0.1:6443"}}],
            "users": [{"name": f"{name}-admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        }
    )


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("CLUSTERCORD_SECRET_KEY", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def kernel(settings: Settings) -> Kernel:
    return Kernel(settings, sources=[])


def upload(settings: Settings) -> None:
    k = kernel(settings)
    try:
        k.kubernetes.registry.add("homelab", kubeconfig(), by="42")
    finally:
        k.close()


# -- modes ----------------------------------------------------------------------------------
def test_a_fresh_data_dir_is_private(settings):
    k = kernel(settings)
    try:
        k.database.kv_set("test", "x", 1)  # a write: the WAL and shm exist
        k.data_key.box()  # the data key is made on first use
        data = settings.data_dir
        assert mode(data) == 0o700
        for name in ("clustercord.db", "clustercord.db-wal", "clustercord.db-shm"):
            assert mode(data / name) == 0o600, name
        assert mode(data / "secret.key") == 0o600
        assert mode(data / "audit.key") == 0o600
        assert mode(settings.output_dir) == 0o700
    finally:
        k.close()


def test_looser_modes_are_tightened_at_start_and_logged(settings, caplog):
    data = settings.data_dir
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    sqlite3.connect(data / "clustercord.db").execute("CREATE TABLE t (x)").connection.close()
    (data / "clustercord.db").chmod(0o644)
    files = settings.output_dir
    files.mkdir(mode=0o755)
    files.chmod(0o755)
    (files / "old-output.txt").write_text("rendered manifest")
    (files / "old-output.txt").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="clustercord.kernel"):
        k = kernel(settings)
    try:
        assert mode(data) == 0o700 and mode(data / "clustercord.db") == 0o600
        assert mode(files) == 0o700 and mode(files / "old-output.txt") == 0o600
        logged = caplog.text
        assert f"{data / 'clustercord.db'} was mode 0644" in logged
        assert f"{data} was mode 0755" in logged
    finally:
        k.close()


def test_a_readable_key_file_is_tightened_at_start(settings):
    k = kernel(settings)
    k.data_key.box()
    k.close()
    (settings.data_dir / "secret.key").chmod(0o644)
    (settings.data_dir / "audit.key").chmod(0o640)
    k = kernel(settings)
    try:
        assert mode(settings.data_dir / "secret.key") == 0o600
        assert mode(settings.data_dir / "audit.key") == 0o600
        k.data_key.box()  # and usable
    finally:
        k.close()


def test_the_wal_made_again_after_a_checkpoint_is_private(tmp_path):
    path = tmp_path / "clustercord.db"
    database = Database(path)
    database.kv_set("test", "x", "y" * 10_000)
    database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()  # the last connection: SQLite removes the WAL and shm
    database = Database(path)
    try:
        database.kv_set("test", "x", "z")
        for suffix in ("", "-wal", "-shm"):
            assert mode(Path(f"{path}{suffix}")) == 0o600, suffix
    finally:
        database.close()


def test_a_console_output_file_lives_in_a_private_directory(settings):
    from rich.console import Console

    from clustercord.frontends.console import ConsoleRenderer

    k = kernel(settings)
    k.close()
    assert mode(settings.output_dir) == 0o700  # nobody else reaches a file in it
    renderer = ConsoleRenderer(Console(file=io.StringIO()), settings.output_dir)
    renderer.render(Reply(files=[File("manifest.yaml", b"kind: Secret\n")]))
    saved = settings.output_dir / "manifest.yaml"
    assert mode(saved) == 0o600  # created private, not fixed later
    k = kernel(settings)
    k.close()
    assert mode(saved) == 0o600 and mode(settings.output_dir) == 0o700


# -- the data key ---------------------------------------------------------------------------
def test_a_missing_key_over_an_uploaded_cluster_is_an_error_and_nothing_is_replaced(settings):
    upload(settings)
    key = settings.data_dir / "secret.key"
    key.unlink()
    with pytest.raises(DataKeyError) as raised:
        kernel(settings)
    message = str(raised.value)
    assert "data key is missing" in message and str(key) in message
    assert "1 uploaded cluster" in message
    assert "restore" in message and "backup" in message and "CLUSTERCORD_SECRET_KEY" in message
    assert not key.exists()  # never a silent new key
    rows = sqlite3.connect(settings.database_path).execute("SELECT count(*) FROM _clusters")
    assert rows.fetchone()[0] == 1  # nothing overwritten


def test_the_restored_key_brings_the_clusters_back(settings):
    upload(settings)
    key = settings.data_dir / "secret.key"
    backup = key.read_bytes()
    key.unlink()
    with pytest.raises(DataKeyError):
        kernel(settings)
    key.write_bytes(backup)
    key.chmod(0o600)
    k = kernel(settings)
    try:
        assert [c.name for c in k.kubernetes.registry.list()] == ["homelab"]
    finally:
        k.close()


def test_a_wrong_secret_key_in_the_environment_is_an_error(settings, monkeypatch):
    upload(settings)
    monkeypatch.setenv("CLUSTERCORD_SECRET_KEY", "not the passphrase it was sealed with")
    with pytest.raises(DataKeyError) as raised:
        kernel(settings)
    message = str(raised.value)
    assert "CLUSTERCORD_SECRET_KEY" in message and "is not the key" in message
    assert "1 uploaded cluster" in message and "key id" in message


def test_the_key_from_the_environment_is_checked_too(settings, monkeypatch):
    monkeypatch.setenv("CLUSTERCORD_SECRET_KEY", "the right passphrase")
    upload(settings)
    assert not (settings.data_dir / "secret.key").exists()
    k = kernel(settings)  # same passphrase: fine
    k.close()
    monkeypatch.delenv("CLUSTERCORD_SECRET_KEY")
    with pytest.raises(DataKeyError, match="data key is missing"):
        kernel(settings)
    assert not (settings.data_dir / "secret.key").exists()


def test_a_data_dir_sealed_before_key_ids_is_checked_by_its_tokens(settings, monkeypatch):
    upload(settings)
    conn = sqlite3.connect(settings.database_path)
    conn.execute("DELETE FROM _kv WHERE scope = '_secretbox'")  # as written by an older kernel
    conn.commit()
    conn.close()
    monkeypatch.setenv("CLUSTERCORD_SECRET_KEY", "another passphrase")
    with pytest.raises(DataKeyError, match="is not the key the stored data was sealed with"):
        kernel(settings)
    monkeypatch.delenv("CLUSTERCORD_SECRET_KEY")
    k = kernel(settings)  # the right key: accepted, and its id recorded from now on
    try:
        assert k.database.kv_get("_secretbox", "key_id") == k.data_key.box().key_id
    finally:
        k.close()


def test_a_new_key_over_nothing_sealed_is_accepted(settings, caplog):
    k = kernel(settings)
    k.data_key.box()
    k.close()
    (settings.data_dir / "secret.key").unlink()
    k = kernel(settings)  # nothing sealed: nothing lost, a new key on first use
    try:
        k.data_key.box()
        assert mode(settings.data_dir / "secret.key") == 0o600
    finally:
        k.close()


def test_private_notifications_count_as_sealed(settings):
    import asyncio

    k = kernel(settings)
    try:
        reply = Reply(text="password: hunter2", ephemeral=True)
        asyncio.run(k.notifier.notify(reply, user="42", plugin="templates"))
    finally:
        k.close()
    (settings.data_dir / "secret.key").unlink()
    with pytest.raises(DataKeyError, match="1 undelivered private notification"):
        kernel(settings)


def test_forget_sealed_discards_knowingly(settings):
    upload(settings)
    (settings.data_dir / "secret.key").unlink()
    database = Database(settings.database_path)
    try:
        assert forget_sealed(database) == ["1 uploaded cluster (their kubeconfigs)"]
        assert sealed_inventory(database) == []
    finally:
        database.close()
    k = kernel(settings)
    try:
        k.data_key.box()
        assert (settings.data_dir / "secret.key").exists()
    finally:
        k.close()


# -- plugins' sealers -----------------------------------------------------------------------
def test_a_plugins_sealer_is_its_own(settings):
    k = kernel(settings)
    try:
        mine, theirs = k.data_key.sealer("terminal"), k.data_key.sealer("cluster")
        assert isinstance(mine, Sealer)
        token = mine.seal(b"kubectl output")
        assert b"kubectl output" not in token and mine.seal(b"kubectl output") != token
        assert mine.open(token) == b"kubectl output"
        with pytest.raises(CommandError, match="sealed by another plugin"):
            theirs.open(token)
        with pytest.raises(CommandError, match="sealed by another plugin"):
            mine.open(token[:-1] + bytes([token[-1] ^ 1]))  # altered
        with pytest.raises(CommandError, match="not sealed"):
            mine.open(b"\x1f\x8b plain gzip")
    finally:
        k.close()


def test_a_plugins_sealer_under_another_data_key_cannot_open(settings, tmp_path):
    k = kernel(settings)
    try:
        token = k.data_key.sealer("terminal").seal(b"x")
    finally:
        k.close()
    other = Kernel(Settings(data_dir=tmp_path / "other"), sources=[])
    try:
        with pytest.raises(CommandError, match="another data key"):
            other.data_key.sealer("terminal").open(token)
    finally:
        other.close()


def test_a_missing_key_over_a_plugins_sealed_rows_names_them(settings):
    k = kernel(settings)
    try:
        sealer = k.data_key.sealer("terminal")
        table = k.database.db.table("terminal__recordings")
        table.insert_all([{"id": str(i), "data": sealer.seal(b"out")} for i in range(3)])
        table.insert({"id": "old", "data": b"\x1f\x8b unsealed"})
    finally:
        k.close()
    (settings.data_dir / "secret.key").unlink()
    with pytest.raises(DataKeyError) as raised:
        kernel(settings)
    assert "3 sealed recordings of plugin terminal (table terminal__recordings)" in str(
        raised.value
    )
    assert not (settings.data_dir / "secret.key").exists()


def test_from_settings_without_a_database_keeps_its_old_behaviour(tmp_path):
    box = SecretBox.from_settings(tmp_path, env={})
    assert mode(tmp_path / "secret.key") == 0o600
    assert box.open(box.seal("x")) == "x"


def test_a_first_seal_inside_a_plugins_own_transaction_is_recorded_with_it(settings):
    k = kernel(settings)
    try:
        table = k.database.db.table("terminal__recordings")
        with k.database.db.atomic():  # sqlite-utils' transaction, not the kernel's
            table.insert({"id": "1", "data": k.data_key.sealer("terminal").seal(b"x")})
        assert k.database.kv_get("_secretbox", "plugins") == ["terminal"]
        assert k.database.kv_get("_secretbox", "key_id") == k.data_key.box().key_id
    finally:
        k.close()


def test_keys_forget_sealed_asks_first_then_lets_the_kernel_start(settings, capsys, monkeypatch):
    from clustercord.cli import main

    upload(settings)
    (settings.data_dir / "secret.key").unlink()
    monkeypatch.setenv("CLUSTERCORD_DATA_DIR", str(settings.data_dir))
    assert main(["keys", "forget-sealed"]) == 1  # without --yes nothing is deleted
    assert "this deletes, for good: 1 uploaded cluster" in capsys.readouterr().out
    database = Database(settings.database_path)
    try:
        assert sealed_inventory(database) == ["1 uploaded cluster (their kubeconfigs)"]
    finally:
        database.close()
    assert main(["keys", "forget-sealed", "--yes"]) == 0
    assert "deleted: 1 uploaded cluster" in capsys.readouterr().out
    k = kernel(settings)  # starts: a new key, nothing sealed left to lose
    try:
        k.data_key.box()
        assert mode(settings.data_dir / "secret.key") == 0o600
    finally:
        k.close()
