"""Fixtures for the terminal plugin's core: a real SQLite-backed plugin store, and a
recorder of a session with clocks a test controls."""

from __future__ import annotations

from typing import Any

import pytest

from clustercord_builtins.terminal.recording import Recorder

NOW = 1_705_312_800.0
"""When the sessions of the tests start (wall clock): 2024-01-15 10:00 UTC."""


@pytest.fixture
def store(plugin_stores) -> Any:
    """The ``terminal`` plugin's store on a kernel database of its own, as in production
    (the testing kit's ``plugin_stores``)."""
    return plugin_stores.store("terminal")


class Clock:
    """A monotonic clock that moves ``step`` seconds each time it is read; ``pause`` adds
    idle time."""

    def __init__(self, step: float = 0.1) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def recorder(**options: Any) -> Recorder:
    """A recorder of a shell in ``shop/api-1`` (container ``api``) on ``prod``, started at
    :data:`NOW` by user ``1001``, on a :class:`Clock`; ``options`` replace any of these."""
    settings = {
        "id": "abcd2345",
        "user": "1001",
        "cluster": "prod",
        "namespace": "shop",
        "pod": "api-1",
        "container": "api",
        "command": ["sh"],
        "clock": Clock(),
        "wall": lambda: NOW,
    }
    return Recorder(**(settings | options))
