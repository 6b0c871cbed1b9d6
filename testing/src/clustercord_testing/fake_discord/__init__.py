"""A fake Discord for tests: the REST API a bot calls, and the users who call the bot.

::

    async def test_ping(fake_discord):
        discord = fake_discord                      # or: async with FakeDiscord() as discord
        ...start your interaction server with rest_url=discord.api_url...
        result = await discord.invoke(endpoint_url, "ping")
        assert result.message["content"] == "pong"

The fake answers the REST endpoints a hikari ``RESTBot`` (or ``GatewayBot``'s REST
client) with lightbulb 3 calls: the application, commands, interaction callbacks,
webhook follow-ups, channel messages, DMs and threads. It records every request
(:attr:`FakeDiscord.requests`) and checks every payload against Discord's limits
(:mod:`clustercord_testing.fake_discord.limits`): a payload Discord would reject is
answered the way Discord answers it *and* recorded in :attr:`FakeDiscord.violations`,
which the ``fake_discord`` pytest fixture turns into a failed test.

It plays Discord's side of interactions too: :meth:`FakeDiscord.invoke`,
:meth:`~FakeDiscord.click`, :meth:`~FakeDiscord.submit_modal` and
:meth:`~FakeDiscord.autocomplete` POST Ed25519-signed interactions to an interaction
server, built from the commands the bot registered, like the Discord client would
(``forged=True`` signs with another key, ``stale=True`` with an old timestamp). Given
``None`` instead of a URL they go as ``INTERACTION_CREATE`` events to a ``GatewayBot``
connected to the fake's minimal gateway (HELLO, IDENTIFY, READY, heartbeats; zlib or
zstd transport compression; privileged intents checked against ``portal_intents``, refused
with 4014 as Discord does; member events on request; no guilds or other events).

Discord's rules of the interaction lifecycle are kept: the initial response within
3 seconds, once, through the callback endpoint or in the HTTP reply to Discord's POST
(which counts from the moment the fake has read it); follow-ups and edits of
``@original`` only after it and for 15 minutes (the clock is injectable:
:meth:`FakeDiscord.advance` ages every token); the first follow-up to a deferred
response fills in the "thinking…" message.

The package, by concern (each module imports only those listed above it):

- :mod:`.limits`: Discord's payload rules, as Discord checks them.
- :mod:`.state`: the application, the world (users, channels, messages, commands), the
  records (requests, violations, interactions), the clock, and the data classes.
- :mod:`.responses`: the rules of an interaction's answers (deadline, once, follow-ups).
- :mod:`.interactions`: the driver API; interactions built, signed and delivered.
- :mod:`.rest`: the REST routes a bot calls, and the middleware that records them.
- :mod:`.gateway`: the minimal gateway.
- :mod:`.server`: :class:`FakeDiscord`, the parts above put together and served.
"""

from clustercord_testing.fake_discord.interactions import STALE_AGE
from clustercord_testing.fake_discord.server import FakeDiscord
from clustercord_testing.fake_discord.state import (
    ACK_DEADLINE,
    ATTACHMENT_SIZE_LIMIT,
    TOKEN_LIFETIME,
    GatewaySession,
    Interaction,
    RecordedFile,
    RecordedRequest,
)

__all__ = [
    "ACK_DEADLINE",
    "ATTACHMENT_SIZE_LIMIT",
    "STALE_AGE",
    "TOKEN_LIFETIME",
    "FakeDiscord",
    "GatewaySession",
    "Interaction",
    "RecordedFile",
    "RecordedRequest",
]
