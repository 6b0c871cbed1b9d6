"""Fixtures for the terminal plugin's core: a real SQLite-backed plugin store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clustercord.storage import Database, PluginStore


@pytest.fixture
def store(tmp_path) -> Iterator[PluginStore]:
    """The ``terminal`` plugin's store on a kernel database of its own, as in production."""
    database = Database(tmp_path / "clustercord.db")
    yield PluginStore(database, "terminal")
    database.close()
