"""Component custom ids whose state lives in the kernel's database.

A button, select, modal or page arrow carries only ``cc:<plugin>:<short id>``;
what it does (the plugin's handler, its value, the pages, who may press it) is a
row of ``_discord_components``. So a click after a restart still works, a click
on something old gets a clear "expired" answer, and nobody can forge state by
crafting a custom id: an unknown id is refused like an expired one.

For plugin authors, a component's ``action`` is a handler of the plugin named like
command handlers (``"module:function"``); it is called for the user who clicked,
with any of these arguments it declares:

- ``ctx``: a :class:`~clustercord_sdk.context.CommandContext` of the clicking user
  (``ctx.options`` holds the same ``value``, ``values`` and ``fields``);
- ``value``: the :class:`~clustercord_sdk.reply.Button`'s ``value`` (a
  :class:`~clustercord_sdk.reply.Confirmation`'s answer, ``True`` or ``False``);
- ``values``: the options picked in a :class:`~clustercord_sdk.reply.Select`;
- ``fields``: a submitted :class:`~clustercord_sdk.reply.Modal`, input name → text.

It returns a Reply (or text) like a command, and runs under the same guard and
audit. Whoever clicks must be allowed to run the command the component came from.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clustercord.frontends.discord import limits
from clustercord.storage import Database

PREFIX = "cc"
DEFAULT_TTL = 7 * 24 * 3600.0
"""How long a button keeps working: a week, like a message people scroll back to."""
TABLE = "_discord_components"


@dataclass(frozen=True)
class Component:
    """The stored state behind one custom id."""

    custom_id: str
    plugin: str
    kind: str
    """``button``, ``select``, ``confirm``, ``modal``, ``page``, ``pages`` or ``open-modal``."""
    state: dict[str, Any]
    allowed: tuple[str, ...] | None
    """The only user ids that may use it; ``None`` means anyone who sees it."""
    invoker: str | None
    command: tuple[str, ...]
    created_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def may_use(self, user_id: str) -> bool:
        return self.allowed is None or user_id in self.allowed


def parse_custom_id(custom_id: str) -> tuple[str, str] | None:
    """``(plugin, short id)`` of one of ours, else ``None``."""
    parts = custom_id.split(":")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    return parts[1], parts[2]


class ComponentStore:
    """Mints custom ids and keeps their state, with an expiry, in SQLite."""

    def __init__(
        self,
        database: Database,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.ttl = ttl
        self.clock = clock
        database.db[TABLE].create(
            {
                "id": str,
                "plugin": str,
                "kind": str,
                "state": str,
                "allowed": str,
                "invoker": str,
                "command": str,
                "created_at": float,
                "expires_at": float,
            },
            pk="id",
            if_not_exists=True,
        )
        self._purged_at = 0.0

    def minter(
        self,
        plugin: str,
        *,
        invoker: str | None = None,
        command: tuple[str, ...] = (),
        ttl: float | None = None,
    ) -> Minter:
        return Minter(self, plugin, invoker, command, self.ttl if ttl is None else ttl)

    def save(
        self,
        plugin: str,
        kind: str,
        state: dict[str, Any],
        *,
        allowed: list[str] | None = None,
        invoker: str | None = None,
        command: tuple[str, ...] = (),
        ttl: float | None = None,
    ) -> str:
        custom_id = f"{PREFIX}:{plugin}:{secrets.token_urlsafe(9)}"
        if len(custom_id) > limits.CUSTOM_ID_MAX:  # plugin names are ≤ 32 characters
            raise ValueError(f"custom id {custom_id!r} is longer than {limits.CUSTOM_ID_MAX}")
        now = self.clock()
        with self.database.transaction():
            self.database.db[TABLE].insert(
                {
                    "id": custom_id,
                    "plugin": plugin,
                    "kind": kind,
                    "state": json.dumps(state, default=str),
                    "allowed": json.dumps(allowed) if allowed is not None else None,
                    "invoker": invoker,
                    "command": json.dumps(list(command)),
                    "created_at": now,
                    "expires_at": now + (self.ttl if ttl is None else ttl),
                }
            )
        self._purge(now)
        return custom_id

    def get(self, custom_id: str) -> Component | None:
        rows = list(self.database.db[TABLE].rows_where("id = ?", [custom_id]))
        if not rows:
            return None
        row = rows[0]
        allowed = json.loads(row["allowed"]) if row["allowed"] is not None else None
        return Component(
            custom_id=row["id"],
            plugin=row["plugin"],
            kind=row["kind"],
            state=json.loads(row["state"]),
            allowed=tuple(allowed) if allowed is not None else None,
            invoker=row["invoker"],
            command=tuple(json.loads(row["command"] or "[]")),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    def expire(self, custom_id: str) -> None:
        """End a component now (an answered confirmation must not be answered twice)."""
        with self.database.transaction():
            self.database.conn.execute(
                f"UPDATE {TABLE} SET expires_at = ? WHERE id = ?", (self.clock(), custom_id)
            )

    def _purge(self, now: float) -> None:
        # Rows outlive their expiry by a day, so a late click still says "expired"
        # instead of "unknown"; after that they are only clutter.
        if now - self._purged_at < 3600:
            return
        self._purged_at = now
        with self.database.transaction():
            self.database.conn.execute(f"DELETE FROM {TABLE} WHERE expires_at < ?", (now - 86400,))


class Minter:
    """The :class:`~clustercord.frontends.discord.render.Minter` of one reply."""

    def __init__(
        self,
        store: ComponentStore,
        plugin: str,
        invoker: str | None,
        command: tuple[str, ...],
        ttl: float,
    ) -> None:
        self.store = store
        self.plugin = plugin
        self.invoker = invoker
        self.command = command
        self.ttl = ttl

    def mint(
        self,
        kind: str,
        state: dict[str, Any],
        *,
        allowed: list[str] | None = None,
        command: tuple[str, ...] | None = None,
    ) -> str:
        if command is not None:
            # Remembered so a click on a button naming a command that is not (or no
            # longer) the plugin's is refused, never let through unchecked.
            state = {**state, "named_command": True}
        return self.store.save(
            self.plugin,
            kind,
            state,
            allowed=allowed,
            invoker=self.invoker,
            command=self.command if command is None else command,
            ttl=self.ttl,
        )
