"""Playing the users' side: interactions built, signed and delivered to the bot.

:class:`InteractionDriver` holds the driver API of :class:`~.FakeDiscord`:
:meth:`~InteractionDriver.invoke`, :meth:`~InteractionDriver.click`,
:meth:`~InteractionDriver.submit_modal`, :meth:`~InteractionDriver.autocomplete` and
:meth:`~InteractionDriver.deliver_raw`. Each builds the interaction the Discord client
would send (from the commands the bot registered, the messages as they are now, the
modals the bot opened), signs it with the application's Ed25519 key
(:meth:`~InteractionDriver.sign`) and POSTs it to an interaction server, or dispatches
it as ``INTERACTION_CREATE`` to the bot connected to the gateway; then it waits for the
answer as Discord would (:mod:`.responses`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import clustercord_testing.fake_discord.limits as limits
from clustercord_testing.fake_discord.responses import ResponseRules
from clustercord_testing.fake_discord.state import (
    APPLICATION_COMMAND,
    ATTACHMENT_SIZE_LIMIT,
    AUTOCOMPLETE,
    DM,
    EPHEMERAL,
    JSON,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    Interaction,
    RecordedFile,
    iso,
    read_multipart,
)

#: How old the timestamp of a ``stale=True`` delivery is.
STALE_AGE = 10 * 60.0
ALL_PERMISSIONS = str((1 << 51) - 1)


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


class InteractionDriver(ResponseRules):
    """The users of the fake Discord: they run commands, click, submit modals, type."""

    #: The client that POSTs interactions to interaction servers (FakeDiscord.start opens it).
    _session: aiohttp.ClientSession | None = None

    # -- building interactions ----------------------------------------------------------
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
                    "joined_at": iso(self.now() - 86_400),
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

    # -- the driver API -----------------------------------------------------------------
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

    # -- delivering ---------------------------------------------------------------------
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
            reply, files = await read_multipart(aiohttp.MultipartReader.from_response(response))
            record.body = json.dumps(reply).encode()
            return reply, files
        record.body = await response.read()
        if response.status == 200 and response.content_type == "application/json":
            return json.loads(record.body), []
        return None, []

    async def _deliver_over_gateway(self, record: Interaction) -> Interaction:
        """An ``INTERACTION_CREATE`` event to every connected bot (gateway mode): Discord
        sends each session of a shard its events, so two bots running with one token both
        receive it, and answering it twice is a violation the fake records."""
        if not self.gateway_sessions:
            raise RuntimeError("no bot is connected to the fake Discord's gateway")
        for session in list(self.gateway_sessions):
            await session.dispatch("INTERACTION_CREATE", record.payload)
        record.status = 200  # dispatched; the bot answers through the callback endpoint
        await self._await_callback(record, wait=True, how="delivered over the gateway")
        return record
