"""deploy/install.sh, the Containerfile's install steps, run for real: wheels of the workspace
members, then a fresh virtual environment from them, whose `clustercord` serves. The image
itself is built only where a container engine runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "install.sh"


def run(
    *args: str, script: Path = SCRIPT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    # The python3 the script calls is this test's interpreter (a supported version).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        ["sh", str(script), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def signed_source(tmp_path: Path, signer) -> Path:
    """A copy of the members the image holds, the builtins signed by ``signer`` as a release
    build signs them (before the wheels are made), and the recipe beside them."""
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "SIGNATURE.asc", "build", "dist")
    for member in ("sdk", "kernel", "builtin_plugins"):
        shutil.copytree(ROOT / member, source / member, ignore=skip)
    (source / "deploy").mkdir()
    shutil.copy2(SCRIPT, source / "deploy" / "install.sh")
    for manifest in (source / "builtin_plugins/src/clustercord_builtins").glob("*/manifest.json"):
        signer.sign(manifest.parent)
    return source


def plugins(prefix: Path, data: Path) -> dict[str, dict]:
    listed = subprocess.run(
        [str(prefix / "bin" / "clustercord"), "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CLUSTERCORD_DATA_DIR": str(data), "HOME": str(data)},
    )
    assert listed.returncode == 0, listed.stderr
    return {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}


def test_the_recipe_installs_a_working_bot_from_wheels_into_a_fresh_environment(
    tmp_path, clustercord_signer
):
    source = signed_source(tmp_path, clustercord_signer)
    wheels, prefix = tmp_path / "wheels", tmp_path / "venv"
    built = run("wheels", str(wheels), script=source / "deploy" / "install.sh")
    assert built.returncode == 0, built.stderr
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert [re.sub(r"-\d.*", "", n) for n in names] == [
        "clustercord",
        "clustercord_builtins",
        "clustercord_sdk",
    ]

    assert "not signed" not in built.stderr
    installed = run("install", str(wheels), str(prefix), script=source / "deploy" / "install.sh")
    assert installed.returncode == 0, installed.stderr
    python = prefix / "bin" / "python"
    # The members are real installs from the wheels, not links back to this source tree.
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import clustercord, clustercord_builtins, clustercord_sdk, importlib.metadata as m;"
            "import json; print(json.dumps([clustercord.__file__, clustercord_builtins.__file__,"
            " m.distribution('clustercord').read_text('direct_url.json')]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    kernel_file, builtins_file, direct_url = json.loads(where.stdout)
    assert Path(kernel_file).is_relative_to(prefix)
    assert Path(builtins_file).is_relative_to(prefix)
    assert direct_url is None or '"editable": true' not in direct_url
    # No test, sandbox or development tooling came along.
    for absent in ("clustercord_sandbox", "clustercord_testing", "pytest"):
        probe = subprocess.run([str(python), "-c", f"import {absent}"], capture_output=True)
        assert probe.returncode != 0, f"{absent} is installed in the image's environment"

    # The entry point the image runs: `clustercord serve` with its two modes.
    served = subprocess.run(
        [str(prefix / "bin" / "clustercord"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 0, served.stderr
    assert "gateway" in served.stdout and "interactions" in served.stdout

    # The builtins in the wheels carry their signatures: refused until the key is pinned
    # (README, step 5), then verified against the wheels' RECORD and loaded.
    data = tmp_path / "data"
    data.mkdir()
    before = plugins(prefix, data)
    assert len(before) == 10
    assert all(p["state"] == "refused" and "untrusted key" in p["reason"] for p in before.values())
    key = tmp_path / "release.asc"
    key.write_text(clustercord_signer.public_key)
    trusted = subprocess.run(
        [
            str(prefix / "bin" / "clustercord"),
            "keys",
            "trust",
            str(key),
            "--label",
            "release",
            "--kind",
            "release",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CLUSTERCORD_DATA_DIR": str(data), "HOME": str(data)},
    )
    assert trusted.returncode == 0, trusted.stderr
    after = plugins(prefix, data)
    refused = {n: p["reason"] for n, p in after.items() if p["state"] == "refused"}
    assert refused == {}
    # As release-signed builtins: verified, and granted what they declare on first start.
    assert {(p["state"], p["signature"]) for p in after.values()} == {("enabled", "verified")}
    assert all(Path(p["source"]).is_relative_to(prefix) for p in after.values())


def test_the_recipe_refuses_unknown_steps_with_its_usage(tmp_path):
    result = run("uninstall", str(tmp_path))
    assert result.returncode == 2
    assert "usage: install.sh wheels OUT | install WHEELS PREFIX" in result.stderr
    missing = run("install", str(tmp_path))
    assert missing.returncode != 0 and "PREFIX" in missing.stderr
    assert not (tmp_path / "bin").exists()


def test_the_image_runs_as_non_root_without_build_tools():
    """The Containerfile's final stage: what it copies and who it runs as."""
    text = (ROOT / "Containerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 3, "wheels, install, final"
    final = stages[-1]
    assert "install.sh" in stages[0] and "install.sh" in stages[1]
    assert re.findall(r"COPY --from=(\S+)", final) == ["install"]
    assert "COPY sdk" not in final and "pip" not in final and "gcc" not in final
    user = re.search(r"^USER (\S+)", final, flags=re.M)
    assert user and not user.group(1).startswith(("0", "root"))
    assert 'ENTRYPOINT ["clustercord"]' in final and 'CMD ["serve"' in final
    # Its uid is the one deploy/base's Pod runs as.
    deployment = (ROOT / "deploy/base/deployment.yaml").read_text()
    assert f"runAsUser: {user.group(1).split(':')[0]}" in deployment


def _engine() -> str | None:
    for name in ("podman", "buildah", "docker"):
        path = shutil.which(name)
        if path is None:
            continue
        probe = [path, "info"] if name != "buildah" else [path, "version"]
        if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
            return path
    return None


def test_the_image_builds_where_a_container_engine_runs(tmp_path):
    engine = _engine()
    if engine is None:
        pytest.skip("no working podman, buildah or docker (daemon) on this machine")
    args = ["bud"] if engine.endswith("buildah") else ["build"]
    built = subprocess.run(
        [engine, *args, "-f", str(ROOT / "Containerfile"), "-t", "clustercord:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stderr[-4000:]
