"""Build and sign a marketplace index from a folder of plugin wheels."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from clustercord.plugins.index import (
    INDEX_FILE,
    INDEX_FORMAT,
    SIGNATURE_FILE,
    Index,
    IndexError_,
    iso,
    parse_index,
)
from clustercord.plugins.wheel import WheelError, is_plugin_wheel, read_wheel
from clustercord.signing import Signer
from clustercord.storage import write_atomic
from clustercord_sdk.errors import CommandError, ManifestError
from clustercord_sdk.manifest import load_manifest

META_FILE = "plugins.json"
"""Optional, beside the wheels: per plugin ``category``, ``stars``, ``installs``, ``verified``
(``{"by": …}``): what the publisher says about each plugin, signed with the index."""
_META_KEYS = {"category", "stars", "installs", "verified"}


def build_index(
    folder: Path,
    signer: Signer,
    *,
    name: str = "local",
    valid_days: float = 30.0,
    now: float | None = None,
) -> Index:
    """Write ``index.json`` and ``index.json.asc`` in ``folder`` for every ``*.whl`` under it.

    Each wheel must ship one signed plugin (its manifest valid); wheel paths are relative to
    ``folder``. Raises :class:`CommandError` naming the wheel at fault; writes nothing then."""
    now = time.time() if now is None else now
    meta = _meta(folder)
    plugins: dict[str, dict[str, Any]] = {}
    for wheel_path in sorted(folder.rglob("*.whl")):
        relative = wheel_path.relative_to(folder).as_posix()
        if not is_plugin_wheel(wheel_path):
            continue  # a dependency's wheel, there for pip (--find-links), not listed
        try:
            wheel = read_wheel(wheel_path)
            manifest = load_manifest(wheel.manifest)
        except WheelError as exc:
            raise CommandError(str(exc)) from None
        except ManifestError as exc:
            raise CommandError(f"{relative}: {exc}") from None
        if wheel.entry_point != manifest.name:
            raise CommandError(
                f"{relative}: entry point {wheel.entry_point} differs from the manifest's name "
                f"{manifest.name}"
            )
        data = wheel_path.read_bytes()
        raw = manifest.raw
        version = {
            "version": manifest.version,
            "description": manifest.description,
            "api": manifest.api,
            "distribution": wheel.distribution,
            "wheel": relative,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "permissions": list(raw.get("permissions", [])),
            "capabilities": list(raw.get("capabilities", [])),
            "config": dict(raw.get("config", {})),
            "commands": [c["name"] for c in raw.get("commands", [])],
        }
        for key in ("icon", "author", "homepage"):
            if raw.get(key):
                version[key] = raw[key]
        extra = meta.get(manifest.name, {})
        entry = plugins.setdefault(
            manifest.name,
            {"name": manifest.name, "category": extra.get("category", "other"), "versions": []},
        )
        for key in ("stars", "installs", "verified"):
            if key in extra:
                entry[key] = extra[key]
        if any(v["version"] == manifest.version for v in entry["versions"]):
            raise CommandError(f"{relative}: {manifest.name} {manifest.version} is there twice")
        entry["versions"].append(version)
    unknown = sorted(set(meta) - set(plugins))
    if unknown:
        raise CommandError(f"{META_FILE} names plugins with no wheel: {', '.join(unknown)}")
    document = {
        "format": INDEX_FORMAT,
        "name": name,
        "generated": iso(now),
        "valid_until": iso(now + valid_days * 86400),
        "plugins": [plugins[n] for n in sorted(plugins)],
    }
    data = (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
    try:
        index = parse_index(data, now=now)  # what a kernel will check, checked before signing
    except IndexError_ as exc:
        raise CommandError(f"the built index would be refused: {exc}") from None
    signature = signer.detach_sign(data)
    for target, content in ((INDEX_FILE, data), (SIGNATURE_FILE, signature.encode())):
        write_atomic(folder / target, content, mode=0o644)
    return index


def _meta(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / META_FILE
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise CommandError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise CommandError(f"{path}: an object of plugin name → {{category, stars, …}}")
    for plugin, values in meta.items():
        unknown = set(values) - _META_KEYS
        if unknown:
            raise CommandError(f"{path}: {plugin}: unknown keys {', '.join(sorted(unknown))}")
    return meta
