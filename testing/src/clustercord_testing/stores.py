"""Real plugin stores and sealers for a plugin's unit tests, without a running kernel.

``plugin_stores.store("terminal")`` is the :class:`~clustercord_sdk.services.Store` a plugin
receives as ``ctx.store``, on a kernel database of its own (SQLite, WAL, the plugin's own
tables); ``sealed=True`` gives it the plugin's :class:`~clustercord_sdk.services.Sealer` too
(``ctx.sealer``, also ``store.sealer``), under one data key for every plugin of the directory,
so a test can check that another plugin's sealer cannot open what this one sealed. A plugin's
tests reach the kernel's storage through this kit, never by importing the kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class PluginStores:
    """The stores and sealers of plugins on one database and one data key in ``directory``."""

    def __init__(self, directory: Path) -> None:
        from clustercord.storage import Database

        self.directory = directory
        self.path = directory / "clustercord.db"
        self.database = Database(self.path)
        self._box: Any = None

    def store(self, plugin: str, *, sealed: bool = False) -> Any:
        """``plugin``'s store; with ``sealed``, carrying its sealer."""
        from clustercord.storage import PluginStore

        return PluginStore(self.database, plugin, self.sealer(plugin) if sealed else None)

    def sealer(self, plugin: str) -> Any:
        """``plugin``'s sealer under this directory's data key (made on first use)."""
        from clustercord.secretbox import PluginSealer, SecretBox

        if self._box is None:
            self._box = SecretBox.from_settings(self.directory, env={})
        box = self._box
        return PluginSealer(plugin, lambda: box)

    def close(self) -> None:
        self.database.close()
