"""What a handler receives: the invocation and the plugin's scoped services."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clustercord_sdk.errors import CommandError
from clustercord_sdk.invocation import Invocation
from clustercord_sdk.kubernetes import Kubernetes
from clustercord_sdk.reply import Confirmation, Progress, Reply
from clustercord_sdk.services import (
    Approvals,
    Audit,
    Notifier,
    PluginAdmin,
    Scheduler,
    Sealer,
    Store,
)

__all__ = [
    "Asker",
    "CommandContext",
    "HookContext",
    "Invocation",
    "PluginContext",
    "Sender",
]


@dataclass
class PluginContext:
    """The services of one plugin, shared by its command, hook and job handlers."""

    plugin: str
    config: Mapping[str, Any]
    store: Store
    scheduler: Scheduler
    approvals: Approvals
    audit: Audit
    notifier: Notifier
    log: logging.Logger
    plugins: PluginAdmin | None = None
    """Kernel plugin management; ``None`` unless the plugin has the ``plugin-admin`` capability."""
    kubernetes: Any = None
    """The Kubernetes service bound to the plugin (its declared permissions). Commands use
    :attr:`CommandContext.kubernetes`, which also acts for the invoking user."""
    services: Mapping[str, Any] = field(default_factory=dict)
    """Further services by name, for capabilities added after this SDK version."""
    sealer: Sealer | None = None
    """Encryption at rest with a key of the plugin's own (derived from the kernel's data
    key); ``None`` where the kernel offers none (a plugin then stores data unsealed or
    refuses, as it sees fit)."""

    def require(self, capability: str) -> Any:
        """The service behind a capability, or a clear error if it was not granted."""
        service = getattr(self, capability.replace("-", "_"), None)
        if service is None:
            service = self.services.get(capability)
        if service is None:
            raise CommandError(
                f"plugin {self.plugin} needs the {capability!r} capability "
                "(declare it in the manifest's capabilities)"
            )
        return service


Sender = Callable[[Reply], Awaitable[None]]
Asker = Callable[[Confirmation], Awaitable[bool]]


@dataclass
class CommandContext:
    """Passed to a command handler: the invocation, parsed options and services."""

    invocation: Invocation
    options: dict[str, Any]
    plugin: PluginContext
    _send: Sender | None = None
    _ask: Asker | None = None

    @property
    def user_id(self) -> str:
        return self.invocation.user_id

    @property
    def config(self) -> Mapping[str, Any]:
        return self.plugin.config

    @property
    def store(self) -> Store:
        return self.plugin.store

    @property
    def log(self) -> logging.Logger:
        return self.plugin.log

    @property
    def kubernetes(self) -> Kubernetes:
        """The Kubernetes service, acting for this command's user within the plugin's
        declared permissions. A clear error if the kernel has no Kubernetes service."""
        service = self.plugin.kubernetes
        if service is None:
            raise CommandError(f"plugin {self.plugin.plugin} has no Kubernetes service")
        return service.acting_for(self.invocation)  # type: ignore[no-any-return]

    async def send(self, reply: Reply) -> None:
        """Send an intermediate reply now (the final one is the handler's return value)."""
        if self._send is not None:
            await self._send(reply)

    async def progress(
        self, current: float, total: float | None = None, label: str | None = None
    ) -> None:
        """Report progress; front ends edit one message (Discord) or draw a bar (console)."""
        await self.send(Reply(progress=Progress(current, total, label)))

    async def confirm(self, prompt: str, *, danger: bool = True) -> bool:
        """Ask the invoking user to confirm; ``False`` when refused or unanswered."""
        if self._ask is None:
            return False
        return await self._ask(Confirmation(prompt=prompt, danger=danger))


@dataclass
class HookContext:
    """Passed to hooks that act for a plugin (events, jobs, approvals, lifecycle)."""

    plugin: PluginContext
    extra: Mapping[str, Any] = field(default_factory=dict)
