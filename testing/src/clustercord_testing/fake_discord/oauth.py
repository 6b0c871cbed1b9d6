"""Discord's OAuth2 in the fake: the authorize page, the token endpoint, and what an access
token reads (``/users/@me``, the member in a guild), plus the bot's read of a member.

Discord's rules kept (see research/peers-recording-sso.md, B(b)):

- ``GET /oauth2/authorize`` (the browser's page): ``response_type=code``, the application's
  ``client_id``, a registered ``redirect_uri``, ``scope``; PKCE ``S256`` only. Whoever
  :meth:`FakeOAuth.login` signed in "approves" at once: a redirect to ``redirect_uri`` with
  ``code`` and ``state``. Nobody signed in: 401.
- ``POST /api/oauth2/token``: form-encoded only (JSON is refused, as by Discord); client
  authentication by HTTP Basic or in the body; the code once, within 10 minutes, for the same
  ``redirect_uri``; the PKCE verifier (43 to 128 characters) must hash to the challenge.
  Errors are RFC 6749 JSON (``invalid_grant``, ``invalid_client``…).
- ``GET /api/users/@me`` with ``Bearer``: the user, ``mfa_enabled`` included (scope
  ``identify``); ``GET /api/users/@me/guilds/{guild}/member``: the member (scope
  ``guilds.members.read``), 404 ``Unknown Guild`` when not a member.
- ``GET /api/guilds/{guild}/members/{user}`` with the bot token: the member (404
  ``Unknown Member``).

Everything lands in :attr:`~.state.DiscordState.requests` like the REST calls.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from clustercord_testing.fake_discord.state import API_PREFIX, DiscordState

CODE_LIFETIME = 600.0
TOKEN_LIFETIME = 604800  # 7 days, as Discord's access tokens


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    user_id: str
    challenge: str | None
    issued: float
    used: bool = False


@dataclass
class FakeOAuth:
    """The OAuth side of the fake: its application's credentials and who is signed in."""

    state: DiscordState
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: set[str] = field(default_factory=set)
    signed_in: str | None = None
    """The Discord user whose browser opens the authorize page."""
    mfa: dict[str, bool] = field(default_factory=dict)
    members: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, tuple[str, tuple[str, ...], float]] = field(default_factory=dict)

    @property
    def client_id(self) -> str:
        return self.state.application_id

    @property
    def authorize_url(self) -> str:
        """What ``CLUSTERCORD_DISCORD_OAUTH_URL`` is set to (Discord: https://discord.com)."""
        return self.state.base_url

    def login(self, user_id: str, *, mfa: bool = False) -> None:
        """Sign ``user_id`` in, in "the browser" that follows authorize links."""
        self.state.user(user_id)
        self.signed_in = user_id
        self.mfa[user_id] = mfa

    def set_member(self, user_id: str, roles: list[str], guild_id: str | None = None) -> None:
        """Make ``user_id`` a member of the guild with ``roles`` (role ids)."""
        guild = guild_id or self.state.guild_id
        self.members[(guild, user_id)] = {
            "user": self.state.user(user_id),
            "roles": list(roles),
            "nick": None,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def remove_member(self, user_id: str, guild_id: str | None = None) -> None:
        self.members.pop((guild_id or self.state.guild_id, user_id), None)


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class OAuthApi(DiscordState):
    """The routes of :class:`FakeOAuth`, mixed into the fake."""

    @functools.cached_property
    def oauth(self) -> FakeOAuth:
        return FakeOAuth(self)

    def _add_oauth_routes(self, app: web.Application) -> None:
        add = app.router.add_route
        add("GET", "/oauth2/authorize", self._authorize)
        add("POST", f"{API_PREFIX}/oauth2/token", self._token)
        add("POST", "/api/oauth2/token", self._token)
        add("GET", f"{API_PREFIX}/users/@me/guilds/{{guild}}/member", self._my_member)
        add("GET", "/api/users/@me/guilds/{guild}/member", self._my_member)
        add("GET", "/api/users/@me", self._oauth_me)
        add("GET", f"{API_PREFIX}/guilds/{{guild}}/members/{{user}}", self._member)

    # -- the browser's page ---------------------------------------------------------------
    async def _authorize(self, request: web.Request) -> web.Response:
        oauth, query = self.oauth, request.query
        if query.get("response_type") != "code":
            return web.Response(status=400, text="unsupported response_type")
        if query.get("client_id") != oauth.client_id:
            return web.Response(status=400, text="Unknown application")
        redirect = query.get("redirect_uri", "")
        if redirect not in oauth.redirect_uris:
            return web.Response(status=400, text="Invalid OAuth2 redirect_uri")
        scopes = tuple(query.get("scope", "").split())
        if not scopes or not set(scopes) <= {"identify", "guilds", "guilds.members.read"}:
            return web.Response(status=400, text="Invalid scope")
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="code_challenge_method must be S256")
        if oauth.signed_in is None:
            return web.Response(status=401, text="log in to Discord first")
        code = secrets.token_urlsafe(24)
        oauth.codes[code] = Grant(
            oauth.client_id, redirect, scopes, oauth.signed_in, challenge, self.now()
        )
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        raise web.HTTPFound(f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(params)}")

    # -- the token endpoint ---------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        oauth = self.oauth
        if request.content_type != "application/x-www-form-urlencoded":
            self._violate("POST /oauth2/token: the body must be application/x-www-form-urlencoded")
            return _error(400, "invalid_request", "form-encoded body required")
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return _error(401, "invalid_client", "malformed Basic credentials")
        if client_id != oauth.client_id or not secrets.compare_digest(
            secret or "", oauth.client_secret
        ):
            return _error(401, "invalid_client", "unknown client or wrong secret")
        if form.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "authorization_code only")
        grant = oauth.codes.get(form.get("code", ""))
        if grant is None or grant.used or self.now() - grant.issued > CODE_LIFETIME:
            if grant is not None:
                grant.used = True
            return _error(400, "invalid_grant", 'Invalid "code" in request.')
        grant.used = True  # once, whatever happens next
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if not 43 <= len(verifier) <= 128 or digest.decode().rstrip("=") != grant.challenge:
                return _error(400, "invalid_grant", "code_verifier does not match")
        token = secrets.token_urlsafe(30)
        oauth.tokens[token] = (grant.user_id, grant.scopes, self.now() + TOKEN_LIFETIME)
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "refresh_token": secrets.token_urlsafe(30),
                "scope": " ".join(grant.scopes),
            }
        )

    # -- what a token reads ---------------------------------------------------------------
    def _bearer(self, request: web.Request, scope: str) -> str | web.Response:
        header = request.headers.get("Authorization", "")
        found = self.oauth.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if found is None or found[2] < self.now():
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        if scope not in found[1]:
            return web.json_response({"message": "Missing Access", "code": 50001}, status=403)
        return found[0]

    async def _oauth_me(self, request: web.Request) -> web.Response:
        user = self._bearer(request, "identify")
        if isinstance(user, web.Response):
            return user
        return web.json_response(
            {**self.user(user), "mfa_enabled": self.oauth.mfa.get(user, False), "flags": 0}
        )

    async def _my_member(self, request: web.Request) -> web.Response:
        user = self._bearer(request, "guilds.members.read")
        if isinstance(user, web.Response):
            return user
        member = self.oauth.members.get((request.match_info["guild"], user))
        if member is None:
            return web.json_response({"message": "Unknown Guild", "code": 10004}, status=404)
        return web.json_response(member)

    async def _member(self, request: web.Request) -> web.Response:
        key = (request.match_info["guild"], request.match_info["user"])
        member = self.oauth.members.get(key)
        if member is None:
            return web.json_response({"message": "Unknown Member", "code": 10007}, status=404)
        return web.json_response(member)
