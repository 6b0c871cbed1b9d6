"""Install, update and remove marketplace plugins while the kernel runs.

An install (README, "The plugin marketplace") goes:

1. the entry is looked up in the verified indexes of the configured sources; a version
   whose kernel API range excludes this kernel, or a name a builtin or another installed
   plugin already holds, is refused;
2. the wheel is downloaded to the data directory and must be the size and sha256 the signed
   index gives; then the plugin's own signature must verify against a pinned key and cover
   exactly the wheel's plugin files, and the signed manifest must agree with the index
   entry (name, version, API range, permissions, capabilities): all before pip sees it;
3. pip installs it into a folder of its own under ``<data dir>/marketplace/plugins/``, with
   every distribution of the kernel's environment as a constraint: a plugin can never
   upgrade, downgrade or replace a kernel dependency (pip's conflict is a refusal naming the
   package);
4. the plugin manager verifies the installed folder again (signature, RECORD), and activates
   it (a third-party key's plugin runs in a process of its own); listeners re-sync Discord's
   commands and provision its cluster identity. A plugin that declares permissions waits for
   an admin's approval; an update that asks for more waits too, one that asks for less has
   its grant and role narrowed at once.

Any failure leaves the previous version installed and running, and removes what the
attempt wrote. Removal unregisters the plugin, deletes its ServiceAccount and RBAC on every
cluster and, with ``purge_data``, its tables and stored values.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from clustercord.instance import InstanceBusy, wait_for
from clustercord.plugins.discovery import BUILTIN_PLUGINS, PluginSource, discover
from clustercord.plugins.index import IndexVersion
from clustercord.plugins.manager import AWAITING, ENABLED, REFUSED, Plugin, PluginManager
from clustercord.plugins.sources import Catalog, Listing, Sources, download
from clustercord.plugins.wheel import read_wheel, verify_wheel
from clustercord.storage import Database
from clustercord_sdk import API_VERSION
from clustercord_sdk.errors import CommandError

log = logging.getLogger("clustercord.marketplace")

Progress = Callable[[str], Awaitable[None]]
PIP_TIMEOUT = 900.0
INSTALL_LOCK = "install.lock"
LOCK_WAIT = 60.0
"""How long an install waits for another process's install on the same data directory."""
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-[A-Za-z0-9_.]+){2,3}\.whl$")
STEPS = (
    "checking permissions",
    "downloading",
    "verifying the signature",
    "installing dependencies",
    "registering commands",
    "setting up hooks",
)


class InstallError(CommandError):
    """An install, update or removal was refused or failed; nothing changed."""


@dataclass
class Installed:
    name: str
    version: str
    source: str
    distribution: str
    prefix: Path
    site: Path


async def _no_progress(step: str) -> None:
    return None


