"""``/cluster``, ``/pod`` and ``/deployment``: everyday cluster work from chat."""

from clustercord_sdk import hookimpl


@hookimpl
def autocomplete(command, option, value, ctx):
    if option == "cluster":
        clusters = ctx.require("cluster-registry").list()
        return [c["name"] for c in clusters if c["name"].startswith(value)][:25]
    return []
