"""Find installed plugins without importing a line of their code.

``pluggy.PluginManager.load_setuptools_entrypoints`` imports every entry point
before anything can check it. We read the entry points' metadata instead and
locate each plugin's package folder on disk with the import system's path
finder, which looks at files but executes nothing, not even parent packages.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from importlib_metadata import EntryPoint, distributions

GROUP = "clustercord.plugins"
BUILTIN_DISTRIBUTION = "clustercord-builtins"
BUILTIN_PLUGINS = frozenset(
    {"approvals", "cluster", "help", "plugins", "rbac", "templates", "terminal"}
)
"""The entry points this kernel ships as builtins. A name is only a claim: the plugin
manager also requires the signature of a release or development key (``Plugin.builtin``).
A new builtin plugin is added here as well as to builtin_plugins/pyproject.toml."""


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin is installed: its entry point, package folder and distribution."""

    entry_point: str
    module: str
    folder: Path | None
    distribution: str | None = None
    distribution_version: str | None = None
    problem: str | None = None
    """Why the folder could not be located, when it could not."""

    @property
    def claims_builtin(self) -> bool:
        """Whether it presents itself as one of this kernel's builtin plugins (by name)."""
        return self.distribution == BUILTIN_DISTRIBUTION and self.entry_point in BUILTIN_PLUGINS


def locate_package(module: str, path: Sequence[str] | None = None) -> Path:
    """The folder of package ``module`` (dotted), found without importing anything."""
    search: Sequence[str] | None = list(path) if path is not None else None
    spec = None
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        spec = importlib.machinery.PathFinder.find_spec(name, search)
        if spec is None or spec.submodule_search_locations is None:
            kind = "is not installed" if spec is None else "is a module, not a package folder"
            raise LookupError(f"{name} {kind}")
        search = list(spec.submodule_search_locations)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def discover(path: Sequence[str] | None = None) -> list[PluginSource]:
    """Every entry point of group ``clustercord.plugins`` on ``path`` (default: sys.path).

    The first distribution of a name on the path wins, as for imports.
    """
    search = list(path) if path is not None else list(sys.path)
    seen_distributions: set[str] = set()
    sources: dict[str, PluginSource] = {}
    for dist in distributions(path=search):
        name = dist.metadata["Name"] or ""
        key = name.lower().replace("_", "-")
        if key in seen_distributions:
            continue
        seen_distributions.add(key)
        for entry_point in dist.entry_points:
            if entry_point.group != GROUP or entry_point.name in sources:
                continue
            sources[entry_point.name] = _source(entry_point, name, dist.version, search)
    return sorted(sources.values(), key=lambda s: s.entry_point)


def _source(entry_point: EntryPoint, dist: str, version: str, path: Iterable[str]) -> PluginSource:
    module = entry_point.module
    try:
        folder = locate_package(module, list(path))
    except LookupError as exc:
        return PluginSource(entry_point.name, module, None, dist, version, problem=str(exc))
    return PluginSource(entry_point.name, module, folder, dist, version)
