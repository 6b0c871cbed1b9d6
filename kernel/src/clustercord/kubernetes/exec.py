"""``pods/exec`` over WebSocket: a command running in a container, as ``kubectl exec`` runs it.

The API server speaks the kubelet's stream protocol over a WebSocket: every binary message
starts with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 the command's final ``Status``
(JSON), 4 terminal resize (``{"Width": .., "Height": ..}``). ``v5.channel.k8s.io`` (Kubernetes
1.30 and later) adds 255, "close this stream", which is how the end of stdin is told; with
``v4.channel.k8s.io`` there is no such message (see :meth:`WebSocketExec.close_stdin`).

The connection is made with the same ``kubernetes.client`` configuration (server, CA, client
certificate, TLS name, proxy, bearer token) as every other call, so it goes as the same
identity: the service hands in the plugin's own client (see ``PluginKubernetes.exec``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from clustercord.kubernetes.calls import ApiStatusError
from clustercord_sdk.errors import CommandError, UsageError
from clustercord_sdk.kubernetes import Stream

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
# Offered in this order; the server picks the first it speaks.
PROTOCOLS: tuple[str, ...] = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 32 * 1024  # stdin is sent in frames of at most this size
HEARTBEAT = 30.0  # a ping now and then keeps idle sessions open through proxies


def exec_query(
    command: Iterable[str], *, container: str | None, stdin: bool, tty: bool
) -> list[tuple[str, str]]:
    """The query of ``GET pods/NAME/exec``: one ``command`` per argument, as kubectl sends."""
    query = [("command", part) for part in command]
    if container:
        query.append(("container", container))
    query += [("stdin", "true")] if stdin else []
    query += [("stdout", "true")]
    # A terminal has a single output, so kubectl asks for stderr only without one.
    query += [("tty", "true")] if tty else [("stderr", "true")]
    return query


@dataclass(frozen=True)
class Endpoint:
    """Where and how to open the WebSocket, from a ``kubernetes.client.ApiClient``."""

    url: URL
    headers: dict[str, str] = field(repr=False)  # the bearer token: never in a log line
    ssl: ssl.SSLContext | bool = False
    server_hostname: str | None = None
    proxy: str | None = None
    proxy_headers: dict[str, str] | None = None

    @classmethod
    def of(cls, client: Any, path: str, query: list[tuple[str, str]]) -> Endpoint:
        """Blocking (a token refresh hook may run): call it in a worker thread.

        The URL and the ``Authorization`` header come from the client's own request
        serialisation, as for any other call; TLS and proxy from its configuration."""
        _, url, headers, _, _ = client.param_serialize(
            "GET", path, query_params=query, auth_settings=["BearerToken"]
        )
        configuration = client.configuration
        target = URL(url, encoded=True)  # the client already quoted the query
        secure = target.scheme == "https"
        target = target.with_scheme("wss" if secure else "ws")
        proxy = configuration.proxy
        if proxy:
            from kubernetes.client.rest import should_bypass_proxies

            if should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
                proxy = None
            elif not proxy.startswith(("http://", "https://")):
                raise CommandError(f"pods/exec cannot go through the proxy {proxy}: HTTP only")
        return cls(
            target,
            dict(headers),
            _ssl_context(configuration) if secure else False,
            configuration.tls_server_name or None,
            proxy or None,
            configuration.proxy_headers or None,
        )


def _ssl_context(configuration: Any) -> ssl.SSLContext:
    """The TLS settings the client's urllib3 pool derives from the same configuration."""
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None, cadata=configuration.ca_cert_data or None
    )
    if configuration.cert_file:  # the kernel's client certificate; a plugin's client has none
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    return context


async def _refuse(response: aiohttp.ClientResponse) -> None:
    """Anything but the upgrade is the API server saying no, with a ``Status`` body: keep it
    (aiohttp's own handshake error drops the body, and with it the server's message)."""
    if response.status != 101:
        body = await response.read()
        raise ApiStatusError(response.status, response.reason or "", body, response.headers)


async def connect(
    endpoint: Endpoint,
    *,
    what: str,
    command: str,
    stdin: bool,
    tty: bool,
    timeout: float,
) -> WebSocketExec:
    """Open the session. A refusal (403, 404, 400...) raises :class:`ApiStatusError` for the
    caller to explain; a cluster that cannot be reached raises :class:`CommandError`.
    ``what`` and ``command`` name the call and the command in messages."""
    http = aiohttp.ClientSession(raise_for_status=_refuse)
    try:
        ws = await _handshake(http, endpoint, what=what, timeout=timeout)
    except BaseException:
        await http.close()
        raise
    if ws.protocol not in PROTOCOLS:
        await ws.close()
        await http.close()
        raise CommandError(f"cannot {what}: the cluster speaks neither {' nor '.join(PROTOCOLS)}")
    return WebSocketExec(http, ws, command=command, stdin=stdin, tty=tty)


async def _handshake(
    http: aiohttp.ClientSession, endpoint: Endpoint, *, what: str, timeout: float
) -> aiohttp.ClientWebSocketResponse:
    try:
        return await asyncio.wait_for(
            http.ws_connect(
                endpoint.url,
                protocols=PROTOCOLS,
                headers=endpoint.headers,
                ssl=endpoint.ssl,
                server_hostname=endpoint.server_hostname,
                proxy=endpoint.proxy,
                proxy_headers=endpoint.proxy_headers,
                heartbeat=HEARTBEAT,
            ),
            timeout,
        )
    except TimeoutError:  # before OSError: it is one
        raise CommandError(
            f"cannot {what}: no answer within {timeout:g} s (is the cluster reachable?)"
        ) from None
    except (aiohttp.ClientError, OSError) as error:  # refused, DNS, TLS
        raise CommandError(f"cannot {what}: {error}") from None


