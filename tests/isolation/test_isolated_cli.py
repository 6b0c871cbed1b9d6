"""Out of the box (the ``signer`` tier, real discovery, the command line): a third-party
plugin runs in a process of its own, the release-signed builtins in the kernel's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clustercord_testing.harness import TestSigner
from clustercord_testing.site import signed_builtins_site

CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]
HELLO = Path(__file__).parents[2] / "examples" / "hello-plugin" / "src" / "clustercord_hello"
PROBE = {
    "name": "probe",
    "version": "0.1.0",
    "api": ">=1.0,<2",
    "description": "says which process serves it",
    "commands": [{"name": "probe", "description": "probe", "handler": "commands:probe"}],
}


def install(site: Path, folder: Path, package: str, entry_point: str, signer: TestSigner) -> None:
    """``folder`` as distribution ``package`` in ``site``, signed by ``signer``."""
    target = site / package
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc"))
    info = site / f"{package}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[clustercord.plugins]\n{entry_point} = {package}\n")
    signer.sign(target)


@pytest.fixture
def publisher():
    signer = TestSigner()
    yield signer
    signer.cleanup()


def test_a_third_party_plugin_runs_isolated_from_the_command_line(
    tmp_path, clustercord_signer, publisher
):
    site = tmp_path / "site"
    signed_builtins_site(site, clustercord_signer)
    install(site, HELLO, "clustercord_hello", "hello", publisher)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "manifest.json").write_text(json.dumps(PROBE))
    (probe / "__init__.py").write_text("")
    (probe / "commands.py").write_text(
        "import os\n\ndef probe(ctx):\n    return f'{os.getpid()} {os.getppid()}'\n"
    )
    install(site, probe, "cc_probe", "probe", publisher)
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CLUSTERCORD_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("CLUSTERCORD_ISOLATION", None)
    for signer, kind in ((clustercord_signer, "release"), (publisher, "third-party")):
        key = tmp_path / f"{kind}.asc"
        key.write_text(signer.public_key)
        trusted = subprocess.run(
            [*CLI, "keys", "trust", str(key), "--label", kind, "--kind", kind],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert trusted.returncode == 0, trusted.stderr

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)

    hello = run("run", "--json", "/hello name:Ada")
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout)["text"] == "👋 Hello, Ada! (greeting #1)"

    process = subprocess.Popen(
        [*CLI, "run", "/probe"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    pid, parent = (int(n) for n in out.split()[:2])
    # Served by a child of the kernel's process; in bwrap's pid namespace its parent is
    # that namespace's init (pid 1), and its pid is its own namespace's.
    assert pid != process.pid and parent in (process.pid, 1)

    listed = json.loads(run("plugins", "list", "--json").stdout)
    states = {p["name"]: (p["state"], p["signature"]) for p in listed["plugins"]}
    assert states["hello"] == ("enabled", "verified") and states["help"][0] == "enabled"
    # What contains isolated plugins here is said, whatever is missing on this machine.
    assert set(listed["isolation"]) == {"view", "cgroups", "seccomp"}, listed["isolation"]
    assert listed["isolation"]["cgroups"].startswith(("cgroups: ", "no cgroup controller"))
