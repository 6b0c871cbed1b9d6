"""A private, signed copy of installed plugins, for tests and benchmarks that run the CLI.

Signing the working tree's builtin plugins with a throwaway key would break the
installation's own signatures; instead the builtins are copied into a site folder
that shadows the installed distribution (put it first on ``PYTHONPATH``) and
signed there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clustercord_testing.harness import TestSigner


def signed_builtins_site(site: Path, signer: TestSigner) -> Path:
    """Copy ``clustercord-builtins`` into ``site`` with its metadata, signed by ``signer``.

    Returns the copied package folder (one subfolder per plugin).
    """
    from clustercord.plugins.discovery import BUILTIN_DISTRIBUTION, discover

    sources = [s for s in discover() if s.distribution == BUILTIN_DISTRIBUTION and s.folder]
    if not sources:
        raise LookupError(f"{BUILTIN_DISTRIBUTION} is not installed")
    assert sources[0].folder is not None
    package = sources[0].folder.parent
    version = sources[0].distribution_version
    shutil.copytree(
        package,
        site / package.name,
        ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc"),
    )
    info = site / f"clustercord_builtins-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {BUILTIN_DISTRIBUTION}\nVersion: {version}\n"
    )
    lines = "".join(f"{s.entry_point} = {s.module}\n" for s in sources)
    (info / "entry_points.txt").write_text(f"[clustercord.plugins]\n{lines}")
    for source in sources:
        signer.sign(site / package.name / source.module.rsplit(".", 1)[1])
    return Path(site, str(package.name))
