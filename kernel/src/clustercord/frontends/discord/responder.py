"""One interaction's answer, from the first acknowledgement to the last follow-up.

Discord wants an initial response within 3 seconds and lets the interaction's
token be used for 15 minutes. The dispatcher knows nothing of either, so the
:class:`Responder` decides by the clock: a handler that finishes within
``defer_after`` seconds is answered directly; otherwise the interaction is
deferred ("ClusterCord is thinking…") and the result fills that message later.
Once the token is close to expiry, messages go out as ordinary bot messages in
the channel (or the user's DMs, for ephemeral ones), which need no token.

Replies that carry progress edit one message, at most once per ``progress_interval``
seconds; the latest wins and the final answer replaces it. Besides a bar, such a reply
may carry text and buttons: a live view (a terminal replay) that the user can steer.

On the interaction server, a *final* first answer travels in the HTTP reply to
Discord's request (:class:`HttpAnswer`) instead of a second request to the callback
endpoint: one round trip less for the user, no connection and no JSON to parse for
us. Only a final one, so no follow-up can overtake it on its way to Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import hikari
from hikari.api.special_endpoints import ComponentBuilder, InteractionResponseBuilder

from clustercord.frontends.discord import limits
from clustercord.frontends.discord.render import DiscordMessage, Renderer, clip
from clustercord_sdk.reply import Reply

log = logging.getLogger("clustercord.discord")

ORIGINAL = "@original"
TOKEN_MARGIN = 60.0
"""Stop using the interaction token this long before Discord's 15 minutes run out."""


class RawComponent(ComponentBuilder):
    """A component already in Discord's JSON (the renderer's output), for hikari to send."""

    __slots__ = ("_payload",)

    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload

    @property
    def type(self) -> int:
        return int(self._payload["type"])

    @property
    def id(self) -> Any:
        return hikari.UNDEFINED

    def build(self) -> tuple[dict[str, Any], list[Any]]:
        return dict(self._payload), []


class RawResponse(InteractionResponseBuilder):
    """An initial response already in Discord's JSON, for hikari's interaction server to send."""

    __slots__ = ("_data", "_files", "_type")

    def __init__(self, kind: int, data: dict[str, Any], files: list[Any] | None = None) -> None:
        self._type = kind
        self._data = data
        self._files = files or []

    @classmethod
    def of(cls, message: DiscordMessage, *, update: bool = False) -> RawResponse:
        """``message`` as a new message, or (``update``) replacing the one clicked."""
        if message.modal is not None:
            return cls(int(hikari.ResponseType.MODAL), dict(message.modal))
        data = message.json()
        data["allowed_mentions"] = {"parse": []}
        if update:  # fields left out would survive from the message being replaced
            data.setdefault("content", "")
            data.setdefault("embeds", [])
            data.setdefault("components", [])
            data.setdefault("attachments", [])
            data.pop("flags", None)
        kind = hikari.ResponseType.MESSAGE_UPDATE if update else hikari.ResponseType.MESSAGE_CREATE
        return cls(int(kind), data, [hikari.Bytes(f.data, f.name) for f in message.files])

    @property
    def type(self) -> int:
        return self._type

    def build(self, entity_factory: Any, /) -> tuple[dict[str, Any], list[Any]]:
        return {"type": self._type, "data": self._data}, self._files


