"""Copy a source's signed index and its wheels into a folder, for air-gapped clusters.

The index is kept byte for byte, so its signature still holds; each wheel is downloaded to
the relative path the index names and checked against the signed size and sha256. An entry
whose wheel is an absolute URL cannot be re-pointed without re-signing: it is reported.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from clustercord.plugins.index import (
    INDEX_FILE,
    MAX_INDEX_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    verify_index,
)
from clustercord.plugins.sources import Source, download, fetch_bytes
from clustercord.signing import TrustStore


async def mirror(source: Source, target: Path, trust: TrustStore) -> tuple[list[str], list[str]]:
    """Mirror ``source`` into ``target``: ``(wheels copied, entries skipped with why)``."""
    data = await fetch_bytes(source.resolve(INDEX_FILE), MAX_INDEX_BYTES, what=INDEX_FILE)
    signature = await fetch_bytes(
        source.resolve(SIGNATURE_FILE), MAX_SIGNATURE_BYTES, what=SIGNATURE_FILE
    )
    index = verify_index(
        data, signature, trust, label=f"{source.name} {INDEX_FILE}", key=source.key
    )
    target.mkdir(parents=True, exist_ok=True)
    copied, skipped = [], []
    for plugin in index.plugins.values():
        for version in plugin.versions:
            label = f"{plugin.name} {version.version}"
            if urlsplit(version.wheel).scheme:
                skipped.append(f"{label}: its wheel is an absolute URL ({version.wheel})")
                continue
            await download(
                source.resolve(version.wheel),
                target / version.wheel,
                size=version.size,
                sha256=version.sha256,
                what=label,
            )
            copied.append(version.wheel)
    # The index last: a mirror with an index always has every wheel it lists (or reports).
    (target / SIGNATURE_FILE).write_bytes(signature)
    (target / INDEX_FILE).write_bytes(data)
    return copied, skipped
