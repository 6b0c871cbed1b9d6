"""Bad input is a clear refusal: nothing half-installed, the previous version still working."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import pytest
from aiohttp import web

from clustercord.plugins.index import MAX_INDEX_BYTES, iso, parse_index, verify_index
from clustercord.signing import TrustStore
from clustercord_testing.harness import TestSigner

pytestmark = pytest.mark.slow


def leftovers(harness) -> list[str]:
    """What installs left under the marketplace's folders (plugins and downloads)."""
    root = harness.settings.data_dir / "marketplace"
    return sorted(
        p.relative_to(root).as_posix()
        for folder in ("plugins", "downloads")
        for p in (root / folder).rglob("*")
        if p.is_file()
    )


async def refused(harness, line: str) -> str:
    result = await harness.run(line)
    assert result.status == "error", (result.status, result.text)
    return result.text


async def test_a_wheel_changed_after_the_index_was_signed_is_refused(
    market_harness, market, wheels
):
    folder = market.publish(wheels["hello-0.1.0"])
    wheel = folder / wheels["hello-0.1.0"].name
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes
    wheel.write_bytes(bytes(data))
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:hello")
    assert "sha256" in text and "differs from the signed index" in text
    assert "hello" not in market_harness.kernel.manager.plugins
    assert leftovers(market_harness) == []


async def test_a_plugin_changed_after_its_signature_is_refused_before_pip(
    market_harness, market, wheels
):
    market.publish(wheels["tampered"])
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:tampered")
    assert "file changed after signing: commands.py" in text
    assert leftovers(market_harness) == []


async def test_an_index_entry_that_disagrees_with_the_signed_manifest_is_refused(
    market_harness, market, wheels
):
    folder = market.publish(wheels["hello-0.2.0"])
    # The index (re-signed by the same publisher) hides the permission the plugin declares.
    index = json.loads((folder / "index.json").read_text())
    index["plugins"][0]["versions"][0]["permissions"] = []
    data = json.dumps(index).encode()
    (folder / "index.json").write_bytes(data)
    (folder / "index.json.asc").write_text(
        market.signer.keys.signer(market.signer.fingerprint).detach_sign(data)
    )
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:hello")
    assert "disagrees with the plugin's signed manifest (permissions)" in text
    assert leftovers(market_harness) == []


async def test_an_altered_or_unpinned_index_is_refused(market_harness, market, wheels, tmp_path):
    folder = market.publish(wheels["hello-0.1.0"])
    original = (folder / "index.json").read_bytes()
    (folder / "index.json").write_bytes(original.replace(b'"other"', b'"games"'))
    await market_harness.start()
    browsed = await market_harness.run("/plugin browse")
    assert browsed.reply.data["total"] == 0
    assert "bad signature: acme index.json was altered after signing" in browsed.text
    text = await refused(market_harness, "/plugin install name:hello")
    assert "no plugin named 'hello'" in text and "altered after signing" in text

    stranger = TestSigner()  # a key nobody pinned
    try:
        (folder / "index.json").write_bytes(original)
        (folder / "index.json.asc").write_text(
            stranger.keys.signer(stranger.fingerprint).detach_sign(original)
        )
        browsed = await market_harness.run("/plugin browse")
        assert "signed by an untrusted key" in browsed.text
    finally:
        stranger.cleanup()


async def test_a_stale_index_is_refused(market_harness, market, wheels):
    market.publish(wheels["hello-0.1.0"], now=time.time() - 40 * 86400, valid_days=30)
    await market_harness.start()
    browsed = await market_harness.run("/plugin browse")
    assert browsed.reply.data["total"] == 0
    assert "stale index: valid until" in browsed.text


async def test_a_replayed_older_index_is_refused(market_harness, market, wheels):
    folder = market.publish(wheels["hello-0.1.0"], now=time.time() - 3600)
    old = {n: (folder / n).read_bytes() for n in ("index.json", "index.json.asc")}
    market.publish(wheels["hello-0.2.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin browse")).reply.data["total"] == 1
    for name, data in old.items():
        (folder / name).write_bytes(data)
    browsed = await market_harness.run("/plugin browse")
    assert "older than the copy already seen" in browsed.text


