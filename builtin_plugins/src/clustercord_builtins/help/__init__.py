"""``/help``: the command list, derived from the enabled plugins' manifests."""

from clustercord_sdk import hookimpl
from clustercord_sdk.completion import rank


@hookimpl
def autocomplete(command, option, value, ctx):
    if option != "command":
        return []
    return rank((c["path"] for c in ctx.require("plugins").commands()), value.lstrip("/"))
