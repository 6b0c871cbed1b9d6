"""The fake Discord's gateway: just enough of it for a ``GatewayBot`` to start.

HELLO, IDENTIFY (checked: the bot token, intents), READY and heartbeats, with zlib or
zstd transport compression; no guilds or presences, and no resumed sessions.
Interactions then arrive as ``INTERACTION_CREATE`` events, which :mod:`.interactions`
dispatches through the :class:`~.GatewaySession` of the bot. A test changes a member with
:meth:`Gateway.update_member` / :meth:`Gateway.remove_member`: the fake's member (what the
REST and OAuth routes answer) changes, and ``GUILD_MEMBER_UPDATE`` / ``GUILD_MEMBER_REMOVE``
go, in Discord's documented shapes, to the bots that identified with the privileged
``GUILD_MEMBERS`` intent (as Discord sends them to no one else).

The privileged intents switched on in the Developer Portal are :attr:`Gateway.portal_intents`
(all of them unless a test switches one off); an IDENTIFY asking for another one is closed
with 4014 "Disallowed intent(s)." as Discord does, and recorded in
:attr:`~.DiscordState.refused_identifies` (not a violation: Discord's answer to a setting).
"""

from __future__ import annotations

import importlib
import json
import secrets
import zlib
from collections.abc import Callable

import aiohttp
from aiohttp import web

from clustercord_testing.fake_discord.state import (
    API_PREFIX,
    JSON,
    DiscordState,
    GatewaySession,
)

GUILD_MEMBERS = 1 << 1
"""The privileged intent without which Discord sends no member events."""
GUILD_PRESENCES = 1 << 8
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
"""The intents an application must have switched on in the Developer Portal."""
DISALLOWED_INTENT = 4014


def _stream_compressor(kind: str) -> Callable[[bytes], bytes] | None:
    """Discord's transport compression: one stream per connection, flushed per message."""
    if kind == "zlib-stream":
        deflate = zlib.compressobj()
        return lambda data: deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH)
    if kind == "zstd-stream":  # what hikari asks for when zstd is importable
        for module in ("compression.zstd", "backports.zstd"):
            try:
                zstd = importlib.import_module(module)
            except ImportError:
                continue
            squeeze = zstd.ZstdCompressor()
            flush_block = zstd.ZstdCompressor.FLUSH_BLOCK
            return lambda data: bytes(squeeze.compress(data, mode=flush_block))
    return None


class Gateway(DiscordState):
    """The gateway routes: ``GET /gateway(/bot)`` and the websocket at ``/gateway``."""

    portal_intents: int = PRIVILEGED_INTENTS
    """The privileged intents switched on in the Developer Portal: a test sets, say,
    ``PRIVILEGED_INTENTS & ~GUILD_MEMBERS`` for an application without Server Members."""

    def _add_gateway_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", f"{API_PREFIX}/gateway", self._get_gateway)
        add("GET", f"{API_PREFIX}/gateway/bot", self._get_gateway)
        add("GET", "/gateway", self._gateway)

    # -- member events ---------------------------------------------------------------------
    async def update_member(
        self, user_id: str, roles: list[str], guild_id: str | None = None
    ) -> int:
        """``user_id`` now has ``roles`` (role ids): the member changes here and
        ``GUILD_MEMBER_UPDATE`` goes out. Returns how many bot connections it reached."""
        guild = guild_id or self.guild_id
        self.oauth.set_member(user_id, roles, guild)
        member = self.oauth.members[(guild, user_id)]
        # Discord's GUILD_MEMBER_UPDATE: the guild, the roles now, the user, and the
        # member's other fields (nullable ones sent as null, as Discord does).
        payload = {
            "guild_id": guild,
            "roles": list(roles),
            "user": member["user"],
            "nick": member["nick"],
            "avatar": None,
            "banner": None,
            "joined_at": member["joined_at"],
            "premium_since": None,
            "deaf": member["deaf"],
            "mute": member["mute"],
            "pending": False,
            "communication_disabled_until": None,
            "flags": member["flags"],
            "avatar_decoration_data": None,
        }
        return await self._member_event("GUILD_MEMBER_UPDATE", payload)

    async def remove_member(self, user_id: str, guild_id: str | None = None) -> int:
        """``user_id`` left the server (or was kicked): ``GUILD_MEMBER_REMOVE`` goes out."""
        guild = guild_id or self.guild_id
        self.oauth.remove_member(user_id, guild)
        user = self.user(user_id)
        return await self._member_event("GUILD_MEMBER_REMOVE", {"guild_id": guild, "user": user})

    async def _member_event(self, name: str, payload: JSON) -> int:
        sent = 0
        for session in list(self.gateway_sessions):
            if int(session.identify.get("intents") or 0) & GUILD_MEMBERS:
                await session.dispatch(name, payload)
                sent += 1
        return sent

    async def invalidate_sessions(self) -> int:
        """Discord ends the bots' sessions (opcode 9, not resumable): each bot identifies
        again, checked against :attr:`portal_intents` as they are now. Returns how many."""
        sessions = list(self.gateway_sessions)
        for session in sessions:
            await session.send({"op": 9, "s": None, "t": None, "d": False})
        return len(sessions)

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )  # fmt: skip

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """Enough of Discord's gateway for a bot to start: HELLO, IDENTIFY, READY,
        heartbeats; interactions then arrive as ``INTERACTION_CREATE``."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        compression = request.query.get("compress")
        compress = _stream_compressor(compression) if compression else None
        if compression and compress is None:
            self._violate(f"gateway: compression {compression!r} is not available here")
            await ws.close(code=4000, message=b"Unsupported compression")
            return ws
        session = GatewaySession(ws, compress)
        await session.send({"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": 41_250}})
        try:
            async for message in ws:
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue  # hikari sends its JSON in binary frames
                payload = json.loads(message.data)
                if payload.get("op") == 1:  # heartbeat
                    await session.send({"op": 11, "s": None, "t": None, "d": None})
                elif payload.get("op") == 2:  # identify
                    if not await self._identify(session, payload.get("d") or {}):
                        break
                elif payload.get("op") == 6:  # resume: no sessions survive here
                    await session.send({"op": 9, "s": None, "t": None, "d": False})
        finally:
            if session in self.gateway_sessions:
                self.gateway_sessions.remove(session)
        return ws

    async def _identify(self, session: GatewaySession, identify: JSON) -> bool:
        if identify.get("token") != self.bot_token:
            self._violate("gateway: IDENTIFY with a wrong bot token")
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return False
        if "intents" not in identify:
            self._violate("gateway: IDENTIFY without intents")
            await session.ws.close(code=4013, message=b"Invalid intent(s).")
            return False
        intents = int(identify["intents"] or 0)
        if intents & PRIVILEGED_INTENTS & ~self.portal_intents:
            self.refused_identifies.append(intents)
            await session.ws.close(code=DISALLOWED_INTENT, message=b"Disallowed intent(s).")
            return False
        session.identify = identify
        self.gateway_sessions.append(session)
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**self.bot_user, "flags": 0, "mfa_enabled": False, "verified": True},
                # Real Discord lists the guilds as unavailable and sends GUILD_CREATE for
                # each; the fake sends none, so nothing waits for them.
                "guilds": [],
                "session_id": secrets.token_hex(16),
                "resume_gateway_url": self.gateway_url,
                "shard": identify.get("shard", [0, 1]),
                "application": {"id": self.application_id, "flags": 1 << 23},
                "private_channels": [],
                "presences": [],
            },
        )
        await self._notify()
        return True
