"""Approval requests of plugins, decided by admins, persisted in the kernel table ``_approvals``.

A request is ``pending`` until an admin approves or denies it, or until it expires.
Decisions are final: a second decision is refused, so two admins clicking at once
cannot both act. The kernel is told of every outcome (``on_decided``) only after it
is committed, so a plugin never continues a flow on a decision that was rolled back.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from clustercord.storage import Database
from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import Approval

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, plugin, action, summary, requested_by, status, created_at, expires_at, details, "
    "handler, decided_by, decided_at, reason"
)

OnDecided = Callable[[Approval], Any]


class ApprovalService:
    """Every plugin's approval requests; plugins get a scoped view via :meth:`for_plugin`."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], float] = time.time,
        on_decided: OnDecided | None = None,
        on_requested: OnDecided | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self.on_decided = on_decided
        self.on_requested = on_requested
        """Told of each new request once committed (the kernel posts it for admins)."""
        database.db.table("_approvals").create(
            {
                "id": str,
                "plugin": str,
                "action": str,
                "summary": str,
                "requested_by": str,
                "status": str,
                "created_at": float,
                "expires_at": float,
                "details": str,
                "handler": str,
                "decided_by": str,
                "decided_at": float,
                "reason": str,
            },
            pk="id",
            not_null={
                "plugin",
                "action",
                "summary",
                "requested_by",
                "status",
                "created_at",
                "expires_at",
                "details",
            },
            if_not_exists=True,
        )
        database.db.table("_approvals").create_index(["status", "expires_at"], if_not_exists=True)

    def for_plugin(self, plugin: str) -> PluginApprovals:
        return PluginApprovals(self, plugin)

    def request(
        self,
        plugin: str,
        action: str,
        summary: str,
        *,
        requested_by: str,
        details: Mapping[str, Any] | None = None,
        handler: str | None = None,
        expires_in: float = 3600.0,
    ) -> Approval:
        if expires_in <= 0:
            raise ValueError(f"expires_in must be positive, not {expires_in}")
        now = self._clock()
        details_json = json.dumps(dict(details or {}), sort_keys=True)
        while True:
            approval_id = secrets.token_urlsafe(6)
            try:
                with self._database.transaction():
                    self._database.conn.execute(
                        f"INSERT INTO _approvals({_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, NULL, NULL, NULL)",
                        (
                            approval_id,
                            plugin,
                            action,
                            summary,
                            requested_by,
                            now,
                            now + expires_in,
                            details_json,
                            handler,
                        ),
                    )
            except sqlite3.IntegrityError:
                continue  # id collision: 48 random bits make this rare; draw again
            break
        approval = self._get(approval_id)
        assert approval is not None
        if self.on_requested is not None:
            self.on_requested(approval)
        return approval

    def get(self, approval_id: str) -> Approval | None:
        """The request; a pending one past its expiry reads as ``expired``.

        The stored status catches up (and ``on_decided`` is called) when
        :meth:`expire` runs.
        """
        approval = self._get(approval_id)
        if (
            approval is not None
            and approval.status == "pending"
            and approval.expires_at <= self._clock()
        ):
            approval.status = "expired"
        return approval

    def pending(self, plugin: str | None = None) -> list[Approval]:
        """Requests still open to a decision, oldest first."""
        query = f"SELECT {_COLUMNS} FROM _approvals WHERE status = 'pending' AND expires_at > ?"
        params: tuple[Any, ...] = (self._clock(),)
        if plugin is not None:
            query += " AND plugin = ?"
            params += (plugin,)
        rows = self._database.conn.execute(query + " ORDER BY created_at, id", params)
        return [_approval(row) for row in rows]

    def decide(
        self, approval_id: str, approve: bool, by: str, reason: str | None = None
    ) -> Approval:
        """Approve or deny a pending request; a CommandError says why it cannot be decided."""
        now = self._clock()
        with self._database.transaction():
            current = self._get(approval_id)
            if current is None:
                raise CommandError(f"there is no approval request {approval_id!r}")
            if current.status != "pending":
                by_whom = f" by {current.decided_by}" if current.decided_by else ""
                raise CommandError(
                    f"approval {approval_id} was already {current.status}{by_whom}; "
                    "a decision cannot be changed"
                )
            expired = current.expires_at <= now
            status = "expired" if expired else ("approved" if approve else "denied")
            self._set_status(
                approval_id, status, None if expired else by, now, None if expired else reason
            )
        decided = self._get(approval_id)
        assert decided is not None
        self._notify(decided)
        if expired:
            raise CommandError(
                f"approval {approval_id} expired at {_iso(current.expires_at)}; "
                "ask for the action again"
            )
        return decided

    def expire(self, now: float | None = None) -> list[Approval]:
        """Mark pending requests past their expiry as ``expired``; returns them."""
        now = self._clock() if now is None else now
        with self._database.transaction():
            rows = self._database.conn.execute(
                f"SELECT {_COLUMNS} FROM _approvals WHERE status = 'pending' AND expires_at <= ? "
                "ORDER BY expires_at, id",
                (now,),
            ).fetchall()
            expired = [_approval(row) for row in rows]
            for approval in expired:
                self._set_status(approval.id, "expired", None, now, None)
                approval.status, approval.decided_at = "expired", now
        for approval in expired:
            self._notify(approval)
        return expired

    def _set_status(
        self, approval_id: str, status: str, by: str | None, at: float, reason: str | None
    ) -> None:
        self._database.conn.execute(
            "UPDATE _approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ? "
            "WHERE id = ? AND status = 'pending'",
            (status, by, at, reason, approval_id),
        )

    def _notify(self, approval: Approval) -> None:
        if self.on_decided is None:
            return
        try:
            self.on_decided(approval)
        except Exception:
            # The decision is committed and stands; a failing listener must not undo it.
            log.exception("on_decided failed for approval %s", approval.id)

    def _get(self, approval_id: str) -> Approval | None:
        row = self._database.conn.execute(
            f"SELECT {_COLUMNS} FROM _approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        return None if row is None else _approval(row)


class PluginApprovals:
    """The :class:`clustercord_sdk.services.Approvals` of one plugin: only its own requests."""

    def __init__(self, service: ApprovalService, plugin: str) -> None:
        self._service = service
        self.plugin = plugin

    def request(
        self,
        action: str,
        summary: str,
        *,
        requested_by: str,
        details: Mapping[str, Any] | None = None,
        handler: str | None = None,
        expires_in: float = 3600.0,
    ) -> Approval:
        return self._service.request(
            self.plugin,
            action,
            summary,
            requested_by=requested_by,
            details=details,
            handler=handler,
            expires_in=expires_in,
        )

    def get(self, approval_id: str) -> Approval | None:
        approval = self._service.get(approval_id)
        return approval if approval is not None and approval.plugin == self.plugin else None

    def pending(self) -> list[Approval]:
        return self._service.pending(self.plugin)


def _approval(row: tuple[Any, ...]) -> Approval:
    (
        approval_id,
        plugin,
        action,
        summary,
        requested_by,
        status,
        created_at,
        expires_at,
        details,
        handler,
        decided_by,
        decided_at,
        reason,
    ) = row
    return Approval(
        id=approval_id,
        plugin=plugin,
        action=action,
        summary=summary,
        requested_by=requested_by,
        status=status,
        created_at=created_at,
        expires_at=expires_at,
        details=json.loads(details),
        handler=handler,
        decided_by=decided_by,
        decided_at=decided_at,
        reason=reason,
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
