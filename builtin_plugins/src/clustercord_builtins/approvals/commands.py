from __future__ import annotations

import time

from clustercord_sdk import CommandContext, Reply, Table


def _service(ctx: CommandContext):
    return ctx.plugin.require("approvals-admin")


def list_pending(ctx: CommandContext) -> Reply:
    pending = _service(ctx).pending()
    now = time.time()
    rows = [
        [
            a.id,
            a.plugin,
            a.action,
            a.summary,
            a.requested_by,
            f"{max(0, int((a.expires_at - now) / 60))} min",
        ]
        for a in pending
    ]
    if not rows:
        return Reply(text="No pending approvals.", data={"pending": []})
    return Reply(
        tables=[
            Table(
                columns=["Id", "Plugin", "Action", "Summary", "Requested by", "Expires in"],
                rows=rows,
                title=f"{len(rows)} pending",
            )
        ],
        data={"pending": [a.id for a in pending]},
    )


def _decide(ctx: CommandContext, approve: bool) -> Reply:
    approval = _service(ctx).decide(
        ctx.options["id"], approve, by=ctx.user_id, reason=ctx.options.get("reason")
    )
    icon = "✅" if approve else "⛔"
    return Reply(
        text=f"{icon} {approval.id} ({approval.plugin}: {approval.summary}) is {approval.status}.",
        data={"id": approval.id, "status": approval.status},
    )


def approve(ctx: CommandContext) -> Reply:
    return _decide(ctx, True)


def deny(ctx: CommandContext) -> Reply:
    return _decide(ctx, False)
