"""The periodic re-check: a member who left the server, or lost a role a session's groups
came from, loses the session (when the bot's token is there to read members)."""

from __future__ import annotations

from typing import Any

from clustercord_builtins.sso import access
from clustercord_builtins.sso.flow import DiscordOAuth, bot_token, member_roles
from clustercord_builtins.sso.sessions import TOKEN, store_of
from clustercord_builtins.sso.web import groups_for

RECHECK_JOB = "sso-recheck-members"


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
            now_roles = roles.get(session.user_id)
            why = None
            if now_roles is None:
                why = "left the server"
            elif not set(session.groups) <= set(groups_for(now_roles, mappings)):
                why = "lost a mapped role"
            if why and await access.end(ctx, store, session, "sso:recheck"):
                revoked += 1
                ctx.audit.record(
                    "revoke",
                    actor="sso:recheck",
                    details={"session": session.id, "user": session.user_id, "why": why},
                )
    return revoked
