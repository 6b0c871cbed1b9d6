"""Discord's member events, from the gateway to the plugins: ``discord:member-updated`` (a
member's roles now) and ``discord:member-removed`` (left, kicked or banned).

A plugin that gave something for a role (the SSO plugin: a kubectl session) takes it back
the moment Discord says the role is gone, instead of at its next periodic check. Only a
gateway connection carries these events (``GUILD_MEMBER_UPDATE`` / ``GUILD_MEMBER_REMOVE``,
with the privileged ``GUILD_MEMBERS`` intent); an interaction server gets none.

The event types are reserved on the kernel's bus: this module claims them, so it is the one
publisher, and anything else trying to publish them is refused (see :mod:`clustercord.events`).
"""

from __future__ import annotations

import logging
from typing import Any

import hikari

from clustercord_sdk.events import FRONTEND_EVENTS, MEMBER_REMOVED, MEMBER_UPDATED, Event

log = logging.getLogger("clustercord.discord")

HOLDER = "the Discord gateway"


class MemberEvents:
    """Subscribed to a gateway bot's member events while open; :meth:`close` lets go."""

    def __init__(self, bus: Any, app: hikari.GatewayBot) -> None:
        self.publisher = bus.claim(FRONTEND_EVENTS, HOLDER)
        self.app = app
        app.event_manager.subscribe(hikari.MemberUpdateEvent, self.updated)
        app.event_manager.subscribe(hikari.MemberDeleteEvent, self.removed)

    async def updated(self, event: hikari.MemberUpdateEvent) -> int:
        guild = event.guild_id
        # hikari adds the server's own id (the @everyone role) to every member's roles;
        # Discord's payload, and the REST member the SSO login reads, do not have it.
        roles = sorted(str(role) for role in event.member.role_ids if role != guild)
        return await self._publish(
            Event(
                MEMBER_UPDATED,
                data={"user_id": str(event.user_id), "guild_id": str(guild), "role_ids": roles},
            )
        )

    async def removed(self, event: hikari.MemberDeleteEvent) -> int:
        return await self._publish(
            Event(
                MEMBER_REMOVED,
                data={"user_id": str(event.user_id), "guild_id": str(event.guild_id)},
            )
        )

    async def _publish(self, event: Event) -> int:
        reached = int(await self.publisher.publish(event))
        log.debug("%s for %s reached %d plugin(s)", event.type, event.data["user_id"], reached)
        return reached

    def close(self) -> None:
        for event_type, listener in (
            (hikari.MemberUpdateEvent, self.updated),
            (hikari.MemberDeleteEvent, self.removed),
        ):
            self.app.event_manager.unsubscribe(event_type, listener)  # type: ignore[arg-type]
        self.publisher.release()
