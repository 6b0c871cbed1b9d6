"""Every hook a plugin can implement. This file is the contract; README's hooks
reference documents each one with an example, and a test fails when one is missing.

Implement a hook with a module-level function of the same name, marked
``@hookimpl``, taking any subset of the arguments below::

    from clustercord_sdk import hookimpl

    @hookimpl
    def on_event(event, ctx):
        ...

The kernel calls hooks one plugin at a time through its guard: each call has a
time budget (``CLUSTERCORD_HOOK_TIMEOUT``, 5 s by default), an exception stays
inside the plugin that raised it, and a plugin that fails repeatedly is disabled.
Implementations may be ``async def``. ``ctx`` is always the calling plugin's own
:class:`~clustercord_sdk.context.PluginContext`.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "clustercord"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Mark a plugin's hook implementations with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def on_enable(ctx: Any) -> None:
    """Called when the plugin becomes active: at kernel start for every enabled plugin,
    and when an admin enables it. Schedule jobs and prepare state here.

    Result: ignored. An exception leaves the plugin disabled with the error as reason.
    """


@hookspec
def on_disable(ctx: Any) -> None:
    """Called when the plugin is disabled by an admin or by the kernel after repeated
    failures, and at orderly kernel shutdown. Release what ``on_enable`` took.

    Result: ignored.
    """


@hookspec
def on_event(event: Any, ctx: Any) -> None:
    """Called for each :class:`~clustercord_sdk.events.Event` the plugin subscribed to in
    its manifest's ``hooks`` list and whose ``filter`` (labels, namespaces) matches.
    Plugins run in descending manifest ``priority``.

    Result: ignored.
    """


@hookspec
def on_approval_decided(approval: Any, ctx: Any) -> None:
    """Called for the plugin that requested an :class:`~clustercord_sdk.services.Approval`
    once an admin approved or denied it, or when it expired (``approval.status``).
    This is where a flow that waited for approval continues.

    Result: ignored.
    """


@hookspec
def on_config_changed(key: str, old: Any, new: Any, ctx: Any) -> None:
    """Called after an admin changed one of the plugin's config values (already validated
    against the manifest's config schema and stored).

    Result: ignored.
    """


@hookspec(firstresult=True)
def check_access(invocation: Any, command: Any, ctx: Any) -> bool | None:
    """Called before every command, for every plugin implementing it, after the kernel's
    own role policy allowed it. Return ``False`` to refuse (the user is told which
    plugin refused), ``True`` to allow without asking further plugins, ``None`` to abstain.

    ``command`` is a dict with the command's ``path``, ``plugin``, ``admin`` and
    ``destructive`` flags. First result wins.
    """


@hookspec
def on_command_complete(invocation: Any, outcome: Any, ctx: Any) -> None:
    """Called after every command, for every plugin implementing it (metrics, chat logs).
    ``outcome`` is a dict with ``status`` (``ok``, ``error``, ``denied``, ``cancelled``),
    ``plugin``, ``duration_ms`` and ``message``.

    Result: ignored.
    """


@hookspec
def secret_patterns(ctx: Any) -> list[str]:
    """Return regular expressions of secrets the plugin knows of (API keys of a service it
    integrates). The kernel masks their matches in the audit log, logs and replies it
    stores. Called once when the plugin is enabled.

    Result: a list of pattern strings; every plugin's lists are combined.
    """
    return []


@hookspec
def autocomplete(command: str, option: str, value: str, invocation: Any, ctx: Any) -> list[Any]:
    """Called on the plugin that owns ``command`` (a path such as ``"pod logs"``) for an
    option declared with ``"autocomplete": true`` while the user types ``value``.

    Result: up to 25 suggestions, each a string or ``{"name", "value"}``.
    """
    return []


@hookspec
def storage_migrations(ctx: Any) -> list[tuple[int, Any]]:
    """Return the plugin's storage migrations as ``(version, function)`` pairs. The kernel
    runs, in version order and once each, those above the version recorded for the
    plugin, each in a transaction; ``function(store)`` receives the plugin's
    :class:`~clustercord_sdk.services.Store`.

    Result: a list of pairs; called when the plugin is enabled.
    """
    return []
