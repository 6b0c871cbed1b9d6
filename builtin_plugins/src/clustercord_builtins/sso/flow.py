"""Discord's side of a login: the authorize link, the code exchange, who signed in.

Endpoints (overridable for tests and proxies): ``CLUSTERCORD_DISCORD_OAUTH_URL`` (the
authorize page's base, default ``https://discord.com``) and ``CLUSTERCORD_DISCORD_API_URL``
(the API, default ``https://discord.com/api/v10``); the application's ``DISCORD_CLIENT_ID``
and ``DISCORD_CLIENT_SECRET``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from clustercord_sdk.errors import CommandError, PermissionDenied

SCOPES = "identify guilds.members.read"
TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class DiscordOAuth:
    client_id: str
    client_secret: str
    oauth_url: str
    api_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DiscordOAuth:
        env = os.environ if env is None else env
        client_id, secret = env.get("DISCORD_CLIENT_ID"), env.get("DISCORD_CLIENT_SECRET")
        if not client_id or not secret:
            raise CommandError(
                "SSO is not set up: DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET (Developer "
                "Portal → OAuth2) must be set where ClusterCord runs"
            )
        return cls(
            client_id,
            secret,
            (env.get("CLUSTERCORD_DISCORD_OAUTH_URL") or "https://discord.com").rstrip("/"),
            (env.get("CLUSTERCORD_DISCORD_API_URL") or "https://discord.com/api/v10").rstrip("/"),
        )

    def authorize_url(self, redirect_uri: str, state: str, verifier: str) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "scope": SCOPES,
                "state": state,
                "redirect_uri": redirect_uri,
                "code_challenge": challenge.decode().rstrip("="),
                "code_challenge_method": "S256",
                "prompt": "consent",
            }
        )
        return f"{self.oauth_url}/oauth2/authorize?{query}"

    async def sign_in(
        self, code: str, redirect_uri: str, verifier: str, guild_id: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Exchange ``code`` (form-encoded, as Discord requires) and read who signed in and
        their role ids in ``guild_id``. Raises PermissionDenied with what went wrong."""
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
            async with http.post(f"{self.api_url}/oauth2/token", data=form) as response:
                answer = await response.json(content_type=None)
                if response.status != 200 or "access_token" not in answer:
                    raise PermissionDenied(
                        f"Discord refused the sign-in code ({answer.get('error', response.status)})"
                    )
            headers = {"Authorization": f"Bearer {answer['access_token']}"}
            async with http.get(f"{self.api_url}/users/@me", headers=headers) as response:
                if response.status != 200:
                    raise PermissionDenied("Discord did not say who signed in")
                user = await response.json()
            url = f"{self.api_url}/users/@me/guilds/{guild_id}/member"
            async with http.get(url, headers=headers) as response:
                if response.status == 404:
                    raise PermissionDenied("you are not a member of the server that maps roles")
                if response.status != 200:
                    raise PermissionDenied("Discord did not give your roles in the server")
                member = await response.json()
        return user, [str(r) for r in member.get("roles", [])]


def bot_token(env: Mapping[str, str] | None = None) -> str | None:
    """The bot's token (``DISCORD_TOKEN``), to re-read members' roles; ``None`` without."""
    env = os.environ if env is None else env
    return env.get("DISCORD_TOKEN") or None


async def member_roles(
    api_url: str, token: str, guild_id: str, user_ids: list[str]
) -> dict[str, list[str] | None]:
    """Each user's role ids in ``guild_id`` as the bot reads them (``None``: not a member
    any more). Any other answer raises: a Discord outage must not revoke everyone."""
    found: dict[str, list[str] | None] = {}
    headers = {"Authorization": f"Bot {token}"}
    async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as http:
        for user in user_ids:
            async with http.get(f"{api_url}/guilds/{guild_id}/members/{user}") as response:
                if response.status == 404:
                    found[user] = None
                    continue
                if response.status != 200:
                    raise CommandError(f"Discord answered {response.status} for member {user}")
                member = await response.json()
                found[user] = [str(r) for r in member.get("roles", [])]
    return found
