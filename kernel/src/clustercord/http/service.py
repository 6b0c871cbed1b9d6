"""The HTTP service: one aiohttp server for every plugin's routes.

A request to ``/plugins/<name>/<path>`` is served only when plugin ``<name>`` is enabled
(so every route it declares was granted) and one of its routes matches; the plugin's
handler runs through the door (audited, within ``[http] timeout``). Bodies over
``max_body`` get 413 before the plugin sees a byte; unknown paths 404; failures a status and
one line, never a stack trace. Routes are looked up per request: enabling or disabling a
plugin takes effect at once, no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from clustercord.http.settings import HttpSettings
from clustercord.http.tls import Certificate, configured, self_signed
from clustercord_sdk.http import HttpRequest, HttpResponse, HttpSite, RouteSpec, WebSocketRelay

if TYPE_CHECKING:
    from clustercord.health import Readiness
    from clustercord.metrics import Metrics

log = logging.getLogger("clustercord.http")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format (as ``prometheus_client.CONTENT_TYPE_LATEST``)."""
_NO_STORE = {"Cache-Control": "no-store"}

PREFIX = "/plugins/"
SHUTDOWN = 2.0
"""Seconds a stopping service waits for requests in flight (open watches are cut)."""
GONE_CHECK = 1.0
"""Seconds between two looks at whether a streamed response's client went away."""
# Hop-by-hop and framing headers aiohttp sets itself; a plugin's copy would corrupt them.
_DROPPED = frozenset(
    {"connection", "content-length", "content-type", "transfer-encoding", "keep-alive"}
)


class HttpService:
    """The kernel's HTTP service (``[http]``); :meth:`start` binds it, :meth:`close` stops it."""

    def __init__(
        self,
        settings: HttpSettings,
        data_dir: Any,
        manager: Any,
        door_route: Callable[..., Any],
        *,
        readiness: Readiness | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self._readiness = readiness
        self._metrics = metrics
        self._data_dir = data_dir
        self._manager = manager
        self._door_route = door_route
        self._runner: web.AppRunner | None = None
        self.certificate: Certificate | None = None
        self.url: str | None = None
        """Where it listens, once started (``https://127.0.0.1:8443``)."""

    # -- what plugins see ---------------------------------------------------------------
    @property
    def public_url(self) -> str:
        if self.settings.public_url:
            return self.settings.public_url
        if self.url:
            return self.url
        scheme = "http" if self.settings.tls == "off" else "https"
        host = self.settings.host if self.settings.host != "0.0.0.0" else "127.0.0.1"
        return f"{scheme}://{host}:{self.settings.port}"

    def site_for(self, plugin: str) -> HttpSite:
        return HttpSite(
            lambda: f"{self.public_url}{PREFIX}{plugin}",
            lambda: (
                self.certificate.pem
                if self.certificate is not None and self.certificate.self_signed
                else None
            ),
        )

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> str:
        """Listen (TLS unless ``tls = "off"``); returns the URL it listens on."""
        settings = self.settings
        ssl_context = None
        if settings.tls != "off":
            if settings.tls == "files":
                assert settings.cert is not None and settings.key is not None
                self.certificate = configured(settings.cert, settings.key)
            else:
                from urllib.parse import urlsplit

                hosts = [settings.host]
                if settings.public_url:
                    hosts.append(urlsplit(settings.public_url).hostname or "")
                self.certificate = self_signed(self._data_dir / "http", hosts)
            ssl_context = self.certificate.context()
        app = web.Application(client_max_size=settings.max_body)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._export)
        app.router.add_route("*", PREFIX + "{plugin}/{path:.*}", self._serve)
        # Open streams (watches) are ended at close rather than waited for.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, settings.host, settings.port, ssl_context=ssl_context, backlog=256
        )
        await site.start()
        host, port = self._runner.addresses[0][:2]
        scheme = "https" if ssl_context else "http"
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.url = f"{scheme}://{shown}:{port}"
        log.info("HTTP service listening on %s (public URL %s)", self.url, self.public_url)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the kernel's own routes ----------------------------------------------------------
    async def _readyz(self, request: web.Request) -> web.Response:
        """200 ``ready``, or 503 with one line per failing part (``storage: ...``); then a
        line per note (a part working with less than configured, which fails nothing)."""
        if self._readiness is None:
            return web.Response(status=503, text="readiness: not checked by this kernel\n")
        problems = await self._readiness.problems()
        notes = "".join(f"{part}: {note}\n" for part, note in sorted(self._readiness.notes.items()))
        if not problems:
            return web.Response(text="ready\n" + notes, headers=_NO_STORE)
        lines = "".join(f"{part}: {problem}\n" for part, problem in sorted(problems.items()))
        return web.Response(status=503, text=lines + notes, headers=_NO_STORE)

    async def _export(self, request: web.Request) -> web.Response:
        """Prometheus' text format; with ``metrics_token`` set, only for that bearer token."""
        if self._metrics is None:
            return web.Response(status=404, text="not found\n")
        token = self.settings.metrics_token
        if token is not None:
            offered = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            # Constant time: the comparison must not tell how much of a guess was right.
            if not hmac.compare_digest(offered.encode(), expected.encode()):
                return web.Response(
                    status=401,
                    text="a bearer token is required\n",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body = await asyncio.to_thread(self._metrics.exposition)  # gauges query the database
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, **_NO_STORE})

    # -- requests -----------------------------------------------------------------------
    def _find(self, name: str, method: str, path: str) -> tuple[Any, RouteSpec, str] | None:
        plugin = self._manager.plugins.get(name)
        if plugin is None or plugin.state != "enabled" or plugin.manifest is None:
            return None
        granted = set(plugin.granted)
        for route in plugin.manifest.routes:
            tail = route.matches(method, path)
            if tail is not None and route.grant in granted:
                return plugin, route, tail
        return None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["plugin"]
        path = "/" + request.match_info["path"]
        found = self._find(name, request.method, path)
        if found is None:
            return web.Response(status=404, text="not found\n")
        plugin, route, tail = found
        if (request.content_length or 0) > self.settings.max_body:
            return web.Response(status=413, text="request body too large\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large\n")
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            lower = key.lower()
            headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
        peer = request.transport.get_extra_info("peername") if request.transport else None
        http_request = HttpRequest(
            method=request.method,
            path=path,
            query=request.query_string,
            headers=headers,
            body=body,
            remote=str(peer[0]) if peer else "",
            tail=tail,
            base_url=f"{self.public_url}{PREFIX}{name}",
        )
        response: HttpResponse = await self._door_route(
            plugin, route, http_request, timeout=self.settings.timeout
        )
        if response.websocket is not None:
            return await _bridge(request, response.websocket)
        if response.stream is not None:
            return await _relay(request, response)
        return _to_aiohttp(response)


