"""The Discord front end: hikari (gateway bot or REST interaction server) + lightbulb 3.

:class:`DiscordFrontend` owns what both modes share: the commands generated from
the enabled plugins' manifests (re-synced when a plugin is enabled or disabled),
the interaction lifecycle (see :mod:`.responder`), components routed back to
plugins (see :mod:`.components`), autocomplete through the plugins' hook, the
guild allowlist, and delivery of plugins' notifications (see :mod:`.notifications`).

It is an adapter: it translates interactions, renders and delivers answers. Commands go
to the kernel's dispatcher (``dispatch``), clicks and modal submissions too (``act``);
the kernel's door checks the access policy, runs the plugin's handler in its guard,
audits the call and delivers pending approvals. Only what is Discord's own is decided
here: which servers and DMs the bot answers, and who may press a button meant for one
user.

Lightbulb receives the command and autocomplete interactions of registered
commands; everything lightbulb would ignore (an unknown or stale command, our
stored components, modal submissions) is answered here, so a user never sees
"The application did not respond".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hikari

from clustercord import logs
from clustercord.frontends.discord import intents, limits, replay
from clustercord.frontends.discord.commands import (
    CommandPlan,
    client_started,
    lightbulb_commands,
    plan_commands,
)
from clustercord.frontends.discord.components import ComponentStore, parse_custom_id
from clustercord.frontends.discord.members import MemberEvents
from clustercord.frontends.discord.notifications import NotificationDelivery
from clustercord.frontends.discord.render import DiscordMessage, Renderer, clip
from clustercord.frontends.discord.replay import InteractionMemory
from clustercord.frontends.discord.responder import (
    HttpAnswer,
    Responder,
    initial_response,
)
from clustercord.frontends.discord.settings import DiscordSettings
from clustercord.frontends.discord.threads import Threads
from clustercord.frontends.inert import inert
from clustercord.plugins.manager import ENABLED
from clustercord_sdk.context import Invocation
from clustercord_sdk.errors import ClusterCordError, UsageError
from clustercord_sdk.reply import Confirmation, File, Reply

__all__ = ["DiscordFrontend", "DiscordSettings", "autocomplete_choices", "command_path"]

log = logging.getLogger("clustercord.discord")

EXPIRED = "⌛ This button has expired. Run the command again for a fresh one."
UNKNOWN_COMMAND = "❓ /{path} is not a ClusterCord command here (any more). Try /help."
RESTARTING = "ClusterCord is restarting: run the command again in a moment."
"""The answer to an interaction that arrives while the bot stops (nothing of it ran)."""
HTTP_ANSWER_WAIT = 5.0
"""How long an interaction server request waits for an answer to carry (lightbulb's
figure); the responder defers well before, so Discord hears from us within 3 s."""


@dataclass
class _Waiting:
    """A confirmation the dispatcher is waiting on."""

    future: asyncio.Future[bool]
    ids: list[str] = field(default_factory=list)


class DiscordFrontend:
    """Commands, components and notifications for one hikari app (REST or gateway bot)."""

    def __init__(self, kernel: Any, app: Any, settings: DiscordSettings) -> None:
        import lightbulb

        self.kernel = kernel
        self.app = app
        self.settings = settings
        self.store = ComponentStore(kernel.database, ttl=settings.component_ttl)
        self.notifications = NotificationDelivery(
            kernel.notifier, app, self.store, settings.alerts_channel
        )
        self.interactions_seen = InteractionMemory(kernel.database, settings.signature_max_age)
        """Interaction ids received within the signature window: each is answered once."""
        lightbulbs = _interaction_listeners(app)
        self.client = lightbulb.client_from_app(app, default_enabled_guilds=settings.guilds)
        self.plan = CommandPlan()
        self._registered: list[Any] = []
        self._waiting: dict[str, _Waiting] = {}
        self._http_answers: dict[int, HttpAnswer] = {}
        """Interaction server requests waiting for their answer, by interaction id."""
        self._resync: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        """Interactions in progress (:meth:`drain` waits for them)."""
        self.accepting = True
        """False once stopping: new gateway interactions are handed back (RESTARTING)."""
        self.members: MemberEvents | None = None
        """Member role changes and departures for plugins (a gateway bot only)."""
        self.active: Callable[[], bool] = lambda: True
        """False while another instance may hold the home cluster's Lease (``serve`` sets
        it): a gateway interaction is then left to that one, neither claimed nor answered."""
        self.register_commands()
        kernel.manager.listeners.append(self._plugins_changed)
        kernel.conversations.register("discord", self.open_conversation)
        if isinstance(app, hikari.RESTBot):
            server = app.interaction_server
            server.set_listener(hikari.CommandInteraction, self._rest_command, replace=True)
            server.set_listener(
                hikari.ComponentInteraction, self._rest_component_or_modal, replace=True
            )
            server.set_listener(
                hikari.ModalInteraction, self._rest_component_or_modal, replace=True
            )
            complete = server.get_listener(hikari.AutocompleteInteraction)
            if complete is not None:  # lightbulb's: answered after the id is claimed

                async def _rest_autocomplete(interaction: Any) -> Any:
                    if not self._first_delivery(interaction):
                        yield None
                        return
                    async for answer in complete(interaction):
                        yield answer

                server.set_listener(
                    hikari.AutocompleteInteraction, _rest_autocomplete, replace=True
                )
        else:
            # Lightbulb's own listener would run a duplicated INTERACTION_CREATE again:
            # ours claims the id first and hands lightbulb what it handles.
            for listener in _interaction_listeners(app) - lightbulbs:
                app.event_manager.unsubscribe(hikari.InteractionCreateEvent, listener)
            app.event_manager.subscribe(hikari.InteractionCreateEvent, self._gateway_interaction)
            if hikari.Intents.GUILD_MEMBERS in app.intents:
                self.members = MemberEvents(kernel.events, app)
            elif intents.members_refused(settings, app):
                # Wanted, but Discord refused the intent: ready all the same, and says so.
                kernel.readiness.notes[intents.READINESS_NOTE] = intents.MEMBERS_OFF_NOTE

    # -- commands ---------------------------------------------------------------------
    def register_commands(self) -> CommandPlan:
        """(Re)build the commands of the enabled plugins and register them with lightbulb."""
        for command in self._registered:
            self.client.unregister(command)
        manifests = [
            p.manifest
            for p in self.kernel.manager.plugins.values()
            if p.state == ENABLED and p.manifest is not None
        ]
        self.plan = plan_commands(manifests)
        self._registered = lightbulb_commands(self.plan.payloads, self._invoke, self._complete)
        for command in self._registered:
            self.client.register(command)
        return self.plan

    async def start(self) -> None:
        """Sync the commands with Discord (lightbulb: fetch, compare, bulk overwrite)."""
        for rejection in self.plan.rejected:
            log.warning("%s", rejection)
        await self.client.start()

    def _track(self, task: asyncio.Task[Any]) -> None:
        """An interaction in progress: a stopping front end lets it finish (:meth:`drain`)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> int:
        """Stop taking interactions (the gateway's get :data:`RESTARTING`) and let those in
        progress finish, up to ``timeout`` seconds; returns how many did not (:meth:`stop`
        cancels them)."""
        self.accepting = False
        pending = {t for t in self._tasks if t is not asyncio.current_task() and not t.done()}
        if pending:
            log.info(
                "stopping: %d interaction(s) in progress, waiting up to %g s", len(pending), timeout
            )
            _, pending = await asyncio.wait(pending, timeout=timeout)
        if pending:
            log.warning("stopping: %d interaction(s) did not finish in time", len(pending))
        return len(pending)

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.kernel.conversations.unregister("discord", self.open_conversation)
        if self.members is not None:
            self.members.close()
            self.members = None
        self.kernel.readiness.notes.pop(intents.READINESS_NOTE, None)
        try:
            await self.client.stop()
        finally:
            self.interactions_seen.close()

    async def open_conversation(
        self, plugin: str, title: str, invocation: Invocation, *, private: bool = False
    ) -> Any:
        """A thread in the channel the command came from, for a plugin's conversation;
        ``private``: a private thread with the invoking user and the admins in it."""
        if invocation.channel_id is None or invocation.guild_id is None:
            raise UsageError("a conversation needs a server channel: threads cannot open in DMs")
        minter = self.store.minter(plugin, invoker=invocation.user_id, command=invocation.command)
        renderer = Renderer(minter, user_id=invocation.user_id)
        # The invoking user and ClusterCord's admins named by user (a role cannot be added
        # to a thread; the server's moderators see private threads anyway).
        admins = sorted(
            a.removeprefix("user:")
            for a in self.kernel.settings.access.admins
            if a.startswith("user:") and a.removeprefix("user:").isdigit()
        )
        members = list(dict.fromkeys([invocation.user_id, *admins])) if private else []
        return await Threads(self.app).open(
            invocation.channel_id, title, renderer, private=private, members=members
        )

    def _plugins_changed(self, change: str, plugin: Any) -> None:
        # Plugins change inside a command; sync after it, once, however many changed.
        if self._resync is None or self._resync.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to sync yet
                self._resync = asyncio.get_running_loop().create_task(self.resync())

    async def resync(self) -> None:
        await asyncio.sleep(0)
        self.register_commands()
        if client_started(self.client):  # a client not started yet syncs when it starts
            await self.client.sync_application_commands()

    def _known(self, interaction: Any) -> bool:
        path = command_path(interaction)
        if path not in self.plan.leaves or path[0] not in self.plan.owners:
            return False
        registered_in = interaction.registered_guild_id
        if self.settings.guilds:
            return registered_in is not None and int(registered_in) in self.settings.guilds
        return registered_in is None

    # -- interaction entry points ---------------------------------------------------------
    async def _rest_command(self, interaction: Any) -> Any:
        if self._known(interaction):  # lightbulb runs it; our _invoke answers
            run = self.client.handle_interaction_create
        else:

            async def run(interaction: Any, answered: asyncio.Event) -> None:
                path = " ".join(command_path(interaction))
                await self._reply_ephemeral(interaction, UNKNOWN_COMMAND.format(path=path))

        async for answer in self._answer_over_http(interaction, run):
            yield answer

    async def _rest_component_or_modal(self, interaction: Any) -> Any:
        async def run(interaction: Any, answered: asyncio.Event) -> None:
            await self.handle_interaction(interaction, answered.set)

        async for answer in self._answer_over_http(interaction, run):
            yield answer

    async def _answer_over_http(self, interaction: Any, run: Any) -> Any:
        """hikari's listener for an interaction server request: ``run`` handles it while the
        request waits for a final answer to carry back (otherwise: 204, the answer having
        gone through the callback endpoint). A replayed request runs nothing."""
        if not self._first_delivery(interaction):
            yield None
            return
        answer = self._http_answers[interaction.id] = HttpAnswer()
        answered = asyncio.Event()
        task = asyncio.create_task(run(interaction, answered))
        self._track(task)
        try:
            response = await answer.wait(answered, task, timeout=HTTP_ANSWER_WAIT)
        finally:
            del self._http_answers[interaction.id]
        yield response
        await task

    def _first_delivery(self, interaction: Any) -> bool:
        """Claim the interaction's id: ``False`` when it was already received (a replayed
        request, a duplicated gateway event), which then runs nothing."""
        request = replay.current()
        signed_at = request.signed_at if request else interaction.created_at.timestamp()
        if self.interactions_seen.claim(interaction.id, signed_at):
            return True
        if request is not None:
            request.replayed = str(interaction.id)
        log.warning("refused interaction %s: already received", interaction.id)
        return False

    async def _gateway_interaction(self, event: Any) -> None:
        interaction = event.interaction
        if not self.active():  # e.g. woken after a freeze longer than the Lease
            log.warning("interaction %s left to the instance holding the Lease", interaction.id)
            return
        if not self._first_delivery(interaction):
            return
        if not self.accepting:  # stopping: handed back at once, never left unanswered
            await self._reply_ephemeral(interaction, RESTARTING)
            return
        task = asyncio.current_task()
        if task is not None:
            self._track(task)
        if isinstance(interaction, hikari.CommandInteraction):
            if not self._known(interaction):
                path = " ".join(command_path(interaction))
                await self._reply_ephemeral(interaction, UNKNOWN_COMMAND.format(path=path))
                return
            await self.client.handle_interaction_create(interaction)  # lightbulb runs it
            return
        if isinstance(interaction, hikari.AutocompleteInteraction):
            await self.client.handle_interaction_create(interaction)
            return
        await self.handle_interaction(interaction, lambda: None)

    async def handle_interaction(self, interaction: Any, on_initial: Any) -> None:
        """A component click or a modal submission."""
        with logs.serving(str(interaction.id)):
            await self._handle_interaction(interaction, on_initial)

    async def _handle_interaction(self, interaction: Any, on_initial: Any) -> None:
        try:
            if isinstance(interaction, hikari.ComponentInteraction):
                await self._component(interaction, on_initial)
            elif isinstance(interaction, hikari.ModalInteraction):
                await self._modal(interaction, on_initial)
        except Exception:
            log.exception("interaction %s failed", interaction.id)
            with contextlib.suppress(Exception):
                await self._reply_ephemeral(interaction, "❌ Something went wrong; it is logged.")
        finally:
            on_initial()

    # -- commands -----------------------------------------------------------------------
    async def _invoke(self, ctx: Any, path: tuple[str, ...]) -> None:
        interaction = ctx.interaction
        await self.run_command(interaction, path, ctx.options, ctx.initial_response_sent.set)

    async def run_command(
        self, interaction: Any, path: tuple[str, ...], options: Any, on_initial: Any
    ) -> None:
        with logs.serving(str(interaction.id)):
            await self._run_command(interaction, path, options, on_initial)

    async def _run_command(
        self, interaction: Any, path: tuple[str, ...], options: Any, on_initial: Any
    ) -> None:
        user_id = str(interaction.user.id)
        values = {o.name: option_value(o) for o in options or () if o.value is not None}
        try:
            # Looked up once: the dispatcher is handed what was found.
            resolved = self.kernel.dispatcher.resolve(path)
        except ClusterCordError:  # disabled since it was registered: the dispatcher says so
            resolved = None
        spec = resolved[1] if resolved is not None else None
        owner = resolved[0].name if resolved is not None else self.plan.owners.get(path[0], "")
        secret = spec is not None and any(o.secret and o.name in values for o in spec.options)
        renderer = Renderer(
            self.store.minter(owner, invoker=user_id, command=path), user_id=user_id
        )
        responder = self._responder(
            interaction,
            renderer,
            ephemeral=spec is None or spec.ephemeral or secret,
            on_initial=on_initial,
        )
        refusal = self._place_refusal(interaction)
        if refusal is not None:
            await responder.finish(Reply.fail(refusal, ephemeral=True))
            return
        invocation = self._invocation(interaction, path, values)

        async def work() -> Reply:
            try:
                files = await self._attachments(interaction, spec, values)
            except UsageError as exc:
                return Reply.fail(str(exc), ephemeral=True)

            async def ask(confirmation: Confirmation) -> bool:
                return await self._ask(responder, confirmation)

            outcome = await self.kernel.dispatcher.dispatch(
                invocation,
                send=responder.send,
                ask=ask,
                attachments=files.__getitem__,
                resolved=resolved,
            )
            return outcome.reply  # type: ignore[no-any-return]

        await responder.run(work(), self.settings.defer_after)

    def _responder(self, interaction: Any, renderer: Renderer, **kwargs: Any) -> Responder:
        return Responder(
            interaction,
            renderer,
            http=self._http_answers.get(interaction.id),
            token_lifetime=self.settings.token_lifetime,
            progress_interval=self.settings.progress_interval,
            **kwargs,
        )

    def _invocation(
        self, interaction: Any, path: tuple[str, ...], options: Mapping[str, Any]
    ) -> Invocation:
        member = interaction.member
        return Invocation(
            user_id=str(interaction.user.id),
            command=path,
            options=dict(options),
            roles=frozenset(str(r) for r in member.role_ids) if member is not None else frozenset(),
            user_name=interaction.user.username,
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            channel_id=str(interaction.channel_id),
            frontend="discord",
        )

    def _place_refusal(self, interaction: Any) -> str | None:
        guild = interaction.guild_id
        if guild is None:
            return None if self.settings.allow_dms else "ClusterCord does not answer in DMs here."
        allowed = self.settings.allowed_guilds
        if allowed is not None and str(guild) not in allowed:
            return "ClusterCord is not enabled on this server."
        return None

    async def _attachments(
        self, interaction: Any, spec: Any, values: Mapping[str, Any]
    ) -> dict[str, File]:
        """Download the attachment options (the dispatcher's lookup is synchronous)."""
        files: dict[str, File] = {}
        resolved = interaction.resolved
        for option in spec.options if spec is not None else ():
            if option.type != "attachment" or option.name not in values:
                continue
            attachment = resolved.attachments.get(int(values[option.name])) if resolved else None
            if attachment is None:
                raise UsageError(f"option {option.name}: the file did not arrive; attach it again")
            if attachment.size > self.settings.max_attachment_bytes:
                raise UsageError(
                    f"option {option.name}: {attachment.filename} is {attachment.size} bytes; "
                    f"the limit is {self.settings.max_attachment_bytes}"
                )
            data = await attachment.read()
            files[values[option.name]] = File(
                attachment.filename, data, content_type=attachment.media_type
            )
        return files

    async def _ask(self, responder: Responder, confirmation: Confirmation) -> bool:
        message = responder.render(Reply(confirmation=confirmation))
        ids = [
            c["custom_id"]
            for row in message.components
            for c in row["components"]
            if "custom_id" in c
        ]
        waiting = _Waiting(asyncio.get_running_loop().create_future(), ids)
        for custom_id in ids:
            self._waiting[custom_id] = waiting
        try:
            await responder.post(message)
            return await asyncio.wait_for(waiting.future, self.settings.confirm_timeout)
        except TimeoutError:
            return False
        finally:
            for custom_id in ids:
                self._waiting.pop(custom_id, None)
                self.store.expire(custom_id)

    async def _complete(self, ctx: Any, path: tuple[str, ...]) -> None:
        interaction = ctx.interaction
        focused = ctx.focused
        values = {
            o.name: o.value for o in ctx.options if o.value is not None and o.name != focused.name
        }
        invocation = self._invocation(interaction, path, values)
        suggestions = await self.kernel.dispatcher.autocomplete(
            invocation, focused.name, str(focused.value or "")
        )
        await ctx.respond(autocomplete_choices(suggestions))

    # -- components --------------------------------------------------------------------
    async def _component(self, interaction: Any, on_initial: Any) -> None:
        component = self._stored(interaction.custom_id)
        user_id = str(interaction.user.id)
        if component is None:
            await self._reply_ephemeral(interaction, EXPIRED)
            return
        if not component.may_use(user_id):
            owner = f"<@{component.invoker}>" if component.invoker else "the person it was for"
            await self._reply_ephemeral(interaction, f"🚫 Only {owner} can answer this.")
            return
        refusal = self._place_refusal(interaction) or self.kernel.dispatcher.component_refusal(
            self._invocation(interaction, component.command, {}),
            component.plugin,
            named_command=bool(component.state.get("named_command")),
        )
        if refusal is not None:
            await self._reply_ephemeral(interaction, f"🚫 {refusal}")
            return
        if component.kind == "page":
            await self._page(interaction, component, on_initial)
        elif component.kind == "confirm":
            await self._confirm(interaction, component, on_initial)
        elif component.kind == "open-modal":
            await initial_response(
                interaction,
                DiscordMessage(modal=component.state["modal"]),
                http=self._http_answers.get(interaction.id),
            )
        else:
            value = component.state.get("value")
            values = None
            if component.kind == "select":
                choices = component.state.get("values", [])
                values = [choices[int(v)] for v in interaction.values if int(v) < len(choices)]
                value = values[0] if values else None
            await self._action(interaction, component, on_initial, value=value, values=values)

    def _stored(self, custom_id: str) -> Any:
        if parse_custom_id(custom_id) is None:
            return None
        component = self.store.get(custom_id)
        if component is None or component.expired(time.time()):
            return None
        return component

    async def _page(self, interaction: Any, component: Any, on_initial: Any) -> None:
        pages = self.store.get(component.state["ref"])
        if pages is None or pages.expired(time.time()):
            await self._reply_ephemeral(interaction, EXPIRED)
            return
        renderer = Renderer(
            self.store.minter(component.plugin, invoker=component.invoker, command=pages.command),
            user_id=component.invoker,
        )
        reply = Reply.from_dict(pages.state["reply"])
        message = renderer.render_page(reply, int(component.state["index"]), pages.custom_id)
        responder = self._responder(interaction, renderer, update=True, on_initial=on_initial)
        await responder.post(message, final=True)

    async def _confirm(self, interaction: Any, component: Any, on_initial: Any) -> None:
        answer = bool(component.state.get("answer"))
        waiting = self._waiting.get(component.custom_id)
        user = f"<@{interaction.user.id}>"
        text = f"✅ Confirmed by {user}." if answer else f"✖️ Cancelled by {user}."
        if waiting is not None:
            for custom_id in waiting.ids:
                self.store.expire(custom_id)
            prompt = interaction.message.content or ""
            # Through the callback endpoint, awaited: the waiting command goes on only once
            # the question shows its answer, so nothing it sends can arrive before.
            await initial_response(
                interaction,
                DiscordMessage(content=clip(f"{prompt}\n{text}", limits.CONTENT_MAX)),
                update=True,
            )
            on_initial()
            if not waiting.future.done():
                waiting.future.set_result(answer)
            return
        if component.state.get("action"):
            self.store.expire(component.custom_id)
            await self._action(interaction, component, on_initial, value=answer)
            return
        # The command that asked is gone (a restart): its question cannot be answered.
        await self._reply_ephemeral(interaction, EXPIRED)

    async def _modal(self, interaction: Any, on_initial: Any) -> None:
        component = self._stored(interaction.custom_id)
        if component is None:
            await self._reply_ephemeral(interaction, EXPIRED)
            return
        if not component.may_use(str(interaction.user.id)):
            await self._reply_ephemeral(interaction, "🚫 This form is not yours to submit.")
            return
        fields = {
            item.custom_id: item.value
            for row in interaction.components
            for item in getattr(row, "components", [row])
            if getattr(item, "custom_id", None)
        }
        self.store.expire(component.custom_id)
        await self._action(interaction, component, on_initial, kind="form", fields=fields)

    async def _action(
        self,
        interaction: Any,
        component: Any,
        on_initial: Any,
        *,
        kind: str = "action",
        value: Any = None,
        values: list[Any] | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        """Hand a click, a choice or a submitted modal to the kernel (which checks, runs,
        guards and audits the plugin's handler) and deliver its answer."""
        user_id = str(interaction.user.id)
        renderer = Renderer(
            self.store.minter(component.plugin, invoker=user_id, command=component.command),
            user_id=user_id,
        )
        responder = self._responder(interaction, renderer, on_initial=on_initial)

        async def ask(confirmation: Confirmation) -> bool:
            return await self._ask(responder, confirmation)

        async def work() -> Reply:
            passage = await self.kernel.door.action(
                self._invocation(interaction, component.command, {}),
                plugin=component.plugin,
                action=component.state.get("action"),
                kind=kind,
                value=value,
                values=values,
                fields=fields,
                send=responder.send,
                ask=ask,
                named_command=bool(component.state.get("named_command")),
            )
            return passage.reply  # type: ignore[no-any-return]

        await responder.run(work(), self.settings.defer_after)

    async def _reply_ephemeral(self, interaction: Any, text: str) -> None:
        text = inert(text, mentions=True)  # may quote a command or a refusal's reason
        message = DiscordMessage(content=clip(text, limits.CONTENT_MAX), flags=limits.EPHEMERAL)
        await initial_response(interaction, message, http=self._http_answers.get(interaction.id))

    # -- notifications -------------------------------------------------------------------
    async def deliver_notifications(self) -> int:
        """Send the plugins' queued notifications (see :mod:`.notifications`)."""
        return await self.notifications.deliver()

    async def run_background(self, stop: asyncio.Event, tick: float = 1.0) -> None:
        """Deliver notifications until ``stop`` is set (beside the kernel's own loop)."""
        await self.notifications.run(stop, tick)


# -- helpers ----------------------------------------------------------------------------
def _interaction_listeners(app: Any) -> set[Any]:
    """The INTERACTION_CREATE listeners of a gateway app (none for a REST bot)."""
    if isinstance(app, hikari.RESTBot):
        return set()
    return set(app.event_manager.get_listeners(hikari.InteractionCreateEvent))


def command_path(interaction: Any) -> tuple[str, ...]:
    path = [interaction.command_name]
    options = interaction.options or []
    while options and options[0].type in (
        hikari.OptionType.SUB_COMMAND,
        hikari.OptionType.SUB_COMMAND_GROUP,
    ):
        path.append(options[0].name)
        options = options[0].options or []
    return tuple(path)


def option_value(option: Any) -> Any:
    """A Discord option value as the dispatcher's parser expects it (snowflakes as text)."""
    value = option.value
    if isinstance(value, hikari.Snowflake):
        return str(int(value))
    return value


def autocomplete_choices(suggestions: list[Any]) -> list[tuple[str, Any]]:
    """Plugin suggestions (strings or ``{"name", "value"}``) within Discord's limits."""
    out: list[tuple[str, Any]] = []
    for item in suggestions[: limits.AUTOCOMPLETE_CHOICES_MAX]:
        if isinstance(item, Mapping):
            name, value = str(item.get("name", item.get("value"))), item.get("value")
        else:
            name, value = str(item), item
        if isinstance(value, str) and len(value) > limits.CHOICE_STRING_VALUE_MAX:
            continue  # a cut value would be a different, wrong value
        out.append((clip(name, limits.CHOICE_NAME_MAX) or "-", value))
    return out
