"""The Discord front end's settings: ``[discord]`` in the config file and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clustercord.frontends.discord import limits
from clustercord_sdk.errors import UsageError


@dataclass(frozen=True)
class DiscordSettings:
    """``[discord]`` in the config file and the ``DISCORD_*`` environment."""

    token: str | None = None
    public_key: str | None = None
    api_url: str | None = None
    """``CLUSTERCORD_DISCORD_API_URL``: another REST base URL (tests, compatible proxies)."""
    guilds: tuple[int, ...] = ()
    """Register commands in these servers (instant); empty: globally."""
    allowed_guilds: frozenset[str] | None = None
    """Only these servers may use the bot; default: ``guilds`` when set, else any."""
    allow_dms: bool = True
    defer_after: float = 2.0
    """Answer directly if the command finishes this fast, else defer (Discord waits 3 s)."""
    confirm_timeout: float = 300.0
    component_ttl: float = 7 * 24 * 3600.0
    progress_interval: float = 1.0
    token_lifetime: float = limits.TOKEN_LIFETIME_SECONDS
    alerts_channel: str | None = None
    """Where notifications without a channel or user go."""
    max_attachment_bytes: int = limits.ATTACHMENT_BYTES_MAX
    signature_max_age: float = 300.0
    """An interaction signed longer ago than this is refused as stale (401)."""
    member_events: bool = True
    """Gateway mode: ask Discord for member events (the privileged Server Members intent,
    to be switched on in the Developer Portal), so a lost role ends what it gave at once
    (``discord:member-*`` events for plugins). Refused by Discord (close code 4014), the bot
    connects again without them, unless :attr:`member_events_required`."""
    member_events_required: bool = False
    """``member_events = true`` written in the config: a refusal of the intent is an error
    rather than a warning (not a key of its own)."""

    @classmethod
    def load(
        cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> DiscordSettings:
        """Read ``[discord]`` and the environment; a bad value raises :class:`UsageError`."""
        env = os.environ if env is None else env
        derived = ("token", "public_key", "member_events_required")
        known = {f for f in cls.__dataclass_fields__ if f not in derived}
        unknown = sorted(set(table) - known)
        if unknown:
            raise UsageError(f"[discord]: unknown key {unknown[0]!r} (keys: {', '.join(known)})")

        def ids(value: Any, key: str) -> list[str]:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(str(v).isdigit() for v in value):
                raise UsageError(f"[discord]: {key} must be a list of server (guild) ids")
            return [str(v) for v in value]

        guilds = ids(env.get("CLUSTERCORD_DISCORD_GUILDS", table.get("guilds", [])), "guilds")
        allowed = table.get("allowed_guilds")
        allowed_set = frozenset(ids(allowed, "allowed_guilds")) if allowed is not None else None
        if allowed_set is None and guilds:
            allowed_set = frozenset(guilds)
        numbers: dict[str, Any] = {}
        for key in (
            "defer_after",
            "confirm_timeout",
            "component_ttl",
            "progress_interval",
            "token_lifetime",
            "signature_max_age",
        ):
            if key in table:
                try:
                    numbers[key] = float(table[key])
                except (TypeError, ValueError):
                    raise UsageError(f"[discord]: {key} must be a number of seconds") from None
        member_events = table.get("member_events", True)
        if not isinstance(member_events, bool):
            raise UsageError(
                f"[discord]: member_events must be true or false, not {member_events!r}"
            )
        if not 0 < numbers.get("defer_after", 2.0) < limits.INITIAL_RESPONSE_SECONDS:
            raise UsageError("[discord]: defer_after must be above 0 and below 3 seconds")
        return cls(
            token=env.get("DISCORD_TOKEN") or None,
            public_key=env.get("DISCORD_PUBLIC_KEY") or None,
            api_url=env.get("CLUSTERCORD_DISCORD_API_URL") or table.get("api_url") or None,
            guilds=tuple(int(g) for g in guilds),
            allowed_guilds=allowed_set,
            allow_dms=bool(table.get("allow_dms", True)),
            member_events=member_events,
            member_events_required="member_events" in table and member_events,
            alerts_channel=str(table["alerts_channel"]) if table.get("alerts_channel") else None,
            **numbers,
        )
