"""Discord's rules for answering an interaction, which the fake enforces.

The initial response comes once, within the acknowledgement deadline (3 s on Discord),
through the callback endpoint or in the HTTP reply to Discord's POST; its type must
answer the interaction's type, and its message must pass Discord's limits. Follow-ups
and edits of ``@original`` come only after it and while the token lives (15 minutes);
the first follow-up to a deferred response fills in the "thinking…" message.

:class:`ResponseRules` holds these rules for both sides that apply them: the REST routes
of the callback and webhook endpoints (:mod:`.rest`) and the delivery of an interaction,
whose answer may come in the HTTP reply (:mod:`.interactions`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import clustercord_testing.fake_discord.limits as limits
from clustercord_testing.fake_discord.state import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    DEFERRED_CREATE,
    DEFERRED_UPDATE,
    EPHEMERAL,
    JSON,
    LOADING,
    MESSAGE_COMPONENT,
    MESSAGE_CREATE,
    MESSAGE_UPDATE,
    MODAL,
    MODAL_SUBMIT,
    PING,
    PONG,
    DiscordState,
    Interaction,
    RecordedFile,
    Rejected,
    not_found,
    numbered,
)

#: The callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS = {
    PING: {PONG},
    APPLICATION_COMMAND: {MESSAGE_CREATE, DEFERRED_CREATE, MODAL},
    MESSAGE_COMPONENT: {MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {MESSAGE_CREATE, DEFERRED_CREATE, DEFERRED_UPDATE, MESSAGE_UPDATE},
}


class ResponseRules(DiscordState):
    """The interaction lifecycle: what may answer an interaction, and when."""

    # -- the initial response -----------------------------------------------------------
    def _interaction(self, token: str, interaction_id: str | None = None) -> Interaction:
        record = self.interactions.get(token)
        if record is None or (interaction_id is not None and record.id != interaction_id):
            raise not_found("interaction", 10062)
        return record

    async def _answer_callback(
        self, token: str, interaction_id: str, body: Any, files: list[RecordedFile]
    ) -> tuple[Interaction, JSON | None]:
        """An initial response through the callback endpoint, to a known interaction,
        within the deadline, once: the interaction and the message it created or updated."""
        record = self._interaction(token, interaction_id)
        if self.now() - record.created > self.ack_deadline:
            raise Rejected(
                404,
                {"message": "Unknown interaction", "code": 10062},
                f"interaction {record.id} acknowledged after {self.ack_deadline:g} s",
            )
        if record.initial is not None:
            raise Rejected(
                400,
                {"message": "Interaction has already been acknowledged.", "code": 40060},
                f"interaction {record.id} acknowledged twice",
            )
        message = self._acknowledge(record, body, files)
        await self._notify()
        return record, message

    def _acknowledge(
        self, record: Interaction, body: Any, files: list[RecordedFile]
    ) -> JSON | None:
        """Apply an initial response; return the message it created or updated."""
        if not isinstance(body, Mapping) or not isinstance(body.get("type"), int):
            raise Rejected(
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
            raise Rejected(
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
                raise not_found("Message", 10008)
            if kind == MESSAGE_UPDATE:
                self._edit(message, data, files)
        elif kind == MODAL:
            self._modals.append((record, {**data, "components": numbered(data.get("components"))}))
        record.initial = {"type": kind, "data": dict(data)}
        record.initial_at = time.perf_counter()
        if message is not None:
            record.message_id = message["id"]
        return message

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
            except Rejected as rejected:
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

    # -- after the initial response -----------------------------------------------------
    def _webhook_interaction(self, application_id: str, token: str) -> Interaction:
        """The interaction whose token a webhook request names: known, not expired, and
        acknowledged (a callback, or an HTTP reply the fake has read)."""
        if application_id != self.application_id:
            raise not_found("Webhook", 10015)
        record = self.interactions.get(token)
        if record is None:
            raise not_found("Webhook", 10015)
        if self.now() - record.created > self.token_lifetime:
            raise Rejected(
                401,
                {"message": "Invalid Webhook Token", "code": 50027},
                f"interaction token of {record.id} used after {self.token_lifetime / 60:g} minutes",
            )
        if record.initial is None:
            raise Rejected(
                404,
                {"message": "Unknown Webhook", "code": 10015},
                f"follow-up to interaction {record.id} before its initial response",
            )
        return record

    def _webhook_message(self, record: Interaction, wanted: str) -> JSON:
        """The message ``wanted`` (an id or ``@original``) of the interaction ``record``."""
        if wanted == "@original":
            if record.message_id is None:
                raise not_found("Message", 10008)
            wanted = record.message_id
        message = self.messages.get(wanted)
        allowed = {record.message_id, *(m["id"] for m in record.followups)}
        if message is None or wanted not in allowed:
            raise not_found("Message", 10008)
        return message

    async def _follow_up(
        self, record: Interaction, body: Mapping[str, Any], files: list[RecordedFile]
    ) -> JSON:
        """A follow-up message: it fills in a deferred response, or is a new message."""
        original = self.messages.get(record.message_id or "")
        if original is not None and original["flags"] & LOADING:
            # Discord fills in a deferred response with the first follow-up.
            self._validated(limits.check_message(body, file_count=len(files)), "a follow-up")
            self._edit(original, body, files)  # it keeps the ephemerality of the deferral
            await self._notify()
            return original
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
        return message
