"""The fake Discord's REST API: the routes a hikari bot calls, checked and recorded.

:class:`RestApi` is an aiohttp application's middleware and routes. The middleware
records every request (:attr:`~.DiscordState.requests`), answers the faults a test set
up (:meth:`~.DiscordState.fail_next`), checks the bot token, and turns a rejected
request into Discord's error answer and a violation. The routes serve the application
and users, commands, the interaction callback and webhook endpoints (by Discord's rules
in :mod:`.responses`), channels, messages, DMs, threads and attachments.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

import clustercord_testing.fake_discord.limits as limits
from clustercord_testing.fake_discord.responses import ResponseRules
from clustercord_testing.fake_discord.state import (
    API_PREFIX,
    DEFERRED_CREATE,
    EPHEMERAL,
    GUILD_TEXT,
    JSON,
    MESSAGE_CREATE,
    MESSAGE_UPDATE,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    Fault,
    Interaction,
    RecordedFile,
    RecordedRequest,
    Rejected,
    iso,
    not_found,
    read_multipart,
)

AUTO_ARCHIVE_MINUTES = {60, 1440, 4320, 10080}


def _wrong_channel_type(violation: str) -> Rejected:
    return Rejected(
        400, {"message": "Cannot execute action on this channel type", "code": 50024}, violation
    )


class RestApi(ResponseRules):
    """Discord's REST API, as much of it as a hikari bot with lightbulb 3 uses."""

    # -- every request ------------------------------------------------------------------
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
        except Rejected as rejected:
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
            return await read_multipart(await request.multipart())
        raw = await request.read()
        if not raw:
            return None, []
        if request.content_type == "application/x-www-form-urlencoded":
            return None, []  # OAuth2's token endpoint reads its form itself (see .oauth)
        try:
            return json.loads(raw), []
        except ValueError:
            raise Rejected(
                400, {"message": "400: Bad Request", "code": 50109}, "the body is not valid JSON"
            ) from None

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.pattern.search(path) and fault.method in (None, method):
                self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
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
        if path.startswith("/oauth2/token") or request.headers.get("Authorization", "").startswith(
            "Bearer "
        ):
            return  # OAuth2: client credentials or an access token (see .oauth)
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            raise Rejected(
                401,
                {"message": "401: Unauthorized", "code": 0},
                "missing or wrong bot token in Authorization",
            )

    def _add_rest_routes(self, app: web.Application) -> None:
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
        add("PUT", f"{p}/channels/{{channel}}/thread-members/{{user}}", self._add_thread_member)
        add("GET", "/attachments/{channel}/{attachment}/{filename}", self._get_attachment)

    # -- application and users ----------------------------------------------------------
    async def _get_application(self, request: web.Request) -> web.Response:
        return web.json_response(self.application())

    async def _get_me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return await self._oauth_me(request)  # type: ignore[attr-defined, no-any-return]
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
            raise Rejected(
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

    # -- commands -----------------------------------------------------------------------
    def _scope(self, request: web.Request) -> str | None:
        if request.match_info["app"] != self.application_id:
            raise not_found("Application", 10002)
        guild = request.match_info.get("guild")
        if guild is not None and guild != self.guild_id:
            raise Rejected(
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
        raise not_found("application command", 10063)

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

    # -- interactions: the callback and the webhook -------------------------------------
    async def _callback(self, request: web.Request) -> web.Response:
        body = self._payload(request)
        record, message = await self._answer_callback(
            request.match_info["token"],
            request.match_info["interaction"],
            body,
            self._files(request),
        )
        if request.query.get("with_response", "").lower() != "true":
            return web.Response(status=204)
        kind = body["type"]
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

    def _webhook(self, request: web.Request) -> Interaction:
        return self._webhook_interaction(request.match_info["app"], request.match_info["token"])

    async def _followup(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        message = await self._follow_up(record, self._payload(request) or {}, self._files(request))
        return web.json_response(message)  # interaction follow-ups always "wait"

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        return web.json_response(self._webhook_message(record, request.match_info["message"]))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        message = self._webhook_message(record, request.match_info["message"])
        self._edit(message, self._payload(request) or {}, self._files(request))
        return web.json_response(message)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook(request)
        self._remove(self._webhook_message(record, request.match_info["message"]))
        return web.Response(status=204)

    # -- channels and messages ----------------------------------------------------------
    def _channel(self, request: web.Request) -> JSON:
        channel = self.channels.get(request.match_info["channel"])
        if channel is None:
            raise not_found("Channel", 10003)
        return channel

    def _message(self, request: web.Request, channel: JSON) -> JSON:
        message = self.messages.get(request.match_info["message"])
        if message is None or message["channel_id"] != channel["id"]:
            raise not_found("Message", 10008)
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
            raise Rejected(400, {"message": "Invalid Form Body", "code": 50035}, str(exc)) from exc
        if not 1 <= limit <= 100 or (before is not None and after is not None):
            raise Rejected(
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
            raise Rejected(
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
            raise Rejected(
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
                raise Rejected(
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
        now = iso(self.now())
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

    async def _add_thread_member(self, request: web.Request) -> web.Response:
        """Add a user to a thread (how a private thread gets its members)."""
        thread = self._channel(request)
        if "thread_metadata" not in thread:
            raise _wrong_channel_type("adding a member to a channel that is not a thread")
        self.thread_members.setdefault(thread["id"], set()).add(request.match_info["user"])
        return web.Response(status=204)

    async def _join_thread(self, request: web.Request) -> web.Response:
        if "thread_metadata" not in self._channel(request):
            raise _wrong_channel_type("joining a channel that is not a thread")
        return web.Response(status=204)

    async def _get_attachment(self, request: web.Request) -> web.Response:
        data = self._attachments.get(request.match_info["attachment"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data)
