"""Role loss seen at once: Discord's gateway (the fake's, in Discord's payload shapes, read
by the real hikari) tells the kernel a member lost a role or left; the kernel publishes
``discord:member-*`` to the plugins that subscribed, and the SSO plugin ends every session
whose holder no longer has a granting role, within a second: the next kubectl request is
refused. Nobody but the gateway front end can publish these events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import pytest

from clustercord_sdk.errors import PermissionDenied
from clustercord_sdk.events import FRONTEND_EVENTS, MEMBER_REMOVED, MEMBER_UPDATED, Event
from tests.sso.conftest import ALICE, ROLE

GUILD_MEMBERS_INTENT = 1 << 1
UNAUTHORIZED = "You must be logged in to the server"  # kubectl on a 401


@contextlib.asynccontextmanager
async def gateway_bot(sso, **settings):
    """A gateway bot (real hikari) connected to the fake's gateway, with the front end,
    started as ``clustercord serve`` starts it (:func:`start_gateway`: connected again
    without member events if Discord refuses them)."""
    import hikari

    from clustercord.frontends.discord.app import DiscordFrontend
    from clustercord.frontends.discord.intents import start_gateway
    from clustercord.frontends.discord.server import gateway_bot
    from tests.discord.conftest import discord_settings

    configured = discord_settings(sso.discord, **settings)
    frontends = []

    def prepare(bot):
        async def started(event):
            frontend = DiscordFrontend(sso.kernel, bot, configured)
            frontends.append(frontend)
            await frontend.start()

        bot.subscribe(hikari.StartedEvent, started)

    running = await asyncio.wait_for(
        start_gateway(configured, gateway_bot, prepare, check_for_updates=False), 20
    )
    [frontend] = frontends
    try:
        yield frontend
    finally:
        await frontend.stop()
        await running.bot.close()


@pytest.fixture
async def gateway(sso):
    async with gateway_bot(sso) as frontend:
        yield frontend


def session_row(sso, session_id: str) -> dict:
    return sso.sessions().get(session_id)


async def revoked_within(sso, session_id: str, seconds: float) -> float | None:
    """Seconds until the session was revoked, or None if it was not within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if session_row(sso, session_id)["revoked"] is not None:
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    return None


