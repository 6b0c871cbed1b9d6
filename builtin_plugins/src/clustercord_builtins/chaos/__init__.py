"""``/chaos``: chaos experiments from chat, through the Kubernetes API alone (no agent, no
DaemonSet), as the plugin's own ServiceAccount with the invoking user's rights checked first.

What sets it apart from Chaos Mesh and Litmus is what happens after a crash: every fault is
recorded (in SQLite, and as marks on the target itself) before it is made, and at start and
every few seconds the plugin rolls back whatever expired or was left by a dead process.
"""

from __future__ import annotations

import asyncio

from clustercord_builtins.chaos import install, runner
from clustercord_builtins.chaos.commands import RECONCILE_JOB, approval_decided
from clustercord_builtins.chaos.experiments import MIGRATIONS, OPEN, Experiments
from clustercord_sdk import hookimpl
from clustercord_sdk.completion import suggest

START_BUDGET = 4.0
"""Seconds the rollback at start may take within the kernel's hook budget; what remains is
left to the reconciling job."""


@hookimpl
async def on_enable(ctx):
    try:
        await install.narrow(ctx.kubernetes)
    except Exception as error:  # the plugin still runs; its roles stay as declared
        ctx.log.warning("chaos: escalate/bind/patch not narrowed to the install objects: %s", error)
    interval = int(ctx.config.get("reconcile_interval", 10))
    ctx.scheduler.every(f"{interval}s", "commands:reconcile_job", job_id=RECONCILE_JOB)
    try:
        await asyncio.wait_for(
            runner.reconcile(ctx.kubernetes, Experiments(ctx.store), at_start=True),
            START_BUDGET,
        )
    except Exception as error:
        # The job carries on where this stopped, every reconcile_interval seconds.
        ctx.log.warning("chaos: rollback at start incomplete (%s); the job continues", error)


@hookimpl
def storage_migrations():
    return MIGRATIONS


@hookimpl
async def on_approval_decided(approval, ctx):
    await approval_decided(approval, ctx)


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "experiment":
        return [
            {
                "name": f"{e.id} · {e.kind} · {e.namespace}/{e.target} · {e.state}"[:100],
                "value": e.id,
            }
            for e in Experiments(ctx.store).recent(50)
            if e.id.startswith(value) and (command[-1] != "stop" or e.state in OPEN)
        ][:25]
    return await suggest(ctx.kubernetes.acting_for(invocation), option, value, invocation.options)
