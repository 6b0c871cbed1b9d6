"""pytest fixtures of the testing kit (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from clustercord_sdk.testing.harness import KernelHarness, TestSigner


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
