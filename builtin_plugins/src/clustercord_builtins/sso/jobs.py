"""The periodic re-check: a member who left the server, or lost a role a session's groups
came from, loses the session (when the bot's token is there to read members)."""

from __future__ import annotations

from typing import Any

from clustercord_builtins.sso.flow import DiscordOAuth, bot_token, member_roles
from clustercord_builtins.sso.sessions import store_of
from clustercord_builtins.sso.web import groups_for

RECHECK_JOB = "sso-recheck-members"


async def recheck(ctx: Any) -> int:
    """Revoke the sessions whose holder left or lost a mapped role; returns how many."""
    token = bot_token()
    if token is None:
        return 0
    store = store_of(ctx)
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
            if why and store.revoke(session.id, "sso:recheck"):
                revoked += 1
                ctx.audit.record(
                    "revoke",
                    actor="sso:recheck",
                    details={"session": session.id, "user": session.user_id, "why": why},
                )
    return revoked
