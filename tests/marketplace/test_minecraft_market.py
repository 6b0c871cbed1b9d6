"""The issue's "done when", through the console harness: browse the example index, install
`minecraft`, approve it, run /minecraft-status against a real Server List Ping server, update
to a version asking one more permission (disabled until approved), remove it. No restart."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("mcstatus")
MINECRAFT = Path(__file__).parents[2] / "examples" / "minecraft"
_spec = importlib.util.spec_from_file_location(
    "minecraft_server", MINECRAFT / "tests" / "minecraft_server.py"
)
minecraft_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(minecraft_server)


def minecraft_wheel(work: Path, signer, version: str, extra: tuple[str, ...] = ()) -> Path:
    source = work / f"minecraft-{version}"
    shutil.copytree(
        MINECRAFT, source, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc", "tests")
    )
    folder = source / "src" / "clustercord_minecraft"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    manifest["permissions"] += list(extra)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    project = (source / "pyproject.toml").read_text()
    (source / "pyproject.toml").write_text(
        project.replace('version = "0.1.0"', f'version = "{version}"')
    )
    signer.sign(folder)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("-q", "-w", str(work / "out"), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    return next((work / "out").glob(f"clustercord_minecraft-{version}-*.whl"))


async def test_browse_install_approve_status_update_remove(
    market_harness, market, publisher, tmp_path
):
    first = minecraft_wheel(tmp_path / "build", publisher, "0.1.0")
    market.publish(
        first, meta={"minecraft": {"category": "games", "stars": 7, "verified": {"by": "Acme"}}}
    )
    harness = market_harness
    harness.settings.marketplace["pip_index"] = True  # mcstatus and its dependencies
    await harness.start()
    browsed = await harness.run("/plugin browse category:games")
    assert [e["name"] for e in browsed.reply.data["entries"]] == ["minecraft"]
    installed = await harness.run("/plugin install name:minecraft")
    assert installed.ok, installed.text
    assert "statefulsets.apps" in installed.asked[0].prompt
    assert harness.plugin("minecraft").state == "awaiting-approval"
    assert (await harness.run("/plugin permissions name:minecraft approve:true")).ok
    async with minecraft_server.minecraft_server(["Alex"]) as server:
        status = await harness.run(f"/minecraft-status server:127.0.0.1:{server.status_port}")
        assert status.ok, status.text
        assert status.reply.data["players"] == ["Alex"]
    assert harness.kernel.isolation.process("minecraft") is not None  # its own process

    market.publish(minecraft_wheel(tmp_path / "build", publisher, "0.2.0", ("configmaps:read",)))
    updated = await harness.run("/plugin update name:minecraft")
    assert updated.ok, updated.text
    assert "+ configmaps:read" in updated.asked[0].prompt
    assert harness.plugin("minecraft").state == "awaiting-approval"
    assert (await harness.run("/minecraft-status server:x")).status != "ok"

    removed = await harness.run("/plugin remove name:minecraft")
    assert removed.ok, removed.text
    assert "minecraft" not in harness.kernel.manager.plugins
    help_text = (await harness.run("/help")).text
    assert "minecraft-status" not in help_text
