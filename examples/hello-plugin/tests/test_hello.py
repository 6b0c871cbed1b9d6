"""A plugin author's tests: the harness runs a real kernel around the plugin."""

from pathlib import Path

from clustercord_sdk import Event

PLUGIN = Path(__file__).parent.parent / "src" / "clustercord_hello"


async def test_hello_greets_and_counts(clustercord_harness):
    clustercord_harness.add_plugin(PLUGIN)
    await clustercord_harness.start()

    first = await clustercord_harness.run("/hello name:Ada")
    second = await clustercord_harness.run("/hello name:Ada times:2")

    assert first.text == "👋 Hello, Ada! (greeting #1)"
    assert second.text == "👋 Hello Hello, Ada! (greeting #2)"


async def test_hello_rejects_too_many_times(clustercord_harness):
    clustercord_harness.add_plugin(PLUGIN)
    await clustercord_harness.start()

    result = await clustercord_harness.run("/hello name:Ada times:9")

    assert result.status == "usage" and "maximum 5" in result.text


async def test_hello_remembers_minecraft_pods_only(clustercord_harness):
    clustercord_harness.add_plugin(PLUGIN)
    kernel = await clustercord_harness.start()

    await kernel.events.publish(
        Event("pod:start", namespace="games", name="mc-0", labels={"app": "minecraft"})
    )
    await kernel.events.publish(
        Event("pod:start", namespace="web", name="nginx-0", labels={"app": "nginx"})
    )

    assert clustercord_harness.plugin("hello").context.store.get("last_started") == "games/mc-0"
