"""Conversations for plugins (capability ``conversations``), opened by front ends.

The kernel knows no chat platform: each running front end registers how it opens a
conversation (Discord: a thread; the console: a prefixed sub-session), and a plugin's
:class:`~clustercord_sdk.services.Conversations` picks the one its invocation came from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import CommandError
from clustercord_sdk.services import Conversation

Opener = Callable[[str, str, Invocation], Awaitable[Conversation]]
"""``opener(plugin, title, invocation)`` → an open conversation."""


class ConversationHub:
    """The openers of the running front ends, by front-end name."""

    def __init__(self) -> None:
        self._openers: dict[str, Opener] = {}

    def register(self, frontend: str, opener: Opener) -> None:
        self._openers[frontend] = opener

    def unregister(self, frontend: str, opener: Opener) -> None:
        if self._openers.get(frontend) == opener:
            del self._openers[frontend]

    def for_plugin(self, plugin: str) -> PluginConversations:
        return PluginConversations(self, plugin)

    async def open(
        self, plugin: str, title: str, invocation: Invocation, *, private: bool = False
    ) -> Conversation:
        opener = self._openers.get(invocation.frontend)
        if opener is None:
            raise CommandError(
                f"the {invocation.frontend} front end cannot hold a conversation "
                "(it is not running, or has no threads)"
            )
        if not title.strip():
            raise CommandError("a conversation needs a title")
        if private:  # asked only when wanted: an opener may predate private threads
            return await opener(plugin, title, invocation, private=True)
        return await opener(plugin, title, invocation)


class PluginConversations:
    """One plugin's :class:`~clustercord_sdk.services.Conversations`."""

    def __init__(self, hub: ConversationHub, plugin: str) -> None:
        self._hub = hub
        self._plugin = plugin

    async def open(
        self, title: str, *, for_invocation: Invocation, private: bool = False
    ) -> Conversation:
        return await self._hub.open(self._plugin, title, for_invocation, private=private)
