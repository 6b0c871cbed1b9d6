"""The periodic re-check: a member who left the server, or lost a role a session's groups
came from, loses the session (when the bot's token is there to read members)."""

from __future__ import annotations

from typing import Any

from clustercord_builtins.sso import access
from clustercord_builtins.sso.flow import DiscordOAuth, bot_token, member_roles
from clustercord_builtins.sso.sessions import TOKEN, store_of
from clustercord_builtins.sso.web import groups_for
from clustercord_sdk.events import MEMBER_REMOVED, Event

RECHECK_JOB = "sso-recheck-members"


def lost_access(
    session: Any, roles: list[str] | None, mappings: dict[str, list[str]]
) -> str | None:
    """Why ``session`` must end now that its holder has ``roles`` (``None``: not a member),
    or ``None`` when every group it was given is still granted by some role."""
    if roles is None:
        return "left the server"
    if not set(session.groups) <= set(groups_for(roles, mappings)):
        return "lost a mapped role"
    return None


async def end_for(ctx: Any, store: Any, session: Any, why: str, by: str) -> bool:
    """End ``session`` because its holder lost access (audited with why); ``False`` when it
    had ended already."""
    if not await access.end(ctx, store, session, by):
        return False
    ctx.audit.record(
        "revoke", actor=by, details={"session": session.id, "user": session.user_id, "why": why}
    )
    return True


async def member_changed(ctx: Any, event: Event) -> int:
    """Discord's gateway says a member's roles changed or the member left: the sessions that
    no longer have a granting role end now (not at the next re-check). Returns how many."""
    user, guild = str(event.data["user_id"]), str(event.data["guild_id"])
    roles = None if event.type == MEMBER_REMOVED else [str(r) for r in event.data["role_ids"]]
    store = store_of(ctx)
    mappings = store.mappings()
    ended = 0
    for session in store.sessions(user):
        if session.guild_id != guild:
            continue  # roles elsewhere say nothing about this server's sessions
        why = lost_access(session, roles, mappings)
        try:
            if why and await end_for(ctx, store, session, why, "sso:member-event"):
                ended += 1
        except Exception as exc:  # a token session's cluster is away: the re-check retries
            ctx.log.warning("sso: ending session %s (%s): %s", session.id, why, exc)
    return ended


async def expire_tokens(ctx: Any, store: Any) -> int:
    """Token-mode sessions past their end: their Secret deleted, so their token (which
    Kubernetes makes last at least 10 minutes) stops with the session, not after."""
    now = store.clock()
    ended = 0
    for session in store.sessions(active=False):
        due = session.mode == TOKEN and session.revoked is None and session.expires <= now
        try:
            if due and await access.end(ctx, store, session, "sso:expired"):
                ended += 1
        except Exception as exc:  # the cluster is away: tried again next minute
            ctx.log.warning("sso: ending expired token session %s: %s", session.id, exc)
    return ended


async def recheck(ctx: Any) -> int:
    """Revoke the sessions whose holder left or lost a mapped role; returns how many."""
    store = store_of(ctx)
    await expire_tokens(ctx, store)
    token = bot_token()
    if token is None:
        return 0
    sessions = store.sessions()
    if not sessions:
        return 0
    api_url = DiscordOAuth.from_env().api_url
    mappings = store.mappings()
    revoked = 0
    by_guild: dict[str, list[str]] = {}
    for session in sessions:
        by_guild.setdefault(session.guild_id, []).append(session.user_id)
    for guild, users in by_guild.items():
        roles = await member_roles(api_url, token, guild, sorted(set(users)))
        for session in sessions:
            if session.guild_id != guild:
                continue
            why = lost_access(session, roles.get(session.user_id), mappings)
            if why and await end_for(ctx, store, session, why, "sso:recheck"):
                revoked += 1
    return revoked
