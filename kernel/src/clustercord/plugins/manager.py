"""The plugin manager: verify before import, grant before enable, guard every call.

Lifecycle of a discovered plugin (see README "How plugins are trusted"):

1. located on disk from its entry point (nothing imported: :mod:`.discovery`);
2. manifest validated, signature and every file's sha256 verified against pinned
   keys, kernel API range checked: failing any of these, it is *refused* with the
   reason and never imported;
3. its declared permissions and capabilities compared with the stored grant: more
   than was granted (a new plugin, or an update that adds some) leaves it
   *awaiting-approval* until an admin approves;
4. an admin's disable (or the kernel's, after repeated hook failures) is stored
   and kept across restarts; ``CLUSTERCORD_PLUGINS`` restricts what may load;
5. otherwise imported from the verified folder, registered with pluggy, and
   ``on_enable`` called through the guard.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from clustercord.config import Settings
from clustercord.isolation.stub import IsolatedPackage
from clustercord.plugins.discovery import (
    BUILTIN_DISTRIBUTION,
    BUILTIN_PLUGINS,
    PluginSource,
    record_mismatch,
)
from clustercord.plugins.guard import CallResult, Guard
from clustercord.plugins.loader import VERIFIED_IMPORTS
from clustercord.signing import TrustStore, VerificationFailure, Verified, verify_plugin_folder
from clustercord.storage import Database
from clustercord_sdk import API_VERSION, hookspecs
from clustercord_sdk.context import PluginContext
from clustercord_sdk.errors import CommandError, ManifestError, UsageError
from clustercord_sdk.manifest import MANIFEST_FILE, CommandSpec, Manifest, load_manifest
from clustercord_sdk.options import parse_options
from clustercord_sdk.permissions import covers, parse_permissions
from clustercord_sdk.services import PluginInfo

log = logging.getLogger("clustercord.plugins")

ENABLED = "enabled"
DISABLED = "disabled"
REFUSED = "refused"
AWAITING = "awaiting-approval"

ContextFactory = Callable[["Plugin"], PluginContext]


@dataclass
class Plugin:
    """One discovered plugin and what the kernel decided about it."""

    source: PluginSource
    state: str = REFUSED
    reason: str | None = None
    manifest: Manifest | None = None
    verified: Verified | None = None
    module: ModuleType | None = None
    context: PluginContext | None = None
    granted: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    handlers: dict[tuple[str, ...], Callable[..., Any]] = field(default_factory=dict)
    builtin: bool = False
    """One of this kernel's builtin plugins (see ``PluginManager._is_builtin``)."""

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.source.entry_point

    @property
    def wanted(self) -> list[str]:
        """Everything the manifest asks to be granted: permissions, capabilities and HTTP
        routes (``route:GET /callback``)."""
        if self.manifest is None:
            return []
        return (
            self.manifest.permission_strings
            + [f"capability:{c}" for c in self.manifest.capabilities]
            + [route.grant for route in self.manifest.routes]
        )


