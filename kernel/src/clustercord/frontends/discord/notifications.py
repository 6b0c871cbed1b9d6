"""Delivery of the plugins' queued notifications to Discord: channel messages and DMs.

The kernel's outbox (:mod:`clustercord.services.notifications`) keeps them durably; this
sends them once Discord is reachable, with buttons that route back to the plugin that
notified, and marks each delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import hikari

from clustercord.frontends.discord.components import ComponentStore
from clustercord.frontends.discord.render import Renderer
from clustercord.frontends.discord.responder import message_kwargs
from clustercord_sdk.reply import Reply

log = logging.getLogger("clustercord.discord")


class NotificationDelivery:
    """Sends the outbox's pending rows through one hikari app's REST client."""

    def __init__(
        self, outbox: Any, app: Any, store: ComponentStore, alerts_channel: str | None
    ) -> None:
        self.outbox = outbox
        self.app = app
        self.store = store
        self.alerts_channel = alerts_channel

    async def deliver(self) -> int:
        """Send the plugins' queued notifications: to a channel, a user's DMs, or alerts."""
        sent = 0
        rest = self.app.rest
        for row in self.outbox.pending():
            reply = Reply.from_dict(json.loads(row["reply"]))
            channel = row["channel"] or None
            try:
                if row["user"] and not channel:
                    channel = (await rest.create_dm_channel(int(row["user"]))).id
                channel = channel or self.alerts_channel
                if channel is None:
                    log.warning("notification %s has no channel, user or alerts_channel", row["id"])
                    self.outbox.delivered(row["id"])
                    continue
                # Buttons route back to the plugin that notified (rows queued before the
                # outbox knew plugins have none: their buttons answer "not enabled").
                minter = self.store.minter(row.get("plugin") or "notify")
                renderer = Renderer(minter, user_id=row["user"])
                message = renderer.render(reply)
                await rest.create_message(
                    int(channel), **message_kwargs(message, self.app.entity_factory)
                )
            except hikari.HTTPError as exc:
                log.warning("notification %s not delivered yet: %s", row["id"], exc)
                continue
            self.outbox.delivered(row["id"])
            sent += 1
        return sent

    async def run(self, stop: asyncio.Event, tick: float = 1.0) -> None:
        """Deliver notifications until ``stop`` is set (beside the kernel's own loop)."""
        while not stop.is_set():
            try:
                await self.deliver()
            except Exception:
                log.exception("delivering notifications failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
