"""Marketplace sources: where indexes and wheels come from, fetched and cached.

``[marketplace]`` in the TOML config (README, "Configuration")::

    [marketplace]
    official = true              # the official index (default); false for air-gapped sites
    cache_seconds = 300          # how long a fetched index is reused before fetching again
    pip_index = true             # false: a plugin's dependencies come only from its source
    [[marketplace.sources]]
    name = "acme"                # shown beside its plugins
    url = "https://plugins.acme.example/"   # or file:///srv/mirror/ or /srv/mirror
    key = "0123…CDEF"            # optional: only this pinned key may sign this source

Each source serves ``index.json`` and ``index.json.asc`` beside each other. HTTP goes
through aiohttp; ``file://`` URLs and directories are read from disk (mirrors made with
``clustercord marketplace mirror``). Every fetched index is verified, then kept under
``<data dir>/marketplace/cache/<source>/`` with its fetch time: when the source cannot be
reached, the cached copy serves until its ``valid_until``; a source that serves an index
older than the one already seen is refused (a replayed index would hide a fixed version).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from clustercord.plugins.index import (
    INDEX_FILE,
    MAX_INDEX_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    Index,
    IndexError_,
    IndexPlugin,
    iso,
    verify_index,
)
from clustercord.signing import TrustStore
from clustercord.storage import write_atomic
from clustercord_sdk.errors import CommandError, UsageError

log = logging.getLogger("clustercord.marketplace")

OFFICIAL = "https://plugins.clustercord.dev/"
TIMEOUT = 60.0


class DownloadError(CommandError):
    """A download failed or was cut short; nothing was kept."""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    key: str | None = None

    @property
    def local(self) -> Path | None:
        """The directory of a ``file://`` or path source, else ``None``."""
        parts = urlsplit(self.url)
        if parts.scheme == "file":
            return Path(unquote(parts.path))
        if not parts.scheme:
            return Path(self.url).expanduser()
        return None

    def resolve(self, location: str) -> str:
        """An index entry's wheel location as a URL or path relative to this source.

        A remote source may not point at this machine's files (``file://``): the sha256
        would protect what is installed, but reading a device or a pipe would not end."""
        scheme = urlsplit(location).scheme
        if scheme == "file" and self.local is None:
            raise DownloadError(f"source {self.name}: a remote index may not name {location}")
        if scheme:
            return location
        local = self.local
        if local is not None:
            return str(local / location)
        return self.url.rstrip("/") + "/" + location


@dataclass(frozen=True)
class MarketplaceConfig:
    sources: tuple[Source, ...] = ()
    cache_seconds: float = 300.0
    pip_index: bool = True

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> MarketplaceConfig:
        where = "[marketplace]"
        sources: list[Source] = []
        for i, entry in enumerate(raw.get("sources", [])):
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("url"):
                raise UsageError(f"{where} sources[{i}]: needs name and url")
            unknown = set(entry) - {"name", "url", "key"}
            if unknown:
                raise UsageError(f"{where} sources[{i}]: unknown keys {', '.join(sorted(unknown))}")
            scheme = urlsplit(str(entry["url"])).scheme
            if scheme not in ("", "file", "http", "https"):
                raise UsageError(f"{where} sources[{i}]: url must be https, http, file or a path")
            sources.append(Source(str(entry["name"]), str(entry["url"]), entry.get("key")))
        if raw.get("official", True) and not any(s.name == "official" for s in sources):
            sources.append(Source("official", OFFICIAL))
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise UsageError(f"{where}: two sources have the same name")
        unknown = set(raw) - {"sources", "official", "cache_seconds", "pip_index"}
        if unknown:
            raise UsageError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        return cls(
            tuple(sources),
            float(raw.get("cache_seconds", 300.0)),
            bool(raw.get("pip_index", True)),
        )


@dataclass
class Listing:
    """One plugin as offered by one source."""

    source: Source
    plugin: IndexPlugin


@dataclass
class Catalog:
    """Every source's plugins (the first source offering a name wins) and what went wrong."""

    listings: dict[str, Listing] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fetched_at: float = 0.0


