"""The kernel services a plugin receives, as Protocols.

The kernel provides implementations scoped to the plugin (its own tables, its
own jobs, its identity); a test harness may provide others. Plugins depend on
these interfaces only, never on the kernel's classes.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clustercord_sdk.invocation import Invocation
from clustercord_sdk.reply import Reply


@runtime_checkable
class Store(Protocol):
    """Storage scoped to one plugin: a key-value area and tables of its own.

    Table names are prefixed with the plugin's name by the kernel, so two
    plugins can never read or clobber each other's data.
    """

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...
    def keys(self, prefix: str = "") -> list[str]: ...
    def table(self, name: str) -> Any:
        """A ``sqlite_utils.db.Table`` named ``<plugin>__<name>``."""
        ...

    def query(
        self, sql: str, params: Mapping[str, Any] | Iterable[Any] = ()
    ) -> list[dict[str, Any]]:
        """Run read-only SQL; only the plugin's own tables are visible by their short names."""
        ...


@runtime_checkable
class Sealer(Protocol):
    """Encryption at rest for a plugin's own data (``ctx.sealer``).

    The kernel's sealer uses a key derived from the data key and the plugin's name: what
    one plugin sealed, another cannot open, and a copy of the database without the data key
    reveals nothing. Seal before storing; a value that cannot be opened (another plugin's,
    another data key's, altered) raises :class:`~clustercord_sdk.errors.CommandError`.
    """

    def seal(self, data: bytes) -> bytes:
        """``data`` encrypted and authenticated (a fresh nonce each call)."""
        ...

    def open(self, token: bytes) -> bytes:
        """The bytes :meth:`seal` was given."""
        ...


@dataclass
class Job:
    """A scheduled job of a plugin, as persisted by the kernel."""

    id: str
    plugin: str
    handler: str
    schedule: str
    """``every 5m`` or a five-field cron expression such as ``0 3 * * *``."""
    next_run: float
    last_run: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    missed: str = "run-once"
    """What happens to runs missed while the kernel was down: ``run-once`` or ``skip``."""


class Scheduler(Protocol):
    """Persisted interval and cron jobs; they survive restarts.

    A job runs for no user: its ``ctx.kubernetes`` calls without ``cluster=`` go to the only
    configured cluster (no user's ``/cluster use`` choice applies); with several clusters a
    job names the one it means, else the call fails with "which cluster?"."""

    def every(
        self,
        interval: str,
        handler: str,
        *,
        job_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: str = "run-once",
    ) -> Job: ...
    def cron(
        self,
        expression: str,
        handler: str,
        *,
        job_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: str = "run-once",
    ) -> Job: ...
    def cancel(self, job_id: str) -> bool: ...
    def jobs(self) -> list[Job]: ...


@dataclass
class Approval:
    """A request that an admin approves or denies before it expires."""

    id: str
    plugin: str
    action: str
    summary: str
    requested_by: str
    status: str
    """``pending``, ``approved``, ``denied`` or ``expired``."""
    created_at: float
    expires_at: float
    details: dict[str, Any] = field(default_factory=dict)
    handler: str | None = None
    """The plugin's function called with the decision (``module:function``)."""
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None


class Approvals(Protocol):
    def request(
        self,
        action: str,
        summary: str,
        *,
        requested_by: str,
        details: Mapping[str, Any] | None = None,
        handler: str | None = None,
        expires_in: float = 3600.0,
    ) -> Approval: ...
    def get(self, approval_id: str) -> Approval | None: ...
    def pending(self) -> list[Approval]: ...


class Audit(Protocol):
    def record(
        self,
        action: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        result: str = "ok",
    ) -> None: ...


@dataclass
class AuditCheck:
    """What :meth:`AuditReader.verify` found."""

    ok: bool
    """No tampering (warnings do not count)."""
    count: int
    head: str | None
    """The MAC of the last entry (``None`` for an empty log)."""
    problems: list[str] = field(default_factory=list)
    """Tampering: entries edited, removed, reordered or re-chained."""
    warnings: list[str] = field(default_factory=list)
    """Not tampering: a call started with no result recorded (killed midway, or running)."""
    last_seq: int = 0


