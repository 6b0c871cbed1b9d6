"""A Source RCON client, as Minecraft servers speak it (https://wiki.vg/RCON).

A packet is ``<int32 length><int32 request id><int32 type><payload>\\0\\0``, little-endian;
type 3 logs in, 2 runs a command, 0 is a response. A failed login answers request id -1.
"""

from __future__ import annotations

import asyncio
import itertools
import struct

LOGIN, COMMAND, RESPONSE = 3, 2, 0
MAX_PACKET = 4110  # the server's largest response packet


class RconError(Exception):
    """The server refused the password or answered something that is not RCON."""


class Rcon:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, host: str, port: int, password: str, timeout: float = 5.0) -> Rcon:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        client = cls(reader, writer)
        try:
            request = await client._send(LOGIN, password)
            answered, _ = await asyncio.wait_for(client._read(), timeout)
        except BaseException:
            client.close()
            raise
        if answered != request:
            client.close()
            raise RconError("RCON refused the password")
        return client

    async def command(self, text: str, timeout: float = 10.0) -> str:
        request = await self._send(COMMAND, text)
        answered, body = await asyncio.wait_for(self._read(), timeout)
        if answered != request:
            raise RconError(f"RCON answered request {answered}, not {request}")
        return body

    async def _send(self, kind: int, text: str) -> int:
        request = next(self._ids)
        payload = text.encode("utf-8") + b"\0\0"
        self.writer.write(struct.pack("<iii", len(payload) + 8, request, kind) + payload)
        await self.writer.drain()
        return request

    async def _read(self) -> tuple[int, str]:
        (length,) = struct.unpack("<i", await self.reader.readexactly(4))
        if not 10 <= length <= MAX_PACKET:
            raise RconError(f"not an RCON packet (length {length})")
        data = await self.reader.readexactly(length)
        request, _kind = struct.unpack("<ii", data[:8])
        return request, data[8:-2].decode("utf-8", "replace")

    def close(self) -> None:
        self.writer.close()
