"""The kernel: builds every service once and hands plugins their scoped views.

Nothing here is global; tests build as many kernels as they like, each with its
own data directory and, if they wish, their own plugin sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

from clustercord.config import Settings
from clustercord.dispatcher import Dispatcher
from clustercord.events import EventBus
from clustercord.kubernetes.clusters import ClusterAdmin, ClusterRegistry
from clustercord.kubernetes.identity import IdentityMap
from clustercord.kubernetes.plugin_identity import PluginIdentities
from clustercord.kubernetes.service import KubernetesService
from clustercord.kubernetes.watches import ClusterWatcher
from clustercord.plugins.discovery import PluginSource, discover
from clustercord.plugins.guard import Guard
from clustercord.plugins.manager import Plugin, PluginManager, resolve_handler
from clustercord.policy import AccessPolicy
from clustercord.secretbox import SecretBox
from clustercord.services.approvals import ApprovalService
from clustercord.services.audit import AuditLog
from clustercord.services.conversations import ConversationHub
from clustercord.services.scheduler import SchedulerService
from clustercord.signing import TrustStore
from clustercord.storage import Database, PluginStore
from clustercord_sdk.context import PluginContext
from clustercord_sdk.errors import CommandError
from clustercord_sdk.events import Event
from clustercord_sdk.reply import Reply
from clustercord_sdk.services import PluginInfo

log = logging.getLogger("clustercord.kernel")


class Kernel:
    def __init__(
        self,
        settings: Settings,
        *,
        sources: Iterable[PluginSource] | None = None,
        plugin_path: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = Database(settings.database_path)
        self.audit = AuditLog(self.database)
        self.scheduler = SchedulerService(self.database)
        self.approvals = ApprovalService(
            self.database,
            on_decided=self._approval_decided,
            on_requested=self._approval_requested,
        )
        self.trust = TrustStore(settings.trust_dir)
        self.guard = Guard(
            timeout=settings.hook_timeout,
            max_failures=settings.max_hook_failures,
            trace=settings.trace_plugins,
        )
        self.notifier = OutboxNotifier(
            self.database, secrets=lambda: SecretBox.from_settings(settings.data_dir)
        )
        self.manager = PluginManager(
            settings,
            self.database,
            self.trust,
            self.guard,
            self._context_for,
            secret_sink=self.audit.add_patterns,
        )
        self.events = EventBus(self.manager)
        self.conversations = ConversationHub()  # front ends register their openers
        self.policy = AccessPolicy(settings.access)
        self.dispatcher = Dispatcher(self.manager, self.policy, self.audit)
        self.kubernetes = KubernetesService(
            lambda: ClusterRegistry(self.database, SecretBox.from_settings(settings.data_dir)),
            IdentityMap.from_config(settings.identity),
        )
        # Plugins reach clusters as their own ServiceAccounts; disabling one revokes its RBAC.
        self.kubernetes.plugin_identities = PluginIdentities(self.kubernetes)
        self.manager.listeners.append(self.kubernetes.plugin_identities.on_plugin_change)
        self._sources = sources
        self._plugin_path = plugin_path
        self._pending_decisions: list[Any] = []
        self._pending_requests: list[Any] = []

    async def start(self) -> Kernel:
        sources = self._sources if self._sources is not None else discover(self._plugin_path)
        self.manager.load(sources)
        await self.manager.start()
        # Plugins enabled from now on get their cluster identities at once (see plugin_identity).
        self.kubernetes.plugin_identities.provision_on_enable = True
        return self

    def close(self) -> None:
        self.audit.close()
        self.database.close()

    def _context_for(self, plugin: Plugin) -> PluginContext:
        assert plugin.manifest is not None
        capabilities = set(plugin.manifest.capabilities)
        return PluginContext(
            plugin=plugin.name,
            config=plugin.config,
            store=PluginStore(self.database, plugin.name),
            scheduler=self.scheduler.for_plugin(plugin.name),
            approvals=self.approvals.for_plugin(plugin.name),
            audit=self.audit.for_plugin(plugin.name),
            notifier=self.notifier.for_plugin(plugin.name),
            log=logging.getLogger(f"clustercord.plugin.{plugin.name}"),
            plugins=KernelPluginAdmin(self) if "plugin-admin" in capabilities else None,
            kubernetes=self.kubernetes.for_plugin(plugin.name, plugin.manifest.permissions),
            services={
                name: service
                for name, service in (
                    ("approvals-admin", self.approvals),
                    ("cluster-registry", ClusterAdmin(lambda: self.kubernetes.registry)),
                    ("identity-map", self.kubernetes.identities),
                    ("conversations", self.conversations.for_plugin(plugin.name)),
                )
                if name in capabilities
            },
        )

    def _approval_decided(self, approval: Any) -> None:
        # Decisions are made from sync code paths; the plugin's hook runs at the next
        # await point of the kernel (see deliver_decisions), inside the guard.
        self._pending_decisions.append(approval)

    def _approval_requested(self, approval: Any) -> None:
        # Published as an ``approval:requested`` event at the next deliver_decisions: the
        # approvals plugin posts it with Approve/Deny buttons for the admins.
        self._pending_requests.append(approval)

    async def deliver_decisions(self) -> int:
        while self._pending_requests:
            approval = self._pending_requests.pop(0)
            await self.events.publish(
                Event("approval:requested", name=approval.id, data=asdict(approval))
            )
        delivered = 0
        while self._pending_decisions:
            approval = self._pending_decisions.pop(0)
            plugin = self.manager.plugins.get(approval.plugin)
            if plugin is not None and plugin.context is not None:
                await self.manager.call_one(
                    plugin, "on_approval_decided", approval=approval, ctx=plugin.context
                )
                delivered += 1
        return delivered

    async def run_job(self, job: Any) -> None:
        """Run a scheduled job: the plugin's ``module:function`` handler, guarded."""
        plugin = self.manager.plugins.get(job.plugin)
        if plugin is None or plugin.state != "enabled" or plugin.module is None:
            return
        try:
            function = resolve_handler(plugin.module, job.handler, f"job {job.id}")
        except ImportError as exc:
            log.warning("plugin %s: job handler %s not found: %s", plugin.name, job.handler, exc)
            return
        wanted = inspect.signature(function).parameters
        kwargs = {k: v for k, v in {"job": job, "ctx": plugin.context}.items() if k in wanted}
        await self.guard.acall(plugin.name, f"job {job.handler}", function, kwargs)

    async def run_background(self, stop: asyncio.Event, tick: float = 1.0) -> None:
        """What a long-running front end runs beside it: jobs, approval expiry."""
        scheduler = asyncio.create_task(self.scheduler.run_loop(self.run_job, stop, tick=tick))
        watchers = [asyncio.create_task(w.run(stop)) for w in self.cluster_watchers()]
        try:
            while not stop.is_set():
                self.approvals.expire()
                await self.deliver_decisions()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            await scheduler
            await asyncio.gather(*watchers, return_exceptions=True)

    def cluster_watchers(self) -> list[ClusterWatcher]:
        """Watchers for every cluster, if an enabled plugin subscribes to cluster events.

        Nobody subscribed, nobody watches: idle watches cost the cluster and the bot.
        """
        wanted = any(
            hook.event.split(":")[0] in ("pod", "node")
            for plugin in self.manager.plugins.values()
            if plugin.state == "enabled" and plugin.manifest is not None
            for hook in plugin.manifest.hooks
        )
        if not wanted:
            return []
        return [
            ClusterWatcher(self.kubernetes, cluster.name, self.events.publish)
            for cluster in self.kubernetes.registry.list()
        ]