class OwnConfig(Protocol):
    """A plugin's own settings, written as ``/plugin config`` would (checked against its
    manifest's ``config``, saved, ``on_config_changed`` called); given to plugins with the
    ``config-write`` capability, for commands like ``/sso config``. Who may run such a
    command is the plugin's manifest's (``admin: true``): the kernel records ``by``."""

    async def set(self, key: str, value: Any, *, by: str) -> dict[str, Any]:
        """Set ``key`` (raises ``UsageError`` for an unknown key or a bad value, changing
        nothing); returns the plugin's settings after."""
        ...


class AuditReader(Protocol):
    """The kernel's audit log, read-only; given to plugins with the ``audit-read`` capability.

    An entry is a dict with the log's columns: ``seq``, ``ts``, ``actor``
    (``discord:<id>``, ``console:<user>``, ``scheduler``), ``action``, ``plugin``,
    ``cluster``, ``namespace``, ``options`` (secrets already masked), ``result`` (``ok``,
    ``error``, ``denied``, ``cancelled`` or ``started``), ``message``, ``duration_ms`` and
    ``intent_seq`` (in a result, the seq of its ``started`` intent). :meth:`rows` and
    :meth:`count` take the same filters and see one entry per call: its result, or its
    intent while it has none (``result="started"``: started, no result).
    """

    def rows(
        self,
        *,
        since_seq: int = 0,
        upto_seq: int | None = None,
        since_ts: float | None = None,
        plugin: str | None = None,
        actor: str | None = None,
        result: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> builtins.list[dict[str, Any]]:
        """Entries with ``since_seq < seq <= upto_seq``, newest first. ``actor`` matches the
        whole actor or the user after its front end (``1234`` matches ``discord:1234``).
        Intents count as answered only by results up to ``upto_seq``, so pages of one
        ``upto_seq`` stay one consistent view while the log grows."""
        ...

    def count(
        self,
        *,
        since_seq: int = 0,
        upto_seq: int | None = None,
        since_ts: float | None = None,
        plugin: str | None = None,
        actor: str | None = None,
        result: str | None = None,
    ) -> int:
        """How many entries :meth:`rows` would give without a limit."""
        ...

    def entry(self, seq: int) -> dict[str, Any] | None:
        """The row ``seq`` as stored (an intent or a result), or ``None``."""
        ...

    def head_seq(self) -> int:
        """The seq of the last row (0 for an empty log)."""
        ...

    def verify(self) -> AuditCheck:
        """Check the chain (the kernel's ``clustercord audit verify``)."""
        ...


class Notifier(Protocol):
    async def notify(
        self, reply: Reply, *, channel: str | None = None, user: str | None = None
    ) -> None:
        """Send a reply to a channel, a user's DMs, or the configured alert channel."""
        ...


@dataclass(frozen=True)
class Message:
    """A message a person wrote in a conversation."""

    user_id: str
    text: str
    message_id: str


@runtime_checkable
class Conversation(Protocol):
    """One open conversation: a Discord thread, or a prefixed sub-session on the console."""

    @property
    def id(self) -> str:
        """The thread's id (Discord) or the sub-session's title (console)."""
        ...

    async def send(self, reply: Reply | str) -> str:
        """Write a reply into the conversation; returns the message id."""
        ...

    async def receive(self, timeout: float = 60.0) -> Message | None:
        """The next message a person (never a bot) writes, or ``None`` after ``timeout``."""
        ...

    async def close(self) -> None:
        """Stop the conversation: later :meth:`send` calls raise
        :class:`~clustercord_sdk.errors.CommandError`, :meth:`receive` returns None."""
        ...


class Conversations(Protocol):
    """Threads for back-and-forth with users; given to plugins with the ``conversations``
    capability. Opened where ``for_invocation`` came from (its front end and channel)."""

    async def open(
        self, title: str, *, for_invocation: Invocation, private: bool = False
    ) -> Conversation:
        """``private``: on Discord a private thread that only the invoking user (and the
        server's moderators, who see every thread) can see; the console has one user."""
        ...


@dataclass
class PluginInfo:
    """What the kernel knows of one plugin (for ``/plugin`` commands)."""

    name: str
    version: str
    description: str
    state: str
    """``enabled``, ``disabled``, ``refused`` or ``awaiting-approval``."""
    reason: str | None
    signer: str | None
    signature: str
    """``verified``, ``dev-signed``, ``unsigned``, ``untrusted`` ..."""
    permissions: list[str]
    granted: list[str]
    capabilities: list[str]
    commands: list[str]
    config: dict[str, Any]
    source: str
    icon: str | None = None
    author: str | None = None
    failures: int = 0


@dataclass(frozen=True)
class MarketEntry:
    """One plugin version offered by a marketplace source (``/plugin browse``)."""

    name: str
    version: str
    description: str
    category: str
    source: str
    api: str
    permissions: builtins.list[str]
    capabilities: builtins.list[str] = field(default_factory=builtins.list)
    commands: builtins.list[str] = field(default_factory=builtins.list)
    icon: str | None = None
    author: str | None = None
    homepage: str | None = None
    stars: int | None = None
    """As published by the source."""
    installs: int | None = None
    verified_by: str | None = None
    """Who the source says verified the plugin; ``None``: not verified."""
    installed: str | None = None
    """The version installed here, if any."""
    updatable: bool = False
    """A newer version that this kernel supports is offered."""


@dataclass(frozen=True)
class MarketPage:
    """One page of ``/plugin browse``."""

    entries: builtins.list[MarketEntry]
    page: int
    pages: int
    total: int
    problems: builtins.list[str] = field(default_factory=builtins.list)
    """Sources that could not be read, each with why (the rest are still listed)."""


InstallProgress = Callable[[str], Awaitable[None]]
"""Called with each step of an install (``checking permissions``, ``downloading``, …)."""


class PluginAdmin(Protocol):
    """Kernel plugin management; given only to plugins with the ``plugin-admin`` capability."""

    def list(self) -> builtins.list[PluginInfo]: ...
    def info(self, name: str) -> PluginInfo: ...
    async def enable(self, name: str, *, by: str) -> PluginInfo: ...
    async def disable(self, name: str, *, by: str, reason: str | None = None) -> PluginInfo: ...
    async def approve(self, name: str, *, by: str) -> PluginInfo: ...
    async def set_config(self, name: str, key: str, value: Any, *, by: str) -> dict[str, Any]: ...
    def config_schema(self, name: str) -> dict[str, Any]: ...
    def commands(self) -> builtins.list[dict[str, Any]]:
        """Every enabled command: ``{"path", "description", "plugin", "options"}``."""
        ...

    # The marketplace (README, "The plugin marketplace").
    async def browse(
        self,
        *,
        category: str | None = None,
        query: str | None = None,
        page: int = 1,
        per_page: int = 10,
    ) -> MarketPage: ...
    async def market_entry(self, name: str, version: str | None = None) -> MarketEntry:
        """The version ``install`` would fetch (to show its permissions first)."""
        ...

    def market_names(self) -> builtins.list[str]:
        """Plugin names of the last fetched indexes (autocomplete; never fetches)."""
        ...

    async def market_names_fetched(self, *, within: float = 2.0) -> builtins.list[str]:
        """:meth:`market_names`, fetching the indexes first when none was fetched yet (a
        cold cache), for at most ``within`` seconds: an autocomplete must answer within
        Discord's 3 s. A slower fetch goes on in the background, so a later keystroke has
        the names; meanwhile the answer is ``[]``."""
        ...

    async def install(
        self,
        name: str,
        *,
        version: str | None = None,
        by: str,
        progress: InstallProgress | None = None,
    ) -> PluginInfo: ...
    async def update(
        self, name: str, *, by: str, progress: InstallProgress | None = None
    ) -> PluginInfo: ...
    async def remove(self, name: str, *, by: str, purge_data: bool = False) -> str:
        """Uninstall a marketplace plugin; returns the version removed."""
        ...

    def installed_from_market(self) -> builtins.list[str]: ...


class ClusterAdmin(Protocol):
    """The cluster registry; given only to plugins with the ``cluster-registry`` capability.
    It never hands out stored credentials."""

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every cluster: ``{"name", "server", "namespace", "source"}``."""
        ...

    def add(self, name: str, kubeconfig: str, *, by: str) -> dict[str, Any]:
        """Check and store an uploaded kubeconfig, encrypted; nothing is stored on error."""
        ...

    def remove(self, name: str) -> None: ...
    def use(self, user: str, cluster: str, namespace: str | None = None) -> None: ...
    def defaults(self, user: str) -> tuple[str | None, str | None]: ...
    def problems(self) -> builtins.list[str]: ...
