"""Copy a source's signed index, its wheels and their dependencies' wheels into a folder,
for air-gapped clusters.

The index is kept byte for byte, so its signature still holds; each wheel is downloaded to
the relative path the index names and checked against the signed size and sha256. An entry
whose wheel is an absolute URL cannot be re-pointed without re-signing: it is reported.

The dependencies a plugin needs beyond the kernel's own packages are resolved by pip the
way the installer will resolve them (the kernel's packages as constraints, the source's
folder or URL as ``--find-links``) and copied beside the plugins: the installer passes a
local source's folder to pip as ``--find-links``, so the mirror installs with no index.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from clustercord.plugins.index import (
    INDEX_FILE,
    MAX_INDEX_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    verify_index,
)
from clustercord.plugins.installer import kernel_distributions, run_pip
from clustercord.plugins.sources import Source, download, fetch_bytes
from clustercord.signing import TrustStore
from clustercord_sdk.errors import CommandError


class MirrorError(CommandError):
    """The mirror could not be completed; the target has no new index."""


async def mirror(
    source: Source, target: Path, trust: TrustStore, *, pip_index: bool = True
) -> tuple[list[str], list[str]]:
    """Mirror ``source`` into ``target``: ``(wheels copied, entries skipped with why)``.

    ``pip_index=False`` resolves dependencies from the source alone (no package index)."""
    data = await fetch_bytes(source.resolve(INDEX_FILE), MAX_INDEX_BYTES, what=INDEX_FILE)
    signature = await fetch_bytes(
        source.resolve(SIGNATURE_FILE), MAX_SIGNATURE_BYTES, what=SIGNATURE_FILE
    )
    index = verify_index(
        data, signature, trust, label=f"{source.name} {INDEX_FILE}", key=source.key
    )
    target.mkdir(parents=True, exist_ok=True)
    copied, skipped, plugin_wheels = [], [], []
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
            plugin_wheels.append(target / version.wheel)
    for wheel in plugin_wheels:
        copied += await _dependencies(wheel, source, target, pip_index)
    # The index last: a mirror with an index always has every wheel it lists (or reports).
    (target / SIGNATURE_FILE).write_bytes(signature)
    (target / INDEX_FILE).write_bytes(data)
    return copied, skipped


async def _dependencies(wheel: Path, source: Source, target: Path, pip_index: bool) -> list[str]:
    """Download into ``target`` the wheels pip would add to the kernel's packages to install
    ``wheel``; returns their file names (those already in ``target`` are not counted)."""
    local = source.local
    links = str(local) if local is not None else source.url.rstrip("/") + "/"
    with tempfile.TemporaryDirectory(prefix="clustercord-mirror-") as work:
        constraints = Path(work) / "kernel-constraints.txt"
        constraints.write_text(
            "".join(f"{n}=={v}\n" for n, v in sorted(kernel_distributions().items())), "utf-8"
        )
        report = Path(work) / "report.json"
        common = [
            "--constraint",
            str(constraints),
            "--find-links",
            links,
            "--find-links",
            str(target),
        ]
        if not pip_index:
            common.append("--no-index")
        # What an install would add beside the kernel's packages (installed ones are kept).
        await run_pip(
            [
                "install",
                "--dry-run",
                "--quiet",
                "--report",
                str(report),
                "--prefix",
                str(Path(work) / "prefix"),
                *common,
                str(wheel),
            ],
            wheel.name,
            MirrorError,
        )
        needed = [
            item["download_info"]["url"]
            for item in json.loads(report.read_text("utf-8")).get("install", [])
            if Path(urlsplit(item["download_info"]["url"]).path).name != wheel.name
        ]
        if not needed:
            return []
        before = {p.name for p in target.glob("*")}
        await run_pip(
            ["download", "--no-deps", "--quiet", "--dest", str(target), *common, *needed],
            wheel.name,
            MirrorError,
        )
        return sorted({p.name for p in target.glob("*")} - before)
