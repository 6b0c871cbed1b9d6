"""A real headless Chromium for tests of the pages ClusterCord exports (the RBAC web view, the
recording player), driven over the DevTools protocol: no browser download, no Selenium —
Debian's ``chromium`` and a WebSocket.

    async with open_page(path, tmp_path, ready="!!window.rbacView") as page:
        assert await page.js("document.title") == "..."

Tests that need it skip without it: ``pytest.mark.skipif(CHROMIUM is None, reason=...)``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: object) -> dict[str, Any]:
        number = next(self.ids)
        await self.socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.socket.receive_json(), 30)
            if message.get("id") == number:
                assert "error" not in message, message
                return message["result"]  # type: ignore[no-any-return]

    async def js(self, expression: str, *, wait: bool = False) -> Any:
        """The value of ``expression`` in the page; ``wait``: a promise's value."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def until(self, expression: str, timeout: float = 10.0) -> None:
        """Wait until ``expression`` is true in the page."""
        for _ in range(int(timeout / 0.1)):
            if await self.js(expression):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the page never got to: {expression}")

    async def mouse(self, kind: str, x: float, y: float, **extra: object) -> None:
        await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)


@asynccontextmanager
async def open_page(
    path: Path, workdir: Path, *, ready: str = "true", page_class: type[Page] = Page
) -> AsyncIterator[Any]:
    """``path`` opened in a headless Chromium (profile in ``workdir``), once ``ready`` holds."""
    assert CHROMIUM is not None, "chromium is not installed"
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={workdir / 'chromium-profile'}", "--remote-debugging-port=0",
         "--window-size=1200,800", path.as_uri()],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = None
        assert browser.stderr is not None
        for line in browser.stderr:
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "Chromium did not start its DevTools endpoint"
        async with aiohttp.ClientSession() as session:
            tabs: list[dict[str, Any]] = []
            for _ in range(50):
                targets = await (await session.get(f"http://127.0.0.1:{port}/json/list")).json()
                tabs = [t for t in targets if t["type"] == "page" and t["url"].startswith("file:")]
                if tabs:
                    break
                await asyncio.sleep(0.1)
            async with session.ws_connect(tabs[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = page_class(ws)
                await page.until(f"document.readyState === 'complete' && ({ready})")
                yield page
    finally:
        browser.terminate()
        browser.wait(10)
