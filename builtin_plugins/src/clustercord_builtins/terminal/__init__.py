"""``/terminal``: commands and shells in pods from chat, every session recorded with secrets
masked before it is stored or shown; playback, search, asciicast download and exports."""

from clustercord_builtins.terminal.rules import AUDIT_PATTERNS
from clustercord_builtins.terminal.storage import MIGRATIONS, Recordings
from clustercord_sdk import hookimpl
from clustercord_sdk.completion import suggest

EXPIRY_JOB = "terminal-expire-recordings"


@hookimpl
def on_enable(ctx):
    # Replaces the job of an earlier start (same id): one expiry an hour, and a run missed
    # while ClusterCord was down happens once on start.
    ctx.scheduler.every("1h", "commands:expire_recordings", job_id=EXPIRY_JOB)


@hookimpl
def storage_migrations():
    return MIGRATIONS


@hookimpl
def secret_patterns():
    return AUDIT_PATTERNS


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "session":
        owner = None if invocation.admin else invocation.user_id
        return [
            {"name": f"{s.id} · {s.namespace}/{s.pod} · {' '.join(s.command)}"[:100], "value": s.id}
            for s in Recordings(ctx.store).ids(value, user=owner)
        ]
    return await suggest(ctx.kubernetes.acting_for(invocation), option, value, invocation.options)
