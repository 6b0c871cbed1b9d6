"""pytest fixtures of the testing kit (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from clustercord_testing.harness import KernelHarness, TestSigner
from clustercord_testing.sandbox import SandboxCluster, sandbox_clusters
from clustercord_testing.stores import PluginStores

if TYPE_CHECKING:
    from clustercord_testing.fake_discord import FakeDiscord


@pytest.fixture(scope="session")
def clustercord_signer() -> Iterator[TestSigner]:
    """One throwaway signing key for the test session."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed: plugin signatures cannot be made or checked")
    signer = TestSigner()
    yield signer
    signer.cleanup()


@pytest.fixture
def clustercord_harness(tmp_path: Path, clustercord_signer: TestSigner) -> Iterator[KernelHarness]:
    """A kernel in ``tmp_path`` that trusts only the test key; add plugins, start, run."""
    harness = KernelHarness(tmp_path / "data", clustercord_signer)
    yield harness
    harness.close()


@pytest.fixture
def plugin_stores(tmp_path: Path) -> Iterator[PluginStores]:
    """Real plugin stores and sealers (``.store(name, sealed=...)``, ``.sealer(name)``) on a
    kernel database in ``tmp_path``: a plugin's storage code tested as in production."""
    stores = PluginStores(tmp_path / "plugin-stores")
    yield stores
    stores.close()


@pytest.fixture
def sandbox_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SandboxCluster]]:
    """``sandbox_cluster("homelab")`` → a running :class:`SandboxCluster` that ``KUBECONFIG``
    points at, stopped after the test. Keyword arguments go to the API server."""
    yield from sandbox_clusters(tmp_path, monkeypatch)


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started :class:`~clustercord_testing.fake_discord.FakeDiscord`; the test fails if
    anything was sent that Discord would reject (its ``violations``)."""
    # Imported here: aiohttp, cryptography and regex load only for tests that use it.
    from clustercord_testing.fake_discord import FakeDiscord

    async with FakeDiscord() as discord:
        yield discord
    if discord.violations:
        pytest.fail(
            "the fake Discord received payloads Discord would reject:\n  "
            + "\n  ".join(discord.violations),
            pytrace=False,
        )
