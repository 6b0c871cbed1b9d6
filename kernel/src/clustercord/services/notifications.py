"""The notification outbox: plugins' notifications queued durably for the front ends.

A plugin calls ``ctx.plugin.notifier.notify(reply, channel=…, user=…)`` (its
:class:`PluginNotifier`); the running front end delivers the queued rows (the Discord one
in :mod:`clustercord.frontends.discord.notifications`) and marks them delivered.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from clustercord.secretbox import SecretBox
from clustercord.storage import Database
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import Reply

log = logging.getLogger("clustercord.kernel")


class OutboxNotifier:
    """Notifications are queued durably; the running front end delivers them.

    A plugin's alert must not vanish because Discord was unreachable at that moment.
    An ephemeral reply (credentials, personal data) is sealed with the kernel's
    :class:`~clustercord.secretbox.SecretBox` before it touches SQLite, and its row is
    deleted once delivered: a DM carrying a password never sits in the database file
    (or its WAL) in clear text.
    """

    SEALED = "sealed:"
    """Prefix of a ``reply`` column holding a SecretBox token instead of JSON."""

    def __init__(
        self, database: Database, *, secrets: Callable[[], SecretBox] | None = None
    ) -> None:
        self.database = database
        self._secrets_factory = secrets
        self._secrets: SecretBox | None = None
        self.unreadable: set[int] = set()
        """Ids of stored notifications :meth:`pending` could not read (each logged once)."""
        database.db["_outbox"].create(
            {
                "id": int,
                "created_at": float,
                "channel": str,
                "user": str,
                "reply": str,
                "delivered_at": float,
                "plugin": str,
            },
            pk="id",
            if_not_exists=True,
        )
        database.migrate("kernel:outbox", [(1, self._add_plugin_column)])

    def _add_plugin_column(self) -> None:
        # Rows queued before notifications knew their plugin keep plugin NULL: their
        # buttons (if any) route nowhere, as before.
        table = self.database.db["_outbox"]
        if "plugin" not in table.columns_dict:
            table.add_column("plugin", str)

    def for_plugin(self, plugin: str) -> PluginNotifier:
        """The plugin's :class:`~clustercord_sdk.services.Notifier`: its rows name it, so
        buttons in its notifications route back to it."""
        return PluginNotifier(self, plugin)

    def _box(self) -> SecretBox:
        if self._secrets is None:
            if self._secrets_factory is None:
                raise CommandError("this kernel has no secret box to seal a private notification")
            self._secrets = self._secrets_factory()
        return self._secrets

    async def notify(
        self,
        reply: Reply,
        *,
        channel: str | None = None,
        user: str | None = None,
        plugin: str | None = None,
    ) -> None:
        payload = json.dumps(reply.to_dict())
        if reply.ephemeral:
            payload = self.SEALED + self._box().seal(payload)
        with self.database.transaction():
            self.database.db["_outbox"].insert(
                {
                    "created_at": time.time(),
                    "channel": channel,
                    "user": user,
                    "reply": payload,
                    "delivered_at": None,
                    "plugin": plugin,
                }
            )

    def pending(self) -> list[dict[str, Any]]:
        """Undelivered notifications, oldest first, sealed payloads opened.

        A row that cannot be read (sealed under another secret key, or corrupt) is left
        out and logged once by its id: one bad row must not stop every other
        notification. It stays stored, so restoring the old key delivers it after all.
        """
        readable = []
        for row in self.database.db["_outbox"].rows_where("delivered_at is null", order_by="id"):
            problem = self._open(row)
            if problem is None:
                readable.append(row)
                self.unreadable.discard(row["id"])
            elif row["id"] not in self.unreadable:
                self.unreadable.add(row["id"])
                # The reason is our own wording: never the ciphertext nor the plaintext.
                log.error("notification %s is kept but not delivered: %s", row["id"], problem)
        return readable

    def _open(self, row: dict[str, Any]) -> str | None:
        """Open ``row``'s sealed payload in place; say why it cannot be read, if so."""
        payload = row["reply"]
        if not isinstance(payload, str):
            return "its payload is not text"
        if payload.startswith(self.SEALED):
            try:
                box = self._box()
            except (CommandError, OSError, ValueError) as exc:  # no usable key at all
                return f"the secret key cannot be loaded ({exc})"
            try:
                payload = box.open(payload[len(self.SEALED) :])
            except CommandError as exc:  # sealed under another key, or tampered with
                return str(exc)
            except ValueError:  # not ASCII, or not UTF-8 once opened
                return "its sealed payload is corrupt"
            row["reply"] = payload
            row["sealed"] = True
        try:
            # The front ends rebuild the Reply; a row that cannot be one is refused here,
            # once, instead of breaking every delivery round after it.
            Reply.from_dict(json.loads(payload))
        except (ValueError, TypeError, KeyError, AttributeError):
            return "its payload is not a JSON notification"
        return None

    def delivered(self, row_id: int) -> None:
        """Mark one notification as delivered (called by the front end that sent it).

        A sealed one is deleted instead: once the user has it, keeping even the
        ciphertext only widens what a leaked key would expose.
        """
        table = self.database.db["_outbox"]
        with self.database.transaction():
            row = table.get(row_id)
            if str(row["reply"]).startswith(self.SEALED):
                table.delete(row_id)
            else:
                table.update(row_id, {"delivered_at": time.time()})


class PluginNotifier:
    """One plugin's view of the :class:`OutboxNotifier`."""

    def __init__(self, outbox: OutboxNotifier, plugin: str) -> None:
        self._outbox = outbox
        self.plugin = plugin

    async def notify(
        self, reply: Reply, *, channel: str | None = None, user: str | None = None
    ) -> None:
        await self._outbox.notify(reply, channel=channel, user=user, plugin=self.plugin)