class Sources:
    def __init__(self, config: MarketplaceConfig, trust: TrustStore, cache_dir: Path) -> None:
        self.config = config
        self.trust = trust
        self.cache_dir = cache_dir
        self._catalog: Catalog | None = None
        self._lock = asyncio.Lock()
        self._warming: asyncio.Task[Catalog] | None = None

    async def catalog(self, *, refresh: bool = False) -> Catalog:
        async with self._lock:
            fresh = self._catalog is not None and (
                time.time() - self._catalog.fetched_at < self.config.cache_seconds
            )
            if self._catalog is None or refresh or not fresh:
                self._catalog = await self._build()
            return self._catalog

    def warm(self) -> asyncio.Task[Catalog]:
        """The catalog fetched in the background: one fetch at a time, however many
        autocompletes ask for it while it runs."""
        if self._warming is None or self._warming.done():
            self._warming = asyncio.get_running_loop().create_task(self.catalog())
            self._warming.add_done_callback(_log_failure)
        return self._warming

    def cached_names(self) -> list[str]:
        """Names from the last catalog, without fetching (autocomplete must answer at once)."""
        return sorted(self._catalog.listings) if self._catalog else []

    async def _build(self) -> Catalog:
        catalog = Catalog(fetched_at=time.time())
        if not self.config.sources:
            catalog.problems.append("no marketplace source is configured ([marketplace])")
        results = await asyncio.gather(
            *(self.index(source) for source in self.config.sources), return_exceptions=True
        )
        for source, result in zip(self.config.sources, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, CommandError):
                    log.warning("source %s failed", source.name, exc_info=result)
                catalog.problems.append(f"source {source.name}: {result}")
                continue
            index, note = result
            if note:
                catalog.problems.append(f"source {source.name}: {note}")
            for name, plugin in index.plugins.items():
                catalog.listings.setdefault(name, Listing(source, plugin))
        return catalog

    async def index(self, source: Source) -> tuple[Index, str | None]:
        """The verified index of ``source`` and a note when it came from the cache."""
        folder = self.cache_dir / source.name
        label = f"{source.name} {INDEX_FILE}"
        cached = self._cached(source, label)
        try:
            data = await fetch_bytes(source.resolve(INDEX_FILE), MAX_INDEX_BYTES, what=label)
            signature = await fetch_bytes(
                source.resolve(SIGNATURE_FILE), MAX_SIGNATURE_BYTES, what=f"{label}.asc"
            )
        except (DownloadError, IndexError_) as exc:
            if cached is None:
                raise
            return (
                cached,
                f"unreachable ({exc}); using the copy fetched {iso(self._fetched(folder))}",
            )
        index = verify_index(data, signature, self.trust, label=label, key=source.key)
        if cached is not None and index.generated < cached.generated:
            raise IndexError_(
                f"{label}: generated {iso(index.generated)}, older than the copy already seen "
                f"({iso(cached.generated)}): a replayed index is refused"
            )
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, content in ((INDEX_FILE, data), (SIGNATURE_FILE, signature)):
            write_atomic(folder / name, content)
        write_atomic(folder / "fetched.json", json.dumps({"fetched_at": time.time()}).encode())
        return index, None

    def _cached(self, source: Source, label: str) -> Index | None:
        folder = self.cache_dir / source.name
        try:
            data = (folder / INDEX_FILE).read_bytes()
            signature = (folder / SIGNATURE_FILE).read_bytes()
        except OSError:
            return None
        try:
            return verify_index(data, signature, self.trust, label=label, key=source.key)
        except IndexError_ as exc:
            log.info("cached index of %s no longer usable: %s", source.name, exc)
            return None

    @staticmethod
    def _fetched(folder: Path) -> float:
        try:
            return float(json.loads((folder / "fetched.json").read_text())["fetched_at"])
        except (OSError, ValueError, KeyError):
            return 0.0


def _log_failure(task: asyncio.Task[Catalog]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("fetching the marketplace catalog failed", exc_info=task.exception())


async def fetch_bytes(location: str, limit: int, *, what: str) -> bytes:
    """The bytes at ``location`` (URL or path), refused at ``limit`` bytes or more."""
    scheme = urlsplit(location).scheme
    if scheme in ("http", "https"):
        import aiohttp

        try:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(location) as response,
            ):
                if response.status != 200:
                    raise DownloadError(f"{what}: HTTP {response.status} from {location}")
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size >= limit:
                        raise IndexError_(f"{what}: larger than the limit of {limit:,} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(
                f"{what}: cannot fetch {location}: {exc or type(exc).__name__}"
            ) from None
    path = Path(unquote(urlsplit(location).path)) if scheme == "file" else Path(location)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit)
    except OSError as exc:
        raise DownloadError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) >= limit:
        raise IndexError_(f"{what}: larger than the limit of {limit:,} bytes")
    return data


async def download(location: str, target: Path, *, size: int, sha256: str, what: str) -> Path:
    """Download a wheel to ``target``; it must be exactly ``size`` bytes with ``sha256``.

    Written to a ``.part`` file of this process's own first; anything short, long or
    different is deleted and refused, so a download that stops midway leaves nothing
    behind, and two processes downloading at once do not write into one file."""
    part = target.with_name(f".{target.name}.{os.getpid()}.part")  # this process's alone
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    written = 0
    try:
        with part.open("wb") as out:
            async for chunk in _chunks(location, what):
                written += len(chunk)
                if written > size:
                    raise DownloadError(
                        f"{what}: more than the {size:,} bytes the signed index announces"
                    )
                digest.update(chunk)
                out.write(chunk)
        if written < size:
            raise DownloadError(f"{what}: the download stopped after {written:,} of {size:,} bytes")
        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"{what}: sha256 {digest.hexdigest()} differs from the signed index's {sha256} "
                "(the wheel was tampered with or replaced)"
            )
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target


async def _chunks(location: str, what: str) -> Any:
    scheme = urlsplit(location).scheme
    if scheme in ("http", "https"):
        import aiohttp

        try:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT * 5)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(location) as response,
            ):
                if response.status != 200:
                    raise DownloadError(f"{what}: HTTP {response.status} from {location}")
                async for chunk in response.content.iter_chunked(65536):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(f"{what}: download from {location} failed: {exc!r}") from None
        return
    path = Path(unquote(urlsplit(location).path)) if scheme == "file" else Path(location)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DownloadError(f"{what}: cannot read {path}: {exc.strerror}") from None
    with handle:
        while chunk := handle.read(65536):
            yield chunk
