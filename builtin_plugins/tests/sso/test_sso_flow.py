"""The SSO plugin's pieces against the fake Discord's OAuth and a real plugin store: PKCE,
form-encoded exchange, single use of states, codes and downloads, hashed tokens."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from clustercord_builtins.sso.flow import DiscordOAuth
from clustercord_builtins.sso.sessions import SsoStore
from clustercord_builtins.sso.tokens import digest
from clustercord_builtins.sso.web import groups_for, source_allowed
from clustercord_sdk.errors import CommandError, PermissionDenied

USER, ROLE = "300000000000000001", "400000000000000004"
REDIRECT = "https://cc.example.org/plugins/sso/callback"


def oauth_of(discord, secret=None) -> DiscordOAuth:
    return DiscordOAuth(
        discord.oauth.client_id,
        secret or discord.oauth.client_secret,
        discord.oauth.authorize_url,
        discord.api_url,
    )


@pytest.fixture
def discord(fake_discord):
    fake_discord.oauth.redirect_uris.add(REDIRECT)
    fake_discord.oauth.login(USER, mfa=True)
    fake_discord.oauth.set_member(USER, [ROLE])
    return fake_discord


async def code_for(url: str) -> str:
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 302, await response.text()
        return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def test_the_authorize_link_asks_for_pkce_s256_and_the_two_scopes():
    oauth = DiscordOAuth("123", "s", "https://discord.com", "https://discord.com/api/v10")
    verifier = "v" * 64
    url = urlsplit(oauth.authorize_url(REDIRECT, "the-state", verifier))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.netloc == "discord.com" and url.path == "/oauth2/authorize"
    assert query["scope"] == "identify guilds.members.read"
    assert query["code_challenge_method"] == "S256"
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == expected.decode()
    assert query["state"] == "the-state" and query["redirect_uri"] == REDIRECT
    assert verifier not in url.query


def test_without_client_credentials_login_says_what_to_set():
    with pytest.raises(CommandError, match="DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET"):
        DiscordOAuth.from_env({"DISCORD_CLIENT_ID": "1"})


async def test_sign_in_reads_the_user_and_role_ids(discord):
    oauth, verifier = oauth_of(discord), "x" * 50
    code = await code_for(oauth.authorize_url(REDIRECT, "s", verifier))
    user, roles = await oauth.sign_in(code, REDIRECT, verifier, discord.guild_id)
    assert user["id"] == USER and user["mfa_enabled"] is True
    assert roles == [ROLE]
    token = next(r for r in discord.requests if r.path == "/oauth2/token")
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # Used once: the same code again is refused by Discord.
    with pytest.raises(PermissionDenied, match="refused the sign-in code"):
        await oauth.sign_in(code, REDIRECT, verifier, discord.guild_id)


async def test_a_pkce_mismatch_a_wrong_secret_and_a_non_member_are_refused(discord):
    oauth = oauth_of(discord)
    code = await code_for(oauth.authorize_url(REDIRECT, "s", "a" * 50))
    with pytest.raises(PermissionDenied, match="invalid_grant"):
        await oauth.sign_in(code, REDIRECT, "b" * 50, discord.guild_id)
    code = await code_for(oauth.authorize_url(REDIRECT, "s", "a" * 50))
    with pytest.raises(PermissionDenied, match="invalid_client"):
        await oauth_of(discord, "wrong").sign_in(code, REDIRECT, "a" * 50, discord.guild_id)
    discord.oauth.remove_member(USER)
    code = await code_for(oauth.authorize_url(REDIRECT, "s", "a" * 50))
    with pytest.raises(PermissionDenied, match="not a member"):
        await oauth.sign_in(code, REDIRECT, "a" * 50, discord.guild_id)


async def test_the_fake_refuses_a_json_token_request_as_discord_does(discord):
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{discord.api_url}/oauth2/token", json={"code": "x"}) as response,
    ):
        assert response.status == 400
    assert any("form-urlencoded" in v for v in discord.violations)
    discord.violations.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(plugin_stores):
    from clustercord_builtins.sso.sessions import MIGRATIONS

    raw = plugin_stores.store("sso", sealed=True)
    for _, step in MIGRATIONS:
        step(raw)
    clock = Clock()
    return SsoStore(raw, raw.sealer, clock), clock


def test_states_are_single_use_and_expire(store):
    sso, clock = store
    state, verifier = sso.new_state(USER, "g", "prod", 3600)
    assert len(verifier) >= 43
    row = sso.take_state(state)
    assert row["verifier"] == verifier and row["user_id"] == USER and row["cluster"] == "prod"
    assert sso.take_state(state) is None
    late, _ = sso.new_state(USER, "g", "prod", 3600)
    clock.now += 601
    assert sso.take_state(late) is None
    # What is stored: the state's hash, the verifier sealed.
    raw = [*sso.store.table("states").rows, {"hash": digest(state)}]
    assert all(state not in str(r) and verifier not in str(r) for r in raw)


def test_tokens_are_stored_hashed_and_checked_whole(store):
    sso, clock = store
    session, token = sso.create_session(USER, "alice", "g", "prod", ["dev"], 3600, "127.0.0.1")
    assert sso.authenticate(token).id == session.id
    assert token not in str(list(sso.store.table("sessions").rows))
    assert sso.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert sso.authenticate(f"ccsso_{session.id}_guess") is None
    assert sso.authenticate("Bearer nothing") is None
    assert sso.revoke(session.id, "admin") and not sso.revoke(session.id, "admin")
    assert not sso.authenticate(token).active(clock.now)


def test_a_download_works_once_within_five_minutes(store):
    sso, clock = store
    link = sso.new_download("s1", "apiVersion: v1\ntoken: secret\n")
    assert "secret" not in str(list(sso.store.table("downloads").rows))
    assert sso.take_download(link).startswith("apiVersion")
    assert sso.take_download(link) is None
    late = sso.new_download("s1", "x")
    clock.now += 301
    assert sso.take_download(late) is None


def test_role_mapping_and_address_allowlist():
    assert groups_for([ROLE, "other"], {ROLE: ["dev", "view"], "x": ["admin"]}) == ["dev", "view"]
    assert groups_for(["other"], {ROLE: ["dev"]}) == []
    assert source_allowed("10.1.2.3", "")
    assert source_allowed("10.1.2.3", "192.168.1.0/24, 10.0.0.0/8")
    assert not source_allowed("127.0.0.1", "10.0.0.0/8")
    assert not source_allowed("not-an-ip", "10.0.0.0/8")
    assert not source_allowed("10.1.2.3", "10.0.0.0/8x")  # a typo refuses, never opens
