"""An example ClusterCord plugin: one command, one event hook, one config value."""

from clustercord_sdk import Event, PluginContext, hookimpl


@hookimpl
def on_event(event: Event, ctx: PluginContext) -> None:
    # Only pods labelled app=minecraft arrive here: the manifest's filter says so.
    ctx.store.set("last_started", f"{event.namespace}/{event.name}")
