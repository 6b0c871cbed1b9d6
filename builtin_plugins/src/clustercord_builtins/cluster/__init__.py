"""``/cluster``, ``/pod`` and ``/deployment``: everyday cluster work from chat."""

from clustercord_sdk import hookimpl
from clustercord_sdk.completion import object_names, rank

# What a ``name:`` option names, by command group (``/cluster remove name:`` is a cluster).
NAMED = {"pod": "pods", "deployment": "deployments.apps"}


@hookimpl
async def autocomplete(command, option, value, invocation, ctx):
    group = command.split()[0]
    if option == "cluster" or (group == "cluster" and option == "name"):
        return rank((c["name"] for c in ctx.require("cluster-registry").list()), value)
    kubernetes = ctx.kubernetes.acting_for(invocation)
    cluster = invocation.options.get("cluster")
    if option == "namespace":
        return await object_names(kubernetes, "namespaces", value, cluster=cluster)
    if option == "name" and group in NAMED:
        namespace = invocation.options.get("namespace")
        return await object_names(
            kubernetes, NAMED[group], value, namespace=namespace, cluster=cluster
        )
    return []
