"""Find installed plugins without importing a line of their code.

``pluggy.PluginManager.load_setuptools_entrypoints`` imports every entry point
before anything can check it. We read the entry points' metadata instead and
locate each plugin's package folder on disk with the import system's path
finder, which looks at files but executes nothing, not even parent packages.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.machinery
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from importlib_metadata import Distribution, EntryPoint, PackagePath, distributions

GROUP = "clustercord.plugins"
BUILTIN_DISTRIBUTION = "clustercord-builtins"
BUILTIN_PLUGINS = frozenset(
    {
        "approvals",
        "audit",
        "chaos",
        "cluster",
        "help",
        "plugins",
        "rbac",
        "sso",
        "templates",
        "terminal",
    }
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
    record: tuple[tuple[str, str, str], ...] = ()
    """What the distribution's RECORD lists under ``folder``: ``(path relative to the
    folder, hash algorithm, urlsafe-base64 digest)``, the last two empty when RECORD gives
    no hash. Empty for an editable install (its RECORD lists nothing under the folder) or a
    distribution without RECORD."""
    paths: tuple[str, ...] = ()
    """Directories its isolated process adds to its import path: a marketplace plugin's
    dependencies, installed beside it (``plugins.installer``)."""

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
            sources[entry_point.name] = _source(entry_point, dist, name, search)
    return sorted(sources.values(), key=lambda s: s.entry_point)


def _source(
    entry_point: EntryPoint, dist: Distribution, name: str, path: Iterable[str]
) -> PluginSource:
    module, version = entry_point.module, dist.version
    try:
        folder = locate_package(module, list(path))
    except LookupError as exc:
        return PluginSource(entry_point.name, module, None, name, version, problem=str(exc))
    return PluginSource(
        entry_point.name, module, folder, name, version, record=_record(dist, folder)
    )


def _record(dist: Distribution, folder: Path) -> tuple[tuple[str, str, str], ...]:
    """The RECORD entries of ``dist`` that lie under ``folder`` (read as text: nothing runs).

    RECORD is parsed here rather than through ``dist.files``, which drops the entries whose
    file is missing on disk: a module the wheel shipped and someone removed must still count.
    """
    try:
        text = dist.read_text("RECORD")
    except (OSError, ValueError):
        text = None
    if not text:
        return ()  # no RECORD (an egg-info or hand-made distribution): nothing to compare
    root = folder.resolve()
    entries = []
    for row in csv.reader(text.splitlines()):
        if not row or not row[0]:
            continue
        try:
            located = Path(dist.locate_file(PackagePath(row[0]))).resolve()
            relative = located.relative_to(root)
        except (ValueError, OSError):
            continue  # elsewhere: another package, the dist-info folder, scripts
        mode, _, value = (row[1] if len(row) > 1 else "").partition("=")
        entries.append((relative.as_posix(), mode, value))
    return tuple(sorted(entries))


def record_mismatch(source: PluginSource, signed_files: dict[str, str]) -> str | None:
    """Why the verified folder disagrees with its distribution's RECORD, or ``None``.

    Every signed file must be listed with the same hash, and RECORD must list no ``.py``
    under the folder that the signature lacks (bytecode caches and the signature file
    itself are not signed). Nothing to compare for an editable install: ``None``.
    """
    if not source.record or source.folder is None:
        return None
    listed = {path: (mode, value) for path, mode, value in source.record}
    differ = []
    for path, sha256 in sorted(signed_files.items()):
        mode, value = listed.get(path, ("", ""))
        if not _same(source.folder / path, sha256, mode, value):
            differ.append(path if path in listed else f"{path} (not listed)")
    if differ:
        return f"installed files differ from the distribution's RECORD: {', '.join(differ)}"
    unsigned = sorted(p for p in listed if p.endswith(".py") and p not in signed_files)
    if unsigned:
        return "the distribution's RECORD lists code the signature does not cover: " + ", ".join(
            unsigned
        )
    return None


_STRONGER = frozenset(
    {"sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"}
)


def _same(path: Path, sha256: str, mode: str, value: str) -> bool:
    """Whether RECORD's ``mode=value`` is the hash of the file signed as ``sha256``."""
    if not mode or not value:
        return False
    try:
        digest = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return False
    if mode == "sha256":
        return digest.hex() == sha256
    if mode not in _STRONGER:
        return False
    try:  # a stronger algorithm: hash the file, which verification found to be the signed one
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256 and hashlib.new(mode, data).digest() == digest
