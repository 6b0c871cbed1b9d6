"""The sandbox cluster as a test fixture: a Kubernetes API server the kernel and kubectl use.

``sandbox_cluster("homelab")`` starts one in a background thread, points ``KUBECONFIG`` at it
for the rest of the test and stops it afterwards. The sandbox ships with the kernel
(``clustercord.sandbox``), which a plugin's tests have installed anyway to run the harness.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


class SandboxCluster:
    """A running sandbox cluster that the kernel sees through ``KUBECONFIG``."""

    def __init__(self, kubeconfig: Path, background: Any) -> None:
        self.kubeconfig = kubeconfig
        # clustercord.sandbox.background.BackgroundSandbox; `.server` is the API server
        # (its store, clock and options), for tests that need to reach behind the API.
        self.background = background

    @property
    def server(self) -> Any:
        return self.background.server

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs the real kubectl against this cluster (the test is skipped without one)."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubectl is not installed")
        return subprocess.run(
            [kubectl, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
        )


def sandbox_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SandboxCluster]]:
    """The body of the ``sandbox_cluster`` fixture: a starter, and the clean-up after it."""
    from clustercord.sandbox.background import BackgroundSandbox

    started: list[Any] = []

    def start(fixture: str = "empty", **server_options: Any) -> SandboxCluster:
        box = BackgroundSandbox(fixture=fixture, **server_options)
        box.start()
        started.append(box)
        kubeconfig = box.write_kubeconfig(tmp_path / f"kubeconfig-{len(started)}")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        return SandboxCluster(kubeconfig, box)

    yield start
    for box in started:
        box.stop()
