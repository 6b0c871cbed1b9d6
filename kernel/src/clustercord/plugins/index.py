"""The marketplace index: one signed ``index.json`` per source (marketplace/README.md).

Reading is strict because an index comes from the network: its size is capped before it is
parsed, its detached signature (``index.json.asc``) must be by a pinned key (the trust store
of plugins, and optionally one fingerprint the source configuration names), it must still be
valid (``valid_until``), it is validated against ``index.schema.json`` (unknown fields are
errors, each naming its path), and every entry is checked for what a schema cannot say
(version ranges, wheel locations). The publisher tools (``clustercord marketplace``) build
and verify indexes with this module; the kernel's installer reads them with it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from clustercord.signing import TrustedKey, TrustStore, VerificationFailure
from clustercord_sdk.errors import CommandError

INDEX_FILE = "index.json"
SIGNATURE_FILE = "index.json.asc"
INDEX_FORMAT = "clustercord-index/1"
MAX_INDEX_BYTES = 10 * 1024 * 1024
"""An index of 10 MB or more is refused before it is parsed (or downloaded further)."""
MAX_SIGNATURE_BYTES = 64 * 1024
MAX_PLUGINS = 10_000
"""More entries than this are refused before schema validation (which would be slow)."""


class IndexError_(CommandError):
    """An index was refused; the message says which and why."""


@dataclass(frozen=True)
class IndexVersion:
    version: str
    description: str
    api: str
    distribution: str
    wheel: str
    sha256: str
    size: int
    icon: str | None = None
    author: str | None = None
    homepage: str | None = None
    permissions: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = ()

    def supports(self, api_version: str) -> bool:
        return Version(api_version) in SpecifierSet(self.api)


@dataclass(frozen=True)
class IndexPlugin:
    name: str
    category: str
    versions: tuple[IndexVersion, ...]
    """Newest first."""
    stars: int | None = None
    installs: int | None = None
    verified_by: str | None = None

    def latest(self, api_version: str) -> IndexVersion | None:
        """The newest version this kernel's API satisfies."""
        return next((v for v in self.versions if v.supports(api_version)), None)

    def version(self, version: str) -> IndexVersion | None:
        return next((v for v in self.versions if Version(v.version) == Version(version)), None)


@dataclass(frozen=True)
class Index:
    name: str
    generated: float
    valid_until: float
    plugins: dict[str, IndexPlugin]
    signer: TrustedKey | None = None


@cache
def schema() -> dict[str, Any]:
    return dict(json.loads((Path(__file__).parent / "index.schema.json").read_text("utf-8")))


