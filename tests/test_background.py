"""What a long-running front end runs beside it: scheduled jobs and approval expiry."""

from __future__ import annotations

from .conftest import running, until


async def test_a_job_scheduled_on_enable_runs_and_survives_a_restart(
    clustercord_harness, add_plugin
):
    harness = clustercord_harness
    add_plugin(
        "ticker",
        init="""
        @hookimpl
        def on_enable(ctx):
            ctx.scheduler.every("1s", "jobs:tick", payload={"step": 2})
    """,
        modules={
            "jobs": """
        def tick(job, ctx):
            ctx.store.set("ticks", ctx.store.get("ticks", 0) + job.payload["step"])
    """
        },
    )
    kernel = await harness.start()
    store = harness.plugin("ticker").context.store
    async with running(lambda stop: kernel.run_background(stop, tick=0.05)):
        assert await until(lambda: (store.get("ticks") or 0) >= 4), "the job did not run twice"

    kernel = await harness.restart()
    assert len(harness.plugin("ticker").context.scheduler.jobs()) == 1  # not duplicated


async def test_an_expired_approval_reaches_the_plugin(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "asker",
        init="""
        @hookimpl
        def on_approval_decided(approval, ctx):
            ctx.store.set("status", approval.status)
    """,
        modules={
            "commands": """
        def run(ctx):
            ctx.plugin.approvals.request("drain", "drain node-2", requested_by=ctx.user_id,
                                         expires_in=0.2)
    """
        },
    )
    kernel = await harness.start()
    await harness.run("/asker")
    store = harness.plugin("asker").context.store
    async with running(lambda stop: kernel.run_background(stop, tick=0.05)):
        assert await until(lambda: store.get("status") == "expired")
