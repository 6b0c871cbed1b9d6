"""Shared fixtures: ``make_plugin`` writes a plugin folder from a manifest and code."""

from __future__ import annotations

import json
import textwrap
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
