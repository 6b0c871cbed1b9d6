"""Fixtures for the templates plugin: one homelab sandbox per test module, a kernel per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clustercord_testing.sandbox import SandboxCluster, running_sandbox


class Cluster:
    """The module's sandbox, and the real kubectl against it answering text, as tests read it."""

    def __init__(self, sandbox: SandboxCluster) -> None:
        self.sandbox = sandbox
        self.kubeconfig = sandbox.kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """kubectl's stdout and stderr; unless ``check`` is off, a failure fails the test."""
        result = self.sandbox.kubectl(*args, input=input, check=check)
        return result.stdout + result.stderr

    def names(self, namespace: str, kinds: str) -> set[str]:
        """``kind/name`` of every object of ``kinds`` in ``namespace``, as kubectl sees them."""
        out = self.kubectl("get", kinds, "-n", namespace, "-o", "name")
        return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The homelab fixture, shared by a module's tests: starting one takes a while."""
    with running_sandbox("homelab", tmp_path_factory.mktemp("homelab")) as sandbox:
        yield Cluster(sandbox)


@pytest.fixture(scope="module")
def server_side_apply(homelab: Cluster) -> None:
    """Skip when the sandbox cannot do server-side apply yet (it answers 415)."""
    probe = homelab.sandbox.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "-",
        input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-probe, namespace: default}\n",
        check=False,
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
