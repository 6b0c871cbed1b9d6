"""What a plugin wheel holds, read from the archive without installing or importing it.

The publisher tools build index entries from it; the installer checks a downloaded wheel
with it *before pip sees the file*: the plugin's own signature must verify against a pinned
key, cover exactly the files the wheel ships under the plugin's folder, and agree with the
manifest and with the index entry that offered it.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import Any

from clustercord.signing import (
    SIGNATURE_FILE,
    SIGNATURE_FORMAT,
    TrustStore,
    VerificationFailure,
    Verified,
)
from clustercord_sdk.errors import CommandError
from clustercord_sdk.manifest import MANIFEST_FILE

GROUP = "clustercord.plugins"
MAX_MEMBERS = 5_000
MAX_UNPACKED = 200 * 1024 * 1024


class WheelError(CommandError):
    """A wheel is not an acceptable plugin; the message says why."""


@dataclass(frozen=True)
class WheelPlugin:
    distribution: str
    version: str
    entry_point: str
    module: str
    manifest: dict[str, Any]
    signature: str
    files: dict[str, str]
    """sha256 of every file under the plugin's folder (as ``plugin_files`` counts them)."""


def is_plugin_wheel(path: Path) -> bool:
    """Whether the wheel advertises a plugin entry point (otherwise: a dependency's wheel,
    which a source may hold beside its plugins for pip to find)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
            return any(f"[{GROUP}]" in archive.read(n).decode("utf-8", "replace") for n in names)
    except (OSError, zipfile.BadZipFile):
        return True  # read_wheel says what is wrong with it


def read_wheel(path: Path) -> WheelPlugin:
    """The one plugin a wheel ships. Raises :class:`WheelError`."""
    label = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelError(f"{label}: not a wheel ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED:
            raise WheelError(f"{label}: too large when unpacked")
        names = {m.filename for m in members}
        infos = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})
        if len(infos) != 1:
            raise WheelError(f"{label}: expected one .dist-info folder, found {len(infos)}")
        info = infos[0]
        metadata = HeaderParser().parsestr(_text(archive, f"{info}/METADATA", label))
        distribution, version = metadata["Name"], metadata["Version"]
        if not distribution or not version:
            raise WheelError(f"{label}: METADATA has no Name or Version")
        points = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        points.optionxform = str  # type: ignore[assignment,method-assign]
        if f"{info}/entry_points.txt" in names:
            points.read_string(_text(archive, f"{info}/entry_points.txt", label))
        plugins = dict(points[GROUP]) if points.has_section(GROUP) else {}
        if len(plugins) != 1:
            raise WheelError(
                f"{label}: a marketplace wheel ships exactly one {GROUP} entry point, "
                f"found {len(plugins)}"
            )
        entry_point, module = next(iter(plugins.items()))
        module = module.strip()
        if ":" in module or not all(part.isidentifier() for part in module.split(".")):
            raise WheelError(f"{label}: entry point {entry_point} = {module!r} is not a package")
        folder = module.replace(".", "/") + "/"
        files = {}
        for member in members:
            name = member.filename
            if not name.startswith(folder) or name.endswith("/"):
                continue
            relative = PurePosixPath(name[len(folder) :])
            if relative.as_posix() == SIGNATURE_FILE or "__pycache__" in relative.parts:
                continue
            files[relative.as_posix()] = hashlib.sha256(archive.read(member)).hexdigest()
        try:
            manifest = json.loads(_text(archive, folder + MANIFEST_FILE, label))
        except ValueError:
            raise WheelError(f"{label}: {folder}{MANIFEST_FILE} is not valid JSON") from None
        if not isinstance(manifest, dict):
            raise WheelError(f"{label}: {folder}{MANIFEST_FILE} is not a JSON object")
        signature = _text(archive, folder + SIGNATURE_FILE, label, missing="missing signature")
    return WheelPlugin(distribution, version, entry_point, module, manifest, signature, files)


def _text(archive: zipfile.ZipFile, name: str, label: str, missing: str = "") -> str:
    try:
        return archive.read(name).decode("utf-8")
    except KeyError:
        raise WheelError(f"{label}: {missing or 'no'} {name}") from None
    except UnicodeDecodeError:
        raise WheelError(f"{label}: {name} is not UTF-8") from None


def verify_wheel(plugin: WheelPlugin, trust: TrustStore, label: str) -> Verified:
    """The plugin's own signature, checked against the wheel's files (nothing installed)."""
    try:
        data, signer = trust.open_signed(plugin.signature)
    except VerificationFailure as exc:
        raise WheelError(f"{label}: {exc}") from None
    try:
        signed = json.loads(data)
        assert signed.get("format") == SIGNATURE_FORMAT
        expected: dict[str, str] = signed["files"]
    except (ValueError, AssertionError, KeyError, TypeError):
        raise WheelError(f"{label}: the signed document is not a plugin signature") from None
    changed = sorted(p for p in expected if plugin.files.get(p, expected[p]) != expected[p])
    missing = sorted(set(expected) - set(plugin.files))
    extra = sorted(set(plugin.files) - set(expected))
    for what, paths in (
        ("file changed after signing", changed),
        ("signed file missing", missing),
        ("file not covered by the signature", extra),
    ):
        if paths:
            raise WheelError(f"{label}: {what}: {', '.join(paths)}")
    manifest = plugin.manifest
    for key, default in (("plugin", None), ("version", None), ("api", None)):
        source_key = "name" if key == "plugin" else key
        if signed.get(key) != manifest.get(source_key, default):
            raise WheelError(f"{label}: the signature's {key} differs from the manifest's")
    for key in ("permissions", "capabilities"):
        if sorted(signed.get(key, [])) != sorted(manifest.get(key, [])):
            raise WheelError(f"{label}: the signature's {key} differ from the manifest's")
    return Verified(signer=signer, signed=signed)
