"""Recordings sealed at rest with the plugin's sealer: compressed, then sealed; rows stored
before sealing still read; searching and playback see through the seal."""

from __future__ import annotations

import gzip

import pytest

from clustercord_builtins.terminal.storage import Recordings, pack
from clustercord_sdk.errors import CommandError

from .test_storage import recording


@pytest.fixture
def sealed(store, plugin_stores) -> Recordings:
    return Recordings(store, sealer=plugin_stores.sealer("terminal"))


def test_a_sealed_recording_comes_back_whole_and_is_no_gzip_stream(store, sealed, plugin_stores):
    rec = recording("seal0001", steps=[("cat notes", "the launch code is 0000\n")])
    summary = sealed.save(rec)
    assert sealed.get("seal0001") == rec
    blob = store.query("SELECT data FROM recordings WHERE id = 'seal0001'")[0]["data"]
    assert summary.size == len(blob) and not blob.startswith(b"\x1f\x8b")
    assert b"launch code" not in blob and pack(rec) not in blob
    assert [m.text for m in sealed.search("launch")] == ["the launch code is 0000"]
    # Another plugin's sealer, on the same data key, cannot open it.
    with pytest.raises(CommandError, match="sealed by another plugin"):
        Recordings(store, sealer=plugin_stores.sealer("cluster")).get("seal0001")
    # Nor can a store without a sealer.
    with pytest.raises(CommandError, match="sealed"):
        Recordings(store).get("seal0001")


def test_a_row_stored_before_sealing_is_still_read(store, sealed):
    rec = recording("old00001", steps=[("ls", "a  b\n")])
    Recordings(store).save(rec)  # no sealer: a bare gzip stream, as before
    blob = store.query("SELECT data FROM recordings WHERE id = 'old00001'")[0]["data"]
    assert gzip.decompress(blob)
    assert sealed.get("old00001") == rec
    sealed.save(rec)  # saved again: sealed from now on
    blob = store.query("SELECT data FROM recordings WHERE id = 'old00001'")[0]["data"]
    assert not blob.startswith(b"\x1f\x8b") and sealed.get("old00001") == rec


def test_the_kernels_store_carries_the_sealer(store, plugin_stores):
    carrying = plugin_stores.store("terminal", sealed=True)
    Recordings(carrying).save(recording("carr0001", steps=[("id", "uid=0\n")]))
    blob = store.query("SELECT data FROM recordings WHERE id = 'carr0001'")[0]["data"]
    assert not blob.startswith(b"\x1f\x8b")
    assert Recordings(carrying).get("carr0001").commands == ["id"]
