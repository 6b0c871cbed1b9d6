"""``mirror`` copies the wheels a listed plugin depends on, so an air-gapped kernel installs
it from the mirror alone; two processes on one data directory install one at a time (a real
flock held by another real process, released by ``kill -9``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
from clustercord_marketplace.mirror import MirrorError, mirror

pytestmark = pytest.mark.slow


async def test_a_mirror_holds_the_dependencies_of_its_plugins(
    market_harness, market, wheels, tmp_path
):
    from clustercord.plugins.sources import Source
    from clustercord.signing import TrustStore

    harness = market_harness
    # The source holds acme-words beside greeter, which needs it; the index lists greeter only.
    market.publish(wheels["greeter"], wheels["words"])
    target = tmp_path / "mirror"
    trust = TrustStore(harness.settings.trust_dir)
    copied, skipped = await mirror(
        Source("acme", str(market.folder)), target, trust, pip_index=False
    )
    assert skipped == []
    assert sorted(copied) == sorted([wheels["greeter"].name, wheels["words"].name])
    assert (target / wheels["words"].name).read_bytes() == wheels["words"].read_bytes()

    shutil.rmtree(market.folder)  # air-gapped: only the mirror is left
    harness.settings = replace(
        harness.settings,
        marketplace={
            **harness.settings.marketplace,
            "sources": [{"name": "acme", "url": str(target)}],
        },
    )
    await harness.start()
    installed = await harness.run("/plugin install name:greeter")
    assert installed.ok, installed.text
    assert (await harness.run("/greeter name:Ada")).text == "Howdy, Ada!"


async def test_a_dependency_nowhere_to_be_found_fails_the_mirror_without_an_index(
    market_harness, market, wheels, tmp_path
):
    from clustercord.plugins.sources import Source
    from clustercord.signing import TrustStore

    market.publish(wheels["greeter"])  # acme-words is not in the source
    target = tmp_path / "mirror"
    with pytest.raises(MirrorError, match=r"acme[-_]words"):
        await mirror(
            Source("acme", str(market.folder)),
            target,
            TrustStore(market_harness.settings.trust_dir),
            pip_index=False,
        )
    assert not (target / "index.json").exists()  # never a mirror that lists what it lacks


def hold_install_lock(folder):
    """Another process holding the data directory's install lock until it is killed."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from clustercord.instance import DirectoryLock; "
            "DirectoryLock(Path(sys.argv[1]), 'install.lock', exclusive=True, purpose='x'); "
            "print('held', flush=True); time.sleep(600)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


async def test_two_processes_installing_on_one_data_directory_take_turns(
    market_harness, market, wheels
):
    harness = market_harness
    market.publish(wheels["hello-0.1.0"])
    kernel = await harness.start()
    kernel.marketplace.lock_wait = 0.5
    holder = hold_install_lock(harness.settings.data_dir / "marketplace")
    try:
        refused = await harness.run("/plugin install name:hello")
        assert not refused.ok
        assert f"another ClusterCord process (pid {holder.pid})" in refused.text
        assert "installing or removing a plugin" in refused.text
        assert kernel.marketplace.installed() == {}
        assert (await harness.run("/hello name:Ada")).status != "ok"
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the worst moment: no clean-up runs
        holder.wait()
    installed = await harness.run("/plugin install name:hello")
    assert installed.ok, installed.text  # a killed holder leaves no stale lock
    assert (await harness.run("/hello name:Ada")).text == "👋 Hello, Ada! (greeting #1)"


async def test_a_mirror_of_an_http_source_finds_dependencies_beside_its_index(
    market_harness, market, wheels, tmp_path
):
    """A source served over HTTP (as ``clustercord marketplace serve`` does: a static
    server with folder listings), mirrored for an air-gapped cluster."""
    import functools
    import http.server
    import threading

    from clustercord.plugins.sources import Source
    from clustercord.signing import TrustStore

    market.publish(wheels["greeter"], wheels["words"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(market.folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        copied, _ = await mirror(
            Source("acme", url),
            tmp_path / "mirror",
            TrustStore(market_harness.settings.trust_dir),
            pip_index=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(copied) == sorted([wheels["greeter"].name, wheels["words"].name])
    assert (tmp_path / "mirror" / "index.json").read_bytes() == (
        market.folder / "index.json"
    ).read_bytes()
