"""The audit log against someone holding the database file, end to end: real `clustercord`
processes, the real CLI, the file edited with sqlite3 behind the kernel's back.

Each tampering is tried on a copy of one data directory that real commands wrote: the
database, its key (``audit.key``) and its head file (``audit.head``) as they are on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]

# /help, made to announce that its handler runs and then to sleep, when the test asks.
SLEEPY_HELP = """
import os as _os
import time as _time
_show_help = show_help


def show_help(ctx):
    marker = _os.environ.get("CC_TEST_HANDLER_RUNNING")
    if marker:
        open(marker, "w").close()
        _time.sleep(60)
    return _show_help(ctx)
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory, clustercord_signer):
    """A data directory in which real `clustercord run` processes wrote the audit log (and
    the site they ran from, whose /help can be made to hang)."""
    root = tmp_path_factory.mktemp("audit-tamper")
    site = root / "site"
    package = signed_builtins_site(site, clustercord_signer)
    commands = package / "help" / "commands.py"
    commands.write_text(commands.read_text() + SLEEPY_HELP)
    clustercord_signer.sign(package / "help")
    data = root / "data"
    env = environment(site, data)
    key = root / "test.asc"
    key.write_text(clustercord_signer.public_key)
    cli(env, "keys", "trust", str(key), "--label", "test key", "--kind", "release")
    for line in ("/help", "/plugin list", "/help command:help", "/plugin info name:help"):
        cli(env, "run", line)
    return site, data


def environment(site: Path, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(site),
        "CLUSTERCORD_DATA_DIR": str(data),
        "CLUSTERCORD_FILES_DIR": str(data / "files"),
    }


