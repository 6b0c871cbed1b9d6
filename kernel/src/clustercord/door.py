"""The one door: every call of plugin code that a person or the scheduler starts passes here.

Commands (through :class:`~clustercord.dispatcher.Dispatcher`), component actions and form
submissions (a Discord button or modal, a form the console fills in place) and scheduled
jobs each go the same way:

1. **stamp** the invocation (the access policy decides ``admin``, never a front end);
2. **check** the access policy (for a component: whoever clicks must be allowed to run the
   command it came from, or the one its button names);
3. **resolve** the handler (``module:function`` of the plugin's package);
4. **call** it with only the arguments it declares (:func:`declared_arguments`), through the
   plugin manager's :class:`~clustercord.plugins.guard.Guard` (time budget, exceptions
   isolated, failures counted), with the :class:`~clustercord.plugins.guard.Budget` of its
   kind (:data:`KINDS`);
5. **audit** it in two rows, the same columns for every kind (actor, action, plugin,
   cluster, namespace, options, result, message, duration); the action names the kind
   (a command's path, ``component …``, ``form …``, ``job …``): an *intent*
   (:meth:`Door.intent`, ``result="started"``, no duration) committed before step 4 calls
   the plugin, and the result row after, naming the intent's seq (``intent_seq``); a process
   killed midway leaves "started, no result", which ``clustercord audit verify`` reports;
6. **deliver** what the call left pending (:meth:`Door.deliver`): approval requests (published
   as ``approval:requested`` events) and decisions (each plugin's ``on_approval_decided``),
   so no front end has to remember to.

Hooks (events, lifecycle, ``check_access``…) are the kernel's own calls: the plugin manager
makes them through the same Guard, unaudited.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from clustercord.events import EventBus
from clustercord.plugins.calling import declared_arguments
from clustercord.plugins.guard import HOOK_BUDGET, Budget, CallResult, Guard
from clustercord.plugins.manager import ENABLED, Plugin, PluginManager, resolve_handler
from clustercord.policy import AccessPolicy
from clustercord.services.audit import AuditLog
from clustercord_sdk.context import Asker, CommandContext, Invocation, Sender
from clustercord_sdk.errors import ClusterCordError, CommandError, PermissionDenied, UsageError
from clustercord_sdk.events import Event
from clustercord_sdk.http import HttpRequest, HttpResponse, RouteSpec
from clustercord_sdk.manifest import CommandSpec
from clustercord_sdk.reply import Reply

if TYPE_CHECKING:
    from clustercord.metrics import Metrics

log = logging.getLogger("clustercord.door")

Kind = Literal["command", "action", "form", "job", "route"]
KINDS: dict[str, str] = {
    "command": "a command handler: no time limit unless the door is given one; its failures "
    "never disable the plugin",
    "action": "a component handler (button, select): the command budget; failures count",
    "form": "a submitted form (Discord modal, console prompts): as an action",
    "job": "a scheduled job: the hook budget; failures count",
    "route": "an HTTP request to a plugin's route: the HTTP service's timeout; failures never "
    "disable the plugin (anyone on the network can send a request)",
}
"""The kinds of call the door lets through, and the budget each spends."""

SCHEDULER_ACTOR = "kernel:scheduler"
"""The audit actor of a job run (no person started it)."""


def as_reply(value: Any) -> Reply:
    """What a handler returned, as a Reply: ``None`` is "Done.", a string is its text."""
    if value is None:
        return Reply(text="Done.")
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    raise CommandError(f"a command handler returned {type(value).__name__}, not a Reply")


def _streaming(
    generator: Callable[..., Any], kwargs: dict[str, Any], send: Sender | None
) -> Callable[[], Any]:
    """An async generator handler as one coroutine function: each item but the last is
    sent as it comes (progress), the last is the value."""

    async def streamed() -> Any:
        last: Any = None
        async for item in generator(**kwargs):
            if last is not None and send is not None:
                await send(as_reply(last))
            last = item
        return last

    return streamed


def audit_action(kind: str, name: str) -> str:
    """The audit ``action`` of a call: a command's path as typed, else ``<kind> <handler>``
    (``component`` for an action, as rows have always said)."""
    if kind == "command":
        return name
    return f"{'component' if kind == 'action' else kind} {name}"


@dataclass
class Passage:
    """How one call through the door ended. ``status``: ok, error, usage or denied."""

    status: str
    reply: Reply
    message: str | None = None
    duration_ms: float = 0.0

    @property
    def result(self) -> str:
        """The audit result (usage errors are errors there)."""
        return {"usage": "error"}.get(self.status, self.status)


class Door:
    """Policy, guard and audit for every call of plugin code; owned by the kernel."""

    def __init__(
        self,
        manager: PluginManager,
        policy: AccessPolicy,
        audit: AuditLog,
        guard: Guard,
        events: EventBus,
        *,
        command_timeout: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        """Counts every call by plugin, kind and outcome with its latency (``None``: not)."""
        self.policy = policy
        self.audit = audit
        self.guard = guard
        self.events = events
        self.command_timeout = command_timeout
        """Seconds a command, action or form may run; ``None``: no limit (a template deploy
        waits for its pods up to 300 s). Jobs spend the hook timeout."""
        self._requests: list[Any] = []
        self._decisions: list[Any] = []

    # -- policy ---------------------------------------------------------------------------
    def stamp(self, invocation: Invocation) -> Invocation:
        return self.policy.stamp(invocation)

    def command_refusal(self, invocation: Invocation, command: CommandSpec) -> str | None:
        """Why the access policy refuses ``command`` to this invocation's user, or ``None``."""
        return self.policy.check(invocation, command)

    def component_refusal(
        self, invocation: Invocation, plugin: str, *, named_command: bool = False
    ) -> str | None:
        """Whoever uses a component must be allowed to run the command it came from
        (``invocation.command``), or the one its button names (``Button.command``: an
        Approve button is pressed by those who may run ``/approval approve``)."""
        found = self.manager.commands().get(invocation.command)
        if named_command and (found is None or found[0].name != plugin):
            return f"this button names /{invocation.path}, not a command of its plugin"
        if found is None:
            return None
        return self.policy.check(invocation, found[1])

    def budget(self, kind: str, timeout: float | None = None) -> Budget:
        if kind == "job":
            return HOOK_BUDGET
        if kind == "route":
            return Budget(
                timeout=timeout, counts=False, in_thread=True, answers=(ClusterCordError,)
            )
        return Budget(
            timeout=self.command_timeout,
            unlimited=self.command_timeout is None,
            counts=kind != "command",
            in_thread=True,
            answers=(ClusterCordError,),
        )

    # -- the calls ------------------------------------------------------------------------
    async def call(
        self,
        kind: str,
        plugin: Plugin,
        function: Callable[..., Any],
        available: Mapping[str, Any],
        *,
        name: str,
        send: Sender | None = None,
        timeout: float | None = None,
    ) -> CallResult:
        """Call ``function`` with what it declares of ``available``, through the guard with
        the budget of ``kind``. An async generator streams: each item but the last goes to
        ``send`` as it comes (progress), the last is the value."""
        function, kwargs = declared_arguments(
            function, available, positional="ctx" if kind == "command" else None
        )
        if inspect.isasyncgenfunction(function):
            function, kwargs = _streaming(function, kwargs, send), {}
        return await self.guard.acall(
            plugin.name, audit_action(kind, name), function, kwargs, self.budget(kind, timeout)
        )

    async def command(
        self,
        plugin: Plugin,
        command: CommandSpec,
        ctx: CommandContext,
        *,
        send: Sender,
    ) -> Passage:
        """Run a command's handler (the dispatcher has resolved, parsed and checked it)."""
        function = plugin.handlers[command.path]
        result = await self.call(
            "command", plugin, function, {"ctx": ctx}, name=command.name, send=send
        )
        return self._passage("command", plugin.name, result)

    async def action(
        self,
        invocation: Invocation,
        *,
        plugin: str,
        action: str | None,
        kind: Kind = "action",
        value: Any = None,
        values: list[Any] | None = None,
        fields: dict[str, str] | None = None,
        send: Sender,
        ask: Asker,
        named_command: bool = False,
        deliver: bool = True,
    ) -> Passage:
        """Run a plugin's component handler (``module:function``) for the person who clicked
        a button, chose in a select (``value``/``values``) or submitted a form (``fields``,
        ``kind="form"``). ``invocation.command`` is the command the component came from.
        ``deliver=False`` leaves pending approvals to the caller (a command filling forms)."""
        start = time.perf_counter()
        invocation = self.stamp(invocation)
        owner = self.manager.plugins.get(plugin)
        enabled = owner is not None and owner.state == ENABLED and owner.module is not None
        if enabled and not action:
            return Passage("ok", Reply(text="This button does nothing.", ephemeral=True))
        name = action or "-"
        options = {"value": value, "values": values, "fields": fields}
        # What the person chose, never the plugin's state (a button's value may be anything
        # the plugin keeps server-side); of a form, whose values may be secrets (a password
        # typed in), only the names of its fields.
        recorded: dict[str, Any] = (
            {"fields": sorted(fields or {})}
            if kind == "form"
            else ({"values": values} if values is not None else {})
        )
        intent: int | None = None
        if owner is None or not enabled or not action:
            message = f"Plugin {plugin} is not enabled any more."
            passage = Passage("error", Reply.fail(message, ephemeral=True), message)
        elif refusal := self.component_refusal(invocation, plugin, named_command=named_command):
            passage = Passage("denied", Reply.fail(refusal, ephemeral=True), refusal)
        else:
            try:
                function = resolve_handler(owner.module, action, f"component {action}")
            except (ImportError, ValueError) as exc:
                message = f"plugin {plugin}: {exc}"
                passage = Passage("error", Reply.fail(message, ephemeral=True), message)
            else:
                ctx = CommandContext(
                    invocation=invocation,
                    options=dict(options),
                    plugin=owner.context,  # type: ignore[arg-type]
                    _send=send,
                    _ask=ask,
                )
                intent = await self.intent(
                    kind, name, invocation=invocation, plugin=plugin, options=recorded
                )
                result = await self.call(
                    kind, owner, function, {"ctx": ctx, **options}, name=name, send=send
                )
                passage = self._passage(kind, plugin, result)
        passage.duration_ms = (time.perf_counter() - start) * 1000
        await self.record(
            kind,
            name,
            passage,
            invocation=invocation,
            plugin=plugin,
            options=recorded,
            intent=intent,
        )
        if deliver:
            await self.deliver()
        return passage

    async def job(self, job: Any) -> Passage | None:
        """Run a scheduled job: the plugin's ``module:function`` handler, given ``job`` and
        ``ctx`` if it declares them. ``None`` when its plugin is not enabled (nothing ran)."""
        plugin = self.manager.plugins.get(job.plugin)
        if plugin is None or plugin.state != ENABLED or plugin.module is None:
            return None
        start = time.perf_counter()
        intent: int | None = None
        try:
            function = resolve_handler(plugin.module, job.handler, f"job {job.id}")
        except (ImportError, ValueError) as exc:
            log.warning("plugin %s: job handler %s not found: %s", plugin.name, job.handler, exc)
            passage = Passage("error", Reply.fail(str(exc)), str(exc))
        else:
            intent = await self.intent(
                "job", job.handler, plugin=plugin.name, options={"job": job.id}
            )
            result = await self.call(
                "job", plugin, function, {"job": job, "ctx": plugin.context}, name=job.handler
            )
            if result.ok:
                passage = Passage("ok", Reply(text="Done."))
            else:
                message = f"{type(result.error).__name__}: {result.error}"
                passage = Passage("error", Reply.fail(message), message)
        passage.duration_ms = (time.perf_counter() - start) * 1000
        await self.record(
            "job", job.handler, passage, plugin=plugin.name, options={"job": job.id}, intent=intent
        )
        await self.deliver()
        return passage

    async def route(
        self, plugin: Plugin, route: RouteSpec, request: HttpRequest, *, timeout: float
    ) -> HttpResponse:
        """Serve one HTTP request with the plugin's route handler: audited (the client's
        address as actor, method and path as options, never the query or body: they may
        carry codes and tokens), within ``timeout`` seconds. Whatever goes wrong, the client
        gets a status and one line, never a stack trace."""
        start = time.perf_counter()
        name = f"{route.method} {route.path}"
        recorded: dict[str, Any] = {"method": request.method, "path": request.path}
        actor = f"http:{request.remote or '-'}"
        intent: int | None = None
        try:
            assert plugin.module is not None
            function = resolve_handler(plugin.module, route.handler, f"route {name}")
        except (AssertionError, ImportError, ValueError) as exc:
            log.warning("plugin %s: route %s: %s", plugin.name, name, exc)
            response, status, message = HttpResponse.text("not available\n", 503), "error", str(exc)
        else:
            # A read that changes nothing needs no intent row: the one row after it is
            # committed before the answer leaves, so no answer goes unaudited (and a crash
            # before it leaves nothing changed). Half the audit writes on kubectl's reads.
            if not route.read_only(request):
                intent = await self.audit_http("started", name, plugin.name, actor, recorded, None)
            result = await self.call(
                "route",
                plugin,
                function,
                {"request": request, "ctx": plugin.context},
                name=name,
                timeout=timeout,
            )
            response, status, message = _http_answer(plugin.name, name, result)
        duration = (time.perf_counter() - start) * 1000
        recorded["status"] = str(response.status)
        if response.audit:
            recorded["details"] = dict(response.audit)
        if response.actor:  # whom the plugin authenticated; the address stays in the options
            recorded["remote"] = request.remote
            actor = response.actor
        await self.audit_http(status, name, plugin.name, actor, recorded, intent, duration, message)
        return response

    async def audit_http(
        self,
        result: str,
        name: str,
        plugin: str,
        actor: str,
        options: Mapping[str, Any],
        intent: int | None,
        duration_ms: float | None = None,
        message: str | None = None,
    ) -> int:
        if duration_ms is not None and self.metrics is not None:
            self.metrics.call_done(plugin, "route", result, duration_ms / 1000)
        row = await self.audit.arecord(
            audit_action("route", name),
            actor=actor,
            plugin=plugin,
            options=dict(options),
            result=result,
            message=message,
            duration_ms=None if duration_ms is None else round(duration_ms, 3),
            intent_seq=intent,
        )
        return int(row["seq"])

    def _passage(self, kind: str, plugin: str, result: CallResult) -> Passage:
        """A guarded call's result as the person sees it."""
        personal = kind != "command"  # an action's error goes only to whoever clicked
        if result.ok:
            try:
                reply = as_reply(result.value)
            except CommandError as exc:
                return Passage("error", Reply.fail(str(exc), ephemeral=personal), str(exc))
            return Passage(
                "error" if reply.error else "ok", reply, reply.text if reply.error else None
            )
        error = result.error
        if result.answered:
            message = str(error)
            if isinstance(error, UsageError):
                return Passage("usage", Reply.fail(message, ephemeral=True), message)
            if isinstance(error, PermissionDenied):
                return Passage("denied", Reply.fail(message, ephemeral=True), message)
            return Passage("error", Reply.fail(message, ephemeral=personal), message)
        message = f"plugin {plugin} failed: {type(error).__name__}: {error}"
        return Passage("error", Reply.fail(message, ephemeral=personal), message)

    # -- audit ----------------------------------------------------------------------------
    async def record(
        self,
        kind: str,
        name: str,
        passage: Passage,
        *,
        plugin: str | None,
        invocation: Invocation | None = None,
        options: Mapping[str, Any] | None = None,
        secret_names: tuple[str, ...] = (),
        intent: int | None = None,
    ) -> int:
        """The audit row of one call through the door; the same columns for every kind.
        ``intent``: the seq of the call's intent row. Returns the row's seq."""
        started = passage.status == "started"
        if not started and self.metrics is not None:
            self.metrics.call_done(plugin, kind, passage.status, passage.duration_ms / 1000)
        row = await self.audit.arecord(
            audit_action(kind, name),
            actor=(
                f"{invocation.frontend}:{invocation.user_id}"
                if invocation is not None
                else SCHEDULER_ACTOR
            ),
            plugin=plugin,
            cluster=invocation.cluster if invocation is not None else None,
            namespace=invocation.namespace if invocation is not None else None,
            options=dict(options or {}),
            result=passage.result,
            message=passage.message,
            duration_ms=None if started else round(passage.duration_ms, 3),
            intent_seq=intent,
            secret_names=secret_names,
        )
        return int(row["seq"])

    async def intent(
        self,
        kind: str,
        name: str,
        *,
        plugin: str | None,
        invocation: Invocation | None = None,
        options: Mapping[str, Any] | None = None,
        secret_names: tuple[str, ...] = (),
    ) -> int:
        """The intent row of a call about to run (``result="started"``), committed before
        the plugin code runs; returns its seq, for the result row's ``intent``."""
        return await self.record(
            kind,
            name,
            Passage("started", Reply()),
            plugin=plugin,
            invocation=invocation,
            options=options,
            secret_names=secret_names,
        )

    # -- what a call leaves pending -------------------------------------------------------
    def approval_requested(self, approval: Any) -> None:
        """Approvals are requested from sync code paths: published as an
        ``approval:requested`` event at the next :meth:`deliver` (the approvals plugin posts
        it with Approve/Deny buttons for the admins)."""
        self._requests.append(approval)

    def approval_decided(self, approval: Any) -> None:
        """Decisions are made from sync code paths: the plugin's ``on_approval_decided`` runs
        at the next :meth:`deliver`, inside the guard."""
        self._decisions.append(approval)

    async def deliver(self) -> int:
        """Publish pending approval requests and deliver pending decisions (after every call
        through the door, and from the kernel's background loop for expiries). Returns how
        many decisions reached their plugin."""
        while self._requests:
            approval = self._requests.pop(0)
            await self.events.publish(
                Event("approval:requested", name=approval.id, data=asdict(approval))
            )
        delivered = 0
        while self._decisions:
            approval = self._decisions.pop(0)
            plugin = self.manager.plugins.get(approval.plugin)
            if plugin is not None and plugin.context is not None:
                await self.manager.call_one(
                    plugin, "on_approval_decided", approval=approval, ctx=plugin.context
                )
                delivered += 1
        return delivered