class Installer:
    def __init__(
        self,
        manager: PluginManager,
        database: Database,
        sources: Sources,
        data_dir: Path,
        *,
        pip_index: bool = True,
        forget_identity: Callable[[str], Awaitable[None]] | None = None,
        lock_wait: float = LOCK_WAIT,
    ) -> None:
        self.manager = manager
        self.database = database
        self.sources = sources
        self.root = data_dir / "marketplace"
        self.pip_index = pip_index
        self.forget_identity = forget_identity
        """Deletes a removed plugin's ServiceAccount and RBAC on every cluster."""
        self.lock_wait = lock_wait
        self._lock = asyncio.Lock()
        database.db["_marketplace"].create(
            {
                "name": str,
                "version": str,
                "source": str,
                "distribution": str,
                "prefix": str,
                "site": str,
                "sha256": str,
                "installed_by": str,
                "installed_at": float,
            },
            pk="name",
            if_not_exists=True,
        )

    # -- what is installed -----------------------------------------------------------------
    def installed(self) -> dict[str, Installed]:
        return {
            row["name"]: Installed(
                row["name"],
                row["version"],
                row["source"],
                row["distribution"],
                Path(row["prefix"]),
                Path(row["site"]),
            )
            for row in self.database.db["_marketplace"].rows
        }

    def installed_sources(self) -> list[PluginSource]:
        """Where each marketplace plugin lives, for the kernel's start (nothing imported).

        Also deletes what an install stopped midway (a killed process) left behind: folders
        no installed version names, and partial downloads."""
        self._sweep()
        found = []
        for item in self.installed().values():
            match = [s for s in discover(path=[str(item.site)]) if s.entry_point == item.name]
            if match:
                found.append(replace(match[0], paths=(str(item.site),)))
            else:
                log.error("marketplace plugin %s is missing from %s", item.name, item.site)
        return found

    def _sweep(self) -> None:
        """Only what is older than any install can last: another process on the same data
        directory (``clustercord run`` beside ``clustercord serve``) may be installing now."""
        kept = {item.prefix for item in self.installed().values()}
        stale = time.time() - 2 * PIP_TIMEOUT
        plugins, downloads = self.root / "plugins", self.root / "downloads"
        for folder in [*_children(plugins, "*/*"), *_children(downloads, "*")]:
            if folder not in kept and _mtime(folder) < stale:
                log.info("deleting %s, left by an install that did not finish", folder)
                shutil.rmtree(folder, ignore_errors=True)
        for folder in _children(plugins, "*"):
            if not any(folder.iterdir()):
                folder.rmdir()

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """This process's installs one at a time, and against every other process on the
        same data directory (``clustercord run`` beside ``clustercord serve``): two pips in
        one plugin folder, or two rows for one name, would leave neither install whole. An
        flock dies with its process, so a ``kill -9`` mid-install never blocks the next."""
        async with self._lock:
            try:
                held = await wait_for(
                    self.root,
                    INSTALL_LOCK,
                    purpose="it is installing or removing a plugin; try again when it is done",
                    wait=self.lock_wait,
                )
            except InstanceBusy as busy:
                raise InstallError(str(busy)) from None
            try:
                yield
            finally:
                held.release()

    # -- install and update ----------------------------------------------------------------
    async def resolve(self, name: str, version: str | None = None) -> tuple[Listing, IndexVersion]:
        """The index entry an install of ``name`` (at ``version``) would use."""
        catalog = await self.sources.catalog()
        listing = catalog.listings.get(name)
        if listing is None:
            raise InstallError(f"no plugin named {name!r} in the marketplace{_problems(catalog)}")
        plugin = listing.plugin
        if version is not None:
            try:
                Version(version)
            except InvalidVersion:
                raise InstallError(f"{version!r} is not a version (e.g. 1.2.0)") from None
            entry = plugin.version(version)
            if entry is None:
                known = ", ".join(v.version for v in plugin.versions)
                raise InstallError(f"{name} has no version {version} (available: {known})")
        else:
            entry = plugin.latest(API_VERSION)
            if entry is None:
                raise InstallError(
                    f"no version of {name} supports this kernel's API {API_VERSION} (the newest, "
                    f"{plugin.versions[0].version}, needs {plugin.versions[0].api})"
                )
        if not entry.supports(API_VERSION):
            raise InstallError(
                f"{name} {entry.version} needs kernel API {entry.api}, "
                f"this kernel provides {API_VERSION}"
            )
        return listing, entry

    def check_name(self, name: str) -> None:
        """Refuse a name that a builtin or a plugin not installed from the marketplace holds."""
        if name in self.installed():
            return
        existing = self.manager.plugins.get(name)
        if name in BUILTIN_PLUGINS or (existing is not None and existing.builtin):
            raise InstallError(
                f"{name} is the name of a builtin plugin: the marketplace cannot replace it"
            )
        if existing is not None:
            where = existing.source.distribution or existing.source.module
            raise InstallError(
                f"a plugin named {name} is already installed (from {where}, not from the "
                "marketplace): remove it with pip first"
            )

    async def install(
        self,
        name: str,
        *,
        version: str | None = None,
        by: str,
        progress: Progress | None = None,
        update: bool = False,
    ) -> Plugin:
        """Install ``name`` (or move it to ``version``); returns the plugin as it now is."""
        progress = progress or _no_progress
        async with self._exclusive():
            self.check_name(name)
            current = self.installed().get(name)
            if current is not None and not update and version is None:
                raise InstallError(
                    f"{name} {current.version} is already installed: /plugin update name:{name}, "
                    "or give version: to move to another one"
                )
            if current is None and update:
                raise InstallError(f"{name} is not installed from the marketplace")
            listing, entry = await self.resolve(name, version)
            if (
                update
                and version is None
                and current is not None
                and Version(entry.version) <= Version(current.version)
            ):
                raise InstallError(
                    f"{name} {current.version} is the newest version this kernel supports"
                )
            if current is not None and current.version == entry.version:
                raise InstallError(f"{name} {entry.version} is already installed")
            return await self._install(name, listing, entry, current, by, progress)

    async def _install(
        self,
        name: str,
        listing: Listing,
        entry: IndexVersion,
        current: Installed | None,
        by: str,
        progress: Progress,
    ) -> Plugin:
        label = f"{name} {entry.version}"
        await progress("checking permissions")
        # pip reads the wheel's tags from its file name: keep the name, in a folder per hash.
        filename = PurePosixPath(urlsplit(entry.wheel).path).name
        if not _WHEEL_NAME.match(filename):
            raise InstallError(f"{label}: {filename!r} is not a wheel file name")
        wheel_path = self.root / "downloads" / entry.sha256 / filename
        await progress("downloading")
        await download(
            listing.source.resolve(entry.wheel),
            wheel_path,
            size=entry.size,
            sha256=entry.sha256,
            what=label,
        )
        prefix = self.root / "plugins" / name / f"{entry.version}-{uuid.uuid4().hex[:8]}"
        try:
            await progress("verifying the signature")
            self._check_wheel(wheel_path, name, entry, label)
            await progress("installing dependencies")
            site = await self._pip(wheel_path, prefix, label, listing)
            source = next((s for s in discover(path=[str(site)]) if s.entry_point == name), None)
            if source is None:
                raise InstallError(f"{label}: pip installed it, but its entry point is missing")
            source = replace(source, paths=(str(site),))  # its dependencies are there
            await progress("registering commands")
            plugin = self.manager.examine(source)
            if plugin.state == REFUSED:
                raise InstallError(f"{label} refused: {plugin.reason}")
            await progress("setting up hooks")
            await self._swap(name, plugin, current, label)
        except BaseException:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(wheel_path.parent, ignore_errors=True)
        with self.database.transaction():
            self.database.db["_marketplace"].upsert(
                {
                    "name": name,
                    "version": entry.version,
                    "source": listing.source.name,
                    "distribution": entry.distribution,
                    "prefix": str(prefix),
                    "site": str(site),
                    "sha256": entry.sha256,
                    "installed_by": by,
                    "installed_at": time.time(),
                },
                pk="name",
            )
        if current is not None:
            shutil.rmtree(current.prefix, ignore_errors=True)
        return plugin

    def _check_wheel(self, path: Path, name: str, entry: IndexVersion, label: str) -> None:
        """The wheel's signature and manifest, against the index entry (before pip)."""
        wheel = read_wheel(path)
        verify_wheel(wheel, self.manager.trust, label)
        manifest = wheel.manifest
        disagree = [
            what
            for what, ours, theirs in (
                ("name", name, manifest.get("name")),
                ("entry point", name, wheel.entry_point),
                ("version", entry.version, manifest.get("version")),
                ("api", entry.api, manifest.get("api")),
                (
                    "distribution",
                    canonicalize_name(entry.distribution),
                    canonicalize_name(wheel.distribution),
                ),
                ("permissions", sorted(entry.permissions), sorted(manifest.get("permissions", []))),
                (
                    "capabilities",
                    sorted(entry.capabilities),
                    sorted(manifest.get("capabilities", [])),
                ),
            )
            if ours != theirs
        ]
        if disagree:
            raise InstallError(
                f"{label}: the index entry disagrees with the plugin's signed manifest "
                f"({', '.join(disagree)}): refused"
            )
        if canonicalize_name(wheel.distribution) in kernel_distributions():
            raise InstallError(
                f"{label}: its distribution {wheel.distribution} is a package the kernel uses: "
                "a plugin never replaces a kernel dependency"
            )

    async def _pip(self, wheel: Path, prefix: Path, label: str, listing: Listing) -> Path:
        """pip install into ``prefix`` with the kernel's packages as constraints."""
        prefix.mkdir(parents=True, mode=0o700)
        constraints = prefix / "kernel-constraints.txt"
        constraints.write_text(
            "".join(f"{n}=={v}\n" for n, v in sorted(kernel_distributions().items())), "utf-8"
        )
        command = [
            "install",
            "--no-warn-script-location",
            "--prefix",
            str(prefix),
            "--constraint",
            str(constraints),
        ]
        local = listing.source.local
        if local is not None:
            command += ["--find-links", str(local)]
        if not self.pip_index:
            command.append("--no-index")
        await run_pip([*command, str(wheel)], label, InstallError)
        sites = [p for p in prefix.rglob("site-packages") if p.is_dir()]
        if len(sites) != 1:
            raise InstallError(f"{label}: pip left {len(sites)} site-packages folders")
        return sites[0]

    async def _swap(self, name: str, plugin: Plugin, current: Installed | None, label: str) -> None:
        """Put the new version in place of the old one; on failure, the old one back."""
        old_source = None
        if current is not None and name in self.manager.plugins:
            old_source = self.manager.plugins[name].source
            await self.manager.withdraw(name)
        try:
            await self.manager.put(plugin)
            if plugin.state not in (ENABLED, AWAITING):
                raise InstallError(f"{label} could not start: {plugin.reason}")
            # Only once it runs: a rolled-back update keeps the old version's grant.
            self.manager.narrow_grant(plugin)
        except BaseException:
            if name in self.manager.plugins:
                await self.manager.withdraw(name)
            if old_source is not None:
                await self.manager.put(self.manager.examine(old_source))
            raise

    # -- remove ------------------------------------------------------------------------------
    async def remove(self, name: str, *, purge_data: bool = False) -> Installed:
        async with self._exclusive():
            item = self.installed().get(name)
            if item is None:
                if name in self.manager.plugins:
                    raise InstallError(
                        f"{name} was not installed from the marketplace: builtins and plugins "
                        "installed with pip are not removed from chat"
                    )
                raise InstallError(f"no plugin named {name!r} is installed")
            if name in self.manager.plugins:
                await self.manager.withdraw(name)
            if self.forget_identity is not None:
                await self.forget_identity(name)
            self.manager.forget(name)
            if purge_data:
                self._purge(name)
            with self.database.transaction():
                self.database.db.execute("DELETE FROM _marketplace WHERE name = ?", [name])
            shutil.rmtree(item.prefix.parent, ignore_errors=True)
            return item

    def _purge(self, name: str) -> None:
        """The plugin's tables, stored values and migration history."""
        prefix = name.replace("-", "_") + "__"
        db = self.database.db
        with self.database.transaction():
            for table in db.table_names():
                if table.startswith(prefix):
                    db.execute(f'DROP TABLE "{table}"')
            db.execute("DELETE FROM _kv WHERE scope = ?", [name])
            db.execute("DELETE FROM _migrations WHERE scope = ?", [f"plugin:{name}"])


