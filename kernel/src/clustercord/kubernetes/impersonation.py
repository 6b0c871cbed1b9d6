"""Requests a plugin makes *as someone else*: the SSO gateway's forwarding.

The plugin's own ServiceAccount authenticates; ``Impersonate-User``, ``Impersonate-Group``
and ``Impersonate-Uid`` name whom the API server authorizes instead, so the request can do
exactly what that user may (RBAC is the cluster's, not ours). What holds here, whatever the
plugin asks:

- the plugin must declare ``users:impersonate`` (and its ServiceAccount gets only what it
  declares: ``groups:impersonate``, ``uids.authentication.k8s.io:impersonate``);
- only ``discord:<id>`` users (never a cluster's own users, an admin's name, nor
  ``system:`` ones) and no ``system:`` group (``system:masters`` is cluster-admin without
  RBAC): refused before anything is sent;
- the headers sent are built here, from an allowlist; nothing the caller passes can add an
  ``Authorization`` or ``Impersonate-*`` header;
- the path is a path of the cluster's API (no scheme, host, ``..`` or control characters).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.errors import PermissionDenied, UsageError
from clustercord_sdk.permissions import Permission, covers, parse_permission

NEEDED = parse_permission("users:impersonate")
# The request headers a client may pass on (what kubectl sends that matters).
FORWARDED = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-type",
        "user-agent",
        "kubectl-command",
        "kubectl-session",
        "x-request-id",
    }
)
RETURNED = frozenset({"content-type", "audit-id", "warning", "cache-control", "retry-after"})
IMPERSONABLE = re.compile(r"^discord:[0-9]{1,20}$")
"""The users a plugin may impersonate: the Discord identities ClusterCord vouches for,
never a cluster's own users (an admin's name) nor ``system:`` ones."""
SMALL = 256 * 1024
"""A streamed response no longer than this (``Content-Length``) is read whole at once."""
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    upstream: Any = None


def check(
    plugin: str, permissions: Iterable[Permission], user: str, groups: Iterable[str], path: str
) -> None:
    if not covers(list(permissions), [NEEDED]):
        raise PermissionDenied(f"plugin {plugin} does not declare users:impersonate")
    if not IMPERSONABLE.match(user):
        raise PermissionDenied(
            f"plugin {plugin} may not impersonate {user!r}: only Discord identities (discord:<id>)"
        )
    for group in groups:
        if not group or group.startswith("system:"):
            raise PermissionDenied(f"plugin {plugin} may not impersonate group {group!r}")
    if not _PATH.match(path) or "//" in path or "/../" in path + "/" or "/./" in path + "/":
        raise UsageError(f"{path!r} is not a path of the Kubernetes API")


def headers_for(
    token: str, user: str, groups: Iterable[str], uid: str | None, passed: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The request's headers: the allowlisted ones the client sent, then ours."""
    out = [(k, v) for k, v in passed.items() if k.lower() in FORWARDED and "\n" not in v]
    out.append(("Authorization", token))
    out.append(("Impersonate-User", user))
    out.extend(("Impersonate-Group", group) for group in groups)
    if uid:
        out.append(("Impersonate-Uid", uid))
    return out


def send(
    client: object,
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout: float,
    *,
    stream: bool = False,
) -> Answer:
    """One request with the plugin's API client's connection pool (blocking). With
    ``stream``, the body is left unread: :attr:`Answer.upstream` reads it chunk by chunk."""
    import urllib3

    configuration = client.configuration  # type: ignore[attr-defined]
    pool = client.rest_client.pool_manager  # type: ignore[attr-defined]
    url = configuration.host.rstrip("/") + path + (f"?{query}" if query else "")
    header_dict = urllib3.HTTPHeaderDict()
    for key, value in headers:
        header_dict.add(key, value)
    response = pool.request(
        method,
        url,
        body=body or None,
        headers=header_dict,
        # A stream (a watch) may stay quiet for minutes: only connecting is bounded.
        timeout=urllib3.Timeout(connect=timeout, read=None if stream else timeout),
        retries=False,
        preload_content=not stream,
        redirect=False,
    )
    returned = {k.lower(): v for k, v in response.headers.items() if k.lower() in RETURNED}
    length = response.headers.get("content-length")
    if stream and not (length and length.isdigit() and int(length) <= SMALL):
        return Answer(response.status, returned, b"", Upstream(response))
    if stream:  # small and whole: read here, in this thread, rather than chunk by chunk
        data = response.read()
        response.release_conn()
        return Answer(response.status, returned, data)
    return Answer(response.status, returned, response.data)