def cli(env, *args, check=True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def copy(written, tmp_path):
    """A copy of the written data directory, and its environment."""
    site, data = written
    target = tmp_path / "data"
    shutil.copytree(data, target)
    return environment(site, target), target


def tamper(data: Path, *statements: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(data / "clustercord.db")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    for statement in statements:
        conn.execute(statement, params if "?" in statement else ())
    conn.commit()
    conn.close()


def rows(data: Path) -> list[dict]:
    conn = sqlite3.connect(data / "clustercord.db")
    conn.row_factory = sqlite3.Row
    found = [dict(row) for row in conn.execute("SELECT * FROM _audit ORDER BY seq")]
    conn.close()
    return found


def verify(env, *args) -> subprocess.CompletedProcess[str]:
    return cli(env, "audit", "verify", *args, check=False)


def test_the_written_log_verifies_with_intent_and_result_rows(copy) -> None:
    env, data = copy
    result = verify(env)
    assert result.returncode == 0, result.stderr
    assert "audit log intact: 8 entries, head seq 8" in result.stdout
    stored = rows(data)
    # Each command: its intent (started, no duration), then its result naming it.
    assert [(r["action"], r["result"], r["intent_seq"]) for r in stored[:2]] == [
        ("help", "started", None),
        ("help", "ok", 1),
    ]
    assert stored[0]["duration_ms"] is None and stored[1]["duration_ms"] is not None
    assert {r["chain"] for r in stored} == {2}
    assert (data / "audit.key").stat().st_mode & 0o777 == 0o600


def test_an_edited_row_is_named(copy) -> None:
    env, data = copy
    tamper(data, "UPDATE _audit SET actor = 'console:mallory' WHERE seq = 3")
    result = verify(env)
    assert result.returncode == 1
    assert "seq 3: MAC mismatch (row edited" in result.stderr


def test_a_deleted_middle_row_is_named(copy) -> None:
    env, data = copy
    tamper(data, "DELETE FROM _audit WHERE seq = 4")
    result = verify(env)
    assert result.returncode == 1
    assert "seq 5: gap in seq numbers, seq 4 missing (row removed)" in result.stderr


def test_deleted_last_rows_with_a_rewound_counter_are_caught_by_the_head_file(copy) -> None:
    env, data = copy
    tamper(
        data,
        "DELETE FROM _audit WHERE seq > 5",
        "UPDATE sqlite_sequence SET seq = 5 WHERE name = '_audit'",
    )
    result = verify(env)
    assert result.returncode == 1
    assert "rows after seq 5 are missing: audit.head records that the log reached seq 8" in (
        result.stderr
    )


def test_an_anchor_kept_elsewhere_catches_what_is_left(copy) -> None:
    env, data = copy
    line = cli(env, "audit", "anchor").stdout.strip()
    assert line.startswith("clustercord-audit-anchor seq=8 mac=")
    assert verify(env, "--anchor", line).returncode == 0
    # The tail deleted, the counter rewound and the head file removed: only the anchor knows.
    tamper(
        data,
        "DELETE FROM _audit WHERE seq > 5",
        "UPDATE sqlite_sequence SET seq = 5 WHERE name = '_audit'",
    )
    (data / "audit.head").unlink()
    assert verify(env).returncode == 0
    result = verify(env, "--anchor", line)
    assert result.returncode == 1
    assert "the anchor records that the log reached seq 8 (rows deleted at the end)" in (
        result.stderr
    )
    bad = verify(env, "--anchor", "seq=8")
    assert bad.returncode == 2 and "--anchor" in bad.stderr


def _rechain(data: Path, digest) -> None:
    """What an attacker with the database only can do: edit a row, then recompute every
    hash from the first so that each row links to the one before."""
    tamper(data, "UPDATE _audit SET actor = 'console:mallory' WHERE seq = 2")
    conn = sqlite3.connect(data / "clustercord.db")
    prev = "0" * 64
    for row in rows(data):
        row["options"] = json.loads(row["options"])
        row["prev_hash"] = prev
        chain, prev = digest(row)
        conn.execute(
            "UPDATE _audit SET prev_hash = ?, hash = ?, chain = ? WHERE seq = ?",
            (row["prev_hash"], prev, chain, row["seq"]),
        )
    conn.commit()
    conn.close()


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


OLD_FIELDS = (
    "seq",
    "ts",
    "actor",
    "action",
    "plugin",
    "cluster",
    "namespace",
    "options",
    "result",
    "message",
    "duration_ms",
)


def _unkeyed(row) -> tuple[int, str]:  # the chain as it was before it had a key
    body = {name: row[name] for name in OLD_FIELDS}
    return 1, hashlib.sha256((row["prev_hash"] + _canonical(body)).encode()).hexdigest()


def _guessed(row) -> tuple[int, str]:  # keyed, with a key guessed from the database's data
    import hmac

    body = {name: row[name] for name in [*OLD_FIELDS, "intent_seq", "chain"]}
    guess = hashlib.sha256(b"clustercord.db").digest()
    mac = hmac.new(guess, (row["prev_hash"] + _canonical(body)).encode(), hashlib.sha256)
    return 2, mac.hexdigest()


@pytest.mark.parametrize("digest", [_unkeyed, _guessed], ids=["old-unkeyed", "guessed-key"])
def test_a_chain_recomputed_without_the_key_is_detected(copy, digest) -> None:
    env, data = copy
    _rechain(data, digest)
    result = verify(env)
    assert result.returncode == 1
    if digest is _unkeyed:
        assert "seq 1: an unkeyed row where the log is keyed (since seq 1)" in result.stderr
    else:
        assert "seq 1: MAC mismatch" in result.stderr
    assert "its MAC differs from the one recorded in audit.head" in result.stderr


def test_a_truncated_log_is_detected(copy) -> None:
    env, data = copy
    tamper(data, "DELETE FROM _audit", "DELETE FROM sqlite_sequence WHERE name = '_audit'")
    result = verify(env)
    assert result.returncode == 1
    assert "rows after seq 0 are missing: audit.head records that the log reached seq 8" in (
        result.stderr
    )


def test_a_missing_audit_key_is_a_clear_error_never_a_new_key(copy) -> None:
    env, data = copy
    (data / "audit.key").unlink()
    result = verify(env)
    assert result.returncode == 1
    assert f"audit key {data / 'audit.key'} is missing" in result.stderr
    assert "keyed entries (seq 1-8)" in result.stderr and "Restore audit.key" in result.stderr
    # The kernel does not start over it either, and makes no key of its own.
    started = cli(env, "run", "/help", check=False)
    assert started.returncode == 1
    assert f"audit key {data / 'audit.key'} is missing" in started.stderr
    assert not (data / "audit.key").exists()


def test_a_command_killed_midway_leaves_started_without_result(copy, tmp_path) -> None:
    env, _ = copy
    marker = tmp_path / "handler-running"
    process = subprocess.Popen(
        [*CLI, "run", "/help"],
        env={**env, "CC_TEST_HANDLER_RUNNING": str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, "clustercord run ended before its handler ran"
            assert time.monotonic() < deadline, "the handler never started"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    result = verify(env)
    assert result.returncode == 0, result.stderr
    assert "warning: seq 9: /help started at " in result.stdout
    assert "no result recorded (the process ended?)" in result.stdout
    assert "audit log intact: 9 entries" in result.stdout
    strict = verify(env, "--strict")
    assert strict.returncode == 1 and "warning: seq 9" in strict.stdout
    # The log goes on after the killed command, and still only that one has no result.
    cli(env, "run", "/plugin list")
    after = verify(env)
    assert after.returncode == 0
    assert after.stdout.count("warning:") == 1 and "audit log intact: 11 entries" in after.stdout


OLD_SCHEMA = """CREATE TABLE _audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, plugin TEXT, cluster TEXT, namespace TEXT, options TEXT NOT NULL,
    result TEXT NOT NULL, message TEXT, duration_ms REAL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"""


def test_an_old_format_database_still_verifies_and_goes_on_keyed(written, tmp_path) -> None:
    site, _ = written
    data = tmp_path / "old-data"
    data.mkdir()
    conn = sqlite3.connect(data / "clustercord.db")
    conn.execute(OLD_SCHEMA)
    prev = "0" * 64
    for seq in (1, 2, 3):
        row = dict.fromkeys(OLD_FIELDS)
        row |= {"seq": seq, "ts": 1_600_000_000.0 + seq, "actor": "console:old"}
        row |= {"action": "help", "options": {}, "result": "ok", "duration_ms": 2.0}
        row["prev_hash"] = prev
        _, prev = _unkeyed(row)
        conn.execute(
            "INSERT INTO _audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [*(row[n] if n != "options" else "{}" for n in OLD_FIELDS), row["prev_hash"], prev],
        )
    conn.commit()
    conn.close()
    shutil.copytree(written[1] / "trust", data / "trust")
    env = environment(site, data)
    before = verify(env)
    assert before.returncode == 0 and "audit log intact: 3 entries" in before.stdout
    assert not (data / "audit.key").exists()  # verify never makes a key
    cli(env, "run", "/help")
    assert json.loads((data / "audit.key").read_text())["keyed_from"] == 4
    assert [r["chain"] for r in rows(data)] == [1, 1, 1, 2, 2]
    after = verify(env)
    assert after.returncode == 0 and "audit log intact: 5 entries" in after.stdout
    # An old row is still checked, the old way.
    tamper(data, "UPDATE _audit SET actor = 'console:mallory' WHERE seq = 2")
    edited = verify(env)
    assert edited.returncode == 1 and "seq 2: hash mismatch (row edited)" in edited.stderr


# -- the door: an intent row, committed before the plugin runs, for every kind of call ------
PROBE = """
import os
import sqlite3

from clustercord_sdk.reply import Modal, Reply, TextInput


def committed(action):
    # Another connection, as another process would read the file: only what is committed.
    conn = sqlite3.connect(os.environ["CC_TEST_AUDIT_DB"])
    try:
        return conn.execute(
            "SELECT seq FROM _audit WHERE action = ? AND result = 'started' "
            "ORDER BY seq DESC LIMIT 1",
            (action,),
        ).fetchone()[0]
    finally:
        conn.close()


def run(ctx):
    return f"intent {committed('probe')}"


def form(ctx):
    return Reply(text=f"intent {committed('probe-form')}", modal=Modal(
        title="Who?", action="actions:named", inputs=[TextInput("name", "Your name")]))


def go(ctx, value):
    ctx.plugin.store.set("action", committed("component actions:go"))


def named(ctx, fields):
    ctx.plugin.store.set("form", committed("form actions:named"))


def tick(job, ctx):
    ctx.store.set("job", committed("job actions:tick"))
"""


async def test_every_kind_of_call_writes_its_intent_before_the_plugin_runs(
    clustercord_harness, make_plugin, monkeypatch
) -> None:
    from clustercord_sdk.context import Invocation
    from clustercord_sdk.services import Job

    harness = clustercord_harness
    manifest = {
        "commands": [
            {"name": "probe", "description": "probe", "handler": "commands:run"},
            {"name": "probe-form", "description": "a form", "handler": "commands:form"},
        ]
    }
    folder = make_plugin("probe", manifest=manifest, modules={"commands": PROBE, "actions": PROBE})
    harness.add_plugin(folder)
    kernel = await harness.start()
    monkeypatch.setenv("CC_TEST_AUDIT_DB", str(kernel.settings.database_path))

    command = await harness.run("/probe")
    form = await harness.run("/probe-form", forms=[{"name": "Ada"}])

    async def send(reply):
        return None

    async def ask(confirmation):
        return True

    await kernel.door.action(
        Invocation(user_id="console", command=("probe",)),
        plugin="probe",
        action="actions:go",
        value=1,
        send=send,
        ask=ask,
    )
    await kernel.run_job(
        Job(id="j", plugin="probe", handler="actions:tick", schedule="every 1h", next_run=0)
    )

    rows = list(kernel.audit.iter_rows())
    results = {r["seq"]: r for r in rows}
    store = harness.plugin("probe").context.store
    intents = {
        "probe": int(command.text.split()[-1]),
        "form actions:named": store.get("form"),
        "component actions:go": store.get("action"),
        "job actions:tick": store.get("job"),
    }
    assert form.ok, form.text
    for action, intent in intents.items():
        assert results[intent]["result"] == "started" and results[intent]["action"] == action
        assert results[intent]["duration_ms"] is None
        answer = [r for r in rows if r["intent_seq"] == intent]
        assert len(answer) == 1 and answer[0]["result"] == "ok", (action, answer)
        assert answer[0]["action"] == action and answer[0]["seq"] > intent
    assert kernel.audit.verify().warnings == []
