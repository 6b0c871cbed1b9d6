"""The example third-party plugin (examples/hello-plugin) runs isolated, as it would for a
user who trusted its publisher's key: its README example holds there too."""

from __future__ import annotations

from pathlib import Path

from clustercord.isolation.stub import IsolatedPackage
from clustercord_sdk import Event

HELLO = Path(__file__).parents[2] / "examples" / "hello-plugin" / "src" / "clustercord_hello"


async def test_hello_runs_isolated(clustercord_harness):
    clustercord_harness.add_plugin(HELLO, isolated=True)
    kernel = await clustercord_harness.start()
    hello = clustercord_harness.plugin("hello")
    assert isinstance(hello.module, IsolatedPackage), hello.reason

    first = await clustercord_harness.run("/hello name:Ada")
    second = await clustercord_harness.run("/hello name:Ada times:2")
    too_many = await clustercord_harness.run("/hello name:Ada times:9")
    assert first.text == "👋 Hello, Ada! (greeting #1)"
    assert second.text == "👋 Hello Hello, Ada! (greeting #2)"
    assert second.reply.data == {"count": 2}
    assert too_many.status == "usage" and "maximum 5" in too_many.text

    await kernel.events.publish(
        Event("pod:start", namespace="games", name="mc-0", labels={"app": "minecraft"})
    )
    await kernel.events.publish(
        Event("pod:start", namespace="web", name="nginx-0", labels={"app": "nginx"})
    )
    assert hello.context.store.get("last_started") == "games/mc-0"


async def test_the_harness_runs_the_kernels_own_tiers(clustercord_signer, tmp_path):
    from clustercord_testing.harness import KernelHarness

    harness = KernelHarness(tmp_path / "tiers", clustercord_signer, isolated=True)
    try:
        harness.add_builtins(["plugins"])
        harness.add_plugin(HELLO)
        await harness.start()
        assert isinstance(harness.plugin("hello").module, IsolatedPackage)
        assert not isinstance(harness.plugin("plugins").module, IsolatedPackage)
        info = await harness.run("/plugin info name:hello")
        assert info.ok, info.text
        assert (await harness.run("/hello name:Ada")).text == "👋 Hello, Ada! (greeting #1)"
    finally:
        harness.close()
