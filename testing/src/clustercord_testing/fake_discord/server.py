"""The :class:`FakeDiscord` itself: its parts put together and served on a local port."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from clustercord_testing.fake_discord.gateway import Gateway
from clustercord_testing.fake_discord.interactions import InteractionDriver
from clustercord_testing.fake_discord.oauth import OAuthApi
from clustercord_testing.fake_discord.rest import RestApi


class FakeDiscord(InteractionDriver, RestApi, Gateway, OAuthApi):
    """A fake Discord REST API on 127.0.0.1 that also delivers signed interactions.

    Use it as an async context manager (or :meth:`start` / :meth:`close`). ``clock``
    (seconds since the epoch) decides token ages and signature timestamps; tests age
    tokens with :meth:`advance` instead of sleeping.

    Its state (the application, the world and the records) is
    :class:`~.state.DiscordState`; the users' side is :class:`~.interactions.InteractionDriver`,
    under Discord's rules of :class:`~.responses.ResponseRules`; the bot's side is the REST
    API of :class:`~.rest.RestApi` and the gateway of :class:`~.gateway.Gateway`.
    """

    _runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> FakeDiscord:
        """Listen on a free port of ``host``."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_oauth_routes(app)  # before the REST routes: /users/@me/guilds/… first
        self._add_rest_routes(app)
        self._add_gateway_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.delivery_timeout),
        )
        return self

    async def close(self) -> None:
        for session in list(self.gateway_sessions):
            await session.ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
