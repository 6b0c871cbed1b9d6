"""``[http]``: where the kernel's HTTP service listens and how it is reached.

::

    [http]
    listen = "0.0.0.0:8443"              # host:port; port 0 picks a free one
    public_url = "https://cc.example.org:8443"   # what links and kubeconfigs name
    tls = "self-signed"                  # "self-signed" (default), "files" or "off"
    cert = "/etc/clustercord/tls.crt"    # with tls = "files"
    key = "/etc/clustercord/tls.key"
    max_body = 1048576                   # bytes a request body may have
    timeout = 30                         # seconds a route may take
    metrics_token = "..."                # /metrics wants "Authorization: Bearer ..."

``/healthz``, ``/readyz`` and ``/metrics`` are the kernel's own routes on this service;
health is unauthenticated (probes carry no credentials), ``/metrics`` needs the bearer
token when ``metrics_token`` (or ``CLUSTERCORD_HTTP_METRICS_TOKEN``) is set.

The service runs only when ``[http]`` is configured (or ``CLUSTERCORD_HTTP_LISTEN`` is set;
``CLUSTERCORD_HTTP_PUBLIC_URL`` and ``CLUSTERCORD_HTTP_TLS`` override too, see config.py):
a console started twice must not fight over a port it never asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clustercord_sdk.errors import UsageError

TLS_MODES = ("self-signed", "files", "off")
KEYS = frozenset(
    {"listen", "public_url", "tls", "cert", "key", "max_body", "timeout", "metrics_token"}
)
ENVIRONMENT = {
    "CLUSTERCORD_HTTP_LISTEN": "listen",
    "CLUSTERCORD_HTTP_PUBLIC_URL": "public_url",
    "CLUSTERCORD_HTTP_TLS": "tls",
    "CLUSTERCORD_HTTP_METRICS_TOKEN": "metrics_token",
}
"""Environment variables that override (or, alone, make) ``[http]``."""


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8443
    public_url: str | None = None
    """``None``: derived from the address it listens on, once bound."""
    tls: str = "self-signed"
    cert: Path | None = None
    key: Path | None = None
    max_body: int = 1024 * 1024
    timeout: float = 30.0
    metrics_token: str | None = field(default=None, repr=False)  # a secret: never shown
    """``None``: ``/metrics`` is open to whoever reaches the port."""

    @classmethod
    def load(cls, table: Mapping[str, Any]) -> HttpSettings:
        """From ``[http]`` (environment overrides merged in by config.py); a bad value is a
        :class:`UsageError` naming it."""
        unknown = sorted(set(table) - KEYS)
        if unknown:
            raise UsageError(f"[http]: unknown key {', '.join(map(repr, unknown))}")
        listen = table.get("listen")
        enabled = bool(table)
        host, port = _address(str(listen or "127.0.0.1:8443"))
        public = table.get("public_url")
        tls = str(table.get("tls", "self-signed"))
        if tls not in TLS_MODES:
            raise UsageError(f"http.tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if public is not None:
            parts = urlsplit(str(public))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UsageError(f"http.public_url must be an http(s) URL, not {public!r}")
            if parts.query or parts.fragment:
                raise UsageError("http.public_url must not have a query or fragment")
            public = str(public).rstrip("/")
        cert = table.get("cert")
        key = table.get("key")
        if tls == "files" and not (cert and key):
            raise UsageError('http.tls = "files" needs http.cert and http.key (PEM files)')
        try:
            max_body = int(table.get("max_body", 1024 * 1024))
            timeout = float(table.get("timeout", 30.0))
        except (TypeError, ValueError):
            raise UsageError("http.max_body must be bytes and http.timeout seconds") from None
        if max_body <= 0 or timeout <= 0:
            raise UsageError("http.max_body and http.timeout must be positive")
        token = table.get("metrics_token")
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise UsageError("http.metrics_token must be a string of at least 16 characters")
        return cls(
            enabled=enabled,
            host=host,
            port=port,
            public_url=public,
            tls=tls,
            cert=Path(cert).expanduser() if cert else None,
            key=Path(key).expanduser() if key else None,
            max_body=max_body,
            timeout=timeout,
            metrics_token=token,
        )


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"http.listen must be host:port (0.0.0.0:8443), not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