class PluginManager:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        trust: TrustStore,
        guard: Guard,
        context_factory: ContextFactory,
        secret_sink: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.trust = trust
        self.guard = guard
        self.context_factory = context_factory
        self.secret_sink = secret_sink
        self.isolation: Any = None
        """The isolated tier (``clustercord.isolation.host.IsolationHost``), set by the
        kernel: plugins it isolates are started in a process of their own, not imported."""
        """Receives the ``secret_patterns`` of each plugin enabled (the audit log's masking)."""
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, Plugin] = {}
        self._impls: dict[str, list[tuple[str, Callable[..., Any], tuple[str, ...]]]] = {}
        self.listeners: list[Callable[[str, Plugin], None]] = []
        """Called with ``("enabled" | "disabled", plugin)``: the event bus and front ends
        refresh what they derived from the set of active plugins."""
        guard.on_failure = self._on_hook_failure
        database.db["_plugins"].create(
            {
                "name": str,
                "enabled": int,
                "reason": str,
                "granted": str,
                "approved_by": str,
                "config": str,
                "updated_at": float,
            },
            pk="name",
            if_not_exists=True,
        )

    # -- discovery and verification (no plugin code runs here) ----------------------
    def load(self, sources: Iterable[PluginSource]) -> list[Plugin]:
        for source in sources:
            plugin = self._examine(source)
            if plugin.name in self.plugins:
                plugin.state, plugin.reason = (
                    REFUSED,
                    f"another plugin is already named {plugin.name}",
                )
                self.plugins[f"{plugin.name}@{source.entry_point}"] = plugin
                continue
            self.plugins[plugin.name] = plugin
        return list(self.plugins.values())

    def _examine(self, source: PluginSource) -> Plugin:
        plugin = Plugin(source)
        if source.folder is None:
            plugin.reason = f"cannot locate the plugin's package: {source.problem}"
            return plugin
        try:
            plugin.manifest = load_manifest(source.folder / MANIFEST_FILE)
        except ManifestError as exc:
            problems = "; ".join(f"{path or '<root>'}: {message}" for path, message in exc.errors)
            plugin.reason = f"invalid manifest: {problems}"
            return plugin
        try:
            plugin.verified = verify_plugin_folder(source.folder, self.trust)
        except VerificationFailure as exc:
            plugin.reason = str(exc)
            return plugin
        mismatch = record_mismatch(source, plugin.verified.signed["files"])
        if mismatch is not None:
            plugin.reason = mismatch
            return plugin
        plugin.builtin = self._is_builtin(plugin)
        manifest = plugin.manifest
        if not manifest.api_compatible(API_VERSION):
            plugin.reason = (
                f"incompatible kernel API: the plugin needs {manifest.api}, "
                f"this kernel provides {API_VERSION}"
            )
            return plugin
        row = self._row(manifest.name)
        if row is None:
            granted = self._initial_grant(plugin)
            row = self._save(
                manifest.name,
                enabled=1,
                granted=granted,
                approved_by="installation" if granted else None,
            )
        plugin.granted = json.loads(row["granted"] or "[]")
        try:
            plugin.config = self._effective_config(manifest, json.loads(row["config"] or "{}"))
        except UsageError as exc:
            plugin.state, plugin.reason = DISABLED, f"invalid config: {exc}"
            return plugin
        missing = self._ungranted(plugin)
        allow = self.settings.plugins_allowlist
        if missing:
            plugin.state = AWAITING
            plugin.reason = f"needs an admin to approve: {', '.join(missing)}"
        elif allow is not None and manifest.name not in allow:
            plugin.state, plugin.reason = DISABLED, "not in the CLUSTERCORD_PLUGINS allowlist"
        elif not row["enabled"]:
            plugin.state, plugin.reason = DISABLED, row["reason"] or "disabled by an admin"
        else:
            plugin.state, plugin.reason = ENABLED, None
        return plugin

    def _is_builtin(self, plugin: Plugin) -> bool:
        """Decided by who signed it (a release key or this machine's development key), not
        by the name it gives itself; the name only narrows which plugins may claim it: an
        entry point of the kernel's list in the builtin distribution. A package that calls
        itself ``clustercord-builtins`` is an ordinary plugin unless such a key signed it."""
        names = self.settings.builtin_plugins
        return (
            plugin.source.distribution == BUILTIN_DISTRIBUTION
            and plugin.source.entry_point in (BUILTIN_PLUGINS if names is None else names)
            and plugin.verified is not None
            and plugin.verified.signer.kind in ("release", "dev")
        )

    def _initial_grant(self, plugin: Plugin) -> list[str]:
        """What a plugin seen for the first time is granted without asking anyone.

        Nothing, unless it asks for nothing or it is a builtin plugin of this
        installation (shipped with the kernel, signed by a release or development key) and
        auto-grant is on.
        """
        if plugin.builtin and self.settings.auto_grant_builtins:
            return plugin.wanted
        return []

    def _ungranted(self, plugin: Plugin) -> list[str]:
        assert plugin.manifest is not None
        granted_perms = parse_permissions(
            p for p in plugin.granted if not p.startswith(("capability:", "route:"))
        )
        missing = [str(p) for p in plugin.manifest.permissions if not covers(granted_perms, [p])]
        missing += [
            w
            for w in plugin.wanted
            if w.startswith(("capability:", "route:")) and w not in plugin.granted
        ]
        return missing

    def _effective_config(self, manifest: Manifest, stored: dict[str, Any]) -> dict[str, Any]:
        file_config = dict(self.settings.plugin_config.get(manifest.name, {}))
        merged = {**file_config, **stored}
        return parse_options(list(manifest.config), merged, what=f"plugin {manifest.name} config")

    # -- activation ------------------------------------------------------------------
    async def start(self) -> None:
        for plugin in list(self.plugins.values()):
            if plugin.state == ENABLED:
                await self._activate(plugin)

    async def _activate(self, plugin: Plugin) -> None:
        try:
            if self.isolation is not None and self.isolation.isolates(plugin):
                self.isolation.database = self.database  # its migrations' versions
                await self.isolation.activate(plugin, self.pm)  # its stub, registered
                self._impls.clear()
            else:
                self._import(plugin)
        except Exception as exc:  # plugin code failed to import: keep serving the rest
            log.exception("plugin %s failed to load", plugin.name)
            self._deactivate(plugin)
            plugin.state, plugin.reason = DISABLED, f"failed to load: {type(exc).__name__}: {exc}"
            return
        plugin.context = self.context_factory(plugin)
        if not await self._run_migrations(plugin):
            return
        result = await self.call_one(plugin, "on_enable", ctx=plugin.context)
        if result is not None and not result.ok:
            self._deactivate(plugin)
            plugin.state = DISABLED
            plugin.reason = f"on_enable failed: {type(result.error).__name__}: {result.error}"
            return
        plugin.state, plugin.reason = ENABLED, None
        patterns = await self.call_one(plugin, "secret_patterns", ctx=plugin.context)
        if patterns is not None and patterns.ok and patterns.value and self.secret_sink:
            try:
                self.secret_sink(list(patterns.value))
            except ValueError as exc:
                log.warning("plugin %s: secret pattern ignored: %s", plugin.name, exc)
        for listener in self.listeners:
            listener("enabled", plugin)

    def _import(self, plugin: Plugin) -> None:
        """Import the plugin from the verified folder, and only from its signed source
        (plugins/loader.py: no bytecode caches, no unsigned parent package)."""
        source, manifest, verified = plugin.source, plugin.manifest, plugin.verified
        assert source.folder is not None and manifest is not None and verified is not None
        existing = sys.modules.get(source.module)
        if existing is not None and VERIFIED_IMPORTS.loaded(existing, source.folder):
            module = existing  # the same verified folder, imported by an earlier start
        else:
            module = VERIFIED_IMPORTS.install().import_package(
                source.module, source.folder, verified.signed["files"]
            )
        self.pm.register(module, name=manifest.name)
        unknown = [impl.name for impl in self.pm.get_hookcallers(module) or [] if impl.spec is None]
        if unknown:
            self.pm.unregister(name=manifest.name)
            raise ImportError(f"implements unknown hooks: {', '.join(unknown)}")
        plugin.module = module
        plugin.handlers = {
            command.path: resolve_handler(module, command.handler, f"/{command.name}")
            for command in manifest.commands
        }
        self._impls.clear()

    def _deactivate(self, plugin: Plugin) -> None:
        if self.isolation is not None:
            self.isolation.stop(plugin.name)
        if self.pm.has_plugin(plugin.name):
            self.pm.unregister(name=plugin.name)
        plugin.handlers = {}
        self._impls.clear()

    async def _run_migrations(self, plugin: Plugin) -> bool:
        """The plugin's storage migrations; false (and the plugin disabled) if an isolated
        plugin's step failed. An isolated plugin's run in its process, against its proxied
        store, the kernel recording each version (``IsolationHost.migrate``)."""
        if isinstance(plugin.module, IsolatedPackage):
            try:
                await self.isolation.migrate(plugin)
            except Exception as exc:
                self._deactivate(plugin)
                plugin.state = DISABLED
                plugin.reason = f"storage migration failed: {type(exc).__name__}: {exc}"
                return False
            return True
        result = await self.call_one(plugin, "storage_migrations", ctx=plugin.context)
        if result is None or not result.ok or not result.value:
            return True
        store = plugin.context.store if plugin.context else None
        steps = [(version, lambda fn=fn: fn(store)) for version, fn in result.value]
        self.database.migrate(f"plugin:{plugin.name}", steps)
        return True

    # -- admin actions -----------------------------------------------------------------
    def get(self, name: str) -> Plugin:
        plugin = self.plugins.get(name)
        if plugin is None:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise CommandError(f"no plugin named {name!r} (installed: {known})")
        return plugin

    async def enable(self, name: str, *, by: str) -> Plugin:
        plugin = self.get(name)
        if plugin.state == REFUSED:
            raise CommandError(f"plugin {name} is refused: {plugin.reason}")
        if plugin.state == AWAITING:
            raise CommandError(f"plugin {name} {plugin.reason} (/plugin permissions approve:true)")
        allow = self.settings.plugins_allowlist
        if allow is not None and name not in allow:
            raise CommandError(f"plugin {name} is not in the CLUSTERCORD_PLUGINS allowlist")
        self._save(name, enabled=1, reason=None, by=by)
        if plugin.state != ENABLED or plugin.module is None:
            self.guard.failures[name] = 0
            plugin.state = ENABLED
            await self._activate(plugin)
        return plugin

    async def disable(self, name: str, *, by: str, reason: str | None = None) -> Plugin:
        plugin = self.get(name)
        if plugin.state == REFUSED:
            raise CommandError(f"plugin {name} is refused: {plugin.reason}")
        reason = reason or f"disabled by {by}"
        self._save(name, enabled=0, reason=reason, by=by)
        if plugin.state == ENABLED and plugin.context is not None:
            await self.call_one(plugin, "on_disable", ctx=plugin.context)
        self._deactivate(plugin)
        was_enabled = plugin.state == ENABLED
        plugin.state, plugin.reason = DISABLED, reason
        if was_enabled:
            for listener in self.listeners:
                listener("disabled", plugin)
        return plugin

    async def approve(self, name: str, *, by: str) -> Plugin:
        """Grant everything the manifest asks for, then enable unless an admin disabled it."""
        plugin = self.get(name)
        if plugin.state == REFUSED or plugin.manifest is None:
            raise CommandError(f"plugin {name} is refused: {plugin.reason}")
        plugin.granted = plugin.wanted
        row = self._save(name, granted=plugin.granted, approved_by=by)
        if plugin.state == AWAITING:
            plugin.state, plugin.reason = DISABLED, None
            if row["enabled"]:
                await self.enable(name, by=by)
        return plugin

    async def set_config(self, name: str, key: str, value: Any, *, by: str) -> dict[str, Any]:
        plugin = self.get(name)
        if plugin.manifest is None:
            raise CommandError(f"plugin {name} is refused: {plugin.reason}")
        specs = {spec.name: spec for spec in plugin.manifest.config}
        if key not in specs:
            known = ", ".join(specs) or "none"
            raise UsageError(f"plugin {name} has no config key {key!r} (keys: {known})")
        parsed = specs[key].parse(value)
        row = self._row(name) or {}
        stored = json.loads(row.get("config") or "{}")
        stored[key] = value
        old = plugin.config.get(key)
        self._save(name, config=stored, by=by)
        plugin.config[key] = parsed
        if plugin.context is not None:
            await self.call_one(
                plugin, "on_config_changed", key=key, old=old, new=parsed, ctx=plugin.context
            )
        return plugin.config

    # -- installed and removed while the kernel runs (the marketplace's installer) --------
    def examine(self, source: PluginSource) -> Plugin:
        """Verify a newly installed plugin and decide its state; nothing of it runs yet."""
        return self._examine(source)

    async def put(self, plugin: Plugin) -> Plugin:
        """Make an examined plugin part of the kernel and activate it if it is enabled
        (front ends and cluster identities hear ``enabled`` from the listeners)."""
        if plugin.name in self.plugins:
            raise CommandError(f"a plugin named {plugin.name} is already loaded")
        self.plugins[plugin.name] = plugin
        if plugin.state == ENABLED:
            self.guard.failures[plugin.name] = 0
            await self._activate(plugin)
        return plugin

    async def withdraw(self, name: str) -> Plugin:
        """Stop a plugin and take it out of the kernel (its stored grant and config stay:
        :meth:`forget` drops them). Listeners hear ``disabled`` if it was enabled."""
        plugin = self.get(name)
        was_enabled = plugin.state == ENABLED
        if was_enabled and plugin.context is not None:
            await self.call_one(plugin, "on_disable", ctx=plugin.context)
        self._deactivate(plugin)
        self.plugins.pop(name, None)
        if was_enabled:
            for listener in self.listeners:
                listener("disabled", plugin)
        return plugin

    def forget(self, name: str) -> None:
        """Drop what the kernel stored about a removed plugin (state, grant, config)."""
        with self.database.transaction():
            self.database.db.execute("DELETE FROM _plugins WHERE name = ?", [name])

    def narrow_grant(self, plugin: Plugin) -> None:
        """Keep only the grants the plugin still asks for: a version that dropped a
        permission loses it for good (a later version asking again needs a new approval)."""
        wanted = set(plugin.wanted)
        granted = [g for g in plugin.granted if g in wanted]
        if granted != plugin.granted:
            plugin.granted = granted
            self._save(plugin.name, granted=granted)

    def _on_hook_failure(self, name: str, error: BaseException, failures: int) -> None:
        if failures < self.settings.max_hook_failures:
            return
        plugin = self.plugins.get(name)
        if plugin is None or plugin.state != ENABLED:
            return
        reason = (
            f"disabled after {failures} consecutive failures; last: {type(error).__name__}: {error}"
        )
        log.error("plugin %s %s", name, reason)
        self._save(name, enabled=0, reason=reason, by="kernel")
        self._deactivate(plugin)
        plugin.state, plugin.reason = DISABLED, reason
        for listener in self.listeners:
            listener("disabled", plugin)

    # -- persistence -------------------------------------------------------------------
    def _row(self, name: str) -> dict[str, Any] | None:
        rows = list(self.database.db["_plugins"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def _save(self, name: str, *, by: str | None = None, **values: Any) -> dict[str, Any]:
        row = self._row(name) or {
            "name": name,
            "enabled": 1,
            "reason": None,
            "granted": "[]",
            "approved_by": None,
            "config": "{}",
        }
        for key, value in values.items():
            row[key] = json.dumps(value) if key in ("granted", "config") else value
        row["updated_at"] = time.time()
        with self.database.transaction():
            self.database.db["_plugins"].upsert(row, pk="name")
        return row

    # -- hooks -------------------------------------------------------------------------
    def implementations(self, hook: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        """``(plugin, function, argnames)`` in pluggy's call order; cached until the set changes."""
        impls = self._impls.get(hook)
        if impls is None:
            caller = getattr(self.pm.hook, hook)
            impls = [
                (impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(caller.get_hookimpls())
            ]
            self._impls[hook] = impls
        return impls

    async def call_one(self, plugin: Plugin, hook: str, **kwargs: Any) -> CallResult | None:
        """Call one plugin's implementation of ``hook``; ``None`` if it has none."""
        for name, function, argnames in self.implementations(hook):
            if name == plugin.name:
                args = {k: kwargs[k] for k in argnames if k in kwargs}
                return await self.guard.acall(name, hook, function, args)
        return None

    async def call_all(
        self, hook: str, *, firstresult: bool = False, **kwargs: Any
    ) -> list[tuple[str, Any]]:
        """Call every enabled plugin's ``hook`` with its own ``ctx``; failures are isolated."""
        results = []
        for name, function, argnames in list(self.implementations(hook)):
            plugin = self.plugins.get(name)
            if plugin is None or plugin.state != ENABLED:
                continue
            args = {k: kwargs[k] for k in argnames if k in kwargs}
            if "ctx" in argnames:
                args["ctx"] = plugin.context
            result = await self.guard.acall(name, hook, function, args)
            if result.ok and result.value is not None:
                results.append((name, result.value))
                if firstresult:
                    break
        return results

    # -- views -------------------------------------------------------------------------
    def commands(self) -> dict[tuple[str, ...], tuple[Plugin, CommandSpec]]:
        out = {}
        for plugin in self.plugins.values():
            if plugin.state == ENABLED and plugin.manifest is not None:
                for command in plugin.manifest.commands:
                    out[command.path] = (plugin, command)
        return out

    def aliases(self) -> dict[tuple[str, ...], tuple[Plugin, CommandSpec]]:
        """The enabled plugins' command aliases (:attr:`CommandSpec.aliases`) that no
        command or group path takes: a real command always wins over an alias."""
        commands = self.commands()
        taken = {path[:depth] for path in commands for depth in range(1, len(path) + 1)}
        return {
            alias: (plugin, command)
            for plugin, command in commands.values()
            for alias in command.aliases
            if alias not in taken
        }

    def info(self, plugin: Plugin) -> PluginInfo:
        manifest = plugin.manifest
        secret = {s.name for s in manifest.config if s.secret} if manifest else set()
        signature = plugin.verified.label if plugin.verified else "not verified"
        return PluginInfo(
            name=plugin.name,
            version=manifest.version if manifest else (plugin.source.distribution_version or "?"),
            description=manifest.description if manifest else "",
            state=plugin.state,
            reason=plugin.reason,
            signer=plugin.verified.signer.fingerprint if plugin.verified else None,
            signature=signature,
            permissions=manifest.permission_strings if manifest else [],
            granted=plugin.granted,
            capabilities=list(manifest.capabilities) if manifest else [],
            commands=["/" + c.name for c in manifest.commands] if manifest else [],
            config={
                k: ("••••••" if k in secret and v is not None else v)
                for k, v in plugin.config.items()
            },
            source=str(plugin.source.folder or plugin.source.module),
            icon=manifest.icon if manifest else None,
            author=manifest.author if manifest else None,
            failures=self.guard.failures.get(plugin.name, 0),
        )


def resolve_handler(package: ModuleType, handler: str, owner: str) -> Callable[..., Any]:
    """The function a ``module:function`` string names, relative to a plugin's package
    (command handlers, job handlers). Raises ImportError naming ``owner`` if it is not one."""
    if isinstance(package, IsolatedPackage):  # a proxy that runs it in the plugin's process
        return package.handler(handler, owner)
    module_name, _, attr = handler.partition(":")
    module = importlib.import_module(f"{package.__name__}.{module_name}")
    function = getattr(module, attr, None)
    if not callable(function):
        raise ImportError(f"handler {handler} of {owner} is not a function")
    return function  # type: ignore[no-any-return]