async def recheck(sso) -> None:
    """The SSO plugin's one-minute re-check of the members' roles, run once now."""
    [job] = [
        j for j in sso.kernel.scheduler.for_plugin("sso").jobs() if j.id == "sso-recheck-members"
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISCORD_TOKEN", sso.discord.bot_token)
        await sso.kernel.run_job(job)


def member_revokes(sso) -> list[dict]:
    return [
        r["options"]
        for r in sso.kernel.audit.iter_rows()
        if r["action"] == "sso:revoke" and r["actor"] == "sso:member-event"
    ]


async def test_losing_the_granting_role_ends_the_session_within_a_second(sso, gateway):
    # The bot asked Discord for member events (a privileged intent, on in the portal too).
    [connection] = sso.discord.gateway_sessions
    assert connection.identify["intents"] & GUILD_MEMBERS_INTENT
    config = await sso.kubeconfig()
    [session] = [s["id"] for s in sso.sessions().rows]

    # Still holding a granting role (another one added): nothing changes.
    assert await sso.discord.update_member(ALICE, [ROLE, "300000000000000003"]) == 1
    # A role change in another server says nothing about this server's sessions.
    assert await sso.discord.update_member(ALICE, [], guild_id="400000000000000004") == 1
    assert await revoked_within(sso, session, 0.5) is None
    still = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert still.returncode == 0, still.stderr
    assert member_revokes(sso) == []

    # The granting role is taken away: the session ends at once, not at the re-check (which
    # is not even running here: no scheduler loop and no bot token for it).
    assert await sso.discord.update_member(ALICE, ["300000000000000003"]) == 1
    took = await revoked_within(sso, session, 1.0)
    assert took is not None, "the session outlived its role by more than a second"
    refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert refused.returncode != 0
    assert UNAUTHORIZED in refused.stderr, refused.stderr
    [revoke] = member_revokes(sso)
    assert revoke["session"] == session and revoke["why"] == "lost a mapped role"

    # While the gateway holds the member events, nothing else can take them over.
    with pytest.raises(PermissionDenied, match="the Discord gateway publishes these"):
        sso.kernel.events.claim(FRONTEND_EVENTS, "plugin rogue")


async def test_leaving_the_server_ends_every_session_of_the_member(sso, gateway):
    first, second = await sso.kubeconfig(), await sso.kubeconfig()
    ids = {s["id"] for s in sso.sessions().rows}
    assert await sso.discord.remove_member(ALICE) == 1
    for session in ids:
        assert await revoked_within(sso, session, 1.0) is not None
    for config in (first, second):
        refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
        assert UNAUTHORIZED in refused.stderr, refused.stderr
    revokes = member_revokes(sso)
    assert {r["session"] for r in revokes} == ids
    assert {r["why"] for r in revokes} == {"left the server"}


async def test_without_the_members_intent_the_minute_re_check_remains(sso):
    # [discord] member_events = false (the Server Members intent not switched on in the
    # portal): the bot does not ask for it, Discord sends no member events, and nothing
    # claims them; role loss is then caught by the SSO plugin's re-check.
    async with gateway_bot(sso, member_events=False) as frontend:
        [connection] = sso.discord.gateway_sessions
        assert not connection.identify["intents"] & GUILD_MEMBERS_INTENT
        assert frontend.members is None
        config = await sso.kubeconfig()
        [session] = [s["id"] for s in sso.sessions().rows]
        assert await sso.discord.update_member(ALICE, []) == 0
        assert await revoked_within(sso, session, 0.5) is None
        publisher = sso.kernel.events.claim(FRONTEND_EVENTS, "a test")  # unclaimed
        publisher.release()
        await recheck(sso)
        assert session_row(sso, session)["revoked"] is not None
        refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
        assert UNAUTHORIZED in refused.stderr, refused.stderr


ROGUE = {
    "manifest": {
        "commands": [{"name": "forge", "description": "forge", "handler": "commands:forge"}]
    },
    "modules": {
        "commands": """
            import gc
            from clustercord_sdk import CommandError
            from clustercord_sdk.events import Event

            def forge(ctx):
                channel = next(
                    o for o in gc.get_objects() if type(o).__name__ == "Channel"
                    and hasattr(o, "request")
                )
                event = Event("discord:member-removed", data={
                    "user_id": "100000000000000001", "guild_id": "1"})
                refused = []
                for method in ("events.publish", "events.publish_sync", "kernel.events"):
                    try:
                        channel.request(method, event)
                    except CommandError as exc:
                        refused.append(str(exc))
                return " | ".join(refused)
        """
    },
}


@pytest.fixture
def rogue(clustercord_harness, make_plugin):
    """An isolated (third-party) plugin that tries to publish a member event itself."""
    return clustercord_harness.add_plugin(make_plugin("rogue", **ROGUE), isolated=True)


async def test_a_forged_member_event_is_refused_and_ends_nothing(rogue, sso):
    config = await sso.kubeconfig()
    [session] = [s["id"] for s in sso.sessions().rows]
    forged = Event(MEMBER_REMOVED, data={"user_id": ALICE, "guild_id": sso.discord.guild_id})
    updated = Event(
        MEMBER_UPDATED,
        data={"user_id": ALICE, "guild_id": sso.discord.guild_id, "role_ids": []},
    )
    # The kernel's bus refuses them from anyone but the gateway front end's publisher.
    for event in (forged, updated):
        with pytest.raises(PermissionDenied, match="come from Discord's gateway only"):
            await sso.kernel.events.publish(event)
        with pytest.raises(PermissionDenied, match="come from Discord's gateway only"):
            sso.kernel.events.publish_sync(event)
    # An isolated plugin's process reaches no event bus at all over its pipe.
    tried = await sso.harness.run("/forge")
    assert tried.ok, tried.text
    refusals = tried.text.split(" | ")
    assert len(refusals) == 3, tried.text
    assert all("is not a service an isolated plugin can call" in r for r in refusals)
    # Nothing ended: the session still works.
    assert session_row(sso, session)["revoked"] is None
    works = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert works.returncode == 0, works.stderr
    # A publisher for the events is theirs alone once claimed, and only for those types.
    publisher = sso.kernel.events.claim(FRONTEND_EVENTS, "the Discord gateway")
    with pytest.raises(PermissionDenied, match="may not publish 'approval:requested'"):
        await publisher.publish(Event("approval:requested"))
    publisher.release()
    with pytest.raises(PermissionDenied, match="may not publish"):
        await publisher.publish(forged)  # released: no longer a publisher
    assert session_row(sso, session)["revoked"] is None


def test_member_events_are_on_unless_the_config_says_otherwise():
    from clustercord.frontends.discord.settings import DiscordSettings

    assert DiscordSettings.load({}, env={}).member_events is True
    assert DiscordSettings.load({"member_events": False}, env={}).member_events is False


async def test_a_portal_without_server_members_falls_back_to_the_re_check(sso, caplog):
    # The upgrade asks for Server Members by default; this application's Developer Portal
    # does not have it switched on, so Discord closes the connection with 4014.
    from clustercord.frontends.discord.intents import READINESS_NOTE
    from clustercord_testing.fake_discord.gateway import PRIVILEGED_INTENTS

    sso.discord.portal_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS_INTENT
    config = await sso.kubeconfig()
    [session] = [s["id"] for s in sso.sessions().rows]
    with caplog.at_level(logging.INFO, logger="clustercord"):
        async with gateway_bot(sso) as frontend:
            # Refused once, then connected again without the intent.
            [refused] = sso.discord.refused_identifies
            assert refused & GUILD_MEMBERS_INTENT
            [connection] = sso.discord.gateway_sessions
            assert not connection.identify["intents"] & GUILD_MEMBERS_INTENT
            assert connection.identify["intents"] == refused & ~GUILD_MEMBERS_INTENT
            assert frontend.members is None

            # The bot answers commands.
            answered = await sso.discord.invoke(None, "sso list-sessions", role_ids=[ROLE])
            assert session in json.dumps(answered.message), answered.message

            # /readyz stays ready and says why role loss is slower.
            sso.kernel.readiness.frontend = lambda: None  # as `clustercord serve` does
            async with sso.browser.get(sso.kernel.http.url + "/readyz") as response:
                text = await response.text()
            assert response.status == 200, text
            assert text.startswith("ready\n")
            assert (
                f"{READINESS_NOTE}: off: Discord refused the Server Members intent; role loss "
                "is caught by the one-minute re-check only\n"
            ) in text

            # No member event comes: the role loss is caught by the re-check.
            assert await sso.discord.update_member(ALICE, []) == 0
            assert await revoked_within(sso, session, 0.5) is None
            await recheck(sso)
            assert session_row(sso, session)["revoked"] is not None
            refused_now = await sso.kubectl(config, "get", "pods", "-n", "dev")
            assert UNAUTHORIZED in refused_now.stderr, refused_now.stderr
        assert READINESS_NOTE not in sso.kernel.readiness.notes  # the front end stopped

    # One warning, saying what to switch on where, and what it costs meanwhile.
    [warning] = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("clustercord.")
    ]
    said = warning.getMessage()
    assert warning.name == "clustercord.discord"
    assert "Discord refused the Server Members intent (gateway close code 4014)" in said
    assert "Switch on 'Server Members Intent' in the Developer Portal" in said
    assert "role loss is caught by the one-minute re-check only" in said


