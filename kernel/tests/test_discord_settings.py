"""``[discord]`` settings, the interaction signature check and ``clustercord discord commands``."""

from __future__ import annotations

import json
import re
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clustercord.frontends.discord.server import SignatureCheck
from clustercord.frontends.discord.settings import DiscordSettings
from clustercord_sdk.errors import UsageError


def test_settings_from_the_file_and_the_environment():
    settings = DiscordSettings.load(
        {"guilds": ["123", "456"], "defer_after": 1.5, "alerts_channel": 99},
        {
            "DISCORD_TOKEN": "t",
            "DISCORD_PUBLIC_KEY": "k",
            "CLUSTERCORD_DISCORD_API_URL": "http://x",
        },
    )
    assert settings.guilds == (123, 456)
    assert settings.allowed_guilds == frozenset({"123", "456"})
    assert (settings.token, settings.public_key, settings.api_url) == ("t", "k", "http://x")
    assert (settings.defer_after, settings.alerts_channel) == (1.5, "99")
    assert DiscordSettings.load({}, {"CLUSTERCORD_DISCORD_GUILDS": "1,2"}).guilds == (1, 2)
    assert DiscordSettings.load({}, {}).allowed_guilds is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"guilds": ["general"]}, "guilds must be a list of server (guild) ids"),
        ({"defer_after": 5}, "defer_after must be above 0 and below 3 seconds"),
        ({"confirm_timeout": "soon"}, "confirm_timeout must be a number of seconds"),
        ({"gilds": []}, "unknown key 'gilds'"),
    ],
)
def test_bad_settings_are_refused_clearly(table, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        DiscordSettings.load(table, {})


def keypair():
    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def test_signature_check_refuses_stale_unsigned_and_malformed():
    # The Ed25519 verification itself is hikari's (tests/discord: forged requests get 401).
    key, public = keypair()
    check = SignatureCheck(public, max_age=300)
    body = b'{"type": 1}'
    now = str(int(time.time()))
    assert check.problem(key.sign(now.encode() + body).hex(), now) is None
    old = str(int(time.time()) - 600)
    assert check.problem(key.sign(old.encode() + body).hex(), old) == "stale request signature"
    ahead = str(int(time.time()) + 600)
    assert check.problem(key.sign(ahead.encode() + body).hex(), ahead) == (
        "stale request signature"
    )
    assert check.problem(None, now) == "missing signature headers"
    assert check.problem(key.sign(body).hex(), None) == "missing signature headers"
    assert check.problem("zz", now) == "invalid request signature"
    assert check.problem("ab" * 32, now) == "invalid request signature"  # 32 bytes, not 64
    assert check.problem(key.sign(body).hex(), "yesterday") == "invalid signature timestamp"
    for bad in ("not hex", "ab" * 31):
        with pytest.raises(UsageError, match="64 hex characters"):
            SignatureCheck(bad, 300)


def test_cli_prints_the_registration_payload(tmp_path, monkeypatch, capsys):
    from clustercord.cli import main

    monkeypatch.setenv("CLUSTERCORD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLUSTERCORD_PLUGINS", "")  # no plugin: an empty, valid payload
    assert main(["discord", "commands", "--json", "--guild", "123"]) == 0
    assert json.loads(capsys.readouterr().out) == {"guilds": ["123"], "commands": []}
    assert main(["discord", "commands", "--guild", "general"]) == 2
    assert "a server id is a number" in capsys.readouterr().err


def test_serve_without_a_token_says_what_is_missing(tmp_path, monkeypatch, capsys):
    from clustercord.cli import main

    monkeypatch.setenv("CLUSTERCORD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["serve", "--mode", "interactions"]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err
