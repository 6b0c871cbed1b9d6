"""Every hook a plugin can implement, and every other way the kernel calls plugin code.
This file is the contract; README's hooks reference documents each one with an example,
and a test fails when one is missing.

**Hooks.** Implement a hook with a module-level function of the same name in the plugin
package, marked ``@hookimpl``, taking any subset of the arguments below::

    from clustercord_sdk import hookimpl

    @hookimpl
    def on_event(event, ctx):
        ...

The kernel calls hooks one plugin at a time through its guard: each call has a
time budget (``CLUSTERCORD_HOOK_TIMEOUT``, 5 s by default), an exception stays
inside the plugin that raised it, and a plugin that fails repeatedly is disabled.
Implementations may be ``async def``. ``ctx`` is always the calling plugin's own
:class:`~clustercord_sdk.context.PluginContext`.

**Handlers named by a string.** Three more kinds of plugin function are not hooks: the
plugin names them with a ``"module:function"`` string, the module relative to the plugin's
package (``"commands:hello"`` is ``clustercord_hello.commands.hello``), and the kernel calls
the one named. :func:`command_handler` (a manifest command's ``handler``),
:func:`component_action` (the ``action`` of a button, select, confirmation or form of a
:class:`~clustercord_sdk.reply.Reply`) and :func:`job_handler` (a scheduled job) describe
how; :data:`HANDLER_CONVENTIONS` lists them. They are plain documented functions, not
``@hookspec``\\ s: nothing registers them with pluggy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

import pluggy

from clustercord_sdk.context import CommandContext, PluginContext
from clustercord_sdk.events import Event
from clustercord_sdk.invocation import Invocation
from clustercord_sdk.reply import Reply
from clustercord_sdk.services import Approval, Job, Store

PROJECT = "clustercord"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Mark a plugin's hook implementations with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


class CommandInfo(TypedDict):
    """The ``command`` that :func:`check_access` is asked about."""

    path: str
    """The command path as typed, e.g. ``"pod logs"``."""
    plugin: str
    """The plugin that owns the command."""
    admin: bool
    destructive: bool


class CommandOutcome(TypedDict):
    """How a command ended, as :func:`on_command_complete` receives it."""

    status: str
    """``ok``, ``error``, ``usage``, ``denied`` or ``cancelled``."""
    plugin: str | None
    """The plugin that owns the command; ``None`` if the command was not found."""
    duration_ms: float
    message: str | None
    """The error or refusal message; ``None`` when the command succeeded."""


#: A storage migration: called once with the plugin's store (see :func:`storage_migrations`).
Migration = Callable[[Store], object]

#: What a command handler or a component action returns: a reply, its text, or ``None``
#: (the user is told "Done.").
HandlerResult = Reply | str | None


# -- hooks ---------------------------------------------------------------------------------
@hookspec
def on_enable(ctx: PluginContext) -> None:
    """Called when the plugin becomes active: at kernel start for every enabled plugin,
    and when an admin enables it. Schedule jobs and prepare state here.

    Result: ignored. An exception leaves the plugin disabled with the error as reason.
    """


@hookspec
def on_disable(ctx: PluginContext) -> None:
    """Called when the plugin is disabled by an admin or by the kernel after repeated
    failures, and at orderly kernel shutdown. Release what ``on_enable`` took.

    Result: ignored.
    """


@hookspec
def on_event(event: Event, ctx: PluginContext) -> None:
    """Called for each :class:`~clustercord_sdk.events.Event` the plugin subscribed to in
    its manifest's ``hooks`` list and whose ``filter`` (labels, namespaces) matches.
    Plugins run in descending manifest ``priority``.

    Result: ignored.
    """


@hookspec
def on_approval_decided(approval: Approval, ctx: PluginContext) -> None:
    """Called for the plugin that requested an :class:`~clustercord_sdk.services.Approval`
    once an admin approved or denied it, or when it expired (``approval.status``).
    This is where a flow that waited for approval continues.

    Result: ignored.
    """


@hookspec
def on_config_changed(key: str, old: Any, new: Any, ctx: PluginContext) -> None:
    """Called after an admin changed one of the plugin's config values (already validated
    against the manifest's config schema and stored). ``old`` and ``new`` are the values
    before and after, of the type the config schema declares.

    Result: ignored.
    """


@hookspec(firstresult=True)
def check_access(invocation: Invocation, command: CommandInfo, ctx: PluginContext) -> bool | None:
    """Called by the dispatcher before every command, for every plugin implementing it,
    after the kernel's own role policy allowed it. Return ``False`` to refuse (the user is
    told which plugin refused), ``True`` to allow without asking further plugins, ``None``
    to abstain.

    ``invocation`` is the :class:`~clustercord_sdk.invocation.Invocation` (its ``admin``
    flag already stamped by the kernel); ``command`` is a :class:`CommandInfo` with the
    command's ``path``, ``plugin``, ``admin`` and ``destructive`` flags. First result wins.
    """


@hookspec
def on_command_complete(
    invocation: Invocation, outcome: CommandOutcome, ctx: PluginContext
) -> None:
    """Called by the dispatcher after every command, for every plugin implementing it
    (metrics, chat logs). ``outcome`` is a :class:`CommandOutcome`: ``status`` (``ok``,
    ``error``, ``usage``, ``denied``, ``cancelled``), ``plugin``, ``duration_ms`` and
    ``message``.

    Result: ignored.
    """


@hookspec
def secret_patterns(ctx: PluginContext) -> list[str]:
    """Return regular expressions of secrets the plugin knows of (API keys of a service it
    integrates). The kernel masks their matches in the audit log, logs and replies it
    stores. Called once when the plugin is enabled.

    Result: a list of pattern strings; every plugin's lists are combined.
    """
    return []


@hookspec
def autocomplete(
    command: str, option: str, value: str, invocation: Invocation, ctx: PluginContext
) -> list[str | dict[str, Any]]:
    """Called on the plugin that owns ``command`` (a path such as ``"pod logs"``) for an
    option declared with ``"autocomplete": true`` while the user types ``value``.
    ``invocation.options`` holds the options typed so far.

    Result: up to 25 suggestions, each a string or ``{"name", "value"}``; anything else
    (an exception, a timeout, not a list) means no suggestions.
    """
    return []


@hookspec
def storage_migrations(ctx: PluginContext) -> list[tuple[int, Migration]]:
    """Return the plugin's storage migrations as ``(version, function)`` pairs. The kernel
    runs, in version order and once each, those above the version recorded for the
    plugin, each in a transaction; ``function(store)`` receives the plugin's
    :class:`~clustercord_sdk.services.Store`.

    Result: a list of pairs; called when the plugin is enabled.
    """
    return []


# -- handlers named by a "module:function" string (not hooks) ------------------------------
def command_handler(
    ctx: CommandContext,
) -> HandlerResult | AsyncIterator[HandlerResult]:
    """A command's ``handler`` in the manifest (``"handler": "commands:hello"``).

    Called by the dispatcher, whichever front end the command came from, once the options
    are parsed and checked against the manifest, the access policy and every plugin's
    :func:`check_access` allowed it, and a ``destructive`` command was confirmed. It is
    called with one positional argument, ``ctx``: a
    :class:`~clustercord_sdk.context.CommandContext` (``ctx.invocation``, the parsed
    ``ctx.options`` with defaults filled in, ``ctx.kubernetes`` acting for the invoking
    user, ``ctx.store``, ``ctx.config``, ``ctx.send``, ``ctx.progress``, ``ctx.confirm``;
    ``ctx.plugin`` is the plugin's :class:`~clustercord_sdk.context.PluginContext`).

    The handler is resolved when the plugin is enabled: a name that does not resolve to a
    function keeps the plugin from being enabled. It may be:

    - a plain function: it runs in a worker thread, so blocking calls are fine;
    - an ``async def`` function;
    - an async generator: each item it yields but the last is sent at once as an
      intermediate reply (progress), the last one is the final reply.

    A command has no hook time budget: it runs until it returns.

    Result: a :class:`~clustercord_sdk.reply.Reply`, a ``str`` (the reply's text) or
    ``None`` (the reply "Done."); anything else is an error. Raise
    :class:`~clustercord_sdk.errors.UsageError`,
    :class:`~clustercord_sdk.errors.PermissionDenied` or
    :class:`~clustercord_sdk.errors.CommandError` to answer with that message as an error;
    any other exception is reported as a failure of the plugin (its trace goes to the log).
    Either way the command is audited and :func:`on_command_complete` runs.
    """
    raise NotImplementedError("a description of the convention, not a function to call")


def component_action(
    ctx: CommandContext,
    value: Any,
    values: list[str] | None,
    fields: dict[str, str] | None,
) -> HandlerResult:
    """The ``action`` of a :class:`~clustercord_sdk.reply.Button`,
    :class:`~clustercord_sdk.reply.Select`, :class:`~clustercord_sdk.reply.Confirmation`
    or :class:`~clustercord_sdk.reply.Modal` in a reply (``Button("Restart",
    action="actions:restart", value="web-1")``).

    Called for the user who clicked, picked or submitted, who must be allowed to run the
    command the component came from (or, for a ``Button.command``, the command it names).
    The front end keeps the component's state on the kernel side, so the action works after
    a restart until the component expires. It is called with the arguments it declares,
    any subset of:

    - ``ctx``: a :class:`~clustercord_sdk.context.CommandContext` for the clicking user
      (``ctx.invocation.command`` is the command the component came from;
      ``ctx.options`` holds ``value``, ``values`` and ``fields`` below);
    - ``value``: a button's ``value``; a confirmation's answer (``True`` or ``False``); the
      first option picked in a select; ``None`` for a form;
    - ``values``: the option values picked in a select, else ``None``;
    - ``fields``: a submitted form, input name → text, else ``None``. On the console the
      form is asked in place, one input after another, and its action called the same way.

    It may be a plain or an ``async def`` function (not a generator). It runs under the
    kernel's guard, and is audited as ``component <action>``.

    Result: what a :func:`command_handler` returns: a Reply, its text, or ``None``
    ("Done."). A reply may carry further components or a form (on the console, a form
    answered with another form is filled in turn, up to ten in a row).
    """
    raise NotImplementedError("a description of the convention, not a function to call")


def job_handler(job: Job, ctx: PluginContext) -> None:
    """A scheduled job's ``handler`` (``ctx.scheduler.every("5m", "jobs:sync")`` or
    ``ctx.scheduler.cron("0 3 * * *", "jobs:backup", payload={...})``).

    Called by the kernel's scheduler when the job is due, while a long-running front end
    runs (``clustercord serve``, the console REPL), one job at a time, and only if the plugin
    is enabled. It is called with the arguments it declares, any subset of:

    - ``job``: the :class:`~clustercord_sdk.services.Job` (``job.payload`` is the payload
      it was scheduled with, ``job.last_run`` the time of the previous run);
    - ``ctx``: the plugin's own :class:`~clustercord_sdk.context.PluginContext`.

    The handler is resolved at each run (a name that does not resolve is logged and the
    run skipped). It may be a plain or an ``async def`` function and runs like a hook:
    within the hook time budget, an exception isolated and counted towards disabling the
    plugin. A run that fails still counts as run: the job waits for its next slot.

    Result: ignored.
    """
    raise NotImplementedError("a description of the convention, not a function to call")


#: The calling conventions of plugin functions named by a ``"module:function"`` string.
HANDLER_CONVENTIONS = (command_handler, component_action, job_handler)
