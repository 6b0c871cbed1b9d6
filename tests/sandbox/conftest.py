"""Fixtures: a sandbox API server on a background thread, a kubeconfig, and a kubectl runner."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clustercord.sandbox.background import BackgroundSandbox
from clustercord.sandbox.server import SandboxServer
from clustercord.sandbox.store import SandboxStore

KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundSandbox]:
    # A short history window so the 410 Expired path is reachable in a test.
    box = BackgroundSandbox(store=SandboxStore(history=50), bookmark_interval=0.3)
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="module")
def server(sandbox: BackgroundSandbox) -> SandboxServer:
    assert sandbox.server is not None
    return sandbox.server


@pytest.fixture(scope="module")
def kubeconfig(sandbox: BackgroundSandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sandbox.write_kubeconfig(tmp_path_factory.mktemp("sandbox") / "kubeconfig")


@pytest.fixture
def unique() -> str:
    """A fresh DNS-1123 name, so tests sharing a module's server never collide."""
    return f"t{uuid.uuid4().hex[:8]}"


KubectlRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(kubeconfig: Path) -> KubectlRunner:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")

    def run(
        *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    return run
