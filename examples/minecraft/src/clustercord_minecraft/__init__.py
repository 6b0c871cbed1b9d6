"""An example ClusterCord plugin for Minecraft servers run as StatefulSets: status over the
Server List Ping protocol, restart with an RCON warning first, backup through RCON, and a
``pod:crash`` hook that spots Java running out of memory and proposes more; the servers of
``backup_servers`` are saved every ``backup_interval`` by a scheduled job."""

from clustercord_sdk import hookimpl

from .commands import servers_to_back_up
from .memory import on_crash, raise_memory

BACKUP_JOB = "minecraft-backups"


def schedule_backups(ctx) -> None:
    """The backup job as the config says: every ``backup_interval`` (``6h``), or none."""
    interval = str(ctx.config.get("backup_interval") or "").strip()
    if interval and servers_to_back_up(ctx.config):
        ctx.scheduler.every(interval, "commands:scheduled_backups", job_id=BACKUP_JOB)
    else:
        ctx.scheduler.cancel(BACKUP_JOB)


@hookimpl
def on_enable(ctx):
    schedule_backups(ctx)


@hookimpl
def on_config_changed(key, old, new, ctx):
    if key in ("backup_interval", "backup_servers"):
        schedule_backups(ctx)


@hookimpl
async def on_event(event, ctx):
    if event.type == "pod:crash":
        await on_crash(event, ctx)


@hookimpl
async def on_approval_decided(approval, ctx):
    if approval.action == "minecraft.raise-memory" and approval.status == "approved":
        await raise_memory(approval, ctx)
