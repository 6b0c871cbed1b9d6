"""`/terminal` end to end on the console front end: commands run in sandbox pods (as local
processes, through the plugin's own ServiceAccount), recorded with secrets masked, replayed,
searched, exported and expired; a recording is its owner's and the admins'."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import zstandard

from clustercord_builtins.terminal.storage import Recordings

ALICE, BOB, ADMIN = "1001", "1002", "1003"
SECRET = "hunter2-Sup3rSecret"
TOKEN = "sk_live_51HcQ2dKf8J3nX7pLq9RtZ"


@pytest.fixture
def sandbox(sandbox_cluster):
    return sandbox_cluster("homelab")


@pytest.fixture
async def harness(clustercord_harness, sandbox):
    from clustercord.config import AccessConfig

    clustercord_harness.add_builtins(["terminal"])
    await clustercord_harness.restart(
        # alice and bob are cluster-admins in Kubernetes, but only ADMIN is a ClusterCord admin.
        identity={"users": {u: {"user": "admin"} for u in (ALICE, BOB, ADMIN)}},
        access=AccessConfig(admins=frozenset({f"user:{ADMIN}"})),
    )
    return clustercord_harness


def first_pod(sandbox, namespace="media"):
    return sandbox.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()[0][4:]


def recordings(harness) -> Recordings:
    return Recordings(harness.plugin("terminal").context.store)


async def run(harness, line, user=ALICE):
    return await harness.run(line, user=user, frontend="discord")


async def test_a_command_runs_in_the_pod_and_is_recorded(harness, sandbox):
    pod = first_pod(sandbox)
    result = await run(
        harness,
        f'/terminal exec pod:{pod} namespace:media command:"echo out; echo err >&2; exit 3"',
    )
    assert result.ok, result.text
    session = result.reply.data["session"]
    assert result.reply.data["exit_code"] == 3
    assert "out" in result.text and "err" in result.text and "exit 3" in result.text

    (listed,) = (await run(harness, "/terminal list")).reply.data["sessions"]
    assert listed["id"] == session and listed["pod"] == pod and listed["exit_code"] == 3

    replay = await run(harness, f"/terminal playback session:{session}")
    assert replay.reply.ephemeral  # a recording is shown to the one who asked, not the channel
    lines = replay.reply.data["lines"]
    assert any("$ echo out; echo err >&2; exit 3" in line for line in lines), lines
    assert any(line.startswith("[00:00] out") for line in lines), lines


async def test_secrets_are_masked_in_the_reply_the_recording_and_every_export(harness, sandbox):
    pod = first_pod(sandbox)
    line = f"PGPASSWORD={SECRET} STRIPE_KEY={TOKEN} env | grep -E 'PGPASS|STRIPE' | sort"
    result = await run(harness, f'/terminal exec pod:{pod} namespace:media command:"{line}"')
    assert result.ok, result.text
    assert SECRET not in result.text and TOKEN not in result.text
    # Masked, still readable.
    assert "PGPASSWORD=***" in result.text and "STRIPE_KEY=sk_live_***" in result.text
    session = result.reply.data["session"]

    for kind in ("json", "tty", "text", "html"):
        exported = await run(harness, f"/terminal export session:{session} format:{kind}")
        (file,) = exported.reply.files
        assert SECRET not in file.data.decode() and TOKEN not in file.data.decode(), kind
    cast = (await run(harness, f"/terminal download session:{session}")).reply.files[0]
    header = json.loads(cast.data.decode().splitlines()[0])
    assert header["version"] == 2 and cast.name == f"{session}.cast"

    # Nowhere in the database either: not in the stored frames, not in the audit log.
    database = harness.settings.database_path
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert SECRET not in dump and TOKEN not in dump
    sealer = harness.plugin("terminal").context.sealer
    for (blob,) in (
        sqlite3.connect(database).execute("select data from terminal__recordings").fetchall()
    ):
        assert SECRET.encode() not in zstandard.ZstdDecompressor().decompress(sealer.open(blob))


async def test_a_recording_is_its_owners_and_the_admins_and_views_are_logged(harness, sandbox):
    pod = first_pod(sandbox)
    made = await run(harness, f"/terminal exec pod:{pod} namespace:media command:hostname")
    session = made.reply.data["session"]

    refused = await run(harness, f"/terminal playback session:{session}", user=BOB)
    assert not refused.ok and f"no recording {session!r} of yours" in refused.text
    assert (await run(harness, "/terminal list", user=BOB)).reply.data["sessions"] == []
    assert not (await run(harness, f"/terminal search query:{pod[:4]}", user=BOB)).reply.data[
        "matches"
    ]

    assert (await run(harness, f"/terminal playback session:{session}", user=ADMIN)).ok
    assert (await run(harness, f"/terminal download session:{session}")).ok
    views = recordings(harness).views(session)
    assert [(v["user"], v["action"]) for v in views] == [(ADMIN, "playback"), (ALICE, "download")]
    shown = await run(harness, f"/terminal views session:{session}")
    assert [row[1:] for row in shown.reply.tables[0].rows] == [
        [f"<@{ADMIN}>", "playback"],
        [f"<@{ALICE}>", "download"],
    ]
    assert not (await run(harness, f"/terminal views session:{session}", user=BOB)).ok


async def test_search_finds_commands_and_output_and_jump_opens_that_command(harness, sandbox):
    pod = first_pod(sandbox)
    line = "for i in $(seq 1 60); do echo line-$i; done; echo needle-here"
    made = await run(harness, f'/terminal exec pod:{pod} namespace:media command:"{line}"')
    session = made.reply.data["session"]
    found = (await run(harness, "/terminal search query:NEEDLE")).reply.data["matches"]
    assert [m["session"] for m in found] == [session] * len(found) and found
    assert any("needle-here" in m["text"] for m in found)

    pages = await run(harness, f"/terminal playback session:{session} jump:1")
    assert len(pages.reply.pages) >= 3  # 62 lines, 20 a page
    assert "needle" not in pages.reply.pages[0].text or "line-1" in pages.reply.pages[0].text
    too_far = await run(harness, f"/terminal playback session:{session} jump:5")
    assert not too_far.ok and "has 1 commands, not 5" in too_far.text


async def test_bad_targets_are_clear_errors_and_record_nothing(harness, sandbox):
    missing = await run(harness, "/terminal exec pod:nope namespace:media command:ls")
    assert not missing.ok and "nope" in missing.text
    pod = first_pod(sandbox)
    wrong = await run(harness, f"/terminal exec pod:{pod} namespace:media container:db command:ls")
    assert not wrong.ok and "has no container 'db'" in wrong.text
    assert recordings(harness).list() == []


async def test_retention_deletes_old_recordings_and_keeps_the_rest(harness, sandbox):
    pod = first_pod(sandbox)
    for _ in range(2):
        await run(harness, f"/terminal exec pod:{pod} namespace:media command:date")
    store = recordings(harness)
    old, new = store.list()[1], store.list()[0]
    aged = store.get(old.id)
    aged.started = time.time() - 3 * 86400
    store.save(aged)

    refused = await run(harness, "/terminal retention set days:2")
    assert not refused.ok and "admins only" in refused.text
    result = await run(harness, "/terminal retention set days:2 namespace:media", user=ADMIN)
    assert result.ok, result.text
    assert result.reply.data["expired"] == 1
    assert [s.id for s in store.list()] == [new.id]
    shown = await run(harness, "/terminal retention show")
    assert ["*", "media", 2] in shown.reply.tables[0].rows


async def test_a_live_replay_prints_the_lines_as_they_come_on_the_console(harness, sandbox):
    pod = first_pod(sandbox)
    line = "echo first; sleep 0.3; echo second"
    made = await run(harness, f'/terminal exec pod:{pod} namespace:media command:"{line}"')
    session = made.reply.data["session"]
    live = await harness.run(f"/terminal playback session:{session} speed:16", user=ALICE)
    assert live.ok, live.text
    printed = [reply.text for reply in live.sent]
    assert printed[0].endswith(f"$ {line}") and printed[1:] == ["[00:00] first", "[00:00] second"]
    assert live.text == "⏹️ Replay finished." and live.reply.data["stopped"] is False


async def test_the_values_of_the_secrets_a_pod_uses_are_masked_once_opted_in(harness, sandbox):
    """grafana's container reads ``grafana-admin`` through ``secretKeyRef``: its password
    ``sandbox-not-a-secret``, which no rule could tell from ordinary text, is masked in
    whatever prints it (here ``rev`` makes it from text that is not it), in the reply and
    the recording; the 5-character user name ``admin`` is too short to mask."""
    pod = first_pod(sandbox, "monitoring")
    line = "echo terces-a-ton-xobdnas | rev; echo user admin"
    command = f'/terminal exec pod:{pod} namespace:monitoring command:"{line}"'
    before = await run(harness, command)
    assert before.ok and "sandbox-not-a-secret" in before.text  # not opted in: not known

    cluster = harness.plugin("terminal").context.kubernetes.clusters()[0].name
    await harness.kernel.manager.set_config("terminal", "known_secret_clusters", cluster, by=ADMIN)
    result = await run(harness, command)
    assert result.ok, result.text
    assert "sandbox-not-a-secret" not in result.text and "************" in result.text
    assert "user admin" in result.text
    assert "values of 1 Secret(s) the pod uses are masked" in result.text
    recording = recordings(harness).get(result.reply.data["session"])
    assert "sandbox-not-a-secret" not in json.dumps(recording.to_dict())


async def test_input_recording_is_switched_per_namespace_by_admins(harness, sandbox):
    pod = first_pod(sandbox)
    refused = await run(harness, "/terminal input set record:false namespace:media")
    assert not refused.ok  # alice is no ClusterCord admin
    done = await run(harness, "/terminal input set record:false namespace:media", user=ADMIN)
    assert done.ok and "not recorded" in done.text, done.text
    result = await run(harness, f'/terminal exec pod:{pod} namespace:media command:"echo hi"')
    recording = recordings(harness).get(result.reply.data["session"])
    codes = [code for _, code, _ in recording.events]
    assert "i" not in codes and "o" in codes
    assert recording.commands == ["echo hi"]  # the command list (jump, search) stays
    shown = await run(harness, "/terminal input show")
    (table,) = shown.reply.tables
    assert shown.ok and ["*", "media", "no"] in table.rows
