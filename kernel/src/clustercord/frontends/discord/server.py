"""``clustercord serve``: the bot in interaction-server mode or gateway mode.

Interaction server: Discord POSTs each interaction, signed with Ed25519, to our
HTTP endpoint. Discord's documentation asks for 401 on a bad signature, and a
captured request must not be replayable later: in front of hikari's RESTBot we
refuse *stale* (and unsigned) requests with 401; hikari verifies the signature
itself (once is enough: it is a tenth of what an interaction costs) and its 400
for a forged one becomes our 401. Within the timestamp window, a request whose
interaction id was already received runs nothing and gets 409: the frontend claims
each id once, after hikari verified the signature (so a forged request cannot use up
a real interaction's id) and before any work (see :mod:`.replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hikari
from aiohttp import web

from clustercord import lease
from clustercord.frontends.discord import intents
from clustercord.frontends.discord.app import DiscordFrontend
from clustercord.frontends.discord.replay import delivery
from clustercord.frontends.discord.settings import DiscordSettings
from clustercord_sdk.errors import UsageError

log = logging.getLogger("clustercord.discord")

SIGNATURE = "X-Signature-Ed25519"
TIMESTAMP = "X-Signature-Timestamp"
FORGED = b"Invalid request signature"  # hikari's 400 body when the signature is wrong
ANSWER_WINDOW = 2.5
"""Seconds a stopping interaction server waits for requests in flight: Discord wants a
first answer within 3 s, and the responder defers before that."""
DRAIN = 15.0
"""Seconds a stopping bot lets deferred interactions finish their follow-ups (Kubernetes
gives a pod 30 s between SIGTERM and SIGKILL by default)."""


class SignatureCheck:
    """The signature headers of a request, and a timestamp no older than ``max_age``.

    The Ed25519 signature itself is hikari's to verify (:func:`start_interaction_server`).
    """

    def __init__(
        self, public_key_hex: str, max_age: float, clock: Callable[[], float] = time.time
    ) -> None:
        try:
            key = bytes.fromhex(public_key_hex)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise UsageError(
                "DISCORD_PUBLIC_KEY must be the application's public key: 64 hex characters "
                "(Developer Portal → General Information)"
            )
        self.max_age = max_age
        self.clock = clock

    def problem(self, signature: str | None, timestamp: str | None) -> str | None:
        """``None`` when the request is signed and fresh, else why not."""
        if not signature or not timestamp:
            return "missing signature headers"
        try:
            if len(bytes.fromhex(signature)) != 64:
                return "invalid request signature"
        except ValueError:
            return "invalid request signature"
        try:
            age = self.clock() - float(timestamp)
        except ValueError:
            return "invalid signature timestamp"
        if abs(age) > self.max_age:
            return "stale request signature"
        return None


@dataclass
class RunningServer:
    """An interaction server listening on ``url``."""

    bot: hikari.RESTBot
    frontend: DiscordFrontend
    runner: web.AppRunner
    url: str
    stop_event: asyncio.Event
    background: list[asyncio.Task[Any]]
    unwatch: Callable[[], None] = lambda: None
    """Stops counting Discord's rate limits in the kernel's metrics."""

    async def close(self, drain: float = DRAIN) -> None:
        """Stop listening (requests in flight get their first answer, within Discord's
        3 s), let interactions in progress finish up to ``drain`` seconds, then stop the
        background work (watches, the HTTP service) and the REST client (idempotent)."""
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        await self.runner.cleanup()
        await self.frontend.drain(drain)
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.frontend.stop()
        await self.bot.rest.close()
        self.unwatch()


def rest_bot(settings: DiscordSettings) -> hikari.RESTBot:
    if not settings.token:
        raise UsageError(
            "DISCORD_TOKEN is not set: the bot token (Developer Portal → Bot → Reset Token)"
        )
    if not settings.public_key:
        raise UsageError(
            "DISCORD_PUBLIC_KEY is not set: the application's public key "
            "(Developer Portal → General Information)"
        )
    return hikari.RESTBot(
        settings.token,
        "Bot",
        public_key=settings.public_key,
        http_settings=http_settings(),
        rest_url=settings.api_url,
        banner=None,
        logs=None,
    )


def http_settings() -> hikari.impl.HTTPSettings:
    """Keep connections to Discord open between requests: hikari closes each one by default
    (for Windows' sake), which costs a TCP and TLS handshake per REST call."""
    return hikari.impl.HTTPSettings(force_close_transports=False)


async def start_interaction_server(
    kernel: Any,
    settings: DiscordSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    background: bool = True,
    active: Callable[[], bool] = lambda: True,
) -> RunningServer:
    """Sync the commands, then listen for signed interactions on ``host:port`` (0: any port).
    While ``active()`` is false (another instance may hold the Lease) requests get 503 and
    run nothing."""
    check = SignatureCheck(settings.public_key or "", settings.signature_max_age)
    bot = rest_bot(settings)
    bot.rest.start()
    try:
        frontend = DiscordFrontend(kernel, bot, settings)
        await frontend.start()
    except BaseException:
        await bot.rest.close()
        raise

    async def interactions(request: web.Request) -> web.StreamResponse:
        if not active():  # e.g. read after a freeze longer than the Lease: not ours to run
            log.warning("refused an interaction request: another instance holds the Lease")
            return web.Response(status=503, text="not the active instance: try again")
        headers = request.headers
        problem = check.problem(headers.get(SIGNATURE), headers.get(TIMESTAMP))
        if problem is None:
            with delivery(float(headers[TIMESTAMP])) as current:
                response = await bot.interaction_server.aiohttp_hook(request)
            if current.replayed is not None:
                return web.Response(
                    status=409,
                    text=f"replayed interaction: {current.replayed} was already received; "
                    "it runs once",
                )
            if response.status != 400 or response.body != FORGED:
                return response
            problem = "invalid request signature"
        log.warning("refused an interaction request: %s", problem)
        return web.Response(status=401, text=problem)

    app = web.Application()
    app.router.add_post("/", interactions)
    app.router.add_post("/interactions", interactions)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=ANSWER_WINDOW)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    url = f"http://{bound[0]}:{bound[1]}/"
    stop = asyncio.Event()
    tasks = []
    if background:
        tasks = [
            asyncio.create_task(kernel.run_background(stop)),
            asyncio.create_task(frontend.run_background(stop)),
        ]
    log.info("interaction server listening on %s", url)
    running = RunningServer(bot, frontend, runner, url, stop, tasks)
    if kernel.metrics is not None:
        from clustercord.metrics import watch_discord_rate_limits

        running.unwatch = watch_discord_rate_limits(kernel.metrics)
    # /readyz: ready while listening; a server that closes stops taking work first.
    kernel.readiness.frontend = lambda: (
        "the interaction server is stopping" if stop.is_set() else None
    )
    return running


