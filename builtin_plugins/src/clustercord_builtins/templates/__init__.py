"""``/template``: homelab stacks deployed in one command, tracked in the cluster, safe to retry."""

from clustercord_builtins.templates import catalog
from clustercord_sdk import hookimpl
from clustercord_sdk.completion import rank, suggest


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "template":
        return rank((e.template.name for e in catalog.entries(ctx.store)), value)
    return await suggest(ctx.kubernetes.acting_for(invocation), option, value, invocation.options)
