"""Fixtures for the RBAC plugin: one sandbox per test module, a kernel per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clustercord_testing.sandbox import SandboxCluster, running_sandbox


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    """The homelab fixture: bootstrap ClusterRoles plus realistic bindings."""
    with running_sandbox("homelab", tmp_path_factory.mktemp("homelab")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    """A fresh cluster: system namespaces and the bootstrap RBAC policy only."""
    with running_sandbox("empty", tmp_path_factory.mktemp("fresh")) as cluster:
        yield cluster


async def start_rbac(harness, cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch):
    """Starts ``harness`` with the rbac plugin against ``cluster``. ``KUBECONFIG`` is set again
    for this test: a module's clusters each set it when they start, the last one wins."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    harness.add_builtins(["rbac"])
    await harness.start()
    return harness


@pytest.fixture
async def rbac(clustercord_harness, homelab, monkeypatch):
    """A kernel with the rbac plugin, talking to the homelab sandbox."""
    return await start_rbac(clustercord_harness, homelab, monkeypatch)


@pytest.fixture
async def rbac_fresh(clustercord_harness, fresh, monkeypatch):
    """A kernel with the rbac plugin on the module's fresh sandbox, and that sandbox's server."""
    return await start_rbac(clustercord_harness, fresh, monkeypatch), fresh.server
