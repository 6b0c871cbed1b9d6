"""A fake Discord for tests: the REST API a bot calls, and the users who call the bot.

::

    async def test_ping(fake_discord):
        discord = fake_discord                      # or: async with FakeDiscord() as discord
        ...start your interaction server with rest_url=discord.api_url...
        result = await discord.invoke(endpoint_url, "ping")
        assert result.message["content"] == "pong"

The fake answers the REST endpoints a hikari ``RESTBot`` (or ``GatewayBot``'s REST
client) with lightbulb 3 calls: the application, commands, interaction callbacks,
webhook follow-ups, channel messages, DMs and threads. It records every request
(:attr:`FakeDiscord.requests`) and checks every payload against Discord's limits
(:mod:`clustercord_testing.discord_limits`): a payload Discord would reject is
answered the way Discord answers it *and* recorded in :attr:`FakeDiscord.violations`,
which the ``fake_discord`` pytest fixture turns into a failed test.

It plays Discord's side of interactions too: :meth:`FakeDiscord.invoke`,
:meth:`~FakeDiscord.click`, :meth:`~FakeDiscord.submit_modal` and
:meth:`~FakeDiscord.autocomplete` POST Ed25519-signed interactions to an interaction
server, built from the commands the bot registered, like the Discord client would
(``forged=True`` signs with another key, ``stale=True`` with an old timestamp). Given
``None`` instead of a URL they go as ``INTERACTION_CREATE`` events to a ``GatewayBot``
connected to the fake's minimal gateway (HELLO, IDENTIFY, READY, heartbeats; zlib or
zstd transport compression; no guilds, members or other events).

Discord's rules of the interaction lifecycle are kept: the initial response within
3 seconds, once, through the callback endpoint or in the HTTP reply to Discord's POST
(which counts from the moment the fake has read it); follow-ups and edits of
``@original`` only after it and for 15 minutes (the clock is injectable:
:meth:`FakeDiscord.advance` ages every token); the first follow-up to a deferred
response fills in the "thinking…" message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.multipart import MultipartResponseWrapper
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clustercord_testing import discord_limits as limits

JSON = dict[str, Any]

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
#: Discord drops an interaction that is not acknowledged within this many seconds.
ACK_DEADLINE = 3.0
#: An interaction token works for follow-ups for this long.
TOKEN_LIFETIME = 15 * 60.0
#: How old the timestamp of a ``stale=True`` delivery is.
STALE_AGE = 10 * 60.0
#: Bytes a message's files may total (what interactions announce as the limit).
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

EPHEMERAL, LOADING = 1 << 6, 1 << 7
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
PONG, MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
#: The callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS = {
    PING: {PONG},
    APPLICATION_COMMAND: {MESSAGE_CREATE, DEFERRED_CREATE, MODAL},
    MESSAGE_COMPONENT: {MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE},
}
GUILD_TEXT, DM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12
AUTO_ARCHIVE_MINUTES = {60, 1440, 4320, 10080}
ALL_PERMISSIONS = str((1 << 51) - 1)


@dataclass
class RecordedFile:
    """A file uploaded in a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    """One request the fake received, as the bot sent it, and the status it answered."""

    method: str
    path: str  # below the API root, e.g. "/applications/1/commands"
    json: Any
    files: list[RecordedFile]
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0


@dataclass
class Interaction:
    """An interaction the fake delivered, and what the bot made of it."""

    id: str
    token: str
    type: int
    payload: JSON
    #: The HTTP status the interaction server answered the signed POST with.
    status: int = 0
    #: The body of that answer.
    body: bytes = b""
    #: The initial response: ``{"type": ..., "data": ...}`` (from the callback endpoint
    #: or from the HTTP answer), or None.
    initial: JSON | None = None
    #: Messages created through the interaction webhook after the initial response.
    followups: list[JSON] = field(default_factory=list)
    #: The id of the message that ``@original`` names (the response, or for a
    #: component's update the message the component is on).
    message_id: str | None = None
    channel_id: str = ""
    created: float = 0.0  # on the fake's clock
    sent_at: float = 0.0  # time.perf_counter() when the POST was sent
    initial_at: float | None = None  # time.perf_counter() when the initial response came
    _discord: FakeDiscord | None = field(default=None, repr=False)

    @property
    def message(self) -> JSON | None:
        """The response message as it is now (after every edit), or None."""
        if self.message_id is None or self._discord is None:
            return None
        return self._discord.messages.get(self.message_id)

    @property
    def latency(self) -> float | None:
        """Seconds from sending the interaction to its initial response."""
        return None if self.initial_at is None else self.initial_at - self.sent_at

    @property
    def choices(self) -> list[JSON]:
        """The autocomplete choices the bot answered with."""
        if self.initial is None or self.initial.get("type") != AUTOCOMPLETE_RESULT:
            return []
        return list((self.initial.get("data") or {}).get("choices") or [])

    @property
    def modal(self) -> JSON | None:
        """The modal the bot opened in answer, or None."""
        if self.initial is None or self.initial.get("type") != MODAL:
            return None
        data: JSON = self.initial.get("data") or {}
        return data


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


@dataclass
class GatewaySession:
    """A bot connected to the fake's gateway (a websocket that has identified)."""

    ws: web.WebSocketResponse
    compress: Callable[[bytes], bytes] | None  # None: uncompressed text frames
    identify: JSON = field(default_factory=dict)
    sequence: int = 0

    async def send(self, payload: JSON) -> None:
        data = json.dumps(payload)
        if self.compress is None:
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(self.compress(data.encode()))

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a gateway event (opcode 0) with the next sequence number."""
        self.sequence += 1
        await self.send({"op": 0, "s": self.sequence, "t": event, "d": data})


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    method: str | None
    status: int
    retry_after: float
    scope: str
    remaining: int


class _Rejected(Exception):
    """Answer a request with Discord's error ``body`` (and record a violation)."""

    def __init__(self, status: int, body: JSON, violation: str | None = None) -> None:
        super().__init__(violation or body.get("message", ""))
        self.status, self.body, self.violation = status, body, violation


def _not_found(what: str, code: int) -> _Rejected:
    return _Rejected(404, {"message": f"Unknown {what}", "code": code}, f"unknown {what.lower()}")


