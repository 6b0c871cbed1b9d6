from __future__ import annotations

import time

from clustercord_sdk import CommandContext, Reply, Table
from clustercord_sdk.reply import Button

BUTTONS_FOR = 10
"""Pending requests that get Approve/Deny buttons in ``/approval list`` (2 buttons each)."""


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
        buttons=[button for a in pending[:BUTTONS_FOR] for button in decision_buttons(a.id)],
        data={"pending": [a.id for a in pending]},
    )


def decision_buttons(approval_id: str) -> list[Button]:
    """Approve/Deny for one request. A press is checked against the access policy of
    ``/approval approve`` or ``/approval deny`` (admins only), whoever listed them."""
    return [
        Button(f"Approve {approval_id}", action="commands:approve_pressed", value=approval_id,
               style="success", command="approval approve"),
        Button(f"Deny {approval_id}", action="commands:deny_pressed", value=approval_id,
               style="danger", command="approval deny"),
    ]  # fmt: skip


def approve_pressed(ctx: CommandContext, value: str) -> Reply:
    return _decide(ctx, True, value)


def deny_pressed(ctx: CommandContext, value: str) -> Reply:
    return _decide(ctx, False, value)


def _decide(ctx: CommandContext, approve: bool, approval_id: str | None = None) -> Reply:
    approval = _service(ctx).decide(
        approval_id or ctx.options["id"], approve, by=ctx.user_id, reason=ctx.options.get("reason")
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