class KernelPluginAdmin:
    """The :class:`clustercord_sdk.services.PluginAdmin` given to ``plugin-admin`` plugins."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._manager = kernel.manager

    def list(self) -> list[PluginInfo]:
        return [
            self._manager.info(p)
            for p in sorted(self._manager.plugins.values(), key=lambda p: p.name)
        ]

    def info(self, name: str) -> PluginInfo:
        return self._manager.info(self._manager.get(name))

    async def enable(self, name: str, *, by: str) -> PluginInfo:
        return self._manager.info(await self._manager.enable(name, by=by))

    async def disable(self, name: str, *, by: str, reason: str | None = None) -> PluginInfo:
        plugin = await self._manager.disable(name, by=by, reason=reason)
        identities = self._kernel.kubernetes.plugin_identities
        if identities is not None:
            await identities.settle()  # its RBAC is gone from the clusters before we answer
        return self._manager.info(plugin)

    async def approve(self, name: str, *, by: str) -> PluginInfo:
        return self._manager.info(await self._manager.approve(name, by=by))

    async def set_config(self, name: str, key: str, value: Any, *, by: str) -> dict[str, Any]:
        await self._manager.set_config(name, key, value, by=by)
        return dict(self.info(name).config)

    def config_schema(self, name: str) -> dict[str, Any]:
        manifest = self._manager.get(name).manifest
        return dict(manifest.raw.get("config", {})) if manifest else {}

    def commands(self) -> list[dict[str, Any]]:
        return [
            {
                "path": command.name,
                "description": command.description,
                "plugin": plugin.name,
                "admin": command.admin,
                "destructive": command.destructive,
                "options": [
                    {
                        "name": o.name,
                        "type": o.type,
                        "description": o.description,
                        "required": o.required,
                        "choices": [c.value for c in o.choices],
                    }
                    for o in command.options
                ],
            }
            for plugin, command in sorted(
                self._manager.commands().values(), key=lambda pc: pc[1].path
            )
        ]


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


def info_dict(info: PluginInfo) -> dict[str, Any]:
    return asdict(info)