async def test_member_events_required_by_the_config_stop_with_what_to_switch_on(sso):
    from clustercord.frontends.discord.intents import start_gateway
    from clustercord.frontends.discord.server import gateway_bot
    from clustercord_sdk.errors import UsageError
    from clustercord_testing.fake_discord.gateway import PRIVILEGED_INTENTS
    from tests.discord.conftest import discord_settings

    sso.discord.portal_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS_INTENT
    required = discord_settings(sso.discord, member_events=True, member_events_required=True)
    prepared = []
    with pytest.raises(UsageError) as refused:
        await asyncio.wait_for(
            start_gateway(required, gateway_bot, prepared.append, check_for_updates=False), 20
        )
    assert str(refused.value) == (
        "Discord refused the Server Members intent (gateway close code 4014), which "
        "[discord] member_events = true requires: switch on 'Server Members Intent' in the "
        "Developer Portal → your application → Bot → Privileged Gateway Intents, or set "
        "member_events = false to rely on the one-minute role re-check"
    )
    # Asked once, not again without it; the bot it started is closed.
    assert len(sso.discord.refused_identifies) == 1
    assert sso.discord.gateway_sessions == []
    [bot] = prepared
    assert not bot.is_alive


async def test_message_content_refused_stops_even_without_member_events(sso):
    # Both privileged intents off in the portal: the fallback is refused too, and the
    # error names the intent still missing (not Server Members, already dropped).
    from clustercord.frontends.discord.intents import CONTENT_REFUSED, start_gateway
    from clustercord.frontends.discord.server import gateway_bot
    from clustercord_sdk.errors import UsageError
    from tests.discord.conftest import discord_settings

    sso.discord.portal_intents = 0
    prepared = []
    with pytest.raises(UsageError, match="Message Content Intent") as refused:
        await asyncio.wait_for(
            start_gateway(
                discord_settings(sso.discord), gateway_bot, prepared.append,
                check_for_updates=False,
            ),
            20,
        )  # fmt: skip
    assert str(refused.value) == CONTENT_REFUSED
    assert [bool(i & GUILD_MEMBERS_INTENT) for i in sso.discord.refused_identifies] == [
        True,
        False,
    ]
    assert sso.discord.gateway_sessions == []
    assert [bot.is_alive for bot in prepared] == [False, False]


def test_member_events_must_be_true_or_false():
    from clustercord.frontends.discord.settings import DiscordSettings
    from clustercord_sdk.errors import UsageError

    assert DiscordSettings.load({}, env={}).member_events_required is False
    assert DiscordSettings.load({"member_events": True}, env={}).member_events_required is True
    off = DiscordSettings.load({"member_events": False}, env={})
    assert (off.member_events, off.member_events_required) == (False, False)
    with pytest.raises(UsageError, match="member_events must be true or false, not 'false'"):
        DiscordSettings.load({"member_events": "false"}, env={})
    with pytest.raises(UsageError, match="unknown key 'member_events_required'"):
        DiscordSettings.load({"member_events_required": True}, env={})
