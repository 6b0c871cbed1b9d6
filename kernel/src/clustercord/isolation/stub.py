"""The package object that stands for an isolated plugin inside the kernel.

It is what pluggy registers (one proxy function per hook the plugin implements, each
forwarding to the plugin's process) and what :func:`clustercord.plugins.manager.resolve_handler`
asks for a ``module:function`` handler. It imports nothing of the kernel, so the plugin
manager can know it without an import cycle.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any


class IsolatedPackage(types.ModuleType):
    """An isolated plugin as the kernel sees it: hooks and handlers are proxies."""

    def __init__(self, name: str, resolve: Callable[[str, str], Callable[..., Any]]) -> None:
        super().__init__(f"clustercord.isolated.{name}", f"plugin {name}, in its own process")
        self._resolve = resolve

    def handler(self, spec: str, owner: str) -> Callable[..., Any]:
        """A proxy of handler ``spec`` (``module:function``) for ``owner`` (``/command``,
        ``component …``, ``job …``): called like the function, run in the plugin's process."""
        return self._resolve(spec, owner)
