"""The fake Discord's shared state: the application, its world, and what it recorded.

:class:`DiscordState` is the base of :class:`~clustercord_testing.fake_discord.FakeDiscord`:
the application's identity (ids, bot token, signing key), the fake's clock and
snowflakes, the world the bot talks to (users, channels, messages, attachments,
registered commands), the records tests read (:attr:`~DiscordState.requests`,
:attr:`~DiscordState.violations`, :attr:`~DiscordState.interactions`), and how messages
are stored and edited. The other modules of the package add behaviour on top of it as
mixins; it imports none of them.

Members with a leading underscore are the package's internals, shared by its modules;
they are not part of the fake's API.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.multipart import MultipartResponseWrapper
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import clustercord_testing.fake_discord.limits as limits

JSON = dict[str, Any]

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
#: Discord drops an interaction that is not acknowledged within this many seconds.
ACK_DEADLINE = 3.0
#: An interaction token works for follow-ups for this long.
TOKEN_LIFETIME = 15 * 60.0
#: Bytes a message's files may total (what interactions announce as the limit).
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

EPHEMERAL, LOADING = 1 << 6, 1 << 7
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
PONG, MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
GUILD_TEXT, DM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12


# -- what the fake records --------------------------------------------------------------
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
    _discord: DiscordState | None = field(default=None, repr=False)

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


# -- answering requests, storing messages -----------------------------------------------
@dataclass
class Fault:
    """An answer :meth:`DiscordState.fail_next` set up for the next matching request."""

    pattern: re.Pattern[str]
    method: str | None
    status: int
    retry_after: float
    scope: str
    remaining: int


class Rejected(Exception):
    """Answer a request with Discord's error ``body`` (and record a violation)."""

    def __init__(self, status: int, body: JSON, violation: str | None = None) -> None:
        super().__init__(violation or body.get("message", ""))
        self.status, self.body, self.violation = status, body, violation


def not_found(what: str, code: int) -> Rejected:
    """Discord's 404 for an unknown resource (``what``: "Channel", "Message"...)."""
    return Rejected(404, {"message": f"Unknown {what}", "code": code}, f"unknown {what.lower()}")


def iso(seconds: float) -> str:
    """A timestamp as Discord writes it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _assign_component_ids(components: Iterable[Any], counter: Iterable[int]) -> None:
    """Discord numbers every component of a message; hikari reads those numbers."""
    iterator = iter(counter)
    for component in components:
        if isinstance(component, dict):
            component.setdefault("id", next(iterator))
            _assign_component_ids(component.get("components") or [], iterator)


def numbered(components: Any) -> list[Any]:
    """A copy of the ``components`` a bot sent, numbered as Discord stores them."""
    stored: list[Any] = json.loads(json.dumps(components or []))
    _assign_component_ids(stored, itertools.count(1))
    return stored


def _rich(embeds: Any) -> list[JSON]:
    """The ``embeds`` a bot sent, as Discord stores them."""
    return [{"type": "rich", **embed} for embed in embeds or []]


async def read_multipart(
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


class DiscordState:
    """The application under test and the world it talks to, on the fake's clock."""

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
        self.thread_members: dict[str, set[str]] = {}  # users added to threads, by thread
        self.interactions: dict[str, Interaction] = {}  # by token
        self._channel_messages: dict[str, list[str]] = {}
        self._commands: dict[str | None, list[JSON]] = {}
        self._modals: list[tuple[Interaction, JSON]] = []
        self._attachments: dict[str, bytes] = {}
        self._uploads: dict[str, JSON] = {}  # files users attached to attachment options
        self._faults: list[Fault] = []
        self._users: dict[str, JSON] = {}
        # The bodies of the requests being handled, by id(request) (see rest.RestApi).
        self._bodies: dict[int, tuple[Any, list[RecordedFile]]] = {}
        #: Bots connected to the gateway, in the order they identified.
        self.gateway_sessions: list[GatewaySession] = []
        #: The intents of each IDENTIFY refused with 4014 (a privileged intent switched off).
        self.refused_identifies: list[int] = []
        self._changed = asyncio.Condition()
        self.port = 0
        self.channel_id = self.add_channel(name="general")["id"]

    # -- where it listens ---------------------------------------------------------------
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

    # -- the world: users, channels, messages -------------------------------------------
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

    # -- the application ----------------------------------------------------------------
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

    # -- test controls ------------------------------------------------------------------
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
                Fault(re.compile(path_regex), method, status, retry_after, scope, 0)
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

    # -- what Discord would reject ------------------------------------------------------
    def _violate(self, message: str) -> None:
        self.violations.append(message)

    def _validated(self, errors: list[limits.LimitError], what: str) -> None:
        if errors:
            raise Rejected(
                400,
                limits.error_body(errors),
                f"{what} Discord would reject: " + "; ".join(map(str, errors)),
            )

    # -- message storage ----------------------------------------------------------------
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
            raise Rejected(
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
            "timestamp": iso(self.now()),
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
            "components": numbered(body.get("components")),
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
            message["components"] = numbered(body["components"])
        if "attachments" in body or files:
            message["attachments"] = self._attachments_of(
                message["channel_id"], body, files, kept=message["attachments"]
            )
        if message["flags"] & LOADING:
            message["flags"] &= ~LOADING
        message["edited_timestamp"] = iso(self.now())

    def _remove(self, message: JSON) -> None:
        self.messages.pop(message["id"], None)
        ids = self._channel_messages.get(message["channel_id"], [])
        if message["id"] in ids:
            ids.remove(message["id"])
