"""``config-write``: a plugin sets its own settings (``/sso config``), never another's."""

from __future__ import annotations

from typing import Any


class OwnConfig:
    """The SDK's ``OwnConfig`` for one plugin: ``PluginManager.set_config`` with the
    plugin's name fixed, so the same checks, storage and ``on_config_changed`` apply."""

    def __init__(self, manager: Any, plugin: str) -> None:
        self._manager, self._plugin = manager, plugin

    async def set(self, key: str, value: Any, *, by: str) -> dict[str, Any]:
        return dict(await self._manager.set_config(self._plugin, key, value, by=by))
