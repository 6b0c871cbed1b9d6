"""The ``/plugin`` commands: the kernel's plugin management, as a plugin."""

from clustercord_sdk import hookimpl


@hookimpl
async def autocomplete(command, option, value, ctx):
    if option != "name" or not command.startswith("plugin"):
        return []
    if command.split()[-1] == "install":
        # What the marketplace offers: the last fetched indexes, or (a cold cache, as after
        # a start) a fetch that may take no longer than Discord waits for suggestions.
        names = await ctx.plugins.market_names_fetched()
    elif command.split()[-1] in ("update", "remove"):
        names = ctx.plugins.installed_from_market()
    else:
        names = [info.name for info in ctx.plugins.list()]
    return [name for name in names if name.startswith(value)][:25]
