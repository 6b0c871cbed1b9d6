"""Fixtures for the templates plugin: one homelab sandbox per test module, a kernel per test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl")


class Cluster:
    """The module's sandbox, and the real kubectl against it."""

    def __init__(self, box: object, kubeconfig: Path) -> None:
        self.box = box
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        assert KUBECTL is not None
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr

    def names(self, namespace: str, kinds: str) -> set[str]:
        """``kind/name`` of every object of ``kinds`` in ``namespace``, as kubectl sees them."""
        out = self.kubectl("get", kinds, "-n", namespace, "-o", "name")
        return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    from clustercord.sandbox.background import BackgroundSandbox

    box = BackgroundSandbox(fixture="homelab")
    box.start()
    kubeconfig = box.write_kubeconfig(tmp_path_factory.mktemp("homelab") / "kubeconfig")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        yield Cluster(box, kubeconfig)
    box.stop()


@pytest.fixture(scope="module")
def server_side_apply(homelab: Cluster) -> None:
    """Skip when the sandbox cannot do server-side apply yet (it answers 415)."""
    probe = subprocess.run(
        [
            KUBECTL or "kubectl",
            "--kubeconfig",
            str(homelab.kubeconfig),
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-probe, namespace: default}\n",
        text=True,
        capture_output=True,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip(f"the sandbox does not do server-side apply yet: {probe.stderr.strip()[:200]}")


@pytest.fixture
async def templates(clustercord_harness, homelab):
    """A kernel with the templates plugin (a signed copy) against the module's sandbox."""
    clustercord_harness.add_builtins(["templates", "cluster"])
    await clustercord_harness.start()
    state = clustercord_harness.plugin("templates").state
    assert state == "enabled", clustercord_harness.plugin("templates").reason
    return clustercord_harness