def _wrong_channel_type(violation: str) -> _Rejected:
    return _Rejected(
        400, {"message": "Cannot execute action on this channel type", "code": 50024}, violation
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _assign_component_ids(components: Iterable[Any], counter: Iterable[int]) -> None:
    """Discord numbers every component of a message; hikari reads those numbers."""
    iterator = iter(counter)
    for component in components:
        if isinstance(component, dict):
            component.setdefault("id", next(iterator))
            _assign_component_ids(component.get("components") or [], iterator)


def _numbered(components: Any) -> list[Any]:
    """A copy of the ``components`` a bot sent, numbered as Discord stores them."""
    stored: list[Any] = json.loads(json.dumps(components or []))
    _assign_component_ids(stored, itertools.count(1))
    return stored


def _rich(embeds: Any) -> list[JSON]:
    """The ``embeds`` a bot sent, as Discord stores them."""
    return [{"type": "rich", **embed} for embed in embeds or []]


async def _read_multipart(
    reader: aiohttp.MultipartReader | MultipartResponseWrapper,
) -> tuple[Any, list[RecordedFile]]:
    """The ``payload_json`` and the ``files[n]`` of a multipart body, as a bot sends a
    request to the REST API or an interaction's answer in the HTTP reply."""
    payload: Any = None
    files: list[RecordedFile] = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        data = await part.read()
        if part.name == "payload_json":
            payload = json.loads(data)
        else:
            content_type = part.headers.get("Content-Type", "")
            files.append(
                RecordedFile(part.name or "", part.filename or "", content_type, bytes(data))
            )
    return payload, files


def _find_component(components: Iterable[Any], custom_id: str) -> JSON | None:
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == custom_id:
            return component
        found = _find_component(component.get("components") or [], custom_id)
        if found is not None:
            return found
    return None


class FakeDiscord:
    """A fake Discord REST API on 127.0.0.1 that also delivers signed interactions.

    Use it as an async context manager (or :meth:`start` / :meth:`close`). ``clock``
    (seconds since the epoch) decides token ages and signature timestamps; tests age
    tokens with :meth:`advance` instead of sleeping.
    """

    def __init__(
        self,
        *,
        bot_token: str | None = None,
        application_id: str | None = None,
        guild_id: str | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        ack_deadline: float = ACK_DEADLINE,
        token_lifetime: float = TOKEN_LIFETIME,
        delivery_timeout: float = 30.0,
    ) -> None:
        self._clock, self._offset = clock, 0.0
        self._sequence = itertools.count(1)
        self._last_snowflake = 0
        self.host = host
        self.ack_deadline, self.token_lifetime = ack_deadline, token_lifetime
        # Generous on purpose (Discord gives up after 3 s): a loaded test machine is slow,
        # and a late answer is reported as a violation anyway.
        self.delivery_timeout = delivery_timeout
        self.application_id = application_id or self.snowflake()
        self.guild_id = guild_id or self.snowflake()
        # Shaped like Discord's: the bot's id in base64, then two random parts (hikari's
        # GatewayBot reads the id from it).
        self.bot_token = bot_token or ".".join(
            (
                base64.b64encode(self.application_id.encode()).decode().rstrip("="),
                secrets.token_urlsafe(4),
                secrets.token_urlsafe(27),
            )
        )
        self.owner_id = self.snowflake()
        self._key = Ed25519PrivateKey.generate()
        self.public_key_hex = (
            self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        )
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.messages: dict[str, JSON] = {}  # every message by id
        self.channels: dict[str, JSON] = {}
        self.interactions: dict[str, Interaction] = {}  # by token
        self._channel_messages: dict[str, list[str]] = {}
        self._commands: dict[str | None, list[JSON]] = {}
        self._modals: list[tuple[Interaction, JSON]] = []
        self._attachments: dict[str, bytes] = {}
        self._uploads: dict[str, JSON] = {}  # files users attached to attachment options
        self._faults: list[_Fault] = []
        self._users: dict[str, JSON] = {}
        self._bodies: dict[int, tuple[Any, list[RecordedFile]]] = {}  # by id(request)
        #: Bots connected to the gateway, in the order they identified.
        self.gateway_sessions: list[GatewaySession] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.channel_id = self.add_channel(name="general")["id"]

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        """Listen on a free port of ``host``."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.delivery_timeout),
        )
        return self

    async def close(self) -> None:
        for session in list(self.gateway_sessions):
            await session.ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        """The websocket URL that ``GET /gateway/bot`` hands out."""
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def api_url(self) -> str:
        """The REST root to give hikari (``rest_url``) or ``CLUSTERCORD_DISCORD_API_URL``."""
        return f"{self.base_url}{API_PREFIX}"

    # -- clock and ids ------------------------------------------------------------------
    def now(self) -> float:
        """The fake's time, in seconds since the epoch."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward: tokens and deadlines age, nothing sleeps."""
        self._offset += seconds

    def snowflake(self) -> str:
        """A new unique Discord id carrying the current time."""
        stamp = (int(self.now() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_snowflake = max(stamp, self._last_snowflake + 1)
        return str(self._last_snowflake)

    # -- the world: users, channels, messages --------------------------------------------
    def user(self, user_id: str, **fields: Any) -> JSON:
        """The user object of ``user_id`` (created on first use; ``fields`` override)."""
        user = self._users.get(user_id)
        if user is None:
            user = {
                "id": user_id,
                "username": f"user{user_id[-4:]}",
                "discriminator": "0",
                "global_name": None,
                "avatar": None,
                "public_flags": 0,
                "bot": False,
            }
            self._users[user_id] = user
        user.update(fields)
        return user

    @property
    def bot_user(self) -> JSON:
        return self.user(
            self.application_id, username="ClusterCord Test", bot=True, global_name=None
        )

    def add_channel(self, channel_id: str | None = None, *, name: str = "channel") -> JSON:
        """A text channel in the guild (``invoke`` adds unknown channel ids itself)."""
        channel_id = channel_id or self.snowflake()
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = {
                "id": channel_id,
                "type": GUILD_TEXT,
                "guild_id": self.guild_id,
                "name": name,
                "position": len(self.channels),
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
            self.channels[channel_id] = channel
            self._channel_messages[channel_id] = []
        return channel

    def _existing_dm_channel(self, user_id: str) -> JSON | None:
        return next(
            (
                channel
                for channel in self.channels.values()
                if channel["type"] == DM and channel["recipients"][0]["id"] == str(user_id)
            ),
            None,
        )

    def dm_channel(self, user_id: str) -> JSON:
        """The bot's DM channel with ``user_id`` (opened on first use, like Discord)."""
        channel = self._existing_dm_channel(user_id)
        if channel is not None:
            return channel
        channel = {
            "id": self.snowflake(),
            "type": DM,
            "last_message_id": None,
            "recipients": [self.user(user_id)],
            "flags": 0,
        }
        self.channels[channel["id"]] = channel
        self._channel_messages[channel["id"]] = []
        return channel

    def channel_messages(self, channel_id: str) -> list[JSON]:
        """Messages of a channel or thread, oldest first (ephemeral ones included:
        check ``flags & 64``)."""
        return [self.messages[m] for m in self._channel_messages.get(str(channel_id), [])]

    def dm_messages(self, user_id: str) -> list[JSON]:
        """Messages of the bot's DM channel with ``user_id``."""
        channel = self._existing_dm_channel(user_id)
        return [] if channel is None else self.channel_messages(channel["id"])

    def attachment_data(self, attachment: Mapping[str, Any]) -> bytes:
        """The bytes uploaded for an attachment of a stored message."""
        return self._attachments[str(attachment["id"])]

    def commands(self, guild_id: str | None = None) -> list[JSON]:
        """The commands registered globally, or in ``guild_id``."""
        return [dict(command) for command in self._commands.get(guild_id, [])]

    async def post_user_message(self, channel_id: str, content: str, *, user_id: str) -> JSON:
        """A user writes ``content`` in a channel or thread (the bot reads it via REST)."""
        channel = self.channels.get(str(channel_id))
        if channel is None:
            raise LookupError(f"no channel {channel_id} in the fake Discord")
        message = self._store_message(
            channel, {"content": content}, [], author=self.user(user_id), message_type=0
        )
        await self._notify()
        return message

    # -- test controls --------------------------------------------------------------------
    def fail_next(
        self,
        path_regex: str,
        status: int = 429,
        retry_after: float = 0.1,
        *,
        method: str | None = None,
        count: int = 1,
        scope: str = "shared",
    ) -> None:
        """Answer the next ``count`` requests whose path matches with ``status``.

        429 answers carry Discord's rate-limit body (``message``, ``retry_after``,
        ``global``) and headers (``Retry-After``, ``X-RateLimit-Scope``); 5xx answers
        Discord's ``{"message": "500: Internal Server Error", "code": 0}``.
        """
        for _ in range(count):
            self._faults.append(
                _Fault(re.compile(path_regex), method, status, retry_after, scope, 0)
            )

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every request); return it."""

        async def satisfied() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the fake Discord waited {timeout:g} s and the condition never held; "
                f"last requests: {[f'{r.method} {r.path} {r.status}' for r in self.requests[-5:]]}"
            ) from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- delivering interactions ----------------------------------------------------------
    def _command_and_scope(self, words: Sequence[str], dm: bool) -> tuple[JSON, str | None]:
        scopes: list[str | None] = [None] if dm else [self.guild_id, None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == words[0] and command.get("type", 1) == 1:
                    contexts = command.get("contexts")
                    if dm and contexts is not None and 1 not in contexts:
                        continue
                    return command, scope
        where = "in DMs" if dm else f"in guild {self.guild_id} or globally"
        raise LookupError(
            f"/{words[0]} is not registered {where}; registered: "
            f"{sorted(c['name'] for s in scopes for c in self._commands.get(s, []))}"
        )

    def _resolve_path(
        self, command_line: str, dm: bool
    ) -> tuple[JSON, str | None, list[JSON], JSON]:
        """The command, its scope, the chain of subcommand options, and the leaf."""
        words = command_line.strip().lstrip("/").split()
        if not words:
            raise ValueError("an empty command line")
        command, scope = self._command_and_scope(words, dm)
        chain: list[JSON] = []
        node = command
        for word in words[1:]:
            nested = [o for o in node.get("options") or [] if o["type"] in (1, 2)]
            match = next((o for o in nested if o["name"] == word), None)
            if match is None:
                raise LookupError(
                    f"/{' '.join(words)}: {word!r} is not a subcommand of {node['name']!r} "
                    f"(there are: {[o['name'] for o in nested]})"
                )
            chain.append(match)
            node = match
        if any(o["type"] in (1, 2) for o in node.get("options") or []):
            raise ValueError(f"/{' '.join(words)} needs a subcommand")
        return command, scope, chain, node

    def _option_values(
        self,
        leaf: JSON,
        options: Mapping[str, Any],
        strict: bool,
        resolved: JSON,
        focused: str | None = None,
    ) -> list[JSON]:
        declared = {o["name"]: o for o in leaf.get("options") or []}
        values: list[JSON] = []
        for name, value in options.items():
            spec = declared.get(name)
            if spec is None:
                raise ValueError(f"{leaf['name']} has no option {name!r} (it has {list(declared)})")
            item: JSON = {"name": name, "type": spec["type"], "value": value}
            if name == focused:
                item.update(value=str(value), focused=True)
            elif strict:
                self._check_option_value(spec, value)
            if spec["type"] == 11 and name != focused:
                item["value"] = value = self._upload(value)
            self._resolve(spec["type"], value, resolved)
            values.append(item)
        if strict and focused is None:
            missing = [n for n, o in declared.items() if o.get("required") and n not in options]
            if missing:
                raise ValueError(f"the Discord client requires {missing} for {leaf['name']}")
        return values

    @staticmethod
    def _check_option_value(spec: Mapping[str, Any], value: Any) -> None:
        """What the Discord client enforces before it sends an option value."""
        name, kind = spec["name"], spec["type"]
        expected: dict[int, Any] = {3: str, 4: int, 5: bool, 10: (int, float)}
        if kind in expected and (
            not isinstance(value, expected[kind]) or (kind != 5 and isinstance(value, bool))
        ):
            raise ValueError(f"option {name!r} takes a {expected[kind]}, not {value!r}")
        choices = spec.get("choices")
        if choices and value not in [choice["value"] for choice in choices]:
            raise ValueError(f"option {name!r} must be one of its choices, not {value!r}")
        low, high = spec.get("min_value"), spec.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"option {name!r} must be within [{low}, {high}], not {value!r}")
        if kind == 3:
            short, long = spec.get("min_length", 0), spec.get("max_length", 6000)
            if not short <= len(value) <= long:
                raise ValueError(f"option {name!r} must be {short}-{long} characters long")

    def _upload(self, value: Any) -> str:
        """A file a user attaches to an attachment option: ``(filename, bytes)``."""
        if (
            not isinstance(value, tuple)
            or len(value) != 2
            or not isinstance(value[0], str)
            or not isinstance(value[1], bytes)
        ):
            raise ValueError(f"an attachment option takes (filename, bytes), not {value!r}")
        filename, data = value
        attachment_id = self.snowflake()
        self._attachments[attachment_id] = data
        url = f"{self.base_url}/attachments/uploads/{attachment_id}/{filename}"
        self._uploads[attachment_id] = {
            "id": attachment_id, "filename": filename, "size": len(data), "url": url,
            "proxy_url": url, "content_type": "application/octet-stream", "ephemeral": True,
        }  # fmt: skip
        return attachment_id

    def _resolve(self, kind: int, value: Any, resolved: JSON) -> None:
        """Discord sends the objects that user, channel, role and attachment options name."""
        key = str(value)
        if kind == 11:
            resolved.setdefault("attachments", {})[key] = self._uploads[key]
        elif kind in (6, 9):  # user, mentionable
            resolved.setdefault("users", {})[key] = self.user(key)
        elif kind == 7:
            channel = self.channels.get(key) or self.add_channel(key)
            resolved.setdefault("channels", {})[key] = {
                "id": key,
                "type": channel["type"],
                "name": channel.get("name"),
                "permissions": ALL_PERMISSIONS,
            }
        elif kind == 8:
            resolved.setdefault("roles", {})[key] = {
                "id": key,
                "name": f"role{key[-4:]}",
                "color": 0,
                "hoist": False,
                "position": 1,
                "permissions": "0",
                "managed": False,
                "mentionable": True,
                "flags": 0,
            }

    def _base_payload(
        self,
        kind: int,
        *,
        user_id: str,
        role_ids: Sequence[str],
        channel_id: str | None,
        dm: bool,
    ) -> tuple[JSON, Interaction]:
        interaction_id = self.snowflake()
        token = "fake-interaction-" + secrets.token_urlsafe(24)
        user = self.user(str(user_id))
        payload: JSON = {
            "id": interaction_id,
            "application_id": self.application_id,
            "type": kind,
            "token": token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": ALL_PERMISSIONS,
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if dm:
            channel = self.dm_channel(str(user_id))
            payload.update(
                user=user,
                channel_id=channel["id"],
                channel={"id": channel["id"], "type": DM, "recipients": [user], "flags": 0},
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        else:
            channel = self.add_channel(str(channel_id) if channel_id else self.channel_id)
            payload.update(
                guild_id=self.guild_id,
                guild_locale="en-US",
                channel_id=channel["id"],
                channel={
                    key: channel.get(key)
                    for key in (
                        "id",
                        "type",
                        "name",
                        "guild_id",
                        "parent_id",
                        "flags",
                        "nsfw",
                        "position",
                        "topic",
                        "rate_limit_per_user",
                        "last_message_id",
                    )
                }
                | {"permissions": ALL_PERMISSIONS}
                | (
                    {"thread_metadata": channel["thread_metadata"]}
                    if "thread_metadata" in channel
                    else {}
                ),
                member={
                    "user": user,
                    "roles": [str(role) for role in role_ids],
                    "joined_at": _iso(self.now() - 86_400),
                    "premium_since": None,
                    "nick": None,
                    "avatar": None,
                    "deaf": False,
                    "mute": False,
                    "pending": False,
                    "flags": 0,
                    "permissions": "0",
                    "communication_disabled_until": None,
                },
                authorizing_integration_owners={"0": self.guild_id},
                context=0,
            )
        record = Interaction(
            id=interaction_id,
            token=token,
            type=kind,
            payload=payload,
            channel_id=payload["channel_id"],
            _discord=self,
        )
        return payload, record

    async def invoke(
        self,
        endpoint_url: str | None,
        command_line: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: str = "100000000000000001",
        role_ids: Sequence[str] = (),
        channel_id: str | None = None,
        dm: bool = False,
        strict: bool = True,
        forged: bool = False,
        stale: bool = False,
    ) -> Interaction:
        """A user runs a registered slash command: ``"pod logs"`` with ``options``.

        ``endpoint_url`` is the interaction server's URL, or None to send the interaction
        as an ``INTERACTION_CREATE`` event to the bot connected to the gateway.

        The payload names the registered command's id (and ``data.guild_id`` for a guild
        command), nests options under subcommands and groups, and is signed with the
        application's key (``forged``: another key; ``stale``: a timestamp
        :data:`STALE_AGE` seconds old). ``strict`` applies the checks the Discord client
        makes before sending (required options, types, choices, ranges); turn it off to
        send what a modified client could.
        """
        command, scope, chain, leaf = self._resolve_path(command_line, dm)
        payload, record = self._base_payload(
            APPLICATION_COMMAND, user_id=user_id, role_ids=role_ids, channel_id=channel_id, dm=dm
        )
        resolved: JSON = {}
        values = self._option_values(leaf, options or {}, strict, resolved)
        payload["data"] = self._command_data(command, scope, chain, values, resolved)
        return await self._deliver(endpoint_url, record, forged=forged, stale=stale)

    @staticmethod
    def _command_data(
        command: JSON, scope: str | None, chain: list[JSON], values: list[JSON], resolved: JSON
    ) -> JSON:
        for option in reversed(chain):
            values = [{"name": option["name"], "type": option["type"], "options": values}]
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1, "options": values}
        if scope is not None:
            data["guild_id"] = scope
        if resolved:
            data["resolved"] = resolved
        return data

    async def autocomplete(
        self,
        endpoint_url: str | None,
        command_line: str,
        *,
        focused: str,
        value: str = "",
        options: Mapping[str, Any] | None = None,
        user_id: str = "100000000000000001",
        role_ids: Sequence[str] = (),
        channel_id: str | None = None,
        dm: bool = False,
    ) -> Interaction:
        """A user types ``value`` into the option ``focused``; see :attr:`Interaction.choices`."""
        command, scope, chain, leaf = self._resolve_path(command_line, dm)
        spec = next((o for o in leaf.get("options") or [] if o["name"] == focused), None)
        if spec is None or not spec.get("autocomplete"):
            raise ValueError(f"option {focused!r} of /{command_line} does not autocomplete")
        payload, record = self._base_payload(
            AUTOCOMPLETE, user_id=user_id, role_ids=role_ids, channel_id=channel_id, dm=dm
        )
        resolved: JSON = {}
        given = {**(options or {}), focused: value}
        values = self._option_values(leaf, given, False, resolved, focused=focused)
        payload["data"] = self._command_data(command, scope, chain, values, resolved)
        return await self._deliver(endpoint_url, record)

    async def click(
        self,
        endpoint_url: str | None,
        message: Mapping[str, Any] | str,
        custom_id: str,
        *,
        user_id: str = "100000000000000001",
        role_ids: Sequence[str] = (),
        values: Sequence[str] | None = None,
        forged: bool = False,
    ) -> Interaction:
        """A user presses a button (or picks ``values`` in a select) on a message.

        The message is looked up as it is now: a component that an edit removed or
        disabled cannot be clicked, as in the Discord client.
        """
        message_id = message if isinstance(message, str) else str(message["id"])
        current = self.messages.get(message_id)
        if current is None:
            raise LookupError(f"no message {message_id} in the fake Discord")
        component = _find_component(current.get("components") or [], custom_id)
        if component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r} now")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        viewer = (current.get("interaction_metadata") or {}).get("user", {}).get("id")
        if current["flags"] & EPHEMERAL and viewer not in (None, str(user_id)):
            raise ValueError(f"message {message_id} is ephemeral: only user {viewer} sees it")
        channel = self.channels[current["channel_id"]]
        dm = channel["type"] == DM
        if dm and channel["recipients"][0]["id"] != str(user_id):
            raise ValueError(
                f"user {user_id} cannot see the DM of {channel['recipients'][0]['id']}"
            )
        payload, record = self._base_payload(
            MESSAGE_COMPONENT,
            user_id=user_id,
            role_ids=role_ids,
            channel_id=None if dm else current["channel_id"],
            dm=dm,
        )
        data: JSON = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] in limits.SELECTS:
            data["values"] = list(values or [])
        elif values:
            raise ValueError("buttons take no values")
        payload["data"] = data
        payload["message"] = json.loads(json.dumps(current))
        return await self._deliver(endpoint_url, record, forged=forged)

    async def submit_modal(
        self,
        endpoint_url: str | None,
        custom_id: str,
        values: Mapping[str, str],
        *,
        user_id: str | None = None,
        role_ids: Sequence[str] = (),
    ) -> Interaction:
        """The user the bot showed the modal ``custom_id`` to fills it in and submits it."""
        opened = next(
            ((i, m) for i, m in reversed(self._modals) if m.get("custom_id") == custom_id), None
        )
        if opened is None:
            raise LookupError(f"the bot opened no modal {custom_id!r}")
        origin, modal = opened
        opener = (origin.payload.get("member") or origin.payload)["user"]["id"]
        if user_id is not None and str(user_id) != opener:
            raise ValueError(f"modal {custom_id!r} was shown to user {opener}, not {user_id}")
        rows: list[JSON] = []
        inputs: dict[str, JSON] = {}
        for row in modal.get("components") or []:
            for text_input in row.get("components") or []:
                inputs[text_input["custom_id"]] = text_input
                rows.append(
                    {
                        "type": 1,
                        "id": row.get("id", len(rows) + 1),
                        "components": [
                            {
                                "type": 4,
                                "id": text_input.get("id", 0),
                                "custom_id": text_input["custom_id"],
                                "value": str(values.get(text_input["custom_id"], "")),
                            }
                        ],
                    }
                )
        unknown = set(values) - set(inputs)
        if unknown:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(unknown)}")
        missing = [k for k, v in inputs.items() if v.get("required", True) and not values.get(k)]
        if missing:
            raise ValueError(f"the Discord client requires {missing} in modal {custom_id!r}")
        dm = "user" in origin.payload and "member" not in origin.payload
        payload, record = self._base_payload(
            MODAL_SUBMIT,
            user_id=opener,
            role_ids=role_ids or (origin.payload.get("member") or {}).get("roles", ()),
            channel_id=None if dm else origin.channel_id,
            dm=dm,
        )
        payload["data"] = {"custom_id": custom_id, "components": rows}
        if origin.type == MESSAGE_COMPONENT and origin.payload["message"]["id"] in self.messages:
            payload["message"] = json.loads(
                json.dumps(self.messages[origin.payload["message"]["id"]])
            )
        return await self._deliver(endpoint_url, record)

    async def deliver_raw(
        self, endpoint_url: str | None, payload: JSON, *, forged: bool = False, stale: bool = False
    ) -> Interaction:
        """Sign and POST any interaction ``payload`` (its ``token`` is tracked as usual)."""
        record = Interaction(
            id=str(payload.get("id") or self.snowflake()),
            token=str(payload.get("token") or "fake-interaction-" + secrets.token_urlsafe(24)),
            type=int(payload.get("type", 0)),
            payload=payload,
            channel_id=str(payload.get("channel_id", "")),
            _discord=self,
        )
        payload.setdefault("id", record.id)
        payload.setdefault("token", record.token)
        return await self._deliver(endpoint_url, record, forged=forged, stale=stale)

    def sign(self, body: bytes, *, forged: bool = False, stale: bool = False) -> dict[str, str]:
        """The headers Discord sends with ``body``: an Ed25519 signature and its timestamp."""
        timestamp = str(int(self.now() - (STALE_AGE if stale else 0)))
        key = Ed25519PrivateKey.generate() if forged else self._key
        return {
            "Content-Type": "application/json",
            "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)",
            "X-Signature-Ed25519": key.sign(timestamp.encode() + body).hex(),
            "X-Signature-Timestamp": timestamp,
        }

    async def _deliver(
        self,
        endpoint_url: str | None,
        record: Interaction,
        *,
        forged: bool = False,
        stale: bool = False,
    ) -> Interaction:
        if self._session is None:
            raise RuntimeError("the fake Discord is not started (use `async with FakeDiscord()`)")
        body = json.dumps(record.payload).encode()
        record.created = self.now()
        self.interactions[record.token] = record
        record.sent_at = time.perf_counter()
        if endpoint_url is None:
            return await self._deliver_over_gateway(record)
        async with self._session.post(
            endpoint_url, data=body, headers=self.sign(body, forged=forged, stale=stale)
        ) as response:
            record.status = response.status
            reply, files = await self._read_reply(record, response)
            # Nothing is awaited between reading the reply and taking it: a follow-up the
            # bot sent before this point found the interaction unacknowledged, as on Discord.
            answered_after = self.now() - record.created
            self._take_http_reply(record, reply, files, answered_after)
        if record.initial is None and not (forged or stale):
            await self._await_callback(
                record,
                wait=200 <= record.status < 300,
                how=f"the interaction server answered {record.status} after {answered_after:.1f} s",
            )
        await self._notify()
        return record

    @staticmethod
    async def _read_reply(
        record: Interaction, response: aiohttp.ClientResponse
    ) -> tuple[Any, list[RecordedFile]]:
        """The interaction server's HTTP reply: its JSON (or ``payload_json``) and files."""
        if response.content_type.startswith("multipart/"):
            reply, files = await _read_multipart(aiohttp.MultipartReader.from_response(response))
            record.body = json.dumps(reply).encode()
            return reply, files
        record.body = await response.read()
        if response.status == 200 and response.content_type == "application/json":
            return json.loads(record.body), []
        return None, []

    def _take_http_reply(
        self, record: Interaction, reply: Any, files: list[RecordedFile], answered_after: float
    ) -> None:
        """An interaction answered in the HTTP reply (``{"type": ...}``): its initial
        response, unless it came after a callback or after Discord gave up waiting."""
        if not (isinstance(reply, dict) and "type" in reply):
            return
        if record.initial is not None:
            self._violate(
                f"interaction {record.id}: answered in the HTTP reply after a callback "
                "(Discord: Interaction has already been acknowledged)"
            )
        elif answered_after <= self.ack_deadline:
            try:
                self._acknowledge(record, reply, files)
            except _Rejected as rejected:
                self._violate(f"HTTP reply to interaction {record.id}: {rejected}")
        # A later reply is dropped: Discord closed the request after the deadline, and
        # the interaction counts as not acknowledged.

    async def _await_callback(self, record: Interaction, *, wait: bool, how: str) -> None:
        """Give the bot until the acknowledgement deadline to answer through the callback
        endpoint (if ``wait``); unanswered then, the user sees "The application did not
        respond" (or "This interaction failed"), and that is a violation."""
        deadline = max(0.0, record.created + self.ack_deadline - self.now())
        if wait and deadline:
            with contextlib.suppress(TimeoutError):
                await self.wait_for(lambda: record.initial is not None, timeout=deadline)
        if record.initial is None:
            self._violate(
                f"interaction {record.id} (type {record.type}) was not acknowledged within "
                f"{self.ack_deadline:g} s ({how})"
            )

    async def _deliver_over_gateway(self, record: Interaction) -> Interaction:
        """An ``INTERACTION_CREATE`` event to the first connected bot (gateway mode)."""
        if not self.gateway_sessions:
            raise RuntimeError("no bot is connected to the fake Discord's gateway")
        await self.gateway_sessions[0].dispatch("INTERACTION_CREATE", record.payload)
        record.status = 200  # dispatched; the bot answers through the callback endpoint
        await self._await_callback(record, wait=True, how="delivered over the gateway")
        return record

    # -- the HTTP side ------------------------------------------------------------------
    def _violate(self, message: str) -> None:
        self.violations.append(message)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        recorded = RecordedRequest(
            request.method, path, None, [], dict(request.headers), dict(request.query)
        )
        self.requests.append(recorded)
        try:
            recorded.json, recorded.files = await self._read_body(request)
            self._bodies[id(request)] = recorded.json, recorded.files
            fault = self._take_fault(request.method, path)
            if fault is not None:
                response: web.StreamResponse = self._fault_response(fault)
            else:
                self._check_auth(request, path)
                response = await handler(request)
        except _Rejected as rejected:
            if rejected.violation:
                self._violate(f"{request.method} {path}: {rejected.violation}")
            response = web.json_response(rejected.body, status=rejected.status)
        except web.HTTPException as missing:
            if missing.status in (404, 405):
                self._violate(f"{request.method} {path}: the fake Discord has no such endpoint")
                response = web.json_response({"message": "404: Not Found", "code": 0}, status=404)
            else:
                raise
        finally:
            self._bodies.pop(id(request), None)
        recorded.status = response.status
        await self._notify()
        return response

    def _payload(self, request: web.Request) -> Any:
        """The JSON body (or ``payload_json``) of the request being handled."""
        return self._bodies[id(request)][0]

    def _files(self, request: web.Request) -> list[RecordedFile]:
        return self._bodies[id(request)][1]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[RecordedFile]]:
        if request.content_type.startswith("multipart/"):
            return await _read_multipart(await request.multipart())
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise _Rejected(
                400, {"message": "400: Bad Request", "code": 50109}, "the body is not valid JSON"
            ) from None

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.pattern.search(path) and fault.method in (None, method):
                self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: _Fault) -> web.Response:
        if fault.status == 429:
            body = {
                "message": "You are being rate limited.",
                "retry_after": fault.retry_after,
                "global": fault.scope == "global",
            }
            headers = {
                "Retry-After": str(max(1, round(fault.retry_after))),
                "X-RateLimit-Scope": fault.scope,
            }
            if fault.scope == "global":
                headers["X-RateLimit-Global"] = "true"
            return web.json_response(body, status=429, headers=headers)
        reason = {
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }.get(fault.status, "Error")
        return web.json_response(
            {"message": f"{fault.status}: {reason}", "code": 0}, status=fault.status
        )

    def _check_auth(self, request: web.Request, path: str) -> None:
        if not request.path.startswith(API_PREFIX):
            return  # the gateway authenticates in IDENTIFY; attachment URLs are public
        if path.startswith(("/interactions/", "/webhooks/")):
            return  # authorised by the interaction token in the path
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            raise _Rejected(
                401,
                {"message": "401: Unauthorized", "code": 0},
                "missing or wrong bot token in Authorization",
            )

    def _routes(self, app: web.Application) -> None:
        p = API_PREFIX
        add = app.router.add_route
        add("GET", f"{p}/oauth2/applications/@me", self._get_application)
        add("GET", f"{p}/applications/@me", self._get_application)
        add("GET", f"{p}/users/@me", self._get_me)
        add("GET", f"{p}/users/{{user}}", self._get_user)
        add("POST", f"{p}/users/@me/channels", self._open_dm)
        for base in (
            f"{p}/applications/{{app}}/commands",
            f"{p}/applications/{{app}}/guilds/{{guild}}/commands",
        ):
            add("GET", base, self._list_commands)
            add("PUT", base, self._put_commands)
            add("POST", base, self._post_command)
            add("GET", base + "/{command}", self._get_command)
            add("PATCH", base + "/{command}", self._patch_command)
            add("DELETE", base + "/{command}", self._delete_command)
        add("POST", f"{p}/interactions/{{interaction}}/{{token}}/callback", self._callback)
        add("POST", f"{p}/webhooks/{{app}}/{{token}}", self._followup)
        add(
            "GET", f"{p}/webhooks/{{app}}/{{token}}/messages/{{message}}", self._get_webhook_message
        )
        add(
            "PATCH",
            f"{p}/webhooks/{{app}}/{{token}}/messages/{{message}}",
            self._edit_webhook_message,
        )
        add(
            "DELETE",
            f"{p}/webhooks/{{app}}/{{token}}/messages/{{message}}",
            self._delete_webhook_message,
        )
        add("GET", f"{p}/channels/{{channel}}", self._get_channel)
        add("GET", f"{p}/channels/{{channel}}/messages", self._list_messages)
        add("POST", f"{p}/channels/{{channel}}/messages", self._create_message)
        add("GET", f"{p}/channels/{{channel}}/messages/{{message}}", self._get_message)
        add("PATCH", f"{p}/channels/{{channel}}/messages/{{message}}", self._edit_message)
        add("DELETE", f"{p}/channels/{{channel}}/messages/{{message}}", self._delete_message)
        add("POST", f"{p}/channels/{{channel}}/threads", self._start_thread)
        add("POST", f"{p}/channels/{{channel}}/messages/{{message}}/threads", self._start_thread)
        add("PUT", f"{p}/channels/{{channel}}/thread-members/@me", self._join_thread)
        add("GET", "/attachments/{channel}/{attachment}/{filename}", self._get_attachment)
        add("GET", f"{p}/gateway", self._get_gateway)
        add("GET", f"{p}/gateway/bot", self._get_gateway)
        add("GET", "/gateway", self._gateway)

    # the gateway
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

    # application and users
    def application(self) -> JSON:
        """The application object, complete enough for hikari's ``fetch_application``."""
        return {
            "id": self.application_id,
            "name": "ClusterCord Test",
            "icon": None,
            "description": "ClusterCord under test",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot_user,
            "owner": self.user(self.owner_id),
            "team": None,
            "verify_key": self.public_key_hex,
            "flags": 1 << 23,  # APPLICATION_COMMAND_BADGE
            "rpc_origins": [],
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": 1,
            "approximate_user_install_count": 0,
            "interactions_endpoint_url": None,
            "install_params": {"scopes": ["applications.commands", "bot"], "permissions": "0"},
            "integration_types_config": {
                "0": {
                    "oauth2_install_params": {
                        "scopes": ["applications.commands", "bot"],
                        "permissions": "0",
                    }
                },
            },
        }

    async def _get_application(self, request: web.Request) -> web.Response:
        return web.json_response(self.application())

    async def _get_me(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                **self.bot_user,
                "flags": 0,
                "mfa_enabled": False,
                "verified": True,
                "locale": "en-US",
                "email": None,
                "premium_type": 0,
            }
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        return web.json_response(self.user(request.match_info["user"]))

    async def _open_dm(self, request: web.Request) -> web.Response:
        recipient = (self._payload(request) or {}).get("recipient_id")
        if not recipient:
            raise _Rejected(
                400,
                limits.error_body(
                    [
                        limits.LimitError(
                            ("recipient_id",), "BASE_TYPE_REQUIRED", "This field is required"
                        )
                    ]
                ),
                "recipient_id missing",
            )
        return web.json_response(self.dm_channel(str(recipient)))

    # commands
    def _scope(self, request: web.Request) -> str | None:
        if request.match_info["app"] != self.application_id:
            raise _not_found("Application", 10002)
        guild = request.match_info.get("guild")
        if guild is not None and guild != self.guild_id:
            raise _Rejected(
                403,
                {"message": "Missing Access", "code": 50001},
                f"the bot is not in guild {guild}",
            )
        return guild

    def _stored_command(
        self, body: Mapping[str, Any], scope: str | None, existing: JSON | None
    ) -> JSON:
        command: JSON = {
            "id": existing["id"] if existing else self.snowflake(),
            "application_id": self.application_id,
            "version": self.snowflake(),
            "type": body.get("type", 1),
            "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description", ""),
            "description_localizations": body.get("description_localizations"),
            "default_member_permissions": body.get("default_member_permissions"),
            "nsfw": bool(body.get("nsfw", False)),
            "options": body.get("options") or [],
        }
        if "dm_permission" in body:
            command["dm_permission"] = body["dm_permission"]
        if scope is None:
            command["integration_types"] = body.get("integration_types") or [0]
            command["contexts"] = body.get("contexts")
        else:
            command["guild_id"] = scope
        return command

    def _validated(self, errors: list[limits.LimitError], what: str) -> None:
        if errors:
            raise _Rejected(
                400,
                limits.error_body(errors),
                f"{what} Discord would reject: " + "; ".join(map(str, errors)),
            )

    async def _list_commands(self, request: web.Request) -> web.Response:
        return web.json_response(self._commands.get(self._scope(request), []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        scope, body = self._scope(request), self._payload(request)
        self._validated(limits.check_commands(body), "commands")
        old = {(c["name"], c["type"]): c for c in self._commands.get(scope, [])}
        self._commands[scope] = [
            self._stored_command(item, scope, old.get((item["name"], item.get("type", 1))))
            for item in body
        ]
        return web.json_response(self._commands[scope])

    async def _post_command(self, request: web.Request) -> web.Response:
        scope, body = self._scope(request), self._payload(request)
        self._validated(limits.check_command(body), "a command")
        current = self._commands.setdefault(scope, [])
        key = (body["name"], body.get("type", 1))
        existing = next((c for c in current if (c["name"], c["type"]) == key), None)
        self._validated(
            limits.check_commands([c for c in current if c is not existing] + [body]), "commands"
        )
        command = self._stored_command(body, scope, existing)
        self._commands[scope] = [c for c in current if c is not existing] + [command]
        return web.json_response(command, status=200 if existing else 201)

    def _command(self, request: web.Request) -> tuple[str | None, JSON]:
        scope = self._scope(request)
        for command in self._commands.get(scope, []):
            if command["id"] == request.match_info["command"]:
                return scope, command
        raise _not_found("application command", 10063)

    async def _get_command(self, request: web.Request) -> web.Response:
        return web.json_response(self._command(request)[1])

    async def _patch_command(self, request: web.Request) -> web.Response:
        scope, command = self._command(request)
        merged = {**command, **(self._payload(request) or {})}
        self._validated(limits.check_command(merged), "a command")
        updated = self._stored_command(merged, scope, command)
        self._commands[scope] = [updated if c is command else c for c in self._commands[scope]]
        return web.json_response(updated)

    async def _delete_command(self, request: web.Request) -> web.Response:
        scope, command = self._command(request)
        self._commands[scope] = [c for c in self._commands[scope] if c is not command]
        return web.Response(status=204)

    # interactions
    def _interaction(self, token: str, interaction_id: str | None = None) -> Interaction:
        record = self.interactions.get(token)
        if record is None or (interaction_id is not None and record.id != interaction_id):
            raise _not_found("interaction", 10062)
        return record

    async def _callback(self, request: web.Request) -> web.Response:
        record = self._interaction(request.match_info["token"], request.match_info["interaction"])
        if self.now() - record.created > self.ack_deadline:
            raise _Rejected(
                404,
                {"message": "Unknown interaction", "code": 10062},
                f"interaction {record.id} acknowledged after {self.ack_deadline:g} s",
            )
        if record.initial is not None:
            raise _Rejected(
                400,
                {"message": "Interaction has already been acknowledged.", "code": 40060},
                f"interaction {record.id} acknowledged twice",
            )
        message = self._acknowledge(record, self._payload(request), self._files(request))
        await self._notify()
        if request.query.get("with_response", "").lower() != "true":
            return web.Response(status=204)
        kind = self._payload(request)["type"]
        callback: JSON = {
            "interaction": {
                "id": record.id,
                "type": record.type,
                "response_message_loading": kind == DEFERRED_CREATE,
                "response_message_ephemeral": bool(message and message["flags"] & EPHEMERAL),
            },
            "resource": {"type": kind},
        }
        if message is not None:
            callback["interaction"]["response_message_id"] = message["id"]
            if kind in (MESSAGE_CREATE, MESSAGE_UPDATE):
                callback["resource"]["message"] = message
        return web.json_response(callback)

    def _acknowledge(
        self, record: Interaction, body: Any, files: list[RecordedFile]
    ) -> JSON | None:
        """Apply an initial response; return the message it created or updated."""
        if not isinstance(body, Mapping) or not isinstance(body.get("type"), int):
            raise _Rejected(
                400,
                limits.error_body(
                    [limits.LimitError(("type",), "BASE_TYPE_REQUIRED", "This field is required")]
                ),
                "a callback without a type",
            )
        kind, data = body["type"], body.get("data") or {}
        if kind not in ALLOWED_CALLBACKS.get(record.type, set()) or (
            kind in (DEFERRED_UPDATE, MESSAGE_UPDATE) and "message" not in record.payload
        ):
            raise _Rejected(
                400,
                {"message": "Interaction callback type is not allowed here", "code": 50035},
                f"callback type {kind} does not answer interaction type {record.type}",
            )
        errors: list[limits.LimitError] = []
        if kind == MESSAGE_CREATE:
            errors = limits.check_message(data, file_count=len(files))
        elif kind == MESSAGE_UPDATE:
            errors = limits.check_message(data, file_count=len(files), require_content=False)
        elif kind == MODAL:
            errors = limits.check_modal(data)
        elif kind == AUTOCOMPLETE_RESULT:
            errors = limits.check_autocomplete(data)
        self._validated(
            [
                limits.LimitError(("data", *e.path), e.code, e.message)
                if e.code != limits.EMPTY_MESSAGE
                else e
                for e in errors
            ],
            f"callback type {kind}",
        )
        message: JSON | None = None
        channel = self.channels[record.channel_id]
        # A response to a slash command is a CHAT_INPUT_COMMAND message (20).
        message_type = 20 if record.type == APPLICATION_COMMAND else 0
        if kind == MESSAGE_CREATE:
            message = self._store_message(
                channel,
                data,
                files,
                interaction=record,
                message_type=message_type,
            )
        elif kind == DEFERRED_CREATE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._store_message(
                channel,
                {"content": ""},
                [],
                interaction=record,
                flags=flags,
                message_type=message_type,
            )
        elif kind in (DEFERRED_UPDATE, MESSAGE_UPDATE):
            message = self.messages.get(str(record.payload["message"]["id"]))
            if message is None:
                raise _not_found("Message", 10008)
            if kind == MESSAGE_UPDATE:
                self._edit(message, data, files)
        elif kind == MODAL:
            self._modals.append((record, {**data, "components": _numbered(data.get("components"))}))
        record.initial = {"type": kind, "data": dict(data)}
        record.initial_at = time.perf_counter()
        if message is not None:
            record.message_id = message["id"]
        return message

    def _webhook(self, request: web.Request) -> Interaction:
        """The interaction whose token a webhook request names: known, not expired, and
        acknowledged (a callback, or an HTTP reply the fake has read)."""
        if request.match_info["app"] != self.application_id:
            raise _not_found("Webhook", 10015)
        record = self.interactions.get(request.match_info["token"])
        if record is None:
            raise _not_found("Webhook", 10015)
        if self.now() - record.created > self.token_lifetime:
            raise _Rejected(
                401,
                {"message": "Invalid Webhook Token", "code": 50027},
                f"interaction token of {record.id} used after {self.token_lifetime / 60:g} minutes",
            )
        if record.initial is None:
            raise _Rejected(
                404,
                {"message": "Unknown Webhook", "code": 10015},
                f"follow-up to interaction {record.id} before its initial response",
            )
        return record

    def _webhook_message(self, request: web.Request, record: Interaction) -> JSON:
        wanted = request.match_info["message"]
        if wanted == "@original":
            if record.message_id is None:
                raise _not_found("Message", 10008)
            wanted = record.message_id
        message = self.messages.get(wanted)
        allowed = {record.message_id, *(m["id"] for m in record.followups)}
        if message is None or wanted not in allowed:
            raise _not_found("Message", 10008)
        return message

    async def _followup(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        body, files = self._payload(request) or {}, self._files(request)
        original = self.messages.get(record.message_id or "")
        if original is not None and original["flags"] & LOADING:
            # Discord fills in a deferred response with the first follow-up.
            self._validated(limits.check_message(body, file_count=len(files)), "a follow-up")
            self._edit(original, body, files)  # it keeps the ephemerality of the deferral
            await self._notify()
            return web.json_response(original)
        self._validated(limits.check_message(body, file_count=len(files)), "a follow-up")
        flags = int(body.get("flags") or 0) & EPHEMERAL
        message = self._store_message(
            self.channels[record.channel_id],
            body,
            files,
            interaction=record,
            flags=flags,
            message_type=0,
        )
        record.followups.append(message)
        return web.json_response(message)  # interaction follow-ups always "wait"

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        return web.json_response(self._webhook_message(request, record))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        message = self._webhook_message(request, record)
        self._edit(message, self._payload(request) or {}, self._files(request))
        return web.json_response(message)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        self._remove(self._webhook_message(request, record))
        return web.Response(status=204)

    # channels and messages
    def _channel(self, request: web.Request) -> JSON:
        channel = self.channels.get(request.match_info["channel"])
        if channel is None:
            raise _not_found("Channel", 10003)
        return channel

    def _message(self, request: web.Request, channel: JSON) -> JSON:
        message = self.messages.get(request.match_info["message"])
        if message is None or message["channel_id"] != channel["id"]:
            raise _not_found("Message", 10008)
        return message

    async def _get_channel(self, request: web.Request) -> web.Response:
        return web.json_response(self._channel(request))

    async def _list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        visible = [m for m in self.channel_messages(channel["id"]) if not m["flags"] & EPHEMERAL]
        visible.sort(key=lambda m: int(m["id"]))
        query = request.query
        try:
            limit = int(query.get("limit", "50"))
            before, after = (int(query[k]) if k in query else None for k in ("before", "after"))
        except ValueError as exc:
            raise _Rejected(400, {"message": "Invalid Form Body", "code": 50035}, str(exc)) from exc
        if not 1 <= limit <= 100 or (before is not None and after is not None):
            raise _Rejected(
                400,
                {"message": "Invalid Form Body", "code": 50035},
                f"list messages: limit {limit} outside 1-100, or both before and after",
            )
        # As Discord: `after` pages forward (the `limit` oldest newer messages), `before`
        # and no cursor page backward; either way the answer is newest first.
        if after is not None:
            page = [m for m in visible if int(m["id"]) > after][:limit]
        else:
            older = [m for m in visible if before is None or int(m["id"]) < before]
            page = older[-limit:]
        return web.json_response(list(reversed(page)))

    async def _create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body, files = self._payload(request) or {}, self._files(request)
        self._validated(limits.check_message(body, file_count=len(files)), "a message")
        if int(body.get("flags") or 0) & EPHEMERAL:
            raise _Rejected(
                400,
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "flags": {
                            "_errors": [
                                {
                                    "code": "MESSAGE_FLAGS_INVALID",
                                    "message": "Ephemeral messages need an interaction",
                                }
                            ]
                        }
                    },
                },
                "an ephemeral flag on a channel message",
            )
        message = self._store_message(channel, body, files, author=self.bot_user, message_type=0)
        return web.json_response(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        return web.json_response(self._message(request, self._channel(request)))

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self._message(request, self._channel(request))
        if message["author"]["id"] != self.application_id:
            raise _Rejected(
                403,
                {"message": "Cannot edit a message authored by another user", "code": 50005},
                "edit of a message the bot did not write",
            )
        self._edit(message, self._payload(request) or {}, self._files(request))
        return web.json_response(message)

    async def _delete_message(self, request: web.Request) -> web.Response:
        self._remove(self._message(request, self._channel(request)))
        return web.Response(status=204)

    async def _start_thread(self, request: web.Request) -> web.Response:
        parent = self._channel(request)
        body = self._payload(request) or {}
        from_message = "message" in request.match_info
        errors = list(
            limits._length(
                body.get("name"), ("name",), limits.THREAD_NAME_MAX, minimum=1, required=True
            )
        )
        duration = body.get("auto_archive_duration", 4320)
        if duration not in AUTO_ARCHIVE_MINUTES:
            errors.append(
                limits.LimitError(
                    ("auto_archive_duration",),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {60, 1440, 4320, 10080}.",
                )
            )
        self._validated(errors, "a thread")
        if parent["type"] != GUILD_TEXT:
            raise _wrong_channel_type(f"a thread in a channel of type {parent['type']}")
        if from_message:
            message = self._message(request, parent)
            if message["id"] in self.channels:
                raise _Rejected(
                    400,
                    {
                        "message": "A thread has already been created for this message",
                        "code": 160004,
                    },
                    "a second thread on a message",
                )
            thread_id, kind = message["id"], PUBLIC_THREAD
        else:
            thread_id, kind = self.snowflake(), int(body.get("type", PRIVATE_THREAD))
        now = _iso(self.now())
        thread: JSON = {
            "id": thread_id,
            "type": kind,
            "guild_id": self.guild_id,
            "parent_id": parent["id"],
            "owner_id": self.application_id,
            "name": body["name"],
            "last_message_id": None,
            "message_count": 0,
            "total_message_sent": 0,
            "member_count": 1,
            "rate_limit_per_user": int(body.get("rate_limit_per_user") or 0),
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": duration,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
                **(
                    {"invitable": bool(body.get("invitable", True))}
                    if kind == PRIVATE_THREAD
                    else {}
                ),
            },
        }
        self.channels[thread_id] = thread
        self._channel_messages[thread_id] = []
        return web.json_response(thread, status=201)

    async def _join_thread(self, request: web.Request) -> web.Response:
        if "thread_metadata" not in self._channel(request):
            raise _wrong_channel_type("joining a channel that is not a thread")
        return web.Response(status=204)

    async def _get_attachment(self, request: web.Request) -> web.Response:
        data = self._attachments.get(request.match_info["attachment"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data)

    # message storage
    def _attachments_of(
        self,
        channel_id: str,
        body: Mapping[str, Any],
        files: list[RecordedFile],
        kept: Sequence[JSON] = (),
    ) -> list[JSON]:
        by_index = {}
        for upload in files:
            match = re.fullmatch(r"files\[(\d+)\]", upload.field)
            by_index[match.group(1) if match else upload.field] = upload
        listed = body.get("attachments")
        keep_ids = {str(a.get("id")) for a in listed or [] if isinstance(a, Mapping)}
        result = [a for a in kept if listed is None or a["id"] in keep_ids]
        described = {str(a.get("id")): a for a in listed or [] if isinstance(a, Mapping)}
        for index, upload in by_index.items():
            meta = described.get(index, {})
            attachment_id = self.snowflake()
            filename = str(meta.get("filename") or upload.filename or f"file{index}")
            self._attachments[attachment_id] = upload.data
            url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{filename}"
            attachment: JSON = {
                "id": attachment_id,
                "filename": filename,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
                "content_type": upload.content_type or "application/octet-stream",
            }
            if meta.get("description"):
                attachment["description"] = meta["description"]
            result.append(attachment)
        if sum(len(f.data) for f in files) > ATTACHMENT_SIZE_LIMIT:
            raise _Rejected(
                413,
                {"message": "Request entity too large", "code": 40005},
                f"files larger than {ATTACHMENT_SIZE_LIMIT} bytes",
            )
        return result

    def _store_message(
        self,
        channel: JSON,
        body: Mapping[str, Any],
        files: list[RecordedFile],
        *,
        author: JSON | None = None,
        interaction: Interaction | None = None,
        flags: int | None = None,
        message_type: int = 0,
    ) -> JSON:
        message_id = self.snowflake()
        message: JSON = {
            "id": message_id,
            "channel_id": channel["id"],
            "author": author or self.bot_user,
            "content": body.get("content") or "",
            "timestamp": _iso(self.now()),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments_of(channel["id"], body, files),
            "embeds": _rich(body.get("embeds")),
            "pinned": False,
            "type": message_type,
            "flags": int(body.get("flags") or 0) if flags is None else flags,
            "components": _numbered(body.get("components")),
        }
        if channel["type"] != DM:
            message["guild_id"] = self.guild_id
        if interaction is not None:
            user = (interaction.payload.get("member") or interaction.payload)["user"]
            message.update(webhook_id=self.application_id, application_id=self.application_id)
            metadata: JSON = {
                "id": interaction.id,
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": interaction.payload[
                    "authorizing_integration_owners"
                ],
            }
            if interaction.type == MESSAGE_COMPONENT:
                metadata["interacted_message_id"] = interaction.payload["message"]["id"]
            if interaction.type in (APPLICATION_COMMAND, MESSAGE_COMPONENT):
                message["interaction_metadata"] = metadata
        self.messages[message_id] = message
        self._channel_messages.setdefault(channel["id"], []).append(message_id)
        channel["last_message_id"] = message_id
        if "message_count" in channel:
            channel["message_count"] += 1
            channel["total_message_sent"] += 1
        return message

    def _edit(self, message: JSON, body: Mapping[str, Any], files: list[RecordedFile]) -> None:
        errors = limits.check_message(body, file_count=len(files), require_content=False)
        self._validated(errors, "an edit")
        merged = {key: message[key] for key in ("content", "embeds", "components", "attachments")}
        for key in ("content", "embeds", "components"):
            if key in body:
                merged[key] = (
                    body[key] if body[key] is not None else ([] if key != "content" else "")
                )
        if "attachments" in body or files:
            merged["attachments"] = ["pending"] * (len(body.get("attachments") or []) + len(files))
        if limits.is_empty(merged) and not message["flags"] & LOADING:
            self._validated([limits.LimitError((), limits.EMPTY_MESSAGE, "empty")], "an edit")
        if "content" in body:
            message["content"] = body["content"] or ""
        if "embeds" in body:
            message["embeds"] = _rich(body["embeds"])
        if "components" in body:
            message["components"] = _numbered(body["components"])
        if "attachments" in body or files:
            message["attachments"] = self._attachments_of(
                message["channel_id"], body, files, kept=message["attachments"]
            )
        if message["flags"] & LOADING:
            message["flags"] &= ~LOADING
        message["edited_timestamp"] = _iso(self.now())

    def _remove(self, message: JSON) -> None:
        self.messages.pop(message["id"], None)
        ids = self._channel_messages.get(message["channel_id"], [])
        if message["id"] in ids:
            ids.remove(message["id"])
