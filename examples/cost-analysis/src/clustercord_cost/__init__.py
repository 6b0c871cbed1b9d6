"""An example ClusterCord plugin written from the SDK's documentation alone: the monthly
cost of each namespace's CPU and memory requests (and limits) under a configurable price
table, the resources paid for but idle, and a weekly report to the alert channel."""

from clustercord_sdk import PluginContext, hookimpl

REPORT_JOB = "cost-weekly-report"


@hookimpl
def on_enable(ctx: PluginContext) -> None:
    # A fixed job id: enabling again replaces the job instead of adding a second one.
    ctx.scheduler.cron(ctx.config["report_cron"], "jobs:weekly_report", job_id=REPORT_JOB)


@hookimpl
def on_config_changed(key: str, ctx: PluginContext) -> None:
    if key == "report_cron":
        ctx.scheduler.cron(ctx.config["report_cron"], "jobs:weekly_report", job_id=REPORT_JOB)
