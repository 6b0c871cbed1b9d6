"""A small Minecraft server for the tests: the real Server List Ping protocol (handshake,
status request, ping) and the real RCON protocol, with canned answers. It records every
RCON command it ran."""

from __future__ import annotations

import asyncio
import json
import struct
from contextlib import asynccontextmanager
from typing import Any

PASSWORD = "hunter2"


def varint(value: int) -> bytes:
    out = b""
    value &= 0xFFFFFFFF
    while True:
        byte = value & 0x7F
        value >>= 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


async def read_varint(reader: asyncio.StreamReader) -> int:
    value = 0
    for shift in range(0, 35, 7):
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
    raise ValueError("varint too long")


def packet(packet_id: int, payload: bytes) -> bytes:
    body = varint(packet_id) + payload
    return varint(len(body)) + body


class MinecraftServer:
    def __init__(self, players: list[str], motd: str = "A ClusterCord test world") -> None:
        self.players = players
        self.motd = motd
        self.commands: list[str] = []
        self.status_port = 0
        self.rcon_port = 0

    def status(self) -> dict[str, Any]:
        return {
            "version": {"name": "1.21.1", "protocol": 767},
            "players": {
                "max": 20,
                "online": len(self.players),
                "sample": [
                    {"name": n, "id": f"00000000-0000-0000-0000-00000000000{i}"}
                    for i, n in enumerate(self.players)
                ],
            },
            "description": {"text": self.motd},
        }

    async def serve_status(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                length = await read_varint(reader)
                data = await reader.readexactly(length)
                packet_id = data[0]
                if packet_id == 0x00 and len(data) == 1:  # status request
                    text = json.dumps(self.status()).encode()
                    writer.write(packet(0x00, varint(len(text)) + text))
                elif packet_id == 0x01:  # ping: echo its long
                    writer.write(packet(0x01, data[1:9]))
                # 0x00 with a body is the handshake: nothing to answer
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve_rcon(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authenticated = False
        try:
            while True:
                (length,) = struct.unpack("<i", await reader.readexactly(4))
                data = await reader.readexactly(length)
                request, kind = struct.unpack("<ii", data[:8])
                text = data[8:-2].decode()
                if kind == 3:
                    authenticated = text == PASSWORD
                    answer, body = (request if authenticated else -1), ""
                elif not authenticated:
                    answer, body = -1, ""
                else:
                    self.commands.append(text)
                    answer = request
                    body = "Saved the game" if text.startswith("save-all") else ""
                payload = body.encode() + b"\0\0"
                writer.write(struct.pack("<iii", len(payload) + 8, answer, 0) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def minecraft_server(players: list[str]):
    server = MinecraftServer(players)
    status = await asyncio.start_server(server.serve_status, "127.0.0.1", 0)
    rcon = await asyncio.start_server(server.serve_rcon, "127.0.0.1", 0)
    server.status_port = status.sockets[0].getsockname()[1]
    server.rcon_port = rcon.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        status.close()
        rcon.close()
