"""Helpers of the isolated tier's tests: plugins written as a third party would, run in a
process of their own (``add_plugin(..., isolated=True)``)."""

from __future__ import annotations

from typing import Any

import pytest


def commands(*names: str, options: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A manifest whose commands ``/name`` run ``commands:name``."""
    return {
        "commands": [
            {
                "name": name,
                "description": name,
                "handler": f"commands:{name.replace('-', '_')}",
                "options": options or [],
            }
            for name in names
        ]
    }


@pytest.fixture
def isolated_plugin(clustercord_harness, make_plugin):
    """``isolated_plugin(name, manifest=..., init=..., modules=...)``: written, signed and
    added to the harness to run isolated; returns the installed folder."""

    def add(name: str, **kwargs: Any):
        return clustercord_harness.add_plugin(make_plugin(name, **kwargs), isolated=True)

    return add
