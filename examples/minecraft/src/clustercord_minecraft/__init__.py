"""An example ClusterCord plugin for Minecraft servers run as StatefulSets: status over the
Server List Ping protocol, restart with an RCON warning first, backup through RCON, and a
``pod:crash`` hook that spots Java running out of memory and proposes more."""

from clustercord_sdk import hookimpl

from .memory import on_crash, raise_memory


@hookimpl
async def on_event(event, ctx):
    if event.type == "pod:crash":
        await on_crash(event, ctx)


@hookimpl
async def on_approval_decided(approval, ctx):
    if approval.action == "minecraft.raise-memory" and approval.status == "approved":
        await raise_memory(approval, ctx)
