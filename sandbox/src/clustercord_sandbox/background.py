"""Runs a `SandboxServer` on its own event loop in a background thread.

Tests and synchronous callers (kubectl subprocesses, the official client) need the server to
keep answering while they block; a thread with its own loop is the simplest way.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from . import fixtures
from .server import SandboxServer
from .store import SandboxStore


class BackgroundSandbox:
    """`with BackgroundSandbox() as sandbox:` → a running server, stopped on exit.

    `server_options` go to `SandboxServer`: e.g. `host_exec=True` runs exec'd commands on the
    host, unisolated (`--unsafe-host-exec`), `pod_limits=isolation.Limits(...)`.
    """

    def __init__(
        self, fixture: str = "empty", store: SandboxStore | None = None, **server_options: Any
    ) -> None:
        self._fixture = fixture
        self._store = store if store is not None else SandboxStore()
        self._options = server_options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: SandboxServer | None = None

    def start(self) -> SandboxServer:
        self._thread.start()
        self.server = self.call(self._start())
        return self.server

    async def _start(self) -> SandboxServer:
        server = SandboxServer(self._store, **self._options)
        fixtures.load(server.api, fixtures.resolve(self._fixture))
        await server.start()
        return server

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Runs a coroutine on the sandbox's loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def write_kubeconfig(self, path: str | Path) -> Path:
        assert self.server is not None
        return self.server.write_kubeconfig(path)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
