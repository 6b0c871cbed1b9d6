"""Recordings sealed at rest with the plugin's sealer: compressed, then sealed; rows stored
before sealing still read; searching and playback see through the seal."""

from __future__ import annotations

import gzip

import pytest

from clustercord_builtins.terminal.storage import Recordings, pack
from clustercord_sdk.errors import CommandError

from .conftest import NOW
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


def test_the_search_index_follows_saves_deletes_and_expiry_and_holds_no_text(
    store, sealed, plugin_stores
):
    sealed.save(recording("idx00001", steps=[("cat notes", "the launch code is 0000\n")]))
    sealed.save(recording("idx00002", started=0.0, steps=[("ls", "launchpad.txt\n")]))
    assert {m.session for m in sealed.search("launch")} == {"idx00001", "idx00002"}
    assert sealed.search("launch code") and not sealed.search("launch codes")
    # Neither the words nor the index key are in the database file in clear.
    dump = "\n".join(store.table("recordings").db.conn.iterdump())
    assert "launch" not in dump and "notes" not in dump
    assert len(store.query("SELECT grams FROM search")[0]["grams"].split()) > 10

    sealed.save(recording("idx00001", steps=[("cat other", "nothing here\n")]))  # replaced
    assert [m.session for m in sealed.search("launch")] == ["idx00002"]
    assert sealed.expire(NOW + 10, default_days=1) == 1  # idx00002 started in 1970
    assert sealed.search("launch") == [] and sealed.search("nothing") != []
    assert sealed.delete("idx00001") and sealed.search("nothing") == []
    assert store.query("SELECT count(*) AS n FROM search")[0]["n"] == 0


def test_recordings_stored_before_the_index_are_indexed_once(store, plugin_stores):
    sealer = plugin_stores.sealer("terminal")
    Recordings(store, sealer=sealer).save(recording("pre00001", steps=[("ls", "old-file\n")]))
    index = store.table("search")
    index.db.execute(f"DROP TABLE [{index.name}]")  # as a database from before the index
    reopened = Recordings(store, sealer=sealer)
    assert [m.text for m in reopened.search("old-file")] == ["old-file"]
