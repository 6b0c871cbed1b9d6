"""``/template``: homelab stacks deployed in one command, tracked in the cluster, safe to retry."""

import asyncio

from clustercord_builtins.templates import catalog
from clustercord_builtins.templates.deployer import Deployer
from clustercord_sdk import hookimpl
from clustercord_sdk.completion import rank, suggest

RECONCILE_SECONDS = 3.0
"""How long the start may spend on stuck releases: within the hook's budget (5 s by default),
so an unreachable cluster never fails the start; what is left is taken over by the next
deploy, update or delete of that release, as before."""


@hookimpl
async def on_enable(ctx):
    """Releases that a killed deploy or update left ``deploying``/``applying`` are marked
    ``interrupted`` at once (their Lease released), not found stuck at the next command."""
    try:
        await asyncio.wait_for(reconcile(ctx), RECONCILE_SECONDS)
    except Exception as error:  # a cluster down, a timeout: the start goes on
        ctx.log.warning("stuck releases not reconciled at start: %s", error or type(error).__name__)


async def reconcile(ctx) -> None:
    for cluster in ctx.kubernetes.clusters():
        try:
            deployer = Deployer(ctx.kubernetes, cluster.name, store=ctx.store, by="clustercord")
            for release, reason in await deployer.reconcile():
                ctx.log.warning(
                    "%s/%s on %s: interrupted (%s)",
                    release.namespace,
                    release.release,
                    cluster.name,
                    reason,
                )
        except Exception as error:  # this cluster unreachable: the others are still done
            ctx.log.warning("stuck releases on %s not reconciled: %s", cluster.name, error)


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "template":
        return rank((e.template.name for e in catalog.entries(ctx.store)), value)
    return await suggest(ctx.kubernetes.acting_for(invocation), option, value, invocation.options)
