"""``/template``: homelab stacks deployed in one command, tracked in the cluster, safe to retry."""

from clustercord_builtins.templates import catalog
from clustercord_sdk import hookimpl


@hookimpl
def autocomplete(command, option, value, ctx):
    if option == "template":
        names = [e.template.name for e in catalog.entries(ctx.store)]
        return [n for n in names if n.startswith(value)][:25]
    if option == "cluster":
        return [c.name for c in ctx.kubernetes.clusters() if c.name.startswith(value)][:25]
    return []