def _children(folder: Path, pattern: str) -> list[Path]:
    return [p for p in folder.glob(pattern) if p.is_dir()] if folder.is_dir() else []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _problems(catalog: Catalog) -> str:
    return f" ({'; '.join(catalog.problems)})" if catalog.problems else ""


def kernel_distributions() -> dict[str, str]:
    """Every distribution of the kernel's environment: canonical name → version."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


_CONSTRAINT = re.compile(r"The user requested \(constraint\) ([A-Za-z0-9._-]+) ?==(\S+)")
_DEPENDS = re.compile(r"^\s*(\S+ \S+ depends on .+)$", re.M)


async def run_pip(arguments: list[str], label: str, error: type[Exception]) -> None:
    """``python -m pip ARGUMENTS`` of this interpreter, at most :data:`PIP_TIMEOUT`; a
    failure or a timeout is ``error`` saying why in pip's own words."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-input",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), PIP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise error(f"{label}: pip took longer than {PIP_TIMEOUT:g} s") from None
    if process.returncode != 0:
        # pip explains a conflict on standard output, and reports it on standard error.
        said = (out + b"\n" + err).decode("utf-8", "replace")
        raise error(f"{label}: {pip_failure(said)}")


def pip_failure(stderr: str) -> str:
    """What pip's error means for an admin: a conflict with the kernel's packages names them."""
    kernel = _CONSTRAINT.findall(stderr)
    if kernel:
        needs = "; ".join(_DEPENDS.findall(stderr)) or "its requirements"
        uses = ", ".join(f"{n} {v}" for n, v in kernel)
        return (
            f"dependency conflict: {needs}, and the kernel uses {uses}. A plugin never "
            "replaces a kernel dependency: refused"
        )
    lines = [line for line in stderr.strip().splitlines() if line.startswith("ERROR")]
    return "installing dependencies failed: " + ("; ".join(lines[-3:]) or stderr.strip()[-400:])
