"""Shared fixtures: ``make_plugin`` writes a plugin folder from a manifest and code,
``add_plugin`` also adds it to the kernel harness; and helpers the tests import
(``from .conftest import until``) for manifests, cluster objects and waiting."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest


def write_plugin(
    root: Path,
    name: str,
    *,
    manifest: dict[str, Any] | None = None,
    init: str = "",
    modules: dict[str, str] | None = None,
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    data = {
        "name": name,
        "version": "1.0.0",
        "api": ">=1.0,<2",
        "description": f"test plugin {name}",
        "commands": [{"name": name, "description": "run it", "handler": "commands:run"}],
    }
    data.update(manifest or {})
    (folder / "manifest.json").write_text(json.dumps(data, indent=2), "utf-8")
    (folder / "__init__.py").write_text(
        "from clustercord_sdk import hookimpl  # noqa: F401\n" + textwrap.dedent(init), "utf-8"
    )
    files = {"commands": "def run(ctx):\n    return f'{ctx.plugin.plugin} ran'\n"}
    files.update(modules or {})
    for module, code in files.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(code), "utf-8")
    return folder


@pytest.fixture
def make_plugin(tmp_path: Path):
    """``make_plugin(name, manifest=..., init=..., modules=...)`` → a plugin folder."""
    root = tmp_path / "plugin-src"

    def make(name: str, **kwargs: Any) -> Path:
        return write_plugin(root, name, **kwargs)

    return make


@pytest.fixture
def add_plugin(clustercord_harness, make_plugin):
    """``add_plugin(name, manifest=..., init=..., modules=...)`` writes a plugin folder and adds
    it to ``clustercord_harness`` (→ the folder): what most kernel tests do before starting."""

    def add(name: str, **kwargs: Any) -> Path:
        return clustercord_harness.add_plugin(make_plugin(name, **kwargs))

    return add


def one_command(name: str, **fields: Any) -> dict[str, Any]:
    """The ``manifest`` of a plugin whose one command ``/name`` runs ``commands:run``, with
    ``fields`` (``options``, ``destructive`` …): only those differ from test to test."""
    command = {"name": name, "description": name, "handler": "commands:run", **fields}
    return {"commands": [command]}


async def until(predicate: Callable[[], Any], seconds: float = 15.0) -> bool:
    """Whether ``predicate()`` comes true within ``seconds``, polled while the event loop runs
    the kernel's background work (so a test can wait for it without sleeping blindly)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@asynccontextmanager
async def running(loop: Callable[[asyncio.Event], Awaitable[Any]]) -> AsyncIterator[None]:
    """Runs ``loop(stop)`` (``kernel.run_background``, a watcher's ``run``) as a task for the
    ``async with`` block, then sets ``stop`` and awaits it, so the loop's own errors surface."""
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    try:
        yield
    finally:
        stop.set()
        await task


def deployment(name: str, namespace: str, image: str) -> str:
    """The YAML of a one-replica Deployment ``name`` (its pods labelled ``app=name``)."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: {name}, image: "{image}"}}]}}
"""


def crash_looping(container: str, image: str, restarts: int) -> dict[str, Any]:
    """A pod ``status`` patch: ``container`` was OOMKilled and is in CrashLoopBackOff."""
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": container,
                    "image": image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": restarts,
                    "started": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        }
    }
