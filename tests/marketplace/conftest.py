"""Real wheels of the example hello plugin, signed by a publisher key of their own (a
throwaway GnuPG home), built by pip; an index built and signed by ``build-index``; a
kernel harness whose ``[marketplace]`` points at that index's folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from clustercord_marketplace.build import build_index

from clustercord_testing.harness import TestSigner

ROOT = Path(__file__).parents[2]
HELLO = ROOT / "examples" / "hello-plugin"


@pytest.fixture(scope="session")
def publisher():
    """The key a third-party publisher signs plugins and its index with."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    signer = TestSigner()
    yield signer
    signer.cleanup()


def build_wheel(
    work: Path,
    signer: TestSigner,
    *,
    version: str,
    name: str = "hello",
    distribution: str = "acme-hello",
    permissions: tuple[str, ...] = (),
    api: str = ">=1.0,<2",
    dependencies: tuple[str, ...] = ("clustercord-sdk",),
    edit=None,
    prepare=None,
) -> Path:
    """The hello example as distribution ``distribution`` (plugin ``name``) at ``version``,
    signed by ``signer``, built into a wheel by pip. ``edit(folder)`` changes the plugin
    folder after signing (a tampered build)."""
    package = distribution.replace("-", "_")
    source = work / f"{distribution}-{version}"
    shutil.copytree(HELLO, source, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc"))
    (source / "src" / "clustercord_hello").rename(source / "src" / package)
    folder = source / "src" / package
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(name=name, version=version, api=api, permissions=list(permissions))
    manifest["commands"][0]["name"] = name
    manifest["hooks"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    project = (source / "pyproject.toml").read_text()
    project = project.replace('name = "clustercord-hello"', f'name = "{distribution}"')
    project = project.replace('version = "0.1.0"', f'version = "{version}"')
    project = re.sub(
        r"dependencies = \[.*?\]",
        f"dependencies = {json.dumps(list(dependencies))}",
        project,
        count=1,
    )
    project = project.replace("clustercord_hello", package)
    project = project.replace('hello = "', f'{name} = "')
    (source / "pyproject.toml").write_text(project)
    if prepare is not None:
        prepare(folder)
    signer.sign(folder)
    if edit is not None:
        edit(folder)
    out = work / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"{package}-{version}-*.whl"))


@pytest.fixture(scope="session")
def wheels(tmp_path_factory, publisher):
    """Every wheel the tests publish, built once per session."""
    work = tmp_path_factory.mktemp("wheels")

    def tamper(folder: Path) -> None:
        (folder / "commands.py").write_text(
            (folder / "commands.py").read_text() + "\nimport os  # added after signing\n"
        )

    def use_words(folder: Path) -> None:
        (folder / "commands.py").write_text(
            "from acme_words import WORD\n\n\ndef hello(ctx):\n"
            "    return f\"{WORD}, {ctx.options['name']}!\"\n"
        )

    def fail_on_enable(folder: Path) -> None:
        (folder / "__init__.py").write_text(
            "from clustercord_sdk import hookimpl\n\n\n@hookimpl\ndef on_enable(ctx):\n"
            "    raise RuntimeError('cannot start')\n"
        )

    return {
        "hello-broken": build_wheel(work, publisher, version="0.4.0", prepare=fail_on_enable),
        "words": words_wheel(work),
        "greeter": build_wheel(
            work,
            publisher,
            version="1.0.0",
            name="greeter",
            distribution="acme-greeter",
            dependencies=("clustercord-sdk", "acme-words>=1"),
            prepare=use_words,
        ),
        "hello-0.1.0": build_wheel(work, publisher, version="0.1.0"),
        "hello-0.2.0": build_wheel(work, publisher, version="0.2.0", permissions=("pods:read",)),
        "hello-0.3.0": build_wheel(work, publisher, version="0.3.0"),
        "future": build_wheel(
            work,
            publisher,
            version="1.0.0",
            name="future",
            distribution="acme-future",
            api=">=2.0,<3",
        ),
        "conflict": build_wheel(
            work,
            publisher,
            version="1.0.0",
            name="conflict",
            distribution="acme-conflict",
            dependencies=("clustercord-sdk", "pyyaml<5"),
        ),
        "clash": build_wheel(
            work, publisher, version="1.0.0", name="plugins", distribution="acme-plugins"
        ),
        "tampered": build_wheel(
            work,
            publisher,
            version="1.0.0",
            name="tampered",
            distribution="acme-tampered",
            edit=tamper,
        ),
    }


def words_wheel(work: Path) -> Path:
    """``acme-words``: an ordinary library (no plugin) a plugin depends on."""
    source = work / "acme-words"
    (source / "acme_words").mkdir(parents=True)
    (source / "acme_words" / "__init__.py").write_text('WORD = "Howdy"\n')
    (source / "pyproject.toml").write_text(
        '[project]\nname = "acme-words"\nversion = "1.0.0"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    out = work / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return next(out.glob("acme_words-1.0.0-*.whl"))


class Market:
    """A source folder: wheels copied in, ``index.json`` built and signed by ``build-index``."""

    def __init__(self, folder: Path, signer: TestSigner) -> None:
        self.folder = folder
        self.signer = signer
        folder.mkdir(parents=True)

    def publish(self, *wheels: Path, meta: dict | None = None, **options) -> Path:
        for wheel in wheels:
            shutil.copy(wheel, self.folder / wheel.name)
        if meta is not None:
            (self.folder / "plugins.json").write_text(json.dumps(meta))
        build_index(self.folder, self.signer.keys.signer(self.signer.fingerprint), **options)
        return self.folder

    def remove(self, wheel: Path) -> None:
        (self.folder / wheel.name).unlink()


@pytest.fixture
def market(tmp_path, publisher) -> Market:
    return Market(tmp_path / "market", publisher)


@pytest.fixture
def market_harness(clustercord_harness, market, publisher):
    """A kernel with the `plugins` builtin that trusts the publisher (third-party) and reads
    the market folder as its only source."""
    from clustercord.signing import TrustStore

    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    TrustStore(harness.settings.trust_dir).trust(
        publisher.public_key, label="acme", kind="third-party"
    )
    harness.settings = replace(
        harness.settings,
        marketplace={
            "official": False,
            "pip_index": False,
            "cache_seconds": 0,
            "sources": [{"name": "acme", "url": str(market.folder)}],
        },
    )
    return harness
