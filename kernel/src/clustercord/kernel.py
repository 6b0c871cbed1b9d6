"""The kernel: builds every service once and hands plugins their scoped views.

Nothing here is global; tests build as many kernels as they like, each with its
own data directory and, if they wish, their own plugin sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clustercord import backups, instance, logs
from clustercord.config import Settings
from clustercord.dispatcher import Dispatcher
from clustercord.door import Door
from clustercord.events import EventBus
from clustercord.health import Readiness
from clustercord.http.service import HttpService
from clustercord.http.settings import HttpSettings
from clustercord.isolation.host import IsolationHost
from clustercord.kubernetes.clusters import ClusterAdmin, ClusterRegistry
from clustercord.kubernetes.identity import IdentityMap
from clustercord.kubernetes.narrowing import Narrowings
from clustercord.kubernetes.plugin_identity import PluginIdentities
from clustercord.kubernetes.service import KubernetesService
from clustercord.kubernetes.watches import ClusterWatcher
from clustercord.plugins.discovery import PluginSource, discover
from clustercord.plugins.guard import Guard
from clustercord.plugins.installer import Installer
from clustercord.plugins.manager import Plugin, PluginManager
from clustercord.plugins.own_config import OwnConfig
from clustercord.plugins.sources import MarketplaceConfig, Sources
from clustercord.policy import AccessPolicy
from clustercord.secretbox import DataKey
from clustercord.services.approvals import ApprovalService
from clustercord.services.audit import AuditLog, AuditReader
from clustercord.services.conversations import ConversationHub
from clustercord.services.notifications import OutboxNotifier
from clustercord.services.scheduler import SchedulerService
from clustercord.signing import TrustStore
from clustercord.storage import Database, PluginStore, secure_data_dir
from clustercord_sdk.context import PluginContext
from clustercord_sdk.services import InstallProgress, MarketEntry, MarketPage, PluginInfo

if TYPE_CHECKING:
    from clustercord.metrics import Metrics

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
        # At rest: the data directory 0700, the database and key files 0600, the files
        # directory 0700 (tightened, and logged, if looser).
        secure_data_dir(settings.data_dir, settings.output_dir)
        # Held while we run: a restore waits for every kernel of this directory to stop.
        self._in_use = instance.in_use(settings.data_dir)
        self.database = Database(settings.database_path)
        try:
            # A database from a newer ClusterCord stops the start here; one from an older
            # one is backed up before anything below migrates it.
            upgraded_from = backups.check_version(self.database)
            if upgraded_from is not None:  # written once per version, not at every start
                if backups.holds_data(self.database):
                    saved = backups.create_backup(
                        self.database, settings.data_dir, f"before-upgrade-from-{upgraded_from}"
                    )
                    log.warning("database from %s backed up to %s", upgraded_from, saved.path)
                backups.record_version(self.database)
            # A missing or changed data key over sealed data stops the start here, saying
            # what would be lost; it is never replaced by a new one.
            self.data_key = DataKey(settings.data_dir, self.database)
            self.data_key.check()
        except BaseException:
            self.database.close()
            self._in_use.release()
            raise
        self.audit = AuditLog(self.database)
        http_settings = HttpSettings.load(settings.http)
        # This kernel's own metrics registry (never the library's global one), for
        # /metrics; a kernel without the HTTP service cannot export them, so it neither
        # counts nor imports prometheus_client (a console command's cold start).
        self.metrics: Metrics | None = None
        if http_settings.enabled:
            from clustercord.metrics import Metrics as Registry

            self.metrics = Registry()
        # Log lines are masked as audit rows are, with the patterns plugins add later too.
        logs.mask_with(self.audit.mask_text)
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
        self.notifier = OutboxNotifier(self.database, secrets=self.data_key.box)
        self.manager = PluginManager(
            settings,
            self.database,
            self.trust,
            self.guard,
            self._context_for,
            secret_sink=self.audit.add_patterns,
        )
        # Plugins that are not release-signed builtins run in a process of their own.
        self.isolation = IsolationHost(settings, self.metrics)
        self.manager.isolation = self.isolation
        self.events = EventBus(self.manager)
        self.conversations = ConversationHub()  # front ends register their openers
        self.policy = AccessPolicy(settings.access)
        # Every call of plugin code a person or the scheduler starts goes through the door.
        self.door = Door(
            self.manager, self.policy, self.audit, self.guard, self.events, metrics=self.metrics
        )
        self.dispatcher = Dispatcher(self.manager, self.door)
        self.kubernetes = KubernetesService(
            lambda: ClusterRegistry(self.database, self.data_key.box()),
            IdentityMap.from_config(settings.identity),
        )
        self.kubernetes.metrics = self.metrics
        self.readiness = Readiness(
            self.database, self.manager, self.kubernetes, mask=self.audit.mask_text
        )
        if self.metrics is not None:
            self.metrics.read_from(
                approvals=lambda: len(self.approvals.pending()),
                audit_head=lambda: self.audit.head().seq,
            )
        # Plugins' HTTP routes and /healthz, /readyz, /metrics; listening only when [http]
        # is configured (run_background).
        self.http = HttpService(
            http_settings,
            settings.data_dir,
            self.manager,
            self.door.route,
            readiness=self.readiness,
            metrics=self.metrics,
        )
        # Plugins reach clusters as their own ServiceAccounts; disabling one revokes its RBAC.
        self.plugin_identities = PluginIdentities(
            self.kubernetes, narrowings=Narrowings(self.database)
        )
        self.kubernetes.plugin_identities = self.plugin_identities
        self.manager.listeners.append(self.plugin_identities.on_plugin_change)
        # The marketplace: plugins installed, updated and removed while the kernel runs.
        market = MarketplaceConfig.from_settings(settings.marketplace)
        self.marketplace = Installer(
            self.manager,
            self.database,
            Sources(market, self.trust, settings.data_dir / "marketplace" / "cache"),
            settings.data_dir,
            pip_index=market.pip_index,
            forget_identity=self._forget_identity,
        )
        self._sources = sources
        self._plugin_path = plugin_path
        self._last_backup: float | None = None

    async def start(self) -> Kernel:
        sources = list(self._sources if self._sources is not None else discover(self._plugin_path))
        names = {s.entry_point for s in sources}
        sources += [s for s in self.marketplace.installed_sources() if s.entry_point not in names]
        self.manager.load(sources)
        await self.manager.start()
        self.readiness.started = True
        # Plugins enabled from now on get their cluster identities at once (see plugin_identity).
        self.plugin_identities.provision_on_enable = True
        return self

    async def aclose(self, settle: float = 10.0) -> None:
        """:meth:`close` once the plugin identities' background work (a narrowing, a
        provisioning started by an enable) is done, for at most ``settle`` seconds: closing
        under it made it fail on a closed database, leaving the narrowing for the next start."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.plugin_identities.settle(), settle)
        self.close()

    def close(self) -> None:
        self.isolation.close()
        self.audit.close()
        self.database.close()
        self._in_use.release()

    def _context_for(self, plugin: Plugin) -> PluginContext:
        assert plugin.manifest is not None
        capabilities = set(plugin.manifest.capabilities)
        sealer = self.data_key.sealer(plugin.name)
        return PluginContext(
            plugin=plugin.name,
            config=plugin.config,
            store=PluginStore(self.database, plugin.name, sealer),
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
                    ("audit-read", AuditReader(self.audit)),
                    ("cluster-registry", ClusterAdmin(lambda: self.kubernetes.registry)),
                    ("identity-map", self.kubernetes.identities),
                    ("conversations", self.conversations.for_plugin(plugin.name)),
                    ("config-write", OwnConfig(self.manager, plugin.name)),
                )
                if name in capabilities
            }
            | ({"http": self.http.site_for(plugin.name)} if plugin.manifest.routes else {}),
            sealer=sealer,
        )

    async def _forget_identity(self, plugin: str) -> None:
        """A removed plugin's ClusterRole, binding and ServiceAccount, gone from every cluster
        (a cluster that cannot be reached is logged: its tokens expire within the hour)."""
        from clustercord.kubernetes.calls import ApiStatusError
        from clustercord.kubernetes.plugin_identity import service_account_name

        identities = self.plugin_identities
        await identities.revoke(plugin)
        identities.narrowings.forget(plugin)
        path = (
            f"/api/v1/namespaces/{identities.namespace}/serviceaccounts/"
            f"{service_account_name(plugin)}"
        )

        def delete(cluster: str) -> None:
            try:
                self.kubernetes.request(cluster, "DELETE", path)
            except ApiStatusError as error:
                if error.status != 404:
                    log.warning("cluster %s: ServiceAccount of %s kept: %s", cluster, plugin, error)
            except Exception as error:
                log.warning("cluster %s: ServiceAccount of %s kept: %s", cluster, plugin, error)

        clusters = [c.name for c in self.kubernetes.registry.list()]
        await asyncio.gather(*(asyncio.to_thread(delete, c) for c in clusters))

    def _approval_decided(self, approval: Any) -> None:
        self.door.approval_decided(approval)

    def _approval_requested(self, approval: Any) -> None:
        self.door.approval_requested(approval)

    async def deliver_decisions(self) -> int:
        """Deliver pending approval requests and decisions now (the door does after every
        call; the background loop does for expiries)."""
        return await self.door.deliver()

    async def run_job(self, job: Any) -> None:
        """Run a scheduled job through the door (guarded and audited)."""
        await self.door.job(job)

    async def run_background(self, stop: asyncio.Event, tick: float = 1.0) -> None:
        """What a long-running front end runs beside it: jobs, approval expiry, and the HTTP
        service when ``[http]`` is configured."""
        if self.http.settings.enabled and self.http.url is None:  # serve may have started it
            await self.http.start()
        scheduler = asyncio.create_task(self.scheduler.run_loop(self.run_job, stop, tick=tick))
        watchers = [asyncio.create_task(w.run(stop)) for w in self.cluster_watchers()]
        try:
            while not stop.is_set():
                self.approvals.expire()
                await self.deliver_decisions()
                await self.scheduled_backup()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            await scheduler
            await asyncio.gather(*watchers, return_exceptions=True)
            await self.http.close()

    async def scheduled_backup(self) -> Path | None:
        """A backup when ``[backup] every_hours`` have passed since the last scheduled one
        (by the files' times, so a restart does not reset the clock); the oldest beyond
        ``keep`` are deleted."""
        every = self.settings.backup_every_hours
        if every <= 0:
            return None
        if self._last_backup is None:  # once: the newest scheduled backup on disk
            self._last_backup = backups.newest(self.settings.data_dir, "scheduled") or 0.0
        if time.time() - self._last_backup < every * 3600:
            return None
        self._last_backup = time.time()
        info = await asyncio.to_thread(
            backups.create_backup, self.database, self.settings.data_dir, "scheduled"
        )
        backups.prune(self.settings.data_dir, self.settings.backup_keep, "scheduled")
        return info.path

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
        if self._kernel.kubernetes.plugin_identities is not None:  # a test may unset it
            # Its RBAC is gone from the clusters before we answer.
            await self._kernel.plugin_identities.settle()
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

    # -- the marketplace ---------------------------------------------------------------------
    async def browse(
        self,
        *,
        category: str | None = None,
        query: str | None = None,
        page: int = 1,
        per_page: int = 10,
    ) -> MarketPage:
        from clustercord.plugins.market_view import browse

        catalog = await self._kernel.marketplace.sources.catalog()
        return browse(
            catalog,
            self._kernel.marketplace.installed(),
            category=category,
            query=query,
            page=page,
            per_page=per_page,
        )

    async def market_entry(self, name: str, version: str | None = None) -> MarketEntry:
        from clustercord.plugins.market_view import entry

        listing, chosen = await self._kernel.marketplace.resolve(name, version)
        return entry(listing, chosen, self._kernel.marketplace.installed())

    def market_names(self) -> list[str]:
        return self._kernel.marketplace.sources.cached_names()

    async def market_names_fetched(self, *, within: float = 2.0) -> list[str]:
        sources = self._kernel.marketplace.sources
        if not sources.cached_names():
            try:
                # shield: a keystroke that gives up must not cancel the fetch the next needs
                await asyncio.wait_for(asyncio.shield(sources.warm()), max(0.0, within))
            except TimeoutError:
                return []
        return sources.cached_names()

    def installed_from_market(self) -> list[str]:
        return sorted(self._kernel.marketplace.installed())

    async def install(
        self,
        name: str,
        *,
        version: str | None = None,
        by: str,
        progress: InstallProgress | None = None,
    ) -> PluginInfo:
        plugin = await self._kernel.marketplace.install(
            name, version=version, by=by, progress=progress
        )
        await self._kernel.plugin_identities.settle()
        return self._manager.info(plugin)

    async def update(
        self, name: str, *, by: str, progress: InstallProgress | None = None
    ) -> PluginInfo:
        plugin = await self._kernel.marketplace.install(name, by=by, progress=progress, update=True)
        await self._kernel.plugin_identities.settle()
        return self._manager.info(plugin)

    async def remove(self, name: str, *, by: str, purge_data: bool = False) -> str:
        item = await self._kernel.marketplace.remove(name, purge_data=purge_data)
        await self._kernel.plugin_identities.settle()
        return item.version


def info_dict(info: PluginInfo) -> dict[str, Any]:
    return asdict(info)
