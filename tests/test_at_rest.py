"""At rest, end to end: `/terminal exec` in a sandbox pod is stored sealed with the
terminal plugin's key (derived from the data key), played back whole, unreadable to another
plugin's sealer; with the data key gone the kernel refuses to start, naming the recordings."""

from __future__ import annotations

import gzip
import json
import sqlite3
import stat

import pytest
import zstandard

from clustercord.secretbox import DataKeyError
from clustercord_builtins.terminal.storage import Recordings, pack
from clustercord_sdk.errors import CommandError

ALICE = "1001"
MARKER = "at-rest-output-7Q3vX9"
"""What the command prints; the command line itself (kept in the clear, like the audit
log's options) spells it apart, so only the output can contain it."""


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("CLUSTERCORD_SECRET_KEY", raising=False)


@pytest.fixture
def sandbox(sandbox_cluster):
    return sandbox_cluster("homelab")


@pytest.fixture
async def harness(clustercord_harness, sandbox):
    clustercord_harness.add_builtins(["terminal"])
    await clustercord_harness.restart(identity={"users": {ALICE: {"user": "admin"}}})
    return clustercord_harness


def first_pod(sandbox, namespace="media"):
    return sandbox.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()[0][4:]


def raw_bytes(harness) -> bytes:
    """The database as a thief with a copy of the files would read it (WAL included)."""
    path = harness.settings.database_path
    return b"".join(p.read_bytes() for p in (path, *path.parent.glob(f"{path.name}-*")))


async def exec_marker(harness, sandbox) -> str:
    pod = first_pod(sandbox)
    command = "command:\"printf '%s-%s\\\\n' at-rest-output 7Q3vX9\""
    result = await harness.run(
        f"/terminal exec pod:{pod} namespace:media {command}", user=ALICE, frontend="discord"
    )
    assert result.ok, result.text
    assert MARKER in result.text
    return str(result.reply.data["session"])


async def test_a_recording_is_sealed_at_rest_and_plays_back(harness, sandbox):
    session = await exec_marker(harness, sandbox)
    context = harness.plugin("terminal").context
    recording = Recordings(context.store).get(session)
    assert recording is not None
    # Neither the output nor its gzip stream is in the files.
    raw = raw_bytes(harness)
    assert MARKER.encode() not in raw
    assert pack(recording) not in raw
    (blob,) = sqlite3.connect(harness.settings.database_path).execute(
        "SELECT data FROM terminal__recordings WHERE id = ?", (session,)
    )
    blob = blob[0]
    assert not blob.startswith(b"\x1f\x8b")
    opened = context.sealer.open(blob)
    assert opened[:4] == b"\x28\xb5\x2f\xfd"  # inside the seal: a Zstandard frame
    assert MARKER.encode() in zstandard.ZstdDecompressor().decompressobj().decompress(opened)
    # Another plugin's sealer (same data key) cannot open it.
    other = harness.kernel.data_key.sealer("cluster")
    with pytest.raises(CommandError, match="sealed by another plugin"):
        other.open(blob)
    # Playback still shows it, after a restart too.
    await harness.restart()
    replay = await harness.run(
        f"/terminal playback session:{session}", user=ALICE, frontend="discord"
    )
    assert replay.ok, replay.text
    assert any(MARKER in line for line in replay.reply.data["lines"])
    mode = stat.S_IMODE(harness.settings.database_path.stat().st_mode)
    assert mode == 0o600


async def test_an_unsealed_recording_of_before_is_still_read(harness, sandbox):
    session = await exec_marker(harness, sandbox)
    from clustercord.storage import PluginStore

    store = harness.plugin("terminal").context.store
    recording = Recordings(store).get(session)
    assert recording is not None
    # The row as it was stored before sealing and Zstandard: a bare gzip stream of the JSON.
    payload = {"events": [list(e) for e in recording.events], "commands": recording.commands}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    old = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
    PluginStore(harness.kernel.database, "terminal").table("recordings").update(
        session, {"data": old, "size": len(old)}
    )
    (blob,) = store.query("SELECT data FROM recordings WHERE id = ?", [session])
    assert blob["data"][:2] == b"\x1f\x8b"
    await harness.restart()
    replay = await harness.run(
        f"/terminal playback session:{session}", user=ALICE, frontend="discord"
    )
    assert replay.ok and any(MARKER in line for line in replay.reply.data["lines"])


async def test_without_the_data_key_the_recordings_are_named_and_nothing_is_replaced(
    harness, sandbox
):
    await exec_marker(harness, sandbox)
    harness.close()
    key = harness.settings.data_dir / "secret.key"
    key.unlink()
    with pytest.raises(DataKeyError) as raised:
        await harness.start()
    message = str(raised.value)
    assert "1 sealed recordings of plugin terminal" in message, message
    assert "secret.key" in message and "CLUSTERCORD_SECRET_KEY" in message
    assert not key.exists()