async def test_a_kernel_api_range_that_excludes_this_kernel_is_refused(
    market_harness, market, wheels
):
    market.publish(wheels["future"])
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:future")
    assert "no version of future supports this kernel's API 1.0" in text
    text = await refused(market_harness, "/plugin install name:future version:1.0.0")
    assert "future 1.0.0 needs kernel API >=2.0,<3, this kernel provides 1.0" in text


async def test_a_dependency_conflict_with_the_kernel_names_the_package(
    market_harness, market, wheels
):
    market.publish(wheels["conflict"])
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:conflict")
    assert "dependency conflict: acme-conflict 1.0.0 depends on pyyaml<5" in text, text
    assert "the kernel uses pyyaml" in text.lower() and "never replaces a kernel dependency" in text
    assert "conflict" not in market_harness.kernel.manager.plugins
    assert leftovers(market_harness) == []


async def test_a_name_clash_with_a_builtin_or_another_plugin_is_refused(
    market_harness, market, wheels, make_plugin
):
    market.publish(wheels["clash"], wheels["hello-0.1.0"])
    market_harness.add_plugin(make_plugin("hello"))  # installed otherwise (not the market)
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:plugins")
    assert "builtin plugin" in text
    text = await refused(market_harness, "/plugin install name:hello")
    assert "already installed" in text and "not from the marketplace" in text
    assert (await market_harness.run("/hello")).text == "hello ran"  # untouched
    text = await refused(market_harness, "/plugin remove name:hello")
    assert "not installed from the marketplace" in text


async def test_a_download_that_stops_midway_leaves_nothing(market_harness, market, wheels):
    folder = market.publish(wheels["hello-0.1.0"])
    wheel_name = wheels["hello-0.1.0"].name

    async def handler(request: web.Request) -> web.StreamResponse:
        path = folder / request.match_info["name"]
        data = path.read_bytes()
        if request.match_info["name"] != wheel_name:
            return web.Response(body=data)
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        request.transport.close()  # the connection drops halfway
        return response

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        market_harness.settings.marketplace["sources"][0]["url"] = f"http://127.0.0.1:{port}/"
        await market_harness.start()
        text = await refused(market_harness, "/plugin install name:hello")
        assert "hello 0.1.0" in text and ("stopped after" in text or "failed" in text)
        assert leftovers(market_harness) == []
        assert "hello" not in market_harness.kernel.manager.plugins
    finally:
        await runner.cleanup()


async def test_a_failed_update_keeps_the_previous_version_working(market_harness, market, wheels):
    folder = market.publish(wheels["hello-0.1.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin install name:hello")).ok
    assert (await market_harness.run("/hello name:Ada")).ok
    market.publish(wheels["hello-0.3.0"])
    (folder / wheels["hello-0.3.0"].name).write_bytes(b"not a wheel at all")
    text = await refused(market_harness, "/plugin update name:hello")
    assert "hello 0.3.0" in text
    plugin = market_harness.plugin("hello")
    assert plugin.state == "enabled" and plugin.manifest.version == "0.1.0"
    assert (await market_harness.run("/hello name:Ada")).text == "👋 Hello, Ada! (greeting #2)"
    assert [p for p in leftovers(market_harness) if "/0.3.0" in p] == []


async def test_downgrade_and_pin_with_version(market_harness, market, wheels):
    market.publish(wheels["hello-0.1.0"], wheels["hello-0.3.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin install name:hello")).ok
    assert market_harness.plugin("hello").manifest.version == "0.3.0"
    moved = await market_harness.run("/plugin install name:hello version:0.1.0")
    assert moved.ok, moved.text
    assert market_harness.plugin("hello").manifest.version == "0.1.0"
    assert (await market_harness.run("/hello name:Ada")).ok


async def test_only_admins_install(market_harness, market, wheels):
    market.publish(wheels["hello-0.1.0"])
    await market_harness.start()
    result = await market_harness.run("/plugin install name:hello", user="4242")
    assert result.status == "denied"
    assert "hello" not in market_harness.kernel.manager.plugins


