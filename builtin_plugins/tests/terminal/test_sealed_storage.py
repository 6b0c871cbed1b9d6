"""Recordings sealed at rest with the plugin's sealer: compressed, then sealed; rows stored
before sealing, and gzip blobs stored before Zstandard, still read; searching and playback
see through the seal; the search index stays small and follows every change."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from clustercord_builtins.terminal import search_index
from clustercord_builtins.terminal.recording import Recording
from clustercord_builtins.terminal.storage import Recordings, pack, unpack
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


def gzip_pack(rec: Recording) -> bytes:
    """A recording packed as the plugin packed it before Zstandard (gzip -6 of the JSON)."""
    payload = {"events": [list(e) for e in rec.events], "commands": rec.commands}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8", "backslashreplace"), compresslevel=6, mtime=0)


def stored_as(store, id: str, blob: bytes) -> None:
    store.table("recordings").update(id, {"data": blob, "size": len(blob)})


def test_a_row_stored_before_sealing_is_still_read(store, sealed):
    rec = recording("old00001", steps=[("ls", "a  b\n")])
    sealed.save(rec)
    stored_as(store, "old00001", pack(rec))  # a bare Zstandard frame, as a store without a sealer
    assert sealed.get("old00001") == rec and Recordings(store).get("old00001") == rec
    stored_as(store, "old00001", gzip_pack(rec))  # a bare gzip stream, as before sealing
    assert sealed.get("old00001") == rec and Recordings(store).get("old00001") == rec
    sealed.save(rec)  # saved again: sealed from now on
    blob = store.query("SELECT data FROM recordings WHERE id = 'old00001'")[0]["data"]
    assert not blob.startswith(b"\x1f\x8b") and sealed.get("old00001") == rec


def test_gzip_recordings_stored_before_zstandard_still_play_search_and_export(
    store, sealed, plugin_stores
):
    from clustercord_builtins.terminal.formats import to_asciicast_v2

    rec = recording("gzip0001", steps=[("cat notes", "the launch code is 0000\n")])
    sealed.save(rec)
    cast = to_asciicast_v2(sealed.get("gzip0001"))
    # The row as the old code stored it: gzip, then sealed.
    stored_as(store, "gzip0001", plugin_stores.sealer("terminal").seal(gzip_pack(rec)))
    back = sealed.get("gzip0001")
    assert back == rec and to_asciicast_v2(back) == cast  # downloads are unchanged
    assert [m.text for m in sealed.search("launch")] == ["the launch code is 0000"]
    sealed.save(back)  # saved again: Zstandard from now on, the same recording
    opened = plugin_stores.sealer("terminal").open(
        store.query("SELECT data FROM recordings WHERE id = 'gzip0001'")[0]["data"]
    )
    assert opened[:4] == b"\x28\xb5\x2f\xfd" and sealed.get("gzip0001") == rec


def test_a_store_without_the_sealer_reads_bare_rows_but_cannot_search_a_sealed_index(store, sealed):
    sealed.save(recording("bare0001", steps=[("ls", "a-file\n")]))
    unsealed = Recordings(store)
    with pytest.raises(CommandError, match="key is sealed"):
        unsealed.search("a-file")  # not a search under a wrong key, which finds nothing
    assert [m.session for m in sealed.search("a-file")] == ["bare0001"]


def test_a_damaged_blob_is_refused_with_a_clear_error(store):
    Recordings(store).save(recording("bad00001", steps=[("ls", "a\n")]))
    stored_as(store, "bad00001", b"\x28\xb5\x2f\xfd" + b"\x00" * 20)  # a broken frame
    with pytest.raises(zstandard.ZstdError):
        Recordings(store).get("bad00001")


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
    tokens = [r["tokens"] for r in store.query("SELECT tokens FROM search_tokens")]
    assert len(tokens) == 2 and all(len(search_index.unpack_tokens(t)) > 10 for t in tokens)

    sealed.save(recording("idx00001", steps=[("cat other", "nothing here\n")]))  # replaced
    assert [m.session for m in sealed.search("launch")] == ["idx00002"]
    assert sealed.expire(NOW + 10, default_days=1) == 1  # idx00002 started in 1970
    assert sealed.search("launch") == [] and sealed.search("nothing") != []
    assert sealed.delete("idx00001") and sealed.search("nothing") == []
    assert store.query("SELECT count(*) AS n FROM search_tokens")[0]["n"] == 0
    # Nothing is left in the index itself: no candidate for any of their trigrams.
    db, name = store.table("search").db, store.table("search").name
    for word in ("launch", "nothing", "other", "cat"):
        sql = f"SELECT rowid FROM [{name}] WHERE [{name}] MATCH ?"
        assert db.execute(sql, [sealed._index.match(word)]).fetchall() == [], word
    db.execute(f"INSERT INTO [{name}]([{name}]) VALUES ('integrity-check')")


def test_recordings_stored_before_the_index_are_indexed_once(store, plugin_stores):
    sealer = plugin_stores.sealer("terminal")
    Recordings(store, sealer=sealer).save(recording("pre00001", steps=[("ls", "old-file\n")]))
    index = store.table("search")
    index.db.execute(f"DROP TABLE [{index.name}]")  # as a database from before the index
    reopened = Recordings(store, sealer=sealer)
    assert [m.text for m in reopened.search("old-file")] == ["old-file"]


def test_an_index_of_the_earlier_layout_is_rebuilt_small(store, plugin_stores):
    """Before, the index stored its tokens' text too (a ``_content`` table larger than the
    recording): opened by this version, it is replaced once and every recording found."""
    sealer = plugin_stores.sealer("terminal")
    for n in range(3):
        Recordings(store, sealer=sealer).save(recording(f"lay0000{n}", steps=[("ls", f"f-{n}\n")]))
    index = store.table("search")
    db = index.db
    db.execute(f"DROP TABLE [{index.name}]")
    db.execute(f"DROP TABLE [{store.table('search_tokens').name}]")
    db.execute(  # the earlier layout, with a row of hex tokens as it stored them
        f"CREATE VIRTUAL TABLE [{index.name}] USING fts5("
        "session UNINDEXED, grams, detail=none, tokenize='ascii')"
    )
    db.execute(f"INSERT INTO [{index.name}] (session, grams) VALUES ('lay00000', 'ab12cd34')")
    reopened = Recordings(store, sealer=sealer)
    assert f"{index.name}_content" not in db.table_names()
    assert [m.session for m in reopened.search("f-1")] == ["lay00001"]
    assert {m.session for m in reopened.search("f-")} == {"lay00000", "lay00001", "lay00002"}
    assert store.query("SELECT count(*) AS n FROM search_tokens")[0]["n"] == 3


def test_digits_fold_in_the_index_but_search_stays_exact(store, sealed):
    """``a7f`` and ``a3f`` are one token (hex ids make most of a log's trigrams), so a
    session with the other digits is a candidate, but its lines are read: only exact
    matches come back. A number alone keeps its digits."""
    sealed.save(recording("dig00001", steps=[("curl", "request_id=a7f3 status=404\n")]))
    sealed.save(recording("dig00002", steps=[("curl", "request_id=a3f9 status=500\n")]))
    assert sealed._index.grams("a7f") == sealed._index.grams("a3f")
    assert sealed._index.grams("404") != sealed._index.grams("500")
    assert [m.session for m in sealed.search("id=a7f3")] == ["dig00001"]
    assert [m.session for m in sealed.search("id=a3f9")] == ["dig00002"]
    assert [m.text for m in sealed.search("status=500")] == ["request_id=a3f9 status=500"]
    assert sealed.search("id=a7f4") == []


@pytest.mark.parametrize("count", [0, 1, 2, 500, 5000])
def test_the_tokens_kept_for_removal_come_back_exactly(count):
    import random

    tokens = sorted(random.Random(count).sample(range(2**search_index.HASH_BITS), count))
    blob = search_index.pack_tokens(tokens)
    assert search_index.unpack_tokens(blob) == tokens
    if count == 5000:  # about two bytes each, not the nine of a hex word and a space
        assert len(blob) < 2.5 * count


# Any character, and lone surrogates more often than chance would give them.
CHARACTERS = st.one_of(st.characters(), st.characters(categories=["Cs"]))


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=CHARACTERS), max_size=8),
    commands=st.lists(st.text(alphabet=CHARACTERS), max_size=3),
)
def test_any_events_come_back_exactly_as_packed(texts, commands):
    """Colour codes, line ends, astral characters, lone surrogates (a chat's JSON can carry
    them), empty events: what is stored is what comes back."""
    rec = recording("pack0001")
    rec.events = [(i * 0.5, "o" if i % 2 else "i", text) for i, text in enumerate(texts)]
    rec.commands = commands
    payload = unpack(pack(rec))
    assert [tuple(e) for e in payload["events"]] == rec.events
    assert payload["commands"] == commands


def test_a_payload_cut_short_is_refused(plugin_stores):
    rec = recording("cut00001", steps=[("ls", "a-file\n")])
    data = zstandard.ZstdDecompressor().decompress(pack(rec))
    cut = zstandard.ZstdCompressor().compress(data[:-3])
    with pytest.raises(CommandError, match="cut short"):
        unpack(cut)
