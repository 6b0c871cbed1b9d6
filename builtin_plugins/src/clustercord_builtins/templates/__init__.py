"""``/template``: homelab stacks deployed in one command, tracked in the cluster, safe to retry."""

from clustercord_builtins.templates import catalog
from clustercord_sdk import hookimpl
from clustercord_sdk.completion import object_names, rank


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "template":
        return rank((e.template.name for e in catalog.entries(ctx.store)), value)
    if option == "cluster":
        return rank((c.name for c in ctx.kubernetes.clusters()), value)
    if option == "namespace":
        kubernetes = ctx.kubernetes.acting_for(invocation)
        cluster = invocation.options.get("cluster")
        return await object_names(kubernetes, "namespaces", value, cluster=cluster)
    return []
