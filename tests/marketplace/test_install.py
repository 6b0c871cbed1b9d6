"""/plugin browse, install, update and remove through the console harness, with real wheels
built by pip, a real signed index, real gpg and real pip, without a restart."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.slow


def installed_dirs(harness):
    root = harness.settings.data_dir / "marketplace" / "plugins"
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*")) if root.exists() else []


async def test_browse_install_run_update_approve_remove_without_restart(
    market_harness, market, wheels
):
    harness = market_harness
    market.publish(
        wheels["hello-0.1.0"],
        meta={"hello": {"category": "examples", "stars": 42, "verified": {"by": "Acme QA"}}},
    )
    kernel = await harness.start()

    browsed = await harness.run("/plugin browse")
    assert browsed.ok, browsed.text
    assert browsed.reply.data["entries"] == [
        {
            "name": "hello",
            "version": "0.1.0",
            "category": "examples",
            "stars": 42,
            "verified_by": "Acme QA",
            "installed": None,
            "updatable": False,
            "source": "acme",
        }
    ]
    row = browsed.reply.tables[0].rows[0]
    assert row[0] == "✅" and "⭐ 42" in row and "hello" in row[1]

    assert (await harness.run("/hello name:Ada")).status != "ok"  # not there yet
    installed = await harness.run("/plugin install name:hello")
    assert installed.ok, installed.text
    # Asked first, showing what it declares; progress steps as it went.
    assert "hello 0.1.0" in installed.asked[0].prompt
    labels = [r.progress.label for r in installed.sent if r.progress is not None]
    assert labels[0] == "Checking permissions…" and labels[-1] == "Setting up hooks…"
    assert "Installing dependencies…" in labels and "Registering commands…" in labels
    assert "/hello" in installed.text
    plugin = harness.plugin("hello")
    assert plugin.state == "enabled"
    assert kernel.isolation.process("hello") is not None  # the isolated tier

    ran = await harness.run("/hello name:Ada")
    assert ran.text == "👋 Hello, Ada! (greeting #1)"
    again = await harness.run("/plugin browse")
    assert again.reply.data["entries"][0]["installed"] == "0.1.0"

    # 0.2.0 asks for pods:read: installed, and disabled until an admin approves the difference.
    market.publish(wheels["hello-0.2.0"])
    browsed = await harness.run("/plugin browse")
    assert browsed.reply.data["entries"][0]["updatable"] is True
    updated = await harness.run("/plugin update name:hello")
    assert updated.ok, updated.text
    assert "+ pods:read" in updated.asked[0].prompt
    assert "Disabled until an admin approves: pods:read" in updated.text
    assert harness.plugin("hello").state == "awaiting-approval"
    assert harness.plugin("hello").manifest.version == "0.2.0"
    assert (await harness.run("/hello name:Ada")).status != "ok"
    approved = await harness.run("/plugin permissions name:hello approve:true")
    assert approved.ok, approved.text
    ran = await harness.run("/hello name:Ada")
    assert ran.text == "👋 Hello, Ada! (greeting #2)"  # its data survived the update
    assert len(installed_dirs(harness)) == 1 and installed_dirs(harness)[0].startswith(
        "hello/0.2.0"
    )

    removed = await harness.run("/plugin remove name:hello")
    assert removed.ok, removed.text
    assert "hello" not in kernel.manager.plugins
    assert (await harness.run("/hello name:Ada")).status != "ok"
    assert installed_dirs(harness) == []
    assert kernel.isolation.process("hello") is None


async def test_installed_plugin_survives_a_restart(market_harness, market, wheels):
    harness = market_harness
    market.publish(wheels["hello-0.1.0"])
    await harness.start()
    assert (await harness.run("/plugin install name:hello")).ok
    await harness.restart()
    assert harness.plugin("hello").state == "enabled"
    assert (await harness.run("/hello name:Bo")).text == "👋 Hello, Bo! (greeting #1)"


async def test_a_plugins_own_dependency_is_installed_beside_it(market_harness, market, wheels):
    # The source folder holds the dependency's wheel too (pip finds it there, offline);
    # build-index lists only the plugin.
    market.publish(wheels["greeter"], wheels["words"])
    await market_harness.start()
    browsed = await market_harness.run("/plugin browse")
    assert [e["name"] for e in browsed.reply.data["entries"]] == ["greeter"]
    installed = await market_harness.run("/plugin install name:greeter")
    assert installed.ok, installed.text
    assert (await market_harness.run("/greeter name:Ada")).text == "Howdy, Ada!"
    assert importlib.util.find_spec("acme_words") is None  # not in the kernel's environment


async def test_update_without_a_name_updates_every_plugin_that_has_a_newer_version(
    market_harness, market, wheels
):
    market.publish(wheels["hello-0.1.0"])
    await market_harness.start()
    assert (await market_harness.run("/plugin install name:hello")).ok
    nothing = await market_harness.run("/plugin update")
    assert nothing.text == "Every marketplace plugin is up to date."
    market.publish(wheels["hello-0.3.0"])
    updated = await market_harness.run("/plugin update")
    assert updated.ok, updated.text
    assert "Updated hello 0.3.0" in updated.text
    assert market_harness.plugin("hello").manifest.version == "0.3.0"
    again = await market_harness.run("/plugin update name:hello")
    assert again.status == "error" and "newest version" in again.text
