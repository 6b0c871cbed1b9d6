"""The ``/plugin`` commands: the kernel's plugin management, as a plugin."""

from clustercord_sdk import hookimpl


@hookimpl
def autocomplete(command, option, value, ctx):
    if option != "name" or not command.startswith("plugin"):
        return []
    names = [info.name for info in ctx.plugins.list()]
    return [name for name in names if name.startswith(value)][:25]
