"""The gateway bot's intents, and what happens when Discord refuses a privileged one.

The bot asks for two privileged intents, each of which must be switched on in the Developer
Portal: Message Content (a conversation reads what people type in its thread) and, unless
``[discord] member_events = false``, Server Members (member events: a lost role ends its SSO
sessions at once). Discord refuses an IDENTIFY asking for one that is off by closing the
connection with code 4014, "Disallowed intent(s)"; hikari raises it from
``GatewayBot.start`` (or ``join``, if it happens on a later identify) as
:class:`hikari.GatewayServerClosedConnectionError` with that ``code`` and
``can_reconnect=False``: the bot stops.

Server Members came with an upgrade, on by default, so a bot whose portal lacks it would stop
working after the upgrade. When the config did not ask for member events explicitly, the bot
therefore connects once more without them and says so once: role loss is then caught by the
SSO plugin's one-minute re-check only. ``member_events = true`` written in the config is a
requirement: the refusal is an error saying what to switch on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import hikari

from clustercord.frontends.discord.settings import DiscordSettings
from clustercord_sdk.errors import UsageError

log = logging.getLogger("clustercord.discord")

DISALLOWED_INTENT = int(hikari.ShardCloseCode.DISALLOWED_INTENT)  # 4014
PORTAL = "Developer Portal → your application → Bot → Privileged Gateway Intents"
MEMBERS_OFF = (
    "Discord refused the Server Members intent (gateway close code 4014): running without "
    "member events. Switch on 'Server Members Intent' in the "
    f"{PORTAL} and restart so that losing a Discord role ends its SSO sessions at once; "
    "until then role loss is caught by the one-minute re-check only "
    "([discord] member_events = false stops asking for it)"
)
MEMBERS_REQUIRED = (
    "Discord refused the Server Members intent (gateway close code 4014), which "
    "[discord] member_events = true requires: switch on 'Server Members Intent' in the "
    f"{PORTAL}, or set member_events = false to rely on the one-minute role re-check"
)
MEMBERS_REFUSED_LATER = (
    "Discord refused the Server Members intent when the bot identified again (gateway close "
    "code 4014): it was switched off in the Developer Portal while running. Started again, "
    "ClusterCord runs without member events (role loss caught by the one-minute re-check)"
)
CONTENT_REFUSED = (
    "Discord refused the Message Content intent (gateway close code 4014): switch on "
    f"'Message Content Intent' in the {PORTAL}"
)
READINESS_NOTE = "discord member events"
"""The /readyz line saying member events are off although wanted (see MEMBERS_OFF)."""
MEMBERS_OFF_NOTE = (
    "off: Discord refused the Server Members intent; role loss is caught by the "
    "one-minute re-check only"
)


def gateway_intents(settings: DiscordSettings) -> hikari.Intents:
    """What the gateway bot asks Discord for."""
    # MESSAGE_CONTENT (privileged) lets a conversation read what people type in its thread
    # without mentioning the bot. GUILD_MEMBERS (privileged too) brings role changes and
    # departures at once, which end the SSO sessions a lost role gave (discord:member-*).
    return (
        hikari.Intents.GUILDS
        | (hikari.Intents.GUILD_MEMBERS if settings.member_events else hikari.Intents.NONE)
        | hikari.Intents.DM_MESSAGES
        | hikari.Intents.GUILD_MESSAGES
        | hikari.Intents.MESSAGE_CONTENT
    )


def members_refused(settings: DiscordSettings, app: Any) -> bool:
    """Member events were wanted by default but the bot runs without (Discord refused)."""
    return settings.member_events and hikari.Intents.GUILD_MEMBERS not in app.intents


def refusal(
    settings: DiscordSettings, exc: BaseException, *, later: bool = False
) -> UsageError | None:
    """The error to stop with when ``exc`` is Discord refusing an intent of a bot started
    with ``settings``; ``None`` when the bot may connect again without member events (or
    when ``exc`` is something else). ``later``: refused while running (on a new identify),
    when connecting again means starting again."""
    if not isinstance(exc, hikari.GatewayServerClosedConnectionError):
        return None
    if exc.code != DISALLOWED_INTENT:
        return None
    if not settings.member_events:  # the one privileged intent left was refused
        return UsageError(CONTENT_REFUSED)
    if settings.member_events_required:
        return UsageError(MEMBERS_REQUIRED)
    if later:
        return UsageError(MEMBERS_REFUSED_LATER)
    return None


@dataclass(frozen=True)
class GatewayStart:
    """A started gateway bot and the settings it runs with."""

    bot: hikari.GatewayBot
    settings: DiscordSettings
    """Those given, or the same with ``member_events`` off after Discord refused them."""


async def start_gateway(
    settings: DiscordSettings,
    build: Callable[[DiscordSettings], hikari.GatewayBot],
    prepare: Callable[[hikari.GatewayBot], None],
    **start: Any,
) -> GatewayStart:
    """Build a bot (``build``), let ``prepare`` subscribe to it, start it (``start``:
    ``GatewayBot.start``'s arguments). Refused the Server Members intent by default: once
    more without it, with one warning. Refused otherwise: :class:`UsageError` saying what
    to switch on in the Developer Portal."""
    for attempt in (settings, replace(settings, member_events=False)):
        bot = build(attempt)
        prepare(bot)
        try:
            await bot.start(**start)
        except asyncio.CancelledError:  # stopped while starting (a signal): closed all the same
            if bot.is_alive:
                await bot.close()
            raise
        except hikari.GatewayServerClosedConnectionError as exc:
            await bot.close()  # started half-way: the REST client and the listeners
            error = refusal(attempt, exc)
            if error is not None:
                raise error from None
            if exc.code != DISALLOWED_INTENT:
                raise
            log.warning("%s", MEMBERS_OFF)
            continue
        return GatewayStart(bot, attempt)
    raise AssertionError("unreachable: the second attempt has no member events to drop")
