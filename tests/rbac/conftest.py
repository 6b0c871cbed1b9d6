"""Fixtures for the RBAC plugin: one homelab sandbox per test module, a kernel per test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl")


class Cluster:
    """The module's sandbox: the real kubectl against it, and its server for tokens."""

    def __init__(self, box: object, kubeconfig: Path) -> None:
        self.box = box
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, input: str | None = None) -> str:
        assert KUBECTL is not None
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)


def _start(fixture: str, tmp: Path) -> Iterator[Cluster]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    from clustercord.sandbox.background import BackgroundSandbox

    box = BackgroundSandbox(fixture=fixture)
    box.start()
    kubeconfig = box.write_kubeconfig(tmp / "kubeconfig")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        yield Cluster(box, kubeconfig)
    box.stop()


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The homelab fixture: bootstrap ClusterRoles plus realistic bindings."""
    yield from _start("homelab", tmp_path_factory.mktemp("homelab"))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fresh cluster: system namespaces and the bootstrap RBAC policy only."""
    yield from _start("empty", tmp_path_factory.mktemp("fresh"))


@pytest.fixture
async def rbac(clustercord_harness, homelab, monkeypatch):
    """A kernel with the rbac plugin, talking to the homelab sandbox."""
    monkeypatch.setenv("KUBECONFIG", str(homelab.kubeconfig))
    clustercord_harness.add_builtins(["rbac"])
    await clustercord_harness.start()
    return clustercord_harness


@pytest.fixture
async def rbac_fresh(clustercord_harness, fresh, monkeypatch):
    """A kernel with the rbac plugin on the module's fresh sandbox, and that sandbox's server."""
    monkeypatch.setenv("KUBECONFIG", str(fresh.kubeconfig))
    clustercord_harness.add_builtins(["rbac"])
    await clustercord_harness.start()
    return clustercord_harness, fresh.box.server