def test_an_index_of_10_mb_or_100000_entries_is_refused(publisher, tmp_path):
    trust = TrustStore(tmp_path / "trust")
    trust.trust(publisher.public_key, label="acme")
    signer = publisher.keys.signer(publisher.fingerprint)
    now = time.time()
    head = {
        "format": "clustercord-index/1",
        "name": "big",
        "generated": iso(now),
        "valid_until": iso(now + 86400),
    }
    entry = {"name": "x", "category": "other", "versions": []}
    many = json.dumps({**head, "plugins": [entry] * 100_000}).encode()
    with pytest.raises(Exception, match="100,000 plugins, the limit is 10,000"):
        verify_index(many, signer.detach_sign(many).encode(), trust)
    padded = json.dumps({**head, "plugins": [], "pad": "x" * MAX_INDEX_BYTES}).encode()
    with pytest.raises(Exception, match="the limit is under 10,485,760"):
        verify_index(padded, b"sig", trust)
    with pytest.raises(
        Exception, match=r"Additional properties are not allowed \('pad' was unexpected\)"
    ):
        parse_index(json.dumps({**head, "plugins": [], "pad": 1}).encode())


async def test_a_10_mb_index_download_is_cut_at_the_limit(market_harness, market, wheels):
    folder = market.publish(wheels["hello-0.1.0"])
    with (folder / "index.json").open("ab") as handle:
        handle.write(b" " * MAX_INDEX_BYTES)
    await market_harness.start()
    browsed = await market_harness.run("/plugin browse")
    assert "larger than the limit of 10,485,760 bytes" in browsed.text
    await asyncio.sleep(0)


async def test_an_install_killed_midway_leaves_nothing_after_a_restart(
    market_harness, market, wheels
):
    market.publish(wheels["hello-0.1.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin install name:hello")).ok
    root = market_harness.settings.data_dir / "marketplace"
    # What a process killed during an update leaves: a half-written version, a partial download.
    (root / "plugins" / "hello" / "0.3.0-deadbeef" / "lib").mkdir(parents=True)
    (root / "downloads" / "ab").mkdir(parents=True)
    (root / "downloads" / "ab" / "x.whl.part").write_bytes(b"half")
    # One that is still being written (another process installing now) is left alone.
    (root / "plugins" / "hello" / "0.4.0-inflight" / "lib").mkdir(parents=True)
    long_ago = time.time() - 7200
    for path in (root / "plugins" / "hello" / "0.3.0-deadbeef", root / "downloads" / "ab"):
        os.utime(path, (long_ago, long_ago))
    await market_harness.restart()
    assert (root / "plugins" / "hello" / "0.4.0-inflight").exists()
    shutil.rmtree(root / "plugins" / "hello" / "0.4.0-inflight")
    assert leftovers(market_harness) != []  # the installed version is kept
    assert all(p.startswith("plugins/hello/0.1.0-") for p in leftovers(market_harness))
    assert market_harness.plugin("hello").state == "enabled"
    assert (await market_harness.run("/hello name:Ada")).ok


async def test_a_version_that_is_not_one_is_a_clear_error(market_harness, market, wheels):
    market.publish(wheels["hello-0.1.0"])
    await market_harness.start()
    text = await refused(market_harness, "/plugin install name:hello version:latest;rm")
    assert "'latest;rm' is not a version" in text


def test_a_remote_index_may_not_point_at_local_files():
    from clustercord.plugins.sources import DownloadError, Source

    remote = Source("acme", "https://plugins.acme.example/")
    assert remote.resolve("a-1.0-py3-none-any.whl").startswith("https://plugins.acme.example/")
    with pytest.raises(DownloadError, match="may not name file:///dev/zero"):
        remote.resolve("file:///dev/zero")
    assert Source("mirror", "/srv/mirror").resolve("file:///srv/x.whl") == "file:///srv/x.whl"


async def test_an_update_that_cannot_start_rolls_back_with_its_grant(
    market_harness, market, wheels
):
    market.publish(wheels["hello-0.2.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin install name:hello")).ok
    assert (await market_harness.run("/plugin permissions name:hello approve:true")).ok
    market.publish(wheels["hello-broken"])
    text = await refused(market_harness, "/plugin update name:hello")
    assert "hello 0.4.0 could not start: on_enable failed" in text
    plugin = market_harness.plugin("hello")
    assert plugin.manifest.version == "0.2.0" and plugin.state == "enabled"
    assert plugin.granted == ["pods:read"]  # the rollback kept what the admin approved
    assert (await market_harness.run("/hello name:Ada")).ok
    assert all("/0.4.0" not in p for p in leftovers(market_harness))
