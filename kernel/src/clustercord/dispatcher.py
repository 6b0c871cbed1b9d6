"""One dispatcher for every front end: resolve, validate, authorise, confirm, run, audit.

A front end turns a Discord interaction or a console line into an
:class:`~clustercord_sdk.context.Invocation` and gives two callbacks: ``send``
(render an intermediate reply) and ``ask`` (put a confirmation to the user).
Everything else, and so every rule, is here, so a command behaves the same in both.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clustercord.plugins.manager import Plugin, PluginManager
from clustercord.policy import AccessPolicy
from clustercord.services.audit import AuditLog
from clustercord_sdk.context import CommandContext, Invocation
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_sdk.manifest import CommandSpec
from clustercord_sdk.options import parse_options
from clustercord_sdk.reply import Confirmation, File, Modal, Reply

log = logging.getLogger("clustercord.dispatcher")

Send = Callable[[Reply], Awaitable[None]]
Ask = Callable[[Confirmation], Awaitable[bool]]
Fill = Callable[[Modal], Awaitable[dict[str, str] | None]]
"""Answers a form in place (console prompts): input name → text, or ``None`` if abandoned."""
Attachments = Callable[[str], File]
"""Turns an attachment option's value (a console path, a Discord attachment id) into a File."""


@dataclass
class Outcome:
    """How a command ended. ``status``: ok, error, usage, denied or cancelled."""

    status: str
    reply: Reply | None = None
    message: str | None = None
    plugin: str | None = None
    duration_ms: float = 0.0

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "usage": 2}.get(self.status, 1)


MAX_FORMS = 10
"""A plugin answering every form with another one is a bug, not a conversation."""


