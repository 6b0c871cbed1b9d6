"""The weekly report: the cost table of every cluster, read as the plugin's own
ServiceAccount (no user asked), posted to the alert channel."""

from __future__ import annotations

import dataclasses

from clustercord_sdk import PluginContext

from .commands import report_reply


async def weekly_report(ctx: PluginContext) -> None:
    # A job acts for no one, so there is no "current cluster": name each one (README of
    # this example, "Gaps in the docs").
    for cluster in ctx.kubernetes.clusters():
        pods = await ctx.kubernetes.list("pods", all_namespaces=True, cluster=cluster.name)
        reply = report_reply(pods, ctx.config)
        title = f"📊 Weekly cost report of {cluster.name}\n"
        await ctx.notifier.notify(dataclasses.replace(reply, text=title + (reply.text or "")))
        ctx.store.set(f"last_report:{cluster.name}", reply.data)
