"""Record the README's marketplace console session: a real ``hatch run clustercord console
--sandbox homelab`` against a local signed index, fed a script on standard input.

    hatch run python marketplace/demo/console_session.py [--keep DIR] > session.txt

It builds the example ``minecraft`` plugin at 0.1.0 and at 0.2.0 (which asks for one more
permission) into wheels signed by a throwaway publisher key, publishes both with
``build-index``, trusts the publisher in a fresh data directory, starts a Minecraft Server
List Ping / RCON server (the one the example's tests use), and runs the console on the
session below. Everything but the printed session is deleted afterwards (``--keep DIR``
keeps it in DIR). The output is what the console printed, unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MINECRAFT = ROOT / "examples" / "minecraft"
SESSION = """\
/plugin browse
/plugin install name:minecraft version:0.1.0
/plugin permissions name:minecraft approve:true
/plugin config name:minecraft key:host value:127.0.0.1
/plugin config name:minecraft key:port value:{port}
/minecraft-status server:{server}
/plugin update name:minecraft
/minecraft-status server:{server}
/plugin remove name:minecraft
/minecraft-status server:{server}
"""


def build_wheel(example: Path, signer, version: str, extra: list[str], out: Path) -> Path:
    """The example at ``version`` (its manifest asking for ``extra`` too), signed, built by pip."""
    source = out.parent / f"{example.name}-{version}"
    shutil.copytree(
        example, source, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc", "tests")
    )
    folder = next(p.parent for p in (source / "src").glob("*/manifest.json"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    manifest["permissions"] = manifest.get("permissions", []) + extra
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    project = (source / "pyproject.toml").read_text()
    (source / "pyproject.toml").write_text(
        project.replace('version = "0.1.0"', f'version = "{version}"', 1)
    )
    signer.sign(folder)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return next(out.glob(f"{folder.name}-{version}-*.whl"))


def load_server():
    spec = importlib.util.spec_from_file_location(
        "minecraft_server", MINECRAFT / "tests" / "minecraft_server.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def record(work: Path) -> int:
    from clustercord_marketplace.build import build_index

    from clustercord_testing.harness import TestSigner
    from clustercord_testing.site import signed_builtins_site

    kernel_key, publisher = TestSigner(), TestSigner()
    try:
        site, data, index = work / "site", work / "data", work / "index"
        signed_builtins_site(site, kernel_key)
        index.mkdir(parents=True)
        build_wheel(MINECRAFT, publisher, "0.1.0", [], index)
        build_wheel(MINECRAFT, publisher, "0.2.0", ["configmaps:get"], index)
        (index / "plugins.json").write_text(
            json.dumps({"minecraft": {"category": "games", "stars": 7, "verified": {"by": "Acme"}}})
        )
        build_index(index, publisher.keys.signer(publisher.fingerprint), name="acme")
        env = {**os.environ, "PYTHONPATH": str(site), "CLUSTERCORD_DATA_DIR": str(data)}
        env.pop("CLUSTERCORD_ISOLATION", None)
        for signer, kind in ((kernel_key, "release"), (publisher, "third-party")):
            key = work / f"{kind}.asc"
            key.write_text(signer.public_key)
            subprocess.run(
                ["clustercord", "keys", "trust", str(key), "--label", kind, "--kind", kind],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
        (data / "clustercord.toml").write_text(
            "[marketplace]\nofficial = false\npip_index = false\n"
            f'[[marketplace.sources]]\nname = "acme"\nurl = "{index}"\n'
        )
        minecraft = load_server()
        async with minecraft.minecraft_server(["Alex", "Steve"]) as server:
            script = SESSION.format(
                port=server.status_port, server=f"127.0.0.1:{server.status_port}"
            )
            process = await asyncio.create_subprocess_exec(
                "clustercord", "console", "--sandbox", "homelab", "--yes",
                env={**env, "COLUMNS": "110"},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(process.communicate(script.encode()), 600)
        sys.stdout.write(out.decode("utf-8", "replace"))
        return process.returncode or 0
    finally:
        kernel_key.cleanup()
        publisher.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build and run in DIR, and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(record(args.keep))
    with tempfile.TemporaryDirectory(prefix="clustercord-session-") as work:
        return asyncio.run(record(Path(work)))


if __name__ == "__main__":
    sys.exit(main())