async def _bridge(request: web.Request, relay: WebSocketRelay) -> web.StreamResponse:
    """Accept the client's WebSocket and relay messages both ways with ``relay.upstream``
    until either side closes or ``relay.alive()`` turns false; both are closed after."""
    upstream = relay.upstream
    protocol = getattr(upstream, "protocol", None)
    client = web.WebSocketResponse(protocols=(protocol,) if protocol else (), heartbeat=30)
    try:
        await client.prepare(request)
    except Exception:
        await upstream.close()
        raise

    async def client_to_upstream() -> None:
        async for message in client:
            if message.type == WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await upstream.send_str(message.data)
            else:
                return

    async def upstream_to_client() -> None:
        while True:
            message = await upstream.receive()
            if message.type == WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await client.send_str(message.data)
            else:
                return

    async def watchdog() -> None:
        while relay.alive is None or relay.alive():
            await asyncio.sleep(relay.check_every)

    tasks = [
        asyncio.create_task(work()) for work in (client_to_upstream, upstream_to_client, watchdog)
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await client.close()
    return client


async def _relay(request: web.Request, response: HttpResponse) -> web.StreamResponse:
    """A streamed response: each chunk written (and so flushed) as it comes, until the
    stream ends or the client goes; the stream is closed either way."""
    stream = response.stream
    out = web.StreamResponse(status=response.status, headers=_headers(response))
    out.content_type = response.content_type.partition(";")[0].strip() or "application/json"
    chunks = stream.__aiter__()
    try:
        await out.prepare(request)
        while True:
            pending = asyncio.ensure_future(chunks.__anext__())
            # A quiet stream (a watch) must notice a client that went away, or its upstream
            # stays open until the next event.
            while not (await asyncio.wait({pending}, timeout=GONE_CHECK))[0]:
                if request.transport is None or request.transport.is_closing():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)
                    return out
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                break
            await out.write(chunk)
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away
    except Exception as exc:  # the plugin's stream failed midway: the client sees it end
        log.warning("a streamed response ended with %s: %s", type(exc).__name__, exc)
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            with contextlib.suppress(Exception):
                await closing()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await out.write_eof()
    return out


def _headers(response: HttpResponse) -> dict[str, str]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED}
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    return headers


def _to_aiohttp(response: HttpResponse) -> web.Response:
    headers = _headers(response)
    status = response.status if 100 <= response.status <= 599 else 500
    content_type, _, params = response.content_type.partition(";")
    charset = None
    if "charset=" in params:
        charset = params.split("charset=", 1)[1].strip()
    return web.Response(
        status=status,
        body=response.data(),
        content_type=content_type.strip() or "application/octet-stream",
        charset=charset,
        headers=headers,
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")
