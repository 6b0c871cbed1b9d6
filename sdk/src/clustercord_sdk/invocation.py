"""Who asked for what, from where: the :class:`Invocation` every front end builds.

It lives in a module of its own, below both :mod:`clustercord_sdk.context` (a command's
context carries one) and :mod:`clustercord_sdk.services` (a conversation is opened for
one), so neither needs the other. Import it from :mod:`clustercord_sdk` or
:mod:`clustercord_sdk.context` as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """Who asked for what, from where. Built by a front end, checked by the dispatcher."""

    user_id: str
    command: tuple[str, ...]
    """The command path, e.g. ``("plugin", "list")``."""
    options: Mapping[str, Any] = field(default_factory=dict)
    roles: frozenset[str] = frozenset()
    user_name: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    frontend: str = "console"
    admin: bool = False
    """Whether the user is a ClusterCord admin, stamped by the kernel from its access policy
    before a plugin sees the invocation (a front end's own value is never trusted)."""

    @property
    def path(self) -> str:
        return " ".join(self.command)
