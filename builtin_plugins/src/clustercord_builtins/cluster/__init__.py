"""``/cluster``, ``/pod`` and ``/deployment``: everyday cluster work from chat."""

from clustercord_sdk import hookimpl
from clustercord_sdk.completion import suggest

# ``name:`` names a cluster, a pod or a deployment, by command group (``/pod logs name:``).
NAMED = {"cluster": "cluster", "pod": "pod", "deployment": "deployment"}


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    if option == "name":
        option = NAMED.get(command.split()[0], option)
    return await suggest(ctx.kubernetes.acting_for(invocation), option, value, invocation.options)
