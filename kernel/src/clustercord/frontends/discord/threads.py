"""Conversations in Discord threads: send replies, receive what people write.

A long interactive session (the terminal feature) needs more than one reply: it
opens a thread, writes into it, and reads the lines users type there. Messages
are read through the REST API (polling after the last message seen), so this
works the same in gateway and interaction-server mode, and needs the Message
Content intent for messages that do not mention the bot: without it Discord sends
their ``content`` empty. The gateway bot requests it (see ``server.gateway_bot``); it is
a privileged intent, so it must also be switched on in the Developer Portal (Bot →
Privileged Gateway Intents → Message Content) for any mode, interaction server included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import hikari

from clustercord.frontends.discord import limits
from clustercord.frontends.discord.render import Renderer, clip
from clustercord.frontends.discord.responder import message_kwargs
from clustercord.frontends.inert import inert
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import Reply
from clustercord_sdk.services import Message

THREAD_NAME_MAX = 100
ONE_DAY = 1440  # minutes of inactivity before Discord archives the thread


Received = Message
"""A message a user wrote in the thread (the SDK's :class:`~clustercord_sdk.services.Message`)."""


class Conversation:
    """One thread: :meth:`send` replies into it, :meth:`receive` the next user message.

    Implements :class:`clustercord_sdk.services.Conversation` for plugins.
    """

    def __init__(
        self, rest: Any, factory: Any, renderer: Renderer, thread_id: int, bot_id: int | None
    ) -> None:
        self.rest = rest
        self.factory = factory
        self.renderer = renderer
        self.thread_id = thread_id
        self.bot_id = bot_id
        self._after: Any = hikari.Snowflake(thread_id)
        self._inbox: list[Received] = []
        self.closed = False

    @property
    def id(self) -> str:
        return str(self.thread_id)

    async def close(self) -> None:
        """Stop talking; Discord archives the thread after a day without messages."""
        self.closed = True

    async def send(self, reply: Reply | str) -> str:
        """Post a reply in the thread; returns the message id."""
        if self.closed:
            raise CommandError("this conversation is closed")
        if isinstance(reply, str):
            reply = Reply(text=reply)
        message = self.renderer.render(reply)
        message.flags &= ~limits.EPHEMERAL  # a thread message is seen by the thread
        sent = await self.rest.create_message(
            self.thread_id, **message_kwargs(message, self.factory)
        )
        # The read position stays: a user may have written since the last poll, and a
        # terminal posts output while its user types. The bot's own messages are skipped
        # when read.
        return str(sent.id)

    async def receive(self, timeout: float = 60.0, poll: float = 1.0) -> Received | None:
        """The next message a user (not a bot) writes, or ``None`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if self._inbox:
                return self._inbox.pop(0)
            # One page per poll: a busy thread is read over several polls, never unbounded.
            page = self.rest.fetch_messages(self.thread_id, after=self._after).limit(100)
            for message in sorted(await page, key=lambda m: int(m.id)):
                if message.id <= self._after:
                    continue  # seen already (or older than the conversation)
                self._after = message.id
                if message.author.is_bot or message.author.id == self.bot_id:
                    continue
                self._inbox.append(
                    Received(str(message.author.id), message.content or "", str(message.id))
                )
            if self._inbox:
                return self._inbox.pop(0)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(poll, left))
        return None


class Threads:
    """Opens conversations for a plugin (``renderer`` mints its components)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def open(
        self,
        channel_id: int | str,
        name: str,
        renderer: Renderer,
        *,
        first: Reply | str | None = None,
        private: bool = False,
        members: Iterable[str] = (),
    ) -> Conversation:
        """A public thread in ``channel_id`` (on ``first`` when given, so people see where
        it started), or a ``private`` one that ``members`` are added to (nobody else can
        join it: not invitable; the server's moderators see every thread); returns its
        :class:`Conversation`."""
        rest = self.app.rest
        name = clip(inert(name, mentions=True).strip() or "ClusterCord", THREAD_NAME_MAX)
        me = await rest.fetch_my_user()
        if private:
            thread = await rest.create_thread(
                int(channel_id),
                hikari.ChannelType.GUILD_PRIVATE_THREAD,
                name,
                auto_archive_duration=ONE_DAY,
                invitable=False,
            )
            for member in members:
                await rest.add_thread_member(thread.id, int(member))
        elif first is not None:
            starter = Conversation(rest, self.app.entity_factory, renderer, int(channel_id), me.id)
            message_id = await starter.send(first)
            thread = await rest.create_message_thread(
                int(channel_id), int(message_id), name, auto_archive_duration=ONE_DAY
            )
        else:
            thread = await rest.create_thread(
                int(channel_id),
                hikari.ChannelType.GUILD_PUBLIC_THREAD,
                name,
                auto_archive_duration=ONE_DAY,
            )
        return Conversation(rest, self.app.entity_factory, renderer, int(thread.id), me.id)
