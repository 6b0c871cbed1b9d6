"""The publisher tools and `clustercord run` as separate processes: build-index signs, verify
checks, serve serves over HTTP, mirror copies for offline use, and a kernel started by
`clustercord run` installs from them and runs the plugin in the next process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clustercord_testing.site import signed_builtins_site

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "import sys; from clustercord.cli import main; sys.exit(main())"]


@pytest.fixture
def cli(tmp_path, clustercord_signer, publisher):
    """Run the command line with a data directory that trusts the builtins' signer (release)
    and the publisher (third-party); ``config(text)`` writes its clustercord.toml."""
    site = tmp_path / "site"
    signed_builtins_site(site, clustercord_signer)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(site), "CLUSTERCORD_DATA_DIR": str(data)}
    env.pop("CLUSTERCORD_ISOLATION", None)

    def run(*args: str, check: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=check
        )

    for signer, kind in ((clustercord_signer, "release"), (publisher, "third-party")):
        key = tmp_path / f"{kind}.asc"
        key.write_text(signer.public_key)
        run("keys", "trust", str(key), "--label", kind, "--kind", kind, check=True)

    def config(url: str) -> None:
        data.mkdir(exist_ok=True)
        (data / "clustercord.toml").write_text(
            "[marketplace]\nofficial = false\npip_index = false\n"
            f'[[marketplace.sources]]\nname = "acme"\nurl = "{url}"\n'
        )

    run.config = config  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run


def build(cli, folder: Path, publisher) -> subprocess.CompletedProcess:
    return cli(
        "marketplace",
        "build-index",
        str(folder),
        "--key",
        publisher.fingerprint,
        "--gnupg-home",
        str(publisher.home),
        "--name",
        "acme",
    )


def test_build_index_then_verify(cli, tmp_path, wheels, publisher):
    folder = tmp_path / "dist"
    folder.mkdir()
    for key in ("hello-0.1.0", "hello-0.2.0"):
        shutil.copy(wheels[key], folder)
    built = build(cli, folder, publisher)
    assert built.returncode == 0, built.stderr
    assert "1 plugins, 2 versions" in built.stdout
    index = json.loads((folder / "index.json").read_text())
    assert [v["version"] for v in index["plugins"][0]["versions"]] == ["0.1.0", "0.2.0"]
    assert index["plugins"][0]["versions"][1]["permissions"] == ["pods:read"]

    checked = cli("marketplace", "verify", str(folder / "index.json"))
    assert checked.returncode == 0, checked.stderr
    assert f"signed by third-party ({publisher.fingerprint})" in checked.stdout

    wheel = folder / wheels["hello-0.2.0"].name
    wheel.write_bytes(wheel.read_bytes() + b"\0")  # one byte more
    tampered = cli("marketplace", "verify", str(folder))
    assert tampered.returncode == 1 and "hello 0.2.0" in tampered.stdout

    (folder / "index.json").write_text((folder / "index.json").read_text().replace("acme", "acmf"))
    altered = cli("marketplace", "verify", str(folder))
    assert altered.returncode == 1 and "altered after signing" in altered.stderr
    other = cli("marketplace", "verify", str(folder), "--key", "DEADBEEF")
    assert other.returncode == 1


def test_build_index_refuses_an_unsigned_wheel_and_writes_nothing(cli, tmp_path, publisher):
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "junk-1.0-py3-none-any.whl").write_bytes(b"PK not really")
    built = build(cli, folder, publisher)
    assert built.returncode == 1 and "not a wheel" in built.stderr
    assert not (folder / "index.json").exists()


def test_install_through_clustercord_run_from_a_served_index(cli, tmp_path, wheels, publisher):
    folder = tmp_path / "dist"
    folder.mkdir()
    shutil.copy(wheels["hello-0.1.0"], folder)
    assert build(cli, folder, publisher).returncode == 0
    server = subprocess.Popen(
        [*CLI, "marketplace", "serve", str(folder), "--port", "0"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        url = re.search(r"http://\S+/", line).group(0)
        cli.config(url)
        browsed = cli("run", "--json", "/plugin browse")
        assert browsed.returncode == 0, browsed.stderr
        assert json.loads(browsed.stdout)["data"]["entries"][0]["name"] == "hello"
        installed = cli("run", "--yes", "--json", "/plugin install name:hello")
        assert installed.returncode == 0, installed.stderr
        assert "Installed hello 0.1.0" in json.loads(installed.stdout)["text"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    # A new process (a restart): the plugin is there, verified, and answers.
    hello = cli("run", "--json", "/hello name:Ada")
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout)["text"] == "👋 Hello, Ada! (greeting #1)"
    listed = json.loads(cli("plugins", "list", "--json").stdout)
    assert {p["name"]: p["signature"] for p in listed["plugins"]}["hello"] == "verified"
    removed = cli("run", "--yes", "--json", "/plugin remove name:hello")
    assert removed.returncode == 0, removed.stderr
    assert cli("run", "--json", "/hello name:Ada").returncode != 0


def test_mirror_for_an_air_gapped_install(cli, tmp_path, wheels, publisher):
    folder = tmp_path / "dist"
    folder.mkdir()
    shutil.copy(wheels["hello-0.1.0"], folder)
    assert build(cli, folder, publisher).returncode == 0
    mirror = tmp_path / "mirror"
    copied = cli("marketplace", "mirror", f"file://{folder}", str(mirror))
    assert copied.returncode == 0, copied.stderr
    assert "index and 1 wheels" in copied.stdout
    shutil.rmtree(folder)  # the original source is gone: the mirror serves alone
    cli.config(f"file://{mirror}")
    installed = cli("run", "--yes", "--json", "/plugin install name:hello")
    assert installed.returncode == 0, installed.stderr
    hello = cli("run", "--json", "/hello name:Ada")
    assert json.loads(hello.stdout)["text"] == "👋 Hello, Ada! (greeting #1)"


def test_two_processes_installing_at_once_take_turns(cli, tmp_path, wheels, publisher):
    """Two ``clustercord run`` processes on one data directory install the same plugin at
    the same moment: one installs it, the other waits for the lock, then finds it there."""
    folder = tmp_path / "dist"
    folder.mkdir()
    shutil.copy(wheels["hello-0.1.0"], folder)
    assert build(cli, folder, publisher).returncode == 0
    cli.config(str(folder))
    both = [
        subprocess.Popen(
            [*CLI, "run", "--yes", "/plugin install name:hello"],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=300)[0] for p in both)
    installed = [o for o in outputs if "Installed hello 0.1.0" in o]
    assert len(installed) == 1, outputs
    assert any("hello 0.1.0 is already installed" in o for o in outputs), outputs
    plugins = tmp_path / "data" / "marketplace" / "plugins" / "hello"
    assert len(list(plugins.iterdir())) == 1  # one install, not two half ones
    hello = cli("run", "--json", "/hello name:Ada")
    assert json.loads(hello.stdout)["text"] == "👋 Hello, Ada! (greeting #1)"
