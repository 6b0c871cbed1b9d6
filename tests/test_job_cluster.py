"""A scheduled job runs for no user: "the cluster" is the only configured one, as the SDK
says, resolved by the same rule as a command's; with several, a job must name one."""

from __future__ import annotations

from clustercord_sdk.errors import UsageError

from .conftest import running, until

COUNTER = {
    "manifest": {"permissions": ["pods:read"]},
    "init": """
        @hookimpl
        def on_enable(ctx):
            ctx.scheduler.every("1s", "jobs:count")
    """,
    "modules": {
        "jobs": """
        async def count(job, ctx):
            try:
                where = ctx.kubernetes.target()
                pods = await ctx.kubernetes.list("pods", all_namespaces=True)
            except Exception as exc:
                ctx.store.set("error", str(exc))
                raise
            ctx.store.set("seen", [list(where), len(pods)])
    """
    },
}


async def test_a_job_without_cluster_uses_the_only_cluster(
    clustercord_harness, make_plugin, sandbox_cluster
):
    sandbox = sandbox_cluster("homelab")
    # builtin: granted what it declares (no admin approval to go through first)
    clustercord_harness.add_plugin(make_plugin("counter", **COUNTER), builtin=True)
    kernel = await clustercord_harness.start()
    store = clustercord_harness.plugin("counter").context.store
    async with running(lambda stop: kernel.run_background(stop, tick=0.05)):
        assert await until(lambda: store.get("seen") or store.get("error")), "the job never ran"
    assert store.get("error") is None, store.get("error")
    (cluster,) = kernel.kubernetes.registry.list()
    where, pods = store.get("seen")
    assert where == [cluster.name, cluster.namespace]
    listed = sandbox.kubectl("get", "pods", "-A", "-o", "name").stdout.split()
    assert pods == len(listed) > 0


async def test_with_two_clusters_a_job_must_name_one(
    clustercord_harness, make_plugin, sandbox_cluster
):
    first = sandbox_cluster("homelab")
    # builtin: granted what it declares (no admin approval to go through first)
    clustercord_harness.add_plugin(make_plugin("counter", **COUNTER), builtin=True)
    kernel = await clustercord_harness.start()
    registry = kernel.kubernetes.registry
    registry.add("second", first.kubeconfig.read_text(), by="test")
    store = clustercord_harness.plugin("counter").context.store
    async with running(lambda stop: kernel.run_background(stop, tick=0.05)):
        assert await until(lambda: store.get("error")), "the job did not fail"
    assert "which cluster?" in store.get("error") and "second" in store.get("error")
    assert store.get("seen") is None
    # A user's /cluster use choice never leaks into work no user started.
    registry.set_default("someone", "second")
    kubernetes = clustercord_harness.plugin("counter").context.kubernetes
    try:
        kubernetes.target()
    except UsageError as exc:
        assert "which cluster?" in str(exc)
    else:
        raise AssertionError("a job resolved a cluster among two")
    assert kubernetes.target("second") == ("second", registry.get("second").namespace)
