"""The kernel's HTTP service: plugins' routes under /plugins/<name>/, through the one door,
reached with a real HTTP client over TLS (the self-signed certificate pinned)."""

from __future__ import annotations

import ssl
import stat
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from clustercord.config import load_settings
from clustercord_sdk.errors import ManifestError, UsageError
from clustercord_sdk.manifest import load_manifest

ROUTES = {
    "routes": [
        {"method": "GET", "path": "/hello", "handler": "web:hello"},
        {"method": "POST", "path": "/echo", "handler": "web:echo"},
        {"method": "GET", "path": "/boom", "handler": "web:boom"},
        {"method": "GET", "path": "/slow", "handler": "web:slow"},
        {"method": "GET", "path": "/refuse", "handler": "web:refuse"},
        {"method": "*", "path": "/tree/*", "handler": "web:tree"},
        {"method": "*", "path": "/reads/*", "handler": "web:tree", "safe_reads": True},
    ]
}
WEB = """
import time
from clustercord_sdk.errors import PermissionDenied
from clustercord_sdk.http import HttpResponse

CALLS = []

def hello(request, ctx):
    return HttpResponse.text(f"hello {request.args().get('who')} from {ctx.plugin}")

async def echo(request):
    CALLS.append(len(request.body))
    return HttpResponse.json_body(
        {"body": request.body.decode(), "type": request.header("content-type")}, status=201
    )

def boom(request):
    raise RuntimeError("secret internals /etc/passwd")

def slow(request):
    time.sleep(5)
    return "late"

def refuse(request):
    raise PermissionDenied("not you")

def tree(request):
    return f"{request.method} {request.tail} {request.base_url}"
"""


async def _start(harness: Any, **http: Any) -> Any:
    harness.settings = replace(
        harness.settings, http={"listen": "127.0.0.1:0", "timeout": 1, "max_body": 1024, **http}
    )
    kernel = await harness.start()
    await kernel.http.start()
    return kernel


def _client(kernel: Any) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cadata=kernel.http.certificate.pem)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


@pytest.fixture
async def served(clustercord_harness, make_plugin):
    # A builtin of this kernel: granted what it declares, routes included.
    clustercord_harness.add_plugin(
        make_plugin("web", manifest=ROUTES, modules={"web": WEB}), builtin=True
    )
    kernel = await _start(clustercord_harness)
    async with _client(kernel) as client:
        yield kernel, client, kernel.http.url + "/plugins/web"
    await kernel.http.close()


async def test_a_declared_route_answers_over_tls_and_is_audited(served):
    kernel, client, base = served
    async with client.get(base + "/hello?who=alice&code=SECRETCODE") as response:
        assert response.status == 200
        assert await response.text() == "hello alice from web"
        assert response.headers["Cache-Control"] == "no-store"
    rows = [r for r in kernel.audit.iter_rows() if r["action"] == "route GET /hello"]
    assert [r["result"] for r in rows] == ["started", "ok"]
    assert rows[1]["actor"] == "http:127.0.0.1"
    assert rows[1]["intent_seq"] == rows[0]["seq"]
    assert "SECRETCODE" not in str(rows)  # the query may carry codes: never recorded
    key = kernel.settings.data_dir / "http" / "tls.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_safe_reads_are_audited_by_one_row_and_everything_else_by_two(served):
    """A route whose plugin vouches its GETs change nothing (the SSO gateway): a GET gets one
    row, committed before the answer; a POST, a WebSocket upgrade (exec is a GET that acts)
    and a GET of a route without the mark keep the intent row before the handler."""
    kernel, client, base = served

    def results(action: str) -> list[str]:
        return [r["result"] for r in kernel.audit.iter_rows() if r["action"] == action]

    async with client.get(base + "/reads/pods") as response:
        assert response.status == 200
    assert results("route * /reads/*") == ["ok"]
    async with client.post(base + "/reads/pods", data=b"x") as response:
        assert response.status == 200
    assert results("route * /reads/*") == ["ok", "started", "ok"]
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    async with client.get(base + "/reads/pods/x/exec", headers=upgrade) as response:
        await response.read()
    assert results("route * /reads/*")[3] == "started"
    async with client.get(base + "/tree/pods") as response:
        assert response.status == 200
    assert results("route * /tree/*") == ["started", "ok"]


async def test_post_body_and_prefix_routes(served):
    kernel, client, base = served
    async with client.post(base + "/echo", json={"a": 1}) as response:
        assert response.status == 201
        assert await response.json() == {"body": '{"a": 1}', "type": "application/json"}
    async with client.delete(base + "/tree/x/y") as response:
        assert await response.text() == f"DELETE /x/y {kernel.http.url}/plugins/web"


async def test_undeclared_paths_and_plugins_are_404(served):
    _, client, base = served
    for url in (base + "/nope", base + "/hello/x", base.replace("/web", "/help") + "/hello"):
        async with client.get(url) as response:
            assert response.status == 404, url
    async with client.post(base + "/hello") as response:  # declared for GET only
        assert response.status == 404


async def test_a_disabled_plugin_serves_nothing(served):
    kernel, client, base = served
    await kernel.manager.disable("web", by="test")
    async with client.get(base + "/hello") as response:
        assert response.status == 404


async def test_an_oversized_body_is_refused_before_the_plugin_runs(served):
    kernel, client, base = served
    web = kernel.manager.plugins["web"].module
    calls = __import__(f"{web.__name__}.web", fromlist=["CALLS"]).CALLS
    async with client.post(base + "/echo", data=b"x" * 4096) as response:
        assert response.status == 413
    assert calls == []


