"""``/approval``: the admin side of the kernel's approval service."""

from __future__ import annotations

from typing import Any

from clustercord_sdk import Reply, hookimpl

from .commands import decision_buttons


@hookimpl
async def on_event(event: Any, ctx: Any) -> None:
    """A new request is posted to the alerts channel with Approve/Deny buttons."""
    if event.type != "approval:requested":
        return
    data = event.data
    text = (
        f"⏳ Approval {data['id']} requested by <@{data['requested_by']}>: "
        f"{data['plugin']}: {data['summary']}"
    )
    await ctx.notifier.notify(Reply(text=text, buttons=decision_buttons(data["id"])))