class WebSocketExec:
    """:class:`clustercord_sdk.kubernetes.ExecSession` over an open WebSocket."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        command: str,
        stdin: bool,
        tty: bool,
    ) -> None:
        self._http, self._ws = http, ws
        self._v5 = ws.protocol == V5
        self._command, self._stdin, self._tty = command, stdin, tty
        self._exit_code: int | None = None
        self._failure: str | None = None
        self._ended = False
        # The receive a timed-out read left running: the next read takes it over, so no
        # message is lost and the WebSocket is never read from two places at once.
        self._pending: asyncio.Future[tuple[Stream, bytes] | None] | None = None

    @property
    def protocol(self) -> str:
        """The stream protocol the cluster chose (``v5.channel.k8s.io`` or ``v4...``)."""
        return self._ws.protocol or ""

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    # -- output ----------------------------------------------------------------------------
    async def read(self, timeout: float | None = None) -> tuple[Stream, bytes] | None:
        """The next chunk, ``None`` at the end. A command the cluster could not run at all
        (not found, not executable) raises :class:`CommandError` with the runtime's reason
        once its output, if any, has been read."""
        if self._pending is None:
            if self._ended:
                self._raise_failure()
                return None
            self._pending = asyncio.ensure_future(self._receive())
        # shield: a timeout (or the caller's cancellation) must not cancel the receive.
        chunk = await asyncio.wait_for(asyncio.shield(self._pending), timeout)
        self._pending = None
        if chunk is None:
            await self.close()  # release the connection even if the caller never closes
            self._raise_failure()
        return chunk

    def __aiter__(self) -> AsyncIterator[tuple[Stream, bytes]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[tuple[Stream, bytes]]:
        while (chunk := await self.read()) is not None:
            yield chunk

    async def _receive(self) -> tuple[Stream, bytes] | None:
        while True:
            message = await self._ws.receive()
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self._ended = True
                return None
            if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                continue  # the protocol is binary; anything else carries nothing for us
            channel, data = message.data[0], bytes(message.data[1:])
            if channel == STDOUT and data:
                return "stdout", data
            if channel == STDERR and data:
                return "stderr", data
            if channel == ERROR:
                self._status(data)

    def _status(self, data: bytes) -> None:
        """The command's end, as a ``metav1.Status``: Success, NonZeroExitCode with the code
        in a cause ``ExitCode``, or a failure to run it at all."""
        try:
            status = json.loads(data)
        except ValueError:
            status = {"message": data.decode("utf-8", errors="replace")}
        if not isinstance(status, dict):
            status = {"message": str(status)}
        if status.get("status") == "Success":
            self._exit_code = 0
            return
        if status.get("reason") == "NonZeroExitCode":
            for cause in (status.get("details") or {}).get("causes") or []:
                if cause.get("reason") == "ExitCode":
                    try:
                        self._exit_code = int(cause.get("message", ""))
                        return
                    except ValueError:
                        break
        message = status.get("message") or status.get("reason") or "unknown error"
        self._failure = f"{self._command} did not run: {message}"

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise CommandError(self._failure)

    # -- input -----------------------------------------------------------------------------
    async def write(self, data: str | bytes) -> None:
        if not self._stdin:
            raise UsageError("write: the session was opened without stdin=True")
        payload = data.encode() if isinstance(data, str) else bytes(data)
        for start in range(0, len(payload), CHUNK):
            await self._send(STDIN, payload[start : start + CHUNK])

    async def close_stdin(self) -> None:
        """End of input. ``v5.channel.k8s.io`` closes the stream itself. ``v4`` has no way to
        say so: on a terminal (``tty=True``) this sends ^D, which the terminal turns into
        end-of-file at the start of a line, as when a person types it; without a terminal
        it raises :class:`CommandError` (closing the connection would kill the command)."""
        if not self._stdin:
            raise UsageError("close_stdin: the session was opened without stdin=True")
        if self._v5:
            await self._send(CLOSE, bytes([STDIN]))
        elif self._tty:
            await self._send(STDIN, b"\x04")
        else:
            raise CommandError(
                f"the cluster speaks only {V4} (Kubernetes before 1.30), which cannot end a "
                "command's input without a terminal: use tty=True, or a command that ends "
                "by itself"
            )

    async def resize(self, cols: int, rows: int) -> None:
        if not self._tty:
            raise UsageError("resize: the session was opened without tty=True")
        if cols <= 0 or rows <= 0:
            raise UsageError(f"resize: {cols}x{rows} is not a terminal size")
        await self._send(RESIZE, json.dumps({"Width": cols, "Height": rows}).encode())

    async def _send(self, channel: int, data: bytes) -> None:
        if self._ws.closed:
            raise CommandError(f"{self._command} has ended: nothing more can be sent to it")
        try:
            await self._ws.send_bytes(bytes([channel]) + data)
        except ConnectionError:
            raise CommandError(f"{self._command}: the connection was lost") from None

    # -- the end ---------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the WebSocket: the cluster kills the command if it still runs."""
        self._ended = True
        if not self._ws.closed:
            # A receive still running (a timed-out read) gets the close and ends with None.
            await self._ws.close()
        if not self._http.closed:
            await self._http.close()

    async def __aenter__(self) -> WebSocketExec:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