class HttpAnswer:
    """The slot for an interaction's initial response in the HTTP reply to Discord's request.

    The interaction server's listener waits on it; a responder :meth:`offer` s its final
    answer. Once the listener stopped waiting (the answer went through the callback
    endpoint, or took too long), offers are refused and the callback endpoint is used.
    """

    def __init__(self) -> None:
        self._answer: asyncio.Future[RawResponse] = asyncio.get_running_loop().create_future()

    def offer(self, response: RawResponse) -> bool:
        if self._answer.done():
            return False
        self._answer.set_result(response)
        return True

    async def wait(
        self, answered: asyncio.Event, work: asyncio.Future[Any], timeout: float
    ) -> RawResponse | None:
        """The offered answer; ``None`` once the interaction was ``answered`` through the
        callback endpoint, its ``work`` ended without an offer, or ``timeout`` passed."""
        signal = asyncio.ensure_future(answered.wait())
        try:
            await asyncio.wait(
                [self._answer, signal, work], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            signal.cancel()
        if self._answer.done() and not self._answer.cancelled():
            return self._answer.result()
        self._answer.cancel()
        return None


async def initial_response(
    interaction: Any,
    message: DiscordMessage,
    *,
    update: bool = False,
    http: HttpAnswer | None = None,
) -> None:
    """Answer ``interaction`` with ``message``: in the HTTP reply if ``http`` takes it, else
    through the callback endpoint."""
    if http is not None and http.offer(RawResponse.of(message, update=update)):
        return
    if message.modal is not None:
        await interaction.create_modal_response(
            message.modal["title"],
            message.modal["custom_id"],
            components=[RawComponent(row) for row in message.modal["components"]],
        )
        return
    kind = hikari.ResponseType.MESSAGE_UPDATE if update else hikari.ResponseType.MESSAGE_CREATE
    await interaction.create_initial_response(
        kind,
        flags=message.flags if not update else hikari.UNDEFINED,
        **message_kwargs(message, interaction.app.entity_factory, edit=update),
    )


def message_kwargs(message: DiscordMessage, factory: Any, *, edit: bool = False) -> dict[str, Any]:
    """Keyword arguments for hikari's message calls (create, edit, follow-up)."""
    kwargs: dict[str, Any] = {
        "content": message.content if message.content else (None if edit else hikari.UNDEFINED),
        "embeds": [factory.deserialize_embed(e) for e in message.embeds]
        if message.embeds
        else ([] if edit else hikari.UNDEFINED),
        "components": [RawComponent(c) for c in message.components]
        if message.components
        else ([] if edit else hikari.UNDEFINED),
        "user_mentions": False,
        "role_mentions": False,
        "mentions_everyone": False,
    }
    if message.files:
        kwargs["attachments"] = [hikari.Bytes(f.data, f.name) for f in message.files]
    elif edit:
        kwargs["attachments"] = None
    return kwargs


class Responder:
    """Answers one command or component interaction."""

    def __init__(
        self,
        interaction: Any,
        renderer: Renderer,
        *,
        ephemeral: bool = False,
        update: bool = False,
        on_initial: Callable[[], None] | None = None,
        http: HttpAnswer | None = None,
        clock: Callable[[], float] = time.monotonic,
        token_lifetime: float = limits.TOKEN_LIFETIME_SECONDS,
        progress_interval: float = 1.0,
    ) -> None:
        self.interaction = interaction
        self.renderer = renderer
        self.ephemeral = ephemeral
        self.update = update
        """A component click: the answer replaces the message that was clicked."""
        self.on_initial = on_initial
        self.http = http
        """Where a final first answer can go in the HTTP reply (interaction server only)."""
        self.clock = clock
        self.started = clock()
        self.token_lifetime = token_lifetime
        self.progress_interval = progress_interval
        self.initial_sent = False
        self.deferred = False
        self.original_filled = False
        self.progress_message: Any = None
        self._progress_at = 0.0
        self._pending_progress: Reply | None = None
        self._progress_flush: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.waiting: dict[str, asyncio.Future[bool]] = {}

    @property
    def factory(self) -> Any:
        return self.interaction.app.entity_factory

    def token_valid(self) -> bool:
        return self.clock() - self.started < self.token_lifetime - TOKEN_MARGIN

    async def run(self, work: Awaitable[Reply], defer_after: float) -> Reply:
        """Run ``work``: answer directly if it is quick, otherwise defer first."""
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=defer_after)
        if not done:
            await self.defer()
        try:
            reply = await task
        except Exception:  # a bug of ours: the user still gets an answer, the log the trace
            log.exception("interaction %s failed", getattr(self.interaction, "id", "?"))
            reply = Reply.fail("Something went wrong on ClusterCord's side; it is logged.")
            reply.ephemeral = True
        await self.finish(reply)
        return reply

    # -- the three moves --------------------------------------------------------------
    async def defer(self) -> None:
        async with self._lock:
            if self.initial_sent:
                return
            flags = limits.EPHEMERAL if self.ephemeral else 0
            kind = (
                hikari.ResponseType.DEFERRED_MESSAGE_UPDATE
                if self.update
                else hikari.ResponseType.DEFERRED_MESSAGE_CREATE
            )
            await self.interaction.create_initial_response(kind, flags=flags)
            self._initial_done(deferred=True)

    async def send(self, reply: Reply) -> None:
        """An intermediate reply (the dispatcher's ``send``): one with progress edits the
        live message, anything else is a message of its own."""
        if reply.progress is not None:
            await self._progress(reply)
            return
        await self.post(self.render(reply))

    async def finish(self, reply: Reply) -> None:
        """The final reply: it fills the deferred message or replaces the progress bar."""
        if self._progress_flush is not None:
            self._progress_flush.cancel()
        message = self.render(reply)
        if self.progress_message is not None and not message.modal:
            await self._edit(self.progress_message, message)
            return
        await self.post(message, final=True)

    def render(self, reply: Reply) -> DiscordMessage:
        message = self.renderer.render(reply)
        if self.ephemeral:
            message.flags |= limits.EPHEMERAL
        return message

    # -- plumbing ---------------------------------------------------------------------
    def _initial_done(self, *, deferred: bool = False) -> None:
        self.initial_sent = True
        self.deferred = deferred
        self.original_filled = not deferred
        if self.on_initial is not None:
            self.on_initial()

    async def post(self, message: DiscordMessage, *, final: bool = False) -> Any:
        """Send ``message`` the right way for where the interaction stands; its id.

        ``final``: nothing follows on this interaction, so a first answer may travel in
        the HTTP reply.
        """
        async with self._lock:
            if not self.initial_sent:
                await initial_response(
                    self.interaction,
                    message,
                    update=self.update,
                    http=self.http if final else None,
                )
                self._initial_done()
                return ORIGINAL
            if message.modal is not None:
                # A form can only be the first answer; later, a button opens it.
                self._modal_button(message)
            if not self.token_valid():
                return await self._bot_message(message)
            if (
                self.deferred
                and not self.original_filled
                and message.ephemeral
                and not (self.ephemeral or self.update)
            ):
                # A public "thinking…" message cannot become private: say so there,
                # and send the private answer as an ephemeral follow-up.
                await self.interaction.edit_initial_response(
                    "Answered privately.",
                    components=[],
                    embeds=[],
                    user_mentions=False,
                    role_mentions=False,
                    mentions_everyone=False,
                )
                self.original_filled = True
            if self.deferred and not self.original_filled:
                await self.interaction.edit_initial_response(
                    **message_kwargs(message, self.factory, edit=True)
                )
                self.original_filled = True
                return ORIGINAL
            sent = await self.interaction.execute(
                flags=message.flags, **message_kwargs(message, self.factory)
            )
            return sent.id

    def _modal_button(self, message: DiscordMessage) -> None:
        modal, message.modal = message.modal, None
        assert modal is not None
        custom_id = self.renderer.minter.mint(
            "open-modal", {"modal": modal}, allowed=[str(self.interaction.user.id)]
        )
        button = {"type": 2, "style": 1, "label": clip(modal["title"], 80), "custom_id": custom_id}
        message.components = [*message.components, {"type": 1, "components": [button]}][
            -limits.ACTION_ROWS_MAX :
        ]

    async def _edit(self, target: Any, message: DiscordMessage) -> None:
        async with self._lock:
            if not self.token_valid():
                await self._bot_message(message, edit=target)
                return
            kwargs = message_kwargs(message, self.factory, edit=True)
            if target == ORIGINAL:
                await self.interaction.edit_initial_response(**kwargs)
                self.original_filled = True
            elif isinstance(target, tuple):  # a bot-owned message: (channel, message)
                await self.interaction.app.rest.edit_message(target[0], target[1], **kwargs)
            else:
                await self.interaction.edit_message(target, **kwargs)

    async def _bot_message(self, message: DiscordMessage, edit: Any = None) -> Any:
        """After the token expired: a plain bot message (ephemeral ones go to DMs)."""
        rest = self.interaction.app.rest
        if isinstance(edit, tuple):
            await rest.edit_message(
                edit[0], edit[1], **message_kwargs(message, self.factory, edit=True)
            )
            return edit
        if message.ephemeral:
            channel = await rest.create_dm_channel(self.interaction.user.id)
        else:
            channel = self.interaction.channel_id
        sent = await rest.create_message(channel, **message_kwargs(message, self.factory))
        return (channel, sent.id)

    async def _progress(self, reply: Reply) -> None:
        now = self.clock()
        if self.progress_message is None:
            self._progress_at = now
            self.progress_message = await self.post(self.render(reply))
            return
        self._pending_progress = reply
        if now - self._progress_at >= self.progress_interval:
            await self._flush_progress()
        elif self._progress_flush is None or self._progress_flush.done():
            delay = self.progress_interval - (now - self._progress_at)
            self._progress_flush = asyncio.create_task(self._flush_later(delay))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._flush_progress()

    async def _flush_progress(self) -> None:
        reply, self._pending_progress = self._pending_progress, None
        if reply is None:
            return
        self._progress_at = self.clock()
        with contextlib.suppress(hikari.HTTPError):  # a lost progress update is harmless
            await self._edit(self.progress_message, self.render(reply))