def _http_answer(
    plugin: str, name: str, result: CallResult
) -> tuple[HttpResponse, str, str | None]:
    """A route's result as (response, audit result, audit message). A plugin's answer
    (``UsageError`` 400, ``PermissionDenied`` 403, other ``ClusterCordError`` 400) is shown;
    a failure is logged here and the client only learns that it failed."""
    if result.ok:
        value = result.value
        if isinstance(value, HttpResponse):
            outcome = "denied" if value.status in (401, 403) else "ok"
            return value, "error" if value.status >= 500 else outcome, None
        if isinstance(value, str):
            return HttpResponse.text(value), "ok", None
        if value is None:
            return HttpResponse(204), "ok", None
        message = f"route {name} returned {type(value).__name__}, not an HttpResponse"
        log.warning("plugin %s: %s", plugin, message)
        return HttpResponse.text("internal error\n", 500), "error", message
    error = result.error
    if result.answered:
        status = 403 if isinstance(error, PermissionDenied) else 400
        outcome = "denied" if status == 403 else "error"
        return HttpResponse.text(f"{error}\n", status), outcome, str(error)
    message = f"{type(error).__name__}: {error}"
    log.warning("plugin %s: route %s failed: %s", plugin, name, message)
    timed_out = isinstance(error, TimeoutError)
    return (
        HttpResponse.text(
            "timed out\n" if timed_out else "internal error\n", 504 if timed_out else 500
        ),
        "error",
        message,
    )
