"""Fixtures: a sandbox API server on a background thread, a kubeconfig, and a kubectl runner."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clustercord_sandbox import fixtures
from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.controllers import Controllers, start_controllers
from clustercord_sandbox.server import SandboxServer
from clustercord_sandbox.store import SandboxStore

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
    return kubectl_runner(kubeconfig)


def kubectl_runner(kubeconfig: Path) -> KubectlRunner:
    """`run(*args)` runs kubectl against `kubeconfig` (for fixtures wider than a test's)."""
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


# -- pods that run: a sandbox with nodes, a two-container pod, a terminal reader -----------

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports: [{{containerPort: 80}}]
  - name: sidecar
    image: busybox:1.36
    command: [sh, -c, "sleep infinity"]
"""


def sandbox_with_nodes() -> Iterator[BackgroundSandbox]:
    """A sandbox with the homelab's nodes (and no apps), so pods get scheduled and run.

    A module overrides its ``sandbox`` with it:
    ``sandbox = pytest.fixture(scope="module", name="sandbox")(sandbox_with_nodes)``.
    """
    box = BackgroundSandbox(store=SandboxStore())
    box.start()
    assert box.server is not None
    fixtures.load(box.server.api, fixtures.homelab_nodes())
    yield box
    box.stop()


def sandbox_with_controllers(
    fixture: str = "empty", extra: Iterable[dict[str, Any]] = ()
) -> Iterator[BackgroundSandbox]:
    """A sandbox of `fixture` (plus `extra` objects) whose controllers run on the server's loop.

    The server starts them itself where it can; otherwise they are started here (and stopped
    after), so the kubectl tests always exercise the event-driven path.
    """
    box = BackgroundSandbox(fixture=fixture)
    server = box.start()

    async def setup() -> Controllers | None:
        fixtures.load(server.api, extra)
        if getattr(server, "controllers", None) is not None:
            return None  # the server runs them itself
        return start_controllers(server.api, server.store)

    controllers = box.call(setup())
    yield box
    if controllers is not None:
        box.call(controllers.stop())
    box.stop()


def running_pod(kubectl, name: str, manifest: str | None = None) -> None:
    """Applies ``manifest`` (default: the demo pod named ``name``), waits until it runs."""
    kubectl("apply", "-f", "-", input=manifest or POD.format(name=name))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        phase = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        if phase == "Running":
            return
        time.sleep(0.1)
    raise AssertionError(f"pod {name} never ran")


@contextlib.contextmanager
def kubectl_on_a_terminal(
    kubeconfig: Path, *args: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """kubectl on a pseudo-terminal, as a person would run it: (the terminal, the process).

    The process gets its own session so that the terminal is its controlling one; it is
    killed (if it has not ended) and the terminal closed afterwards.
    """
    assert KUBECTL is not None
    terminal, slave = pty.openpty()
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        yield terminal, process
    finally:
        process.kill()
        process.wait(5)
        os.close(terminal)


def _read_until(fd: int, wanted: bytes, timeout: float = 10) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen
