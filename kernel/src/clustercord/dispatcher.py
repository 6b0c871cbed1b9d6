"""One dispatcher for every front end: resolve, validate, authorise, confirm, run, audit.

A front end turns a Discord interaction or a console line into an
:class:`~clustercord_sdk.context.Invocation` and gives two callbacks: ``send``
(render an intermediate reply) and ``ask`` (put a confirmation to the user).
Everything else, and so every rule, is here, so a command behaves the same in both.

The command's own steps (resolve the path, parse the options, confirm a destructive
command, fill forms in place) are here; stamping, the access policy, the call of plugin
code, its guard, its audit rows (intent, then result) and what it leaves pending go
through the kernel's one door (:mod:`clustercord.door`), as component actions
(:meth:`Door.action <clustercord.door.Door.action>`) and jobs do.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from clustercord.door import Door, Passage
from clustercord.plugins.manager import Plugin, PluginManager
from clustercord_sdk.context import Asker, CommandContext, Invocation, Sender
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_sdk.manifest import CommandSpec
from clustercord_sdk.options import parse_options
from clustercord_sdk.reply import Confirmation, File, Modal, Reply

log = logging.getLogger("clustercord.dispatcher")

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
    def __init__(self, manager: PluginManager, door: Door) -> None:
        self.manager = manager
        self.door = door

    def resolve(self, path: tuple[str, ...]) -> tuple[Plugin, CommandSpec]:
        commands = self.manager.commands()
        lowered = tuple(part.lower() for part in path)
        found = commands.get(lowered) or self.manager.aliases().get(lowered)
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
        send: Sender,
        ask: Asker,
        attachments: Attachments | None = None,
        fill: Fill | None = None,
        resolved: tuple[Plugin, CommandSpec] | None = None,
    ) -> Outcome:
        """Run one command. With ``fill``, a form the command answers with is filled in
        place and its submission handed to the plugin's ``action`` (console prompts);
        without it the form is returned for the front end to show (a Discord modal).
        ``resolved``: the front end already looked the command up (:meth:`resolve`)."""
        start = time.perf_counter()
        plugin_name: str | None = None
        secret_names: tuple[str, ...] = ()
        intent: int | None = None  # the seq of the audit intent row, once the handler runs
        invocation = self.door.stamp(invocation)
        try:
            plugin, command = resolved or self.resolve(invocation.command)
            # Typed as an alias: from here on (audit, components, the plugin's ctx) it is the
            # command itself, so a button it answers with is checked against the real one.
            invocation = replace(invocation, command=command.path)
            plugin_name = plugin.name
            secret_names = tuple(o.name for o in command.options if o.secret)
            options = parse_options(list(command.options), invocation.options)
            for spec in command.options:
                if spec.type == "attachment" and options.get(spec.name) is not None:
                    if attachments is None:
                        raise UsageError(f"option {spec.name}: this front end takes no files")
                    options[spec.name] = attachments(options[spec.name])
            denied = self.door.command_refusal(invocation, command)
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
                ctx = CommandContext(
                    invocation=invocation,
                    options=options,
                    plugin=plugin.context,  # type: ignore[arg-type]
                    _send=send,
                    _ask=ask,
                )
                intent = await self.door.intent(
                    "command",
                    invocation.path,
                    plugin=plugin_name,
                    invocation=invocation,
                    options=invocation.options,
                    secret_names=secret_names,
                )
                passage = await self.door.command(plugin, command, ctx, send=send)
                passage = await self._fill_forms(plugin, invocation, passage, fill, send, ask)
                if command.ephemeral:
                    passage.reply.ephemeral = True
                outcome = Outcome(passage.status, passage.reply, passage.message, plugin_name)
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
        await self.door.record(
            "command",
            invocation.path,
            Passage(outcome.status, outcome.reply or Reply(), outcome.message, outcome.duration_ms),
            plugin=plugin_name,
            invocation=invocation,
            options=invocation.options,
            secret_names=secret_names,
            intent=intent,
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
        await self.door.deliver()
        return outcome

    def component_refusal(
        self, invocation: Invocation, plugin: str, *, named_command: bool = False
    ) -> str | None:
        """Why the access policy refuses this component (any kind: a page, a confirmation,
        an action) to whoever uses it; see :meth:`Door.component_refusal`."""
        return self.door.component_refusal(
            self.door.stamp(invocation), plugin, named_command=named_command
        )

    def _inactive_owner(self, path: tuple[str, ...]) -> Plugin | None:
        for plugin in self.manager.plugins.values():
            manifest = plugin.manifest
            if manifest is not None and any(c.path == path for c in manifest.commands):
                return plugin
        return None

    async def autocomplete(self, invocation: Invocation, option: str, value: str) -> list[Any]:
        """Suggestions for an option declared ``autocomplete``, from its plugin's hook."""
        invocation = self.door.stamp(invocation)
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
        passage: Passage,
        fill: Fill | None,
        send: Sender,
        ask: Asker,
    ) -> Passage:
        """Answer forms in place while the plugin asks for them (successive modals); each
        submission goes through the door as a Discord modal's does."""
        if fill is None:
            return passage
        for _ in range(MAX_FORMS):
            reply = passage.reply
            modal = reply.modal
            if modal is None:
                return passage
            if reply.text or reply.cards:
                await send(Reply(text=reply.text, cards=reply.cards))
            fields = await fill(modal)
            if fields is None:
                return Passage("ok", Reply(text="Cancelled: the form was not filled in."))
            passage = await self.door.action(
                invocation,
                plugin=plugin.name,
                action=modal.action,
                kind="form",
                fields=fields,
                send=send,
                ask=ask,
                deliver=False,
            )
        raise CommandError(f"plugin {plugin.name} asked for more than {MAX_FORMS} forms in a row")
