"""The ``/plugin`` commands: the kernel's plugin management, as a plugin."""

from clustercord_sdk import hookimpl


@hookimpl
def autocomplete(command, option, value, ctx):
    if option != "name" or not command.startswith("plugin"):
        return []
    if command.split()[-1] == "install":  # what the marketplace offers (last fetched)
        names = ctx.plugins.market_names()
    elif command.split()[-1] in ("update", "remove"):
        names = ctx.plugins.installed_from_market()
    else:
        names = [info.name for info in ctx.plugins.list()]
    return [name for name in names if name.startswith(value)][:25]
