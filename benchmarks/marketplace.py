"""The marketplace (issue 15's targets): ``/plugin install`` of the example plugin from a
local mirror until its command answers, against ``pip install`` of the same wheel into a
fresh target directory, interleaved in the same run; and the first page of ``/plugin
browse`` over an index of 1,000 entries (fetched, signature checked, parsed, paged).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from measure import Row, median, met

INSTALL_RATIO_TARGET = 1.5
BROWSE_TARGET_MS = 200.0
ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello-plugin"


def hello_wheel(work: Path, signer: Any) -> Path:
    """The hello example, signed by ``signer``, built into a wheel by pip."""
    source = work / "hello-src"
    shutil.copytree(HELLO, source, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc"))
    folder = source / "src" / "clustercord_hello"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["hooks"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest))
    signer.sign(folder)
    out = work / "market"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("-w", str(out), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("clustercord_hello-*.whl"))


def big_index(folder: Path, signer: Any, entries: int) -> None:
    """A signed index of ``entries`` plugins (one version each) in ``folder``."""
    from clustercord.plugins.index import INDEX_FORMAT, iso

    now = time.time()
    version = {
        "version": "1.0.0",
        "description": "A benchmark entry",
        "api": ">=1.0,<2",
        "distribution": "bench-plugin",
        "wheel": "bench_plugin-1.0.0-py3-none-any.whl",
        "sha256": "0" * 64,
        "size": 1000,
        "permissions": ["pods:read"],
        "commands": ["bench"],
    }
    document = {
        "format": INDEX_FORMAT,
        "name": "bench",
        "generated": iso(now),
        "valid_until": iso(now + 86400),
        "plugins": [
            {"name": f"p{i:05d}", "category": "bench", "stars": i, "versions": [version]}
            for i in range(entries)
        ],
    }
    data = json.dumps(document).encode()
    folder.mkdir(parents=True)
    (folder / "index.json").write_bytes(data)
    (folder / "index.json.asc").write_text(signer.keys.signer(signer.fingerprint).detach_sign(data))


async def _measure(quick: bool, scratch: Path) -> list[Row]:
    from clustercord_marketplace.build import build_index

    from clustercord.signing import TrustStore
    from clustercord_testing.harness import KernelHarness, TestSigner

    runs = 3 if quick else 7
    kernel_signer, publisher = TestSigner(), TestSigner()
    work = scratch / "marketplace"
    work.mkdir()
    try:
        wheel = hello_wheel(work, publisher)
        build_index(wheel.parent, publisher.keys.signer(publisher.fingerprint), name="mirror")
        big_index(work / "big", publisher, 1_000)
        harness = KernelHarness(work / "data", kernel_signer, isolated=True)
        harness.add_builtins(["plugins"])
        TrustStore(harness.settings.trust_dir).trust(publisher.public_key, label="publisher")
        sources = [{"name": "mirror", "url": str(wheel.parent)}]
        harness.settings = replace(
            harness.settings,
            marketplace={"official": False, "pip_index": False, "sources": sources},
        )
        await harness.start()
        installs, pips = [], []
        try:
            for _ in range(runs):
                began = time.perf_counter()
                installed = await harness.run("/plugin install name:hello")
                answer = await harness.run("/hello name:Ada")
                installs.append(time.perf_counter() - began)
                if not installed.ok or "Hello, Ada" not in answer.text:
                    raise RuntimeError(f"install did not work: {installed.text} / {answer.text}")
                removed = await harness.run("/plugin remove name:hello purge_data:true")
                if not removed.ok:
                    raise RuntimeError(f"remove did not work: {removed.text}")
                target = Path(tempfile.mkdtemp(dir=work))
                began = time.perf_counter()
                subprocess.run(
                    [
                        *(sys.executable, "-m", "pip", "install", "-q"),
                        *("--disable-pip-version-check", "--no-index", "--no-deps"),
                        *("--target", str(target), str(wheel)),
                    ],
                    check=True,
                    capture_output=True,
                )
                pips.append(time.perf_counter() - began)
                shutil.rmtree(target)
        finally:
            harness.close()

        big = KernelHarness(work / "data-big", kernel_signer)
        big.add_builtins(["plugins"])
        TrustStore(big.settings.trust_dir).trust(publisher.public_key, label="publisher")
        big.settings = replace(
            big.settings,
            marketplace={
                "official": False,
                "cache_seconds": 0,  # every browse fetches and verifies the index again
                "sources": [{"name": "bench", "url": str(work / "big")}],
            },
        )
        await big.start()
        browse = []
        try:
            for _ in range(runs * 3):
                began = time.perf_counter()
                page = await big.run("/plugin browse")
                browse.append((time.perf_counter() - began) * 1000)
                if page.reply.data.get("total") != 1_000:
                    raise RuntimeError(f"browse did not list 1,000 entries: {page.text}")
        finally:
            big.close()
    finally:
        kernel_signer.cleanup()
        publisher.cleanup()
    ratio = median(installs) / median(pips)
    first_ms, browse_ms = browse[0], median(browse[1:])
    print(f"  /plugin install + first /hello  median {median(installs):.2f} s over {runs}")
    print(f"  pip install --target (same wheel) median {median(pips):.2f} s")
    print(
        f"  ratio {ratio:.2f} (target ≤ {INSTALL_RATIO_TARGET}) "
        f"{met(ratio <= INSTALL_RATIO_TARGET)}"
    )
    print(
        f"  /plugin browse, 1,000 entries, index fetched and its signature checked each time: "
        f"median {browse_ms:.0f} ms (target < {BROWSE_TARGET_MS:.0f} ms) "
        f"{met(browse_ms < BROWSE_TARGET_MS)}"
    )
    print(
        f"  the first browse of a new index (schema validation of 1,000 entries): {first_ms:.0f} ms"
    )
    return [
        (
            "/plugin install until it answers",
            f"{median(installs):.2f} s",
            f"{median(pips):.2f} s pip",
            f"{ratio:.2f}",
            f"≤ {INSTALL_RATIO_TARGET}",
        ),
        (
            "/plugin browse, 1,000 entries",
            f"{browse_ms:.0f} ms",
            f"first {first_ms:.0f} ms",
            "-",
            f"< {BROWSE_TARGET_MS:.0f} ms",
        ),
    ]


def run(quick: bool, scratch: Path) -> list[Row]:
    """Prints its section; returns summary rows."""
    print("\n== The marketplace: install from a local mirror, browse 1,000 entries", flush=True)
    return asyncio.run(_measure(quick, scratch))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="ccbench") as directory:
        for row in run("--quick" in sys.argv, Path(directory)):
            print("  " + " | ".join(row))