def _timestamp(text: str, where: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise IndexError_(f"{where}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise IndexError_(f"{where}: {text!r} has no time zone (write ...Z)")
    return moment.timestamp()


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_index(data: bytes, *, label: str = INDEX_FILE, now: float | None = None) -> Index:
    """Parse and validate an index (its signature already checked, or being built).

    Raises :class:`IndexError_` naming ``label`` and the first problems found."""
    if len(data) >= MAX_INDEX_BYTES:
        raise IndexError_(f"{label}: {len(data):,} bytes, the limit is under {MAX_INDEX_BYTES:,}")
    index = _parse(data, label)
    now = time.time() if now is None else now
    if index.valid_until <= now:
        raise IndexError_(
            f"{label}: stale index: valid until {iso(index.valid_until)}, now {iso(now)} "
            "(the publisher must re-sign it)"
        )
    if index.generated > now + 300:
        raise IndexError_(f"{label}: generated {iso(index.generated)}, in the future")
    return index


_PARSED: dict[bytes, Index] = {}
"""The last indexes parsed, by the sha256 of their bytes: schema validation of a large
index takes a while, and a source serves the same bytes until its publisher re-signs them
(the signature and the freshness are still checked every time)."""


def _parse(data: bytes, label: str) -> Index:
    key = hashlib.sha256(data).digest()
    cached = _PARSED.get(key)
    if cached is not None:
        return cached
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexError_(f"{label}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise IndexError_(f"{label}: an index is a JSON object")
    plugins = raw.get("plugins")
    if isinstance(plugins, list) and len(plugins) > MAX_PLUGINS:
        raise IndexError_(f"{label}: {len(plugins):,} plugins, the limit is {MAX_PLUGINS:,}")
    import jsonschema  # imported late: slow to import, needed only here

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        shown = "; ".join(f"{_path(e.absolute_path)}: {e.message[:200]}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise IndexError_(f"{label}: invalid index: {shown}{more}")
    generated = _timestamp(raw["generated"], f"{label}: generated")
    valid_until = _timestamp(raw["valid_until"], f"{label}: valid_until")
    parsed: dict[str, IndexPlugin] = {}
    for i, entry in enumerate(raw["plugins"]):
        where = f"{label}: plugins[{i}]"
        if entry["name"] in parsed:
            raise IndexError_(f"{where}: plugin {entry['name']} is listed twice")
        versions = []
        for j, item in enumerate(entry["versions"]):
            versions.append(_version(item, f"{where}.versions[{j}]"))
        numbers = [Version(v.version) for v in versions]
        if len(set(numbers)) != len(numbers):
            raise IndexError_(f"{where}: a version of {entry['name']} is listed twice")
        verified = entry.get("verified")
        parsed[entry["name"]] = IndexPlugin(
            name=entry["name"],
            category=entry["category"],
            versions=tuple(sorted(versions, key=lambda v: Version(v.version), reverse=True)),
            stars=entry.get("stars"),
            installs=entry.get("installs"),
            verified_by=verified["by"] if verified else None,
        )
    index = Index(raw["name"], generated, valid_until, parsed)
    if len(_PARSED) >= 8:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = index
    return index


def _version(item: dict[str, Any], where: str) -> IndexVersion:
    try:
        SpecifierSet(item["api"])
    except InvalidSpecifier:
        raise IndexError_(f"{where}.api: {item['api']!r} is not a version range") from None
    wheel_location(item["wheel"], where=f"{where}.wheel")
    return IndexVersion(
        version=item["version"],
        description=item["description"],
        api=item["api"],
        distribution=item["distribution"],
        wheel=item["wheel"],
        sha256=item["sha256"],
        size=item["size"],
        icon=item.get("icon"),
        author=item.get("author"),
        homepage=item.get("homepage"),
        permissions=tuple(item.get("permissions", ())),
        capabilities=tuple(item.get("capabilities", ())),
        config=dict(item.get("config", {})),
        commands=tuple(item.get("commands", ())),
    )


def wheel_location(text: str, base: str | None = None, *, where: str = "wheel") -> str:
    """Check a wheel's location; with ``base`` (the index's URL or directory), resolve it.

    A URL (https, http or file) or a relative POSIX path inside the index's folder, ending in
    ``.whl``; never ``..`` nor an absolute path (an index must not point at the host's files
    through a relative entry)."""
    scheme = urlsplit(text).scheme
    if not text.endswith(".whl"):
        raise IndexError_(f"{where}: {text!r} is not a .whl file")
    if scheme in ("https", "http", "file"):
        return text
    if scheme or text.startswith("/") or ".." in PurePosixPath(text).parts or "\\" in text:
        raise IndexError_(f"{where}: {text!r} must be a URL or a path inside the index's folder")
    if base is None:
        return text
    return base.rstrip("/") + "/" + text


def verify_index(
    data: bytes,
    signature: bytes,
    trust: TrustStore,
    *,
    label: str = INDEX_FILE,
    key: str | None = None,
    now: float | None = None,
) -> Index:
    """Check ``signature`` (a pinned key; ``key``: only that fingerprint), then parse."""
    if len(data) >= MAX_INDEX_BYTES:
        raise IndexError_(f"{label}: {len(data):,} bytes, the limit is under {MAX_INDEX_BYTES:,}")
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise IndexError_(f"{label}: its signature is {len(signature):,} bytes: not a signature")
    try:
        signer = trust.verify_detached(data, signature, label)
    except VerificationFailure as exc:
        raise IndexError_(str(exc)) from None
    if key is not None:
        wanted = key.upper().replace(" ", "")
        if not signer.fingerprint.endswith(wanted):
            raise IndexError_(
                f"{label} is signed by {signer.fingerprint}, and this source accepts only {key}"
            )
    index = parse_index(data, label=label, now=now)
    return Index(index.name, index.generated, index.valid_until, index.plugins, signer)