class Upstream:
    """A response body read as it comes (``async for chunk in upstream``): each read waits
    in a worker thread; :meth:`aclose` shuts the connection, which also ends a read that is
    waiting (a revoked session's open watch ends at once, not at its next event)."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = False

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._response.read1, 65536)
        except Exception:  # the connection was shut (aclose) or broke
            chunk = b""
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return bytes(chunk)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.release_conn()


class UpstreamSocket:
    """An open WebSocket to the API server (exec, attach, port-forward) as someone else:
    ``protocol``, ``receive``, ``send_bytes``, ``send_str``, ``close`` (its session too)."""

    def __init__(self, http: Any, ws: Any) -> None:
        self._http, self._ws = http, ws
        self.protocol: str | None = ws.protocol

    async def receive(self) -> Any:
        return await self._ws.receive()

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def send_str(self, data: str) -> None:
        await self._ws.send_str(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        await self._http.close()


async def open_websocket(
    endpoint: Any, headers: list[tuple[str, str]], protocols: list[str], timeout: float
) -> UpstreamSocket | Answer:
    """The WebSocket upgrade to ``endpoint`` (see ``kubernetes.exec.Endpoint``) with
    ``headers`` (ours: the plugin's token and the impersonation); a refusal is an
    :class:`Answer` with the API server's status and message."""
    import aiohttp
    from multidict import CIMultiDict

    sent = CIMultiDict(headers)
    http = aiohttp.ClientSession()
    try:
        ws = await asyncio.wait_for(
            http.ws_connect(
                endpoint.url,
                protocols=protocols,
                headers=sent,
                ssl=endpoint.ssl,
                server_hostname=endpoint.server_hostname,
                proxy=endpoint.proxy,
                proxy_headers=endpoint.proxy_headers,
                heartbeat=30.0,
            ),
            timeout,
        )
    except aiohttp.WSServerHandshakeError as error:
        await http.close()
        return Answer(error.status, {}, str(error.message).encode())
    except BaseException:
        await http.close()
        raise
    return UpstreamSocket(http, ws)


def long_lived(path: str, query: str) -> bool:
    """A request that may stay open indefinitely: a watch, followed logs."""
    from urllib.parse import parse_qsl

    args = dict(parse_qsl(query, keep_blank_values=True))
    return (
        args.get("watch") in ("true", "1") or args.get("follow") in ("true", "1")
        or "/watch/" in path
    )  # fmt: skip


class AsyncUpstream:
    """A long-lived response body (a watch) read on the event loop, chunk by chunk as it
    comes: no worker thread waits on it, however many are open; :meth:`aclose` ends it."""

    def __init__(self, http: Any, response: Any) -> None:
        self._http, self._response = http, response
        self._chunks = response.content.iter_any()
        self._closed = False

    def __aiter__(self) -> AsyncUpstream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            return bytes(await self._chunks.__anext__())
        except StopAsyncIteration:
            await self.aclose()
            raise
        except Exception:  # closed (aclose) or broken
            await self.aclose()
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._response.close()
        await self._http.close()


async def open_long_lived(
    endpoint: Any, method: str, headers: list[tuple[str, str]], body: bytes, timeout: float
) -> Answer:
    """A watch or followed logs through aiohttp on the loop (``endpoint``: see
    ``kubernetes.exec.Endpoint``, its URL back to http(s)); a refusal is read whole."""
    import aiohttp
    from multidict import CIMultiDict

    url = endpoint.url.with_scheme("https" if endpoint.url.scheme == "wss" else "http")
    http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=None)
    )
    try:
        response = await asyncio.wait_for(
            http.request(
                method,
                url,
                headers=CIMultiDict(headers),
                data=body or None,
                ssl=endpoint.ssl,
                server_hostname=endpoint.server_hostname,
                proxy=endpoint.proxy,
                proxy_headers=endpoint.proxy_headers,
                allow_redirects=False,
                auto_decompress=False,
            ),
            timeout,
        )
    except BaseException:
        await http.close()
        raise
    returned = {k.lower(): v for k, v in response.headers.items() if k.lower() in RETURNED}
    if response.status >= 300:
        data = await response.read()
        response.close()
        await http.close()
        return Answer(response.status, returned, data)
    return Answer(response.status, returned, b"", AsyncUpstream(http, response))