async def test_failures_give_a_status_and_no_stack_trace(served):
    kernel, client, base = served
    async with client.get(base + "/boom") as response:
        assert response.status == 500
        text = await response.text()
    assert "passwd" not in text and "Traceback" not in text and "RuntimeError" not in text
    async with client.get(base + "/slow") as response:
        assert response.status == 504
    async with client.get(base + "/refuse") as response:
        assert response.status == 403
        assert await response.text() == "not you\n"
    # A flood of failing requests never disables the plugin (anyone can send them).
    for _ in range(5):
        async with client.get(base + "/boom") as response:
            assert response.status == 500
    assert kernel.manager.plugins["web"].state == "enabled"
    results = [r["result"] for r in kernel.audit.iter_rows() if r["action"] == "route GET /boom"]
    assert results.count("error") == 6


async def test_an_isolated_plugin_serves_through_its_process(clustercord_harness, make_plugin):
    clustercord_harness.add_plugin(
        make_plugin("webiso", manifest=ROUTES, modules={"web": WEB}), isolated=True
    )
    kernel = await _start(clustercord_harness)
    await kernel.manager.approve("webiso", by="admin")
    await kernel.manager.enable("webiso", by="admin")
    try:
        assert kernel.isolation.isolates(kernel.manager.plugins["webiso"])
        async with _client(kernel) as client:
            base = kernel.http.url + "/plugins/webiso"
            async with client.get(base + "/hello?who=bob") as response:
                assert await response.text() == "hello bob from webiso"
            async with client.post(base + "/echo", data=b"raw\x00bytes") as response:
                assert response.status == 201
                assert (await response.json())["body"] == "raw\x00bytes"
            async with client.get(base + "/refuse") as response:
                assert response.status == 403
            async with client.get(base + "/boom") as response:
                assert response.status == 500
                assert "passwd" not in await response.text()
    finally:
        await kernel.http.close()


async def test_routes_are_granted_like_permissions(clustercord_harness, make_plugin):
    clustercord_harness.add_plugin(make_plugin("third", manifest=ROUTES, modules={"web": WEB}))
    kernel = await _start(clustercord_harness)
    try:
        plugin = kernel.manager.plugins["third"]
        assert plugin.state != "enabled"
        assert "route:GET /hello" in kernel.manager._ungranted(plugin)
        url = kernel.http.url + "/plugins/third/hello"
        async with _client(kernel) as client:
            async with client.get(url) as response:
                assert response.status == 404
            await kernel.manager.approve("third", by="admin")
            await kernel.manager.enable("third", by="admin")
            async with client.get(url) as response:
                assert response.status == 200
    finally:
        await kernel.http.close()


def test_the_manifest_checks_routes():
    base = {"name": "xx", "version": "1.0.0", "api": ">=1.0,<2", "description": "x"}
    good = load_manifest({**base, **ROUTES})
    assert [r.grant for r in good.routes][:2] == ["route:GET /hello", "route:POST /echo"]
    for routes, where in (
        ([{"method": "GET", "path": "/a", "handler": "m:f", "public": True}], "routes[0]"),
        ([{"method": "GET", "path": "/a/../b", "handler": "m:f"}], "routes[0].path"),
        ([{"method": "GET", "path": "", "handler": "m:f"}], "routes[0].path"),
        ([{"method": "TRACE", "path": "/a", "handler": "m:f"}], "routes[0].method"),
        ([{"method": "GET", "path": "/a", "handler": "m:f"}] * 2, "routes[1]"),
    ):
        with pytest.raises(ManifestError) as error:
            load_manifest({**base, "routes": routes})
        assert where in str(error.value)


def test_bad_http_settings_are_refused(tmp_path):
    env = {"CLUSTERCORD_DATA_DIR": str(tmp_path)}
    for name, value in (
        ("CLUSTERCORD_HTTP_LISTEN", "nowhere"),
        ("CLUSTERCORD_HTTP_TLS", "maybe"),
        ("CLUSTERCORD_HTTP_PUBLIC_URL", "ftp://x"),
    ):
        with pytest.raises(UsageError, match="http"):
            load_settings(env={**env, name: value})
    settings = load_settings(env={**env, "CLUSTERCORD_HTTP_LISTEN": "127.0.0.1:0"})
    assert settings.http == {"listen": "127.0.0.1:0"}
    assert load_settings(env=env).http == {}


async def test_the_background_of_serve_and_console_runs_the_service(
    clustercord_harness, make_plugin
):
    """``clustercord serve`` (both modes) and the console run ``kernel.run_background``:
    with ``[http]`` configured it listens there, and stops with it."""
    import asyncio

    clustercord_harness.add_plugin(
        make_plugin("web", manifest=ROUTES, modules={"web": WEB}), builtin=True
    )
    clustercord_harness.settings = replace(
        clustercord_harness.settings, http={"listen": "127.0.0.1:0", "tls": "off"}
    )
    kernel = await clustercord_harness.start()
    stop = asyncio.Event()
    background = asyncio.create_task(kernel.run_background(stop, tick=0.05))
    for _ in range(100):
        if kernel.http.url:
            break
        await asyncio.sleep(0.05)
    assert kernel.http.url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as client:
        async with client.get(kernel.http.url + "/plugins/web/hello?who=x") as response:
            assert await response.text() == "hello x from web"
        stop.set()
        await background
        with pytest.raises(aiohttp.ClientConnectionError):
            async with client.get(kernel.http.url + "/healthz"):
                pass
