"""The SPDY/3.1 framing kubectl's port-forward speaks (`spdy.py`), against frames written as
kubectl's framer writes them (zlib with SPDY's dictionary, a sync flush per header block), and
against hostile input."""

from __future__ import annotations

import struct
import zlib

import pytest

from clustercord_sandbox import spdy


def _block(pairs: list[tuple[str, str]]) -> bytes:
    out = struct.pack(">I", len(pairs))
    for name, value in pairs:
        out += struct.pack(">I", len(name)) + name.encode()
        out += struct.pack(">I", len(value)) + value.encode()
    return out


class Client:
    """kubectl's side: its own compression context, with the dictionary."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, stream: int, pairs: list[tuple[str, str]], raw: bytes = b"") -> bytes:
        block = raw or self.deflate.compress(_block(pairs)) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">IIBB", stream, 0, 0, 0) + block
        return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(body)) + body


def test_the_dictionary_is_spdy3s():
    # A SPDY/3 zlib stream names its dictionary by Adler-32: kubectl's must match ours.
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == spdy.DICTIONARY_ID
    header = Client().syn_stream(1, [("port", "80")])[18:24]
    assert header[2:] == spdy.DICTIONARY_ID.to_bytes(4, "big")


def test_kubectls_streams_are_read_across_pieces():
    client, framer = Client(), spdy.Framer()
    wire = client.syn_stream(1, [("streamtype", "error"), ("port", "8080"), ("requestid", "0")])
    wire += client.syn_stream(3, [("streamType", "data"), ("port", "8080"), ("requestID", "0")])
    wire += struct.pack(">II", 3, 5) + b"hello"  # data on stream 3
    wire += struct.pack(">II", 3, spdy.FLAG_FIN << 24)  # and its end
    frames = [frame for i in range(len(wire)) for frame in framer.feed(wire[i : i + 1])]
    assert [f.kind for f in frames] == [spdy.SYN_STREAM, spdy.SYN_STREAM, 0, 0]
    assert frames[0].header("streamtype") == "error" and frames[0].stream == 1
    assert frames[1].header("streamtype") == "data" and frames[1].header("requestid") == "0"
    assert frames[2].data == b"hello" and not frames[2].fin
    assert frames[3].fin and frames[3].stream == 3


def test_replies_and_pings_are_what_kubectl_reads():
    client, framer = Client(), spdy.Framer()
    reply = framer.syn_reply(5)
    version, kind, length = struct.unpack(">HHI", reply[:8])
    assert (version, kind, length) == (0x8003, spdy.SYN_REPLY, len(reply) - 8)
    assert struct.unpack(">I", reply[8:12])[0] == 5
    assert client.inflate.decompress(reply[12:]) == struct.pack(">I", 0)  # no headers
    assert framer.ping(7) == struct.pack(">HHII", 0x8003, spdy.PING, 4, 7)
    fin = framer.data(3, b"", fin=True)
    assert fin == struct.pack(">II", 3, spdy.FLAG_FIN << 24)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1", "unsupported SPDY version 2"),
        (Client().syn_stream(1, [], raw=b"not zlib at all"), "SPDY header block"),
        (struct.pack(">HHI", 0x8003, spdy.RST_STREAM, 2) + b"\0\0", "truncated SPDY frame"),
    ],
)
def test_hostile_frames_end_the_session(wire, message):
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.Framer().feed(wire)


def test_a_header_bomb_is_refused():
    """A small block that inflates past 1 MiB is refused, not inflated."""
    client = Client()
    bomb = client.syn_stream(1, [("x", "a" * (4 << 20))])
    assert len(bomb) < 20_000
    with pytest.raises(spdy.SpdyError, match="too large"):
        spdy.Framer().feed(bomb)


def test_a_header_count_beyond_the_block_is_malformed():
    client = Client()
    raw = client.deflate.compress(struct.pack(">I", 1000)) + client.deflate.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.SpdyError, match="malformed"):
        spdy.Framer().feed(client.syn_stream(1, [], raw=raw))