async def serve_interactions(kernel: Any, settings: DiscordSettings, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully: not ready (/readyz 503), no new
    requests, those in flight answered, interactions in progress finished, watches and
    streams closed; the caller closes the kernel (the audit is flushed there)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    home = lease.for_kernel(kernel)
    keeper: asyncio.Task[None] | None = None
    try:
        # Only the holder of the home cluster's Lease answers: another one waits here.
        waiting = asyncio.create_task(lease.hold(kernel, home, _say))
        signalled = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if not waiting.done():  # stopped while waiting
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await kernel.http.close()
            return
        waiting.result()
        server = await start_interaction_server(
            kernel,
            settings,
            host=host,
            port=port,
            active=home.valid if home is not None else lambda: True,
        )
        if home is not None:
            keeper = asyncio.create_task(home.keep(server.stop_event))
            keeper.add_done_callback(lambda _: stopping.set())  # lost: stop answering
        print(f"ClusterCord interaction server on {server.url} (Ctrl-C stops it)", flush=True)
        try:
            await stopping.wait()
            log.info("stopping: no new interactions")
        finally:
            kernel.readiness.stopping = True
            await server.close()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if keeper is not None:
            await keeper
        if home is not None:
            await asyncio.to_thread(home.release)


def _say(text: str) -> None:
    print(f"ClusterCord: {text}", flush=True)


def gateway_bot(settings: DiscordSettings) -> hikari.GatewayBot:
    if not settings.token:
        raise UsageError(
            "DISCORD_TOKEN is not set: the bot token (Developer Portal → Bot → Reset Token)"
        )
    return hikari.GatewayBot(
        settings.token,
        http_settings=http_settings(),
        rest_url=settings.api_url,
        banner=None,
        logs=None,
        # Two of them privileged (switched on in the Developer Portal): see .intents.
        intents=intents.gateway_intents(settings),
        # With GUILD_MEMBERS hikari would download every server's member list at start to
        # fill its cache; nothing here reads that cache (member events carry the member, the
        # SSO plugin reads roles over REST), so no chunking.
        auto_chunk_members=False,
    )


def serve_gateway(kernel_factory: Callable[[], Awaitable[Any]], settings: DiscordSettings) -> None:
    """Connect to Discord's gateway and run until SIGTERM or SIGINT."""
    asyncio.run(run_gateway(kernel_factory, settings))


async def run_gateway(
    kernel_factory: Callable[[], Awaitable[Any]], settings: DiscordSettings
) -> None:
    """Connect to Discord's gateway (once more without member events if Discord refuses
    the Server Members intent they need, see :mod:`.intents`) and serve until SIGTERM or
    SIGINT, then stop gracefully; Discord refusing an intent the config requires is a
    :class:`UsageError` saying what to switch on."""
    state: dict[str, Any] = {}
    stop = asyncio.Event()
    closing: list[asyncio.Future[None]] = []

    def close(bot: hikari.GatewayBot) -> None:
        """Close the bot once, whoever asks first (a signal, the Lease lost)."""
        if bot.is_alive and not closing:
            closing.append(asyncio.ensure_future(bot.close()))

    async def started(event: hikari.StartedEvent) -> None:
        bot = event.app
        assert isinstance(bot, hikari.GatewayBot)
        kernel = await kernel_factory()
        state["kernel"] = kernel
        home = lease.for_kernel(kernel)
        if home is not None:
            state["lease"] = home  # released on the way out, even if taken while stopping
        # Only the holder of the home cluster's Lease answers: another one stays connected
        # but subscribes nothing until it holds the Lease (a stop meanwhile cancels this).
        state["waiting"] = asyncio.current_task()
        try:
            await lease.hold(kernel, home, _say)
        finally:
            state.pop("waiting", None)
        if home is not None:
            keeper = asyncio.create_task(home.keep(stop))
            # Lost (not a clean stop, which leaves it held until released): disconnect.
            keeper.add_done_callback(lambda _: None if home.held else close(bot))
        frontend = DiscordFrontend(kernel, bot, settings)
        if home is not None:  # only while the Lease is ours by our own clock
            frontend.active = home.valid
        state.update(kernel=kernel, frontend=frontend)
        await frontend.start()
        if kernel.metrics is not None:
            from clustercord.metrics import watch_discord_rate_limits

            state["unwatch"] = watch_discord_rate_limits(kernel.metrics)
        # /readyz: ready while the gateway's shard is connected.
        kernel.readiness.frontend = lambda: (
            None
            if bot.is_alive and all(s.is_alive for s in bot.shards.values())
            else "not connected to Discord's gateway"
        )
        state["tasks"] = [
            asyncio.create_task(kernel.run_background(stop)),
            asyncio.create_task(frontend.run_background(stop)),
        ]
        print("ClusterCord connected to Discord's gateway (Ctrl-C stops it)", flush=True)

    async def stopping(event: hikari.StoppingEvent) -> None:
        # hikari turns SIGTERM and SIGINT into this event; the shards still answer REST
        # calls, so interactions in progress finish before anything closes.
        if "kernel" not in state:
            return  # a bot that never connected (Discord refused an intent): nothing ran
        waiting = state.get("waiting")
        if waiting is not None:  # a standby stopped before it held the Lease
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await state["kernel"].http.close()
        state["kernel"].readiness.stopping = True
        if "frontend" in state:
            await state["frontend"].drain(DRAIN)
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.gather(*state.get("tasks", []), return_exceptions=True)
        if "frontend" in state:
            await state["frontend"].stop()
        if "lease" in state:
            await asyncio.to_thread(state["lease"].release)
        await state["kernel"].aclose()
        state.get("unwatch", lambda: None)()

    bots: list[hikari.GatewayBot] = []

    def prepare(bot: hikari.GatewayBot) -> None:
        bots.append(bot)
        bot.subscribe(hikari.StartedEvent, started)
        bot.subscribe(hikari.StoppingEvent, stopping)

    starting = asyncio.ensure_future(
        intents.start_gateway(settings, gateway_bot, prepare, check_for_updates=False)
    )

    def signalled() -> None:
        if not starting.done():  # connecting, or waiting for the Lease: nothing serves yet
            starting.cancel()
        elif bots:
            close(bots[-1])

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signalled)
    try:
        try:
            running = await starting
        except asyncio.CancelledError:
            if not starting.cancelled():
                raise
            log.info("stopped before serving")
            return
        bot = running.bot
        ended: BaseException | None = None
        try:
            if not closing:
                await bot.join()
        except hikari.GatewayServerClosedConnectionError as exc:
            # Refused on a later identify (the intent switched off in the portal meanwhile):
            # stop saying why; started again, the bot connects without member events.
            ended = exc
            raise intents.refusal(running.settings, exc, later=True) or exc from None
        finally:
            if closing:  # a signal or the Lease lost: that close ends joining early
                await closing[0]
            elif bot.is_alive:
                with _reported(ended):
                    await bot.close()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _reported(error: BaseException | None) -> Iterator[None]:
    """Closing a bot whose shard died of ``error``, hikari hands that error again to the
    loop's exception handler (a second, bare traceback); ``serve`` stops saying why."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if error is not None and context.get("exception") is error:
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
