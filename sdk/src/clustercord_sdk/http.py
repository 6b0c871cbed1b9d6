"""HTTP routes a plugin serves on the kernel's HTTP service, under ``/plugins/<name>/``.

A plugin declares each route in its manifest (``routes``: method, path, handler), and an
admin grants them like permissions (``route:GET /callback``). The kernel calls the handler
through its one door (policy, time budget, audit), in the plugin's process if it is isolated,
with ``request`` (an :class:`HttpRequest`) and ``ctx`` (the plugin's context) if it declares
them; the handler returns an :class:`HttpResponse` (or a ``str``: ``200 text/plain``).

A route path ending in ``/*`` matches everything under it (``/k8s/*``); the rest of the path
is :attr:`HttpRequest.tail`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

ROUTE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "*")


@dataclass(frozen=True)
class HttpRequest:
    """One request to a plugin's route. ``headers`` have lower-case names (repeated headers
    joined with ``", "``, as HTTP allows); ``query`` is the raw query string."""

    method: str
    path: str
    """The path below the plugin's prefix, e.g. ``/callback``."""
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote: str = ""
    """The client's address (the socket's peer; proxies are not trusted)."""
    tail: str = ""
    """For a ``/prefix/*`` route: what follows the prefix, with its leading ``/``."""
    base_url: str = ""
    """The public URL of the plugin's prefix (``https://host:8443/plugins/<name>``)."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def args(self) -> dict[str, str]:
        """The query string's parameters (the last of a repeated name wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body's fields."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class HttpResponse:
    """What a route answers. ``body`` as text is sent UTF-8."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    actor: str | None = None
    """Whom the plugin authenticated (``discord:<id>``): the actor of the kernel's audit row
    of this request (the client's address stays in its options); ``None``: the address."""
    audit: dict[str, Any] = field(default_factory=dict)
    """Details the kernel adds to its audit row of this request (so a plugin that audits
    every request, a gateway, costs no second row)."""
    websocket: Any = field(default=None, compare=False)
    """A :class:`WebSocketRelay`: the kernel accepts the client's WebSocket upgrade (with the
    relay's protocol) and relays messages both ways (in-process plugins only)."""
    stream: Any = field(default=None, compare=False)
    """An async iterator of ``bytes`` sent to the client as each chunk comes (instead of
    ``body``; a Kubernetes watch), closed (``aclose``) when the client goes away. In-process
    plugins only: an isolated plugin's response crosses a pipe whole."""

    @classmethod
    def json_body(cls, value: Any, status: int = 200) -> HttpResponse:
        return cls(status, json.dumps(value), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> HttpResponse:
        return cls(status, text)

    @classmethod
    def html(cls, html: str, status: int = 200) -> HttpResponse:
        return cls(status, html, "text/html; charset=utf-8")

    def data(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)


@dataclass(frozen=True)
class WebSocketRelay:
    """A WebSocket the kernel bridges to the route's client: ``upstream`` (an open aiohttp
    client WebSocket, or anything with ``protocol``, ``receive()``, ``send_bytes``,
    ``send_str`` and ``close()``) until either side closes or ``alive()`` turns false (asked
    every ``check_every`` seconds: a revoked session ends an open ``kubectl exec``)."""

    upstream: Any
    alive: Any = None
    check_every: float = 0.25


@dataclass(frozen=True)
class RouteSpec:
    """A route a manifest declares."""

    method: str
    path: str
    handler: str
    description: str = ""
    safe_reads: bool = False
    """The plugin vouches that this route's GET and HEAD requests change nothing (a proxy of
    the Kubernetes API, whose GETs never write): the door audits them with one row written
    before the answer instead of an intent row before the handler and a result row after."""

    def read_only(self, request: HttpRequest) -> bool:
        """Whether ``request`` is one of the reads :attr:`safe_reads` covers: GET or HEAD,
        and not a WebSocket upgrade (exec and attach are GETs that act)."""
        return (
            self.safe_reads and request.method in ("GET", "HEAD") and not request.header("upgrade")
        )

    @property
    def grant(self) -> str:
        """How the route is named in grants (``route:GET /callback``)."""
        return f"route:{self.method} {self.path}"

    @property
    def prefix(self) -> str | None:
        """``/k8s/`` for ``/k8s/*``; ``None`` for an exact path."""
        return self.path[:-1] if self.path.endswith("/*") else None

    def matches(self, method: str, path: str) -> str | None:
        """The tail (``""`` for an exact path) when this route serves ``method path``."""
        if self.method not in ("*", method) and not (self.method == "GET" and method == "HEAD"):
            return None
        prefix = self.prefix
        if prefix is None:
            return "" if path == self.path else None
        if path.startswith(prefix):
            return "/" + path[len(prefix) :]
        return None


class HttpSite:
    """Where a plugin's routes are reached from outside (``ctx.services["http"]`` for a
    plugin that declares routes): built by the kernel, read by the plugin."""

    def __init__(self, base: Any, ca_pem: Any) -> None:
        self._base = base
        self._ca_pem = ca_pem

    @property
    def base_url(self) -> str:
        """The public URL of the plugin's prefix, without a trailing ``/``."""
        return str(self._base())

    @property
    def ca_pem(self) -> str | None:
        """The service's self-signed certificate (PEM) for clients to trust; ``None`` when it
        has a certificate of its own (or no TLS)."""
        value = self._ca_pem()
        return None if value is None else str(value)

    def url(self, path: str) -> str:
        """The public URL of ``path`` (``/callback``) below the plugin's prefix."""
        return self.base_url + "/" + path.lstrip("/")
