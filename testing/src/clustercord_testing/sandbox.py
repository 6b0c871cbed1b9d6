"""The sandbox cluster as a test fixture: a Kubernetes API server the kernel and kubectl use.

``sandbox_cluster("homelab")`` starts one in a background thread, points ``KUBECONFIG`` at it
for the rest of the test and stops it afterwards. For a cluster shared by several tests (a
module-scoped fixture), ``with running_sandbox("homelab", directory) as cluster:`` does the
same for the length of the block. The sandbox is its own distribution (``clustercord-sandbox``),
which the testing kit depends on.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


class KubectlError(subprocess.CalledProcessError):
    """A kubectl that exited non-zero; its message carries kubectl's own error, for the report."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr}"


class SandboxCluster:
    """A running sandbox cluster that the kernel sees through ``KUBECONFIG``."""

    def __init__(self, kubeconfig: Path, background: Any) -> None:
        self.kubeconfig = kubeconfig
        # clustercord_sandbox.background.BackgroundSandbox; `.server` is the API server
        # (its store, clock and options), for tests that need to reach behind the API.
        self.background = background

    @property
    def server(self) -> Any:
        return self.background.server

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs the real kubectl against this cluster (the test is skipped without one).

        With ``check``, a failure raises :class:`KubectlError` (a ``CalledProcessError``);
        a kubectl that runs longer than ``timeout`` seconds raises ``TimeoutExpired``.
        """
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubectl is not installed")
        result = subprocess.run(
            [kubectl, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def apply(self, manifest: str) -> None:
        """``kubectl apply`` of a (multi-document) YAML or JSON manifest."""
        self.kubectl("apply", "-f", "-", input=manifest)

    def wait_running(self, pod: str, namespace: str = "default", timeout: float = 10) -> None:
        """Returns once ``pod`` is Running; an AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            phase = self.kubectl(
                "get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.phase}"
            ).stdout
            if phase == "Running":
                return
            time.sleep(0.1)
        raise AssertionError(f"pod {pod} never ran")


def _start(fixture: str, kubeconfig: Path, **server_options: Any) -> SandboxCluster:
    """Starts a sandbox of ``fixture`` and writes its kubeconfig to ``kubeconfig``."""
    from clustercord_sandbox.background import BackgroundSandbox

    box = BackgroundSandbox(fixture=fixture, **server_options)
    box.start()
    return SandboxCluster(box.write_kubeconfig(kubeconfig), box)


@contextmanager
def running_sandbox(
    fixture: str, directory: Path, **server_options: Any
) -> Iterator[SandboxCluster]:
    """A sandbox cluster for the length of the ``with`` block, ``KUBECONFIG`` pointing at it
    meanwhile, its kubeconfig written to ``directory``. For fixtures wider than one test,
    which cannot use ``sandbox_cluster``: ``directory`` from ``tmp_path_factory.mktemp``."""
    cluster = _start(fixture, directory / "kubeconfig", **server_options)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KUBECONFIG", str(cluster.kubeconfig))
            yield cluster
    finally:
        cluster.background.stop()


def sandbox_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SandboxCluster]]:
    """The body of the ``sandbox_cluster`` fixture: a starter, and the clean-up after it."""
    started: list[SandboxCluster] = []

    def start(fixture: str = "empty", **server_options: Any) -> SandboxCluster:
        kubeconfig = tmp_path / f"kubeconfig-{len(started) + 1}"
        cluster = _start(fixture, kubeconfig, **server_options)
        started.append(cluster)
        # The test's own monkeypatch: it undoes this in order with the test's own changes.
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        return cluster

    yield start
    for cluster in started:
        cluster.background.stop()


def process_alive(pid: int) -> bool:
    """Whether a local process runs (the sandbox runs exec'd commands as local processes)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has ended, waiting to be reaped
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return False