class Dispatcher:
    def __init__(self, manager: PluginManager, policy: AccessPolicy, audit: AuditLog) -> None:
        self.manager = manager
        self.policy = policy
        self.audit = audit

    def resolve(self, path: tuple[str, ...]) -> tuple[Plugin, CommandSpec]:
        commands = self.manager.commands()
        found = commands.get(tuple(part.lower() for part in path))
        if found is not None:
            return found
        typed = " ".join(path)
        groups = sorted(
            {c[: len(path)] for c in commands if c[: len(path)] == path and len(c) > len(path)}
        )
        if groups:
            subs = sorted(" ".join(c[len(path) :]) for c in commands if c[: len(path)] == path)
            raise UsageError(f"/{typed} needs a subcommand: {', '.join(subs)}")
        inactive = self._inactive_owner(tuple(part.lower() for part in path))
        if inactive is not None:
            raise CommandError(
                f"/{typed} belongs to plugin {inactive.name}, which is {inactive.state}: "
                f"{inactive.reason}"
            )
        names = [" ".join(c) for c in commands]
        close = difflib.get_close_matches(typed, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join('/' + c for c in close)}?" if close else " (try /help)"
        raise UsageError(f"unknown command /{typed}{hint}")

    async def dispatch(
        self,
        invocation: Invocation,
        *,
        send: Send,
        ask: Ask,
        attachments: Attachments | None = None,
        fill: Fill | None = None,
    ) -> Outcome:
        """Run one command. With ``fill``, a form the command answers with is filled in
        place and its submission handed to the plugin's ``action`` (console prompts);
        without it the form is returned for the front end to show (a Discord modal)."""
        start = time.perf_counter()
        plugin_name: str | None = None
        secret_names: tuple[str, ...] = ()
        invocation = self.policy.stamp(invocation)
        try:
            plugin, command = self.resolve(invocation.command)
            plugin_name = plugin.name
            secret_names = tuple(o.name for o in command.options if o.secret)
            options = parse_options(list(command.options), invocation.options)
            for spec in command.options:
                if spec.type == "attachment" and options.get(spec.name) is not None:
                    if attachments is None:
                        raise UsageError(f"option {spec.name}: this front end takes no files")
                    options[spec.name] = attachments(options[spec.name])
            denied = self.policy.check(invocation, command)
            if denied is None:
                denied = await self._plugin_veto(invocation, plugin, command)
            if denied is not None:
                raise PermissionDenied(denied)
            if command.destructive and not await ask(
                Confirmation(prompt=f"/{command.name} is destructive. Go ahead?", danger=True)
            ):
                outcome = Outcome(
                    "cancelled", Reply(text="Cancelled."), "not confirmed", plugin_name
                )
            else:
                reply = await self._run(plugin, command, invocation, options, send, ask)
                reply = await self._fill_forms(plugin, invocation, reply, fill, send, ask)
                if command.ephemeral:
                    reply.ephemeral = True
                outcome = Outcome(
                    "error" if reply.error else "ok",
                    reply,
                    reply.text if reply.error else None,
                    plugin_name,
                )
        except UsageError as exc:
            outcome = Outcome("usage", Reply.fail(str(exc), ephemeral=True), str(exc), plugin_name)
        except PermissionDenied as exc:
            outcome = Outcome("denied", Reply.fail(str(exc), ephemeral=True), str(exc), plugin_name)
        except CommandError as exc:
            outcome = Outcome("error", Reply.fail(str(exc)), str(exc), plugin_name)
        except Exception as exc:  # a plugin bug: the user gets a message, the log the trace
            log.exception("command /%s of plugin %s failed", invocation.path, plugin_name)
            message = f"plugin {plugin_name} failed: {type(exc).__name__}: {exc}"
            outcome = Outcome("error", Reply.fail(message), message, plugin_name)
        outcome.duration_ms = (time.perf_counter() - start) * 1000
        await self.audit.arecord(
            invocation.path,
            actor=f"{invocation.frontend}:{invocation.user_id}",
            plugin=plugin_name,
            cluster=invocation.cluster,
            namespace=invocation.namespace,
            options=dict(invocation.options),
            result={"usage": "error"}.get(outcome.status, outcome.status),
            message=outcome.message,
            duration_ms=round(outcome.duration_ms, 3),
            secret_names=secret_names,
        )
        await self.manager.call_all(
            "on_command_complete",
            invocation=invocation,
            outcome={
                "status": outcome.status,
                "plugin": plugin_name,
                "duration_ms": outcome.duration_ms,
                "message": outcome.message,
            },
        )
        return outcome

    def _inactive_owner(self, path: tuple[str, ...]) -> Plugin | None:
        for plugin in self.manager.plugins.values():
            manifest = plugin.manifest
            if manifest is not None and any(c.path == path for c in manifest.commands):
                return plugin
        return None

    async def autocomplete(self, invocation: Invocation, option: str, value: str) -> list[Any]:
        """Suggestions for an option declared ``autocomplete``, from its plugin's hook."""
        invocation = self.policy.stamp(invocation)
        try:
            plugin, command = self.resolve(invocation.command)
        except UsageError:
            return []
        spec = next((o for o in command.options if o.name == option), None)
        if spec is None or not spec.autocomplete or plugin.context is None:
            return []
        result = await self.manager.call_one(
            plugin,
            "autocomplete",
            command=command.name,
            option=option,
            value=value,
            invocation=invocation,
            ctx=plugin.context,
        )
        if result is None or not result.ok or not isinstance(result.value, list):
            return []
        return result.value[:25]

    async def _plugin_veto(
        self, invocation: Invocation, plugin: Plugin, command: CommandSpec
    ) -> str | None:
        info = {
            "path": command.name,
            "plugin": plugin.name,
            "admin": command.admin,
            "destructive": command.destructive,
        }
        results = await self.manager.call_all(
            "check_access", firstresult=True, invocation=invocation, command=info
        )
        for name, allowed in results:
            if allowed is False:
                return f"plugin {name} does not allow /{command.name} here"
        return None

    async def _fill_forms(
        self,
        plugin: Plugin,
        invocation: Invocation,
        reply: Reply,
        fill: Fill | None,
        send: Send,
        ask: Ask,
    ) -> Reply:
        """Answer forms in place while the plugin asks for them (successive modals)."""
        if fill is None:
            return reply
        for _ in range(MAX_FORMS):
            modal = reply.modal
            if modal is None:
                return reply
            if reply.text or reply.cards:
                await send(Reply(text=reply.text, cards=reply.cards))
            fields = await fill(modal)
            if fields is None:
                return Reply(text="Cancelled: the form was not filled in.")
            reply = await _call_action(plugin, invocation, modal.action, fields, send, ask)
        raise CommandError(f"plugin {plugin.name} asked for more than {MAX_FORMS} forms in a row")

    async def _run(
        self,
        plugin: Plugin,
        command: CommandSpec,
        invocation: Invocation,
        options: dict[str, Any],
        send: Send,
        ask: Ask,
    ) -> Reply:
        assert plugin.context is not None
        handler = plugin.handlers[command.path]
        ctx = CommandContext(
            invocation=invocation, options=options, plugin=plugin.context, _send=send, _ask=ask
        )
        if inspect.isasyncgenfunction(handler):
            # Each yielded reply but the last is sent as it comes (progress); the last is final.
            last: Any = None
            async for item in handler(ctx):
                if last is not None:
                    await send(_as_reply(last))
                last = item
            return _as_reply(last)
        if inspect.iscoroutinefunction(handler):
            return _as_reply(await handler(ctx))
        # A synchronous handler may block (network, disk): keep the event loop free.
        return _as_reply(await asyncio.to_thread(handler, ctx))


async def _call_action(
    plugin: Plugin,
    invocation: Invocation,
    action: str,
    fields: dict[str, str],
    send: Send,
    ask: Ask,
) -> Reply:
    """Call a plugin's component handler with the arguments it declares (``ctx``, ``fields``),
    as the Discord front end does for a submitted modal."""
    from clustercord.plugins.manager import resolve_handler

    assert plugin.module is not None and plugin.context is not None
    function = resolve_handler(plugin.module, action, f"component {action}")
    options: dict[str, Any] = {"value": None, "values": None, "fields": fields}
    ctx = CommandContext(
        invocation=invocation, options=options, plugin=plugin.context, _send=send, _ask=ask
    )
    wanted = inspect.signature(function).parameters
    kwargs = {k: v for k, v in {"ctx": ctx, **options}.items() if k in wanted}
    if inspect.iscoroutinefunction(function):
        return _as_reply(await function(**kwargs))
    return _as_reply(await asyncio.to_thread(function, **kwargs))


def _as_reply(value: Any) -> Reply:
    if value is None:
        return Reply(text="Done.")
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    raise CommandError(f"a command handler returned {type(value).__name__}, not a Reply")
