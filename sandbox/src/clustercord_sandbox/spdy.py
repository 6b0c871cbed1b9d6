"""Just enough SPDY/3.1 to serve `kubectl port-forward` (the kubelet's side of it).

kubectl 1.32 forwards ports over SPDY streams, tunneled in a WebSocket (subprotocol
`SPDY/3.1+portforward.k8s.io`: the WebSocket's binary messages carry the SPDY byte stream).
Per local connection kubectl opens two streams (SYN_STREAM, headers `streamtype: error|data`,
`port`, `requestid`), waits for each one's SYN_REPLY, then copies bytes on the data stream;
a non-empty error stream is the failure it prints.

What is here, from the SPDY draft 3 framing: control frames (SYN_STREAM, SYN_REPLY,
RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE) and data frames with FIN; header blocks
compressed with zlib and SPDY's preset dictionary (one compression context per direction, a
sync flush per block). Flow control is not enforced (kubectl's spdystream does not either).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
FLAG_FIN = 0x01
MAX_DATA = 0xFFFFFF  # a frame's length is 24 bits
MAX_HEADER_BLOCK = 1 << 20  # decompressed, per frame: more is a hostile client

# The header compression dictionary of SPDY draft 3 (section 2.6.10.1): these names, each
# with its 4-byte length, then this text. 1423 bytes; zlib names it by its Adler-32.
_DICTIONARY_NAMES = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)  # fmt: skip
_DICTIONARY_TEXT = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, "
    "Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(name)) + name.encode() for name in _DICTIONARY_NAMES)
    + _DICTIONARY_TEXT.encode()
)
DICTIONARY_ID = 0xE3C6A7C2  # its Adler-32, what a SPDY zlib stream's header names


class SpdyError(ValueError):
    """A malformed or hostile frame: the session ends."""


@dataclass(frozen=True)
class Frame:
    """A control frame (`kind` > 0, with `stream`, `headers` or `value` as it carries) or a
    data frame (`kind` 0, with `data`)."""

    kind: int
    flags: int
    stream: int = 0
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    value: int = 0  # RST_STREAM/GOAWAY status, PING id, WINDOW_UPDATE delta

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key == name), "")


class Framer:
    """Parses frames from a byte stream fed in pieces, and writes frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)

    # -- reading -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frame = self._frame(head, body)
            if frame is not None:
                frames.append(frame)
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame | None:
        flags = head[4]
        if not head[0] & 0x80:  # a data frame
            return Frame(0, flags, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, data=body)
        version, kind = struct.unpack(">HH", head[:4])
        if version & 0x7FFF != VERSION:
            raise SpdyError(f"unsupported SPDY version {version & 0x7FFF}")
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            start = 10 if kind == SYN_STREAM else 4
            if len(body) < start:
                raise SpdyError("truncated SPDY frame")
            stream = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
            return Frame(kind, flags, stream, headers=self._headers(body[start:]))
        if kind in (RST_STREAM, GOAWAY, WINDOW_UPDATE):
            if len(body) < 8:
                raise SpdyError("truncated SPDY frame")
            stream, value = struct.unpack(">II", body[:8])
            return Frame(kind, flags, stream & 0x7FFFFFFF, value=value)
        if kind == PING:
            if len(body) < 4:
                raise SpdyError("truncated SPDY frame")
            return Frame(kind, flags, value=int.from_bytes(body[:4], "big"))
        return None  # SETTINGS and others: nothing to act on

    def _headers(self, block: bytes) -> tuple[tuple[str, str], ...]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"SPDY header block: {exc}") from exc
        if self._inflate.unconsumed_tail:
            raise SpdyError("SPDY header block too large")
        try:
            (count,) = struct.unpack_from(">I", raw)
            pos, pairs = 4, []
            for _ in range(count):
                (size,) = struct.unpack_from(">I", raw, pos)
                name = raw[pos + 4 : pos + 4 + size].decode().lower()
                pos += 4 + size
                (size,) = struct.unpack_from(">I", raw, pos)
                value = raw[pos + 4 : pos + 4 + size].decode()
                pos += 4 + size
                pairs.append((name, value))
        except (struct.error, UnicodeDecodeError) as exc:
            raise SpdyError(f"malformed SPDY header block: {exc}") from exc
        return tuple(pairs)

    # -- writing -----------------------------------------------------------------------------
    def _control(self, kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def syn_reply(self, stream: int, headers: dict[str, str] | None = None) -> bytes:
        pairs = list((headers or {}).items())
        block = struct.pack(">I", len(pairs)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
            for k, v in pairs
        )
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, 0, struct.pack(">I", stream) + compressed)

    def rst_stream(self, stream: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def data(self, stream: int, data: bytes, fin: bool = False) -> bytes:
        out = b""
        while True:
            chunk, data = data[:MAX_DATA], data[MAX_DATA:]
            last = not data
            flags = FLAG_FIN if fin and last else 0
            out += struct.pack(">II", stream & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk
            if last:
                return out
