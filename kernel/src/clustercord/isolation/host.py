"""The kernel side of the isolated tier: who is isolated, their processes, their requests.

**Who.** Decided by who signed, never by a name alone (:func:`isolates`): a plugin runs in the
kernel's process only when its signer's pinned key is of kind ``release`` or ``dev`` *and* it
is one of the builtin entry points shipped with the kernel (``Plugin.builtin``: the entry
points of ``plugins.discovery.BUILTIN_PLUGINS``), or when its manifest asks for capability
``in-process`` and an admin granted it (:func:`granted_in_process`).
Every other plugin runs in a child process of its own. The ``isolation`` setting can isolate
everything (``all``), or, for the testing harness, keep every plugin signed by a ``release``
or ``dev`` key in-process (``keys``); ``isolate`` names plugins isolated whatever signed them.

**How.** :class:`IsolationHost` starts one child per isolated plugin
(``python -I -B -m clustercord.isolation.child``: isolated mode, so neither ``PYTHON*``
variables nor the working directory reach its imports), with a scrubbed environment (``PATH``,
``HOME`` and ``TMPDIR`` in ``<data dir>/plugins/<name>/``, a locale; no ``KUBECONFIG``, no
token, no ``CLUSTERCORD_*``), ``close_fds`` (only its three pipes), its own session (so a kill
takes its descendants too) and the limits of :class:`Limits`. When the kernel runs as root it
also gives the child a uid and gid of its own to drop to before the plugin's code runs
(:meth:`IsolationHost.user`: ``isolation_uids`` plus a hash of the data directory and the
plugin's name; no account is needed), so ``RLIMIT_NPROC`` binds each plugin alone and no
two plugins share files or may signal each other; the plugin's directory is chowned to it.
Around that command, bwrap gives it a file view and namespaces of its own (:mod:`.view`; no
network unless capability ``network`` was granted), and it starts inside cgroups of its own
(:mod:`.cgroups`, joined before ``exec``); the child installs :mod:`.seccomp`'s filter.

The plugin registers with pluggy as an :class:`~clustercord.isolation.stub.IsolatedPackage`:
one ``async`` proxy per hook it implements, taking the hook's arguments; command, component
and job handlers are proxies too. A call sends the arguments (SDK values as tagged JSON, a
``ctx`` as a description: config, invocation, options) and waits; meanwhile the child's
requests (``store.get``, ``kube-user.list``, ``send``, ``notifier.notify`` …) are served with
the plugin's kernel-side context: the same objects an in-process plugin gets, so every
permission check (declared permissions, the plugin's ServiceAccount, the user's
SubjectAccessReview) stays in the kernel. Only an allowlist of methods is served.

**When it fails.** A call that does not answer within ``isolation_timeout`` (or the guard's
budget, for hooks and jobs), a process that ends (a crash, ``os._exit``, a signal, the CPU
limit) or a ``MemoryError`` (the address-space limit) ends that process (its whole session),
answers the call with :class:`ProcessFailure` or ``TimeoutError`` naming the reason, and
records it as the plugin's ``reason``. The next call starts a new process, after a backoff
that doubles with each consecutive failure (none after the first, 0.5 s … 30 s); a call
during the backoff is answered at once. The kernel and the other plugins keep serving.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import functools
import inspect
import itertools
import logging
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clustercord.config import Settings
from clustercord.instance import wait_for
from clustercord.isolation import cgroups as cgroup_groups
from clustercord.isolation import seccomp
from clustercord.isolation.cgroups import Cgroups, Group
from clustercord.isolation.protocol import (
    FrameError,
    encode,
    error_from_wire,
    error_to_wire,
    from_wire,
    read_frame,
    to_wire,
    write_all,
)
from clustercord.isolation.stub import IsolatedPackage
from clustercord.isolation.view import View, ViewUnavailable
from clustercord.plugins.manager import Plugin
from clustercord_sdk import hookspecs
from clustercord_sdk.context import CommandContext, PluginContext
from clustercord_sdk.errors import ClusterCordError, CommandError
from clustercord_sdk.reply import Confirmation, Reply

if TYPE_CHECKING:
    from clustercord.metrics import Metrics

log = logging.getLogger("clustercord.isolation")

IN_PROCESS_KEYS = frozenset({"release", "dev"})
"""Kinds of pinned key whose plugins may run in-process."""
MODES = ("signer", "keys", "all")

HANDSHAKE_TIMEOUT = 20.0
MIGRATIONS_LOCK = "migrations.lock"
MIGRATIONS_WAIT = 300.0  # a data migration may be long; a stuck one is a bug to see
UID_SPAN = 1_000_000
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (newlines included) a plugin's log line may not carry into the
kernel's log as they are: one record stays one line, and no terminal escapes."""


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


MAX_BACKOFF = 30.0
_SERVED: dict[str, frozenset[str]] = {
    "store": frozenset({"get", "set", "delete", "keys", "query"}),
    "kube": frozenset(
        {"clusters", "target", "version", "check", "get", "list", "create", "patch"}
        | {"apply", "delete"}
        | {"logs", "exec", "narrow"}
    ),
    "scheduler": frozenset({"every", "cron", "cancel", "jobs"}),
    "approvals": frozenset({"request", "get", "pending"}),
    "audit": frozenset({"record"}),
    "notifier": frozenset({"notify"}),
    "sealer": frozenset({"seal", "open"}),
}
"""The services a child may call, method by method; nothing else is reachable."""
_HOOKSPECS = frozenset(
    name
    for name in dir(hookspecs)
    if getattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec", None) is not None
)
_SERVED["kube-user"] = _SERVED["kube"]
_OWN: dict[str, frozenset[str]] = {
    "table": frozenset(
        {"name", "exists", "count", "count_where", "columns_dict", "rows_where", "get"}
        | {"create", "create_index", "add_column", "insert_all", "upsert_all", "update"}
        | {"delete", "delete_where"}
    ),
    "exec": frozenset({"read", "write", "close_stdin", "resize", "close"}),
    "conversations": frozenset({"open"}),
    "conversation": frozenset({"send", "receive", "close"}),
    "identity-map": frozenset({"resolve", "discord_ids_of"}),
    "cluster-registry": frozenset({"list", "defaults", "problems"}),
    "migrations": frozenset({"version", "record"}),
}
"""Requests served by the host itself (handles, tables, capability services, migrations)."""
_TABLE_OPTIONS: dict[str, frozenset[str]] = {
    "create": frozenset({"pk", "not_null", "defaults", "if_not_exists", "column_order"}),
    "create_index": frozenset({"index_name", "unique", "if_not_exists"}),
    "add_column": frozenset({"not_null_default"}),
    "insert_all": frozenset(
        {"pk", "alter", "ignore", "replace", "column_order", "not_null", "defaults", "hash_id"}
    ),
    "upsert_all": frozenset({"pk", "alter", "column_order", "not_null", "defaults", "hash_id"}),
    "update": frozenset({"alter"}),
}
"""Keyword arguments of ``sqlite_utils`` a table request may pass: none of them takes SQL
(``conversions``, ``foreign_keys`` and the like are refused)."""
PROXIED_SERVICES = frozenset({"conversations", "identity-map", "cluster-registry"})
"""Capability services an isolated plugin gets as proxies (read-only parts for the
identity map and the cluster registry)."""
IN_PROCESS_ONLY = frozenset({"plugin-admin", "approvals-admin", "audit-read", "config-write"})
"""Capabilities that act on or read the kernel itself: only for plugins in the in-process tier."""
IN_PROCESS_CAPABILITY = "in-process"
"""The capability that, once an admin has granted it, runs a plugin in the kernel's process."""
NETWORK_CAPABILITY = "network"
"""The capability that, once an admin has granted it, leaves an isolated plugin the host's
network (otherwise its process has a network namespace of its own: loopback only)."""
MAX_HANDLES = 16
"""Exec sessions and conversations one process may hold open at once."""
_WRAPPER_TASKS = 4
"""Tasks of the cgroup beyond the plugin's processes: bwrap's monitor and the namespace's
init."""


def isolates(plugin: Plugin, settings: Settings) -> bool:
    """Whether ``plugin`` runs in a process of its own (see the module's docstring)."""
    if plugin.name in settings.isolate or settings.isolation == "all":
        return True
    if granted_in_process(plugin):
        return False
    kind = plugin.verified.signer.kind if plugin.verified is not None else None
    if kind not in IN_PROCESS_KEYS:
        return True
    if settings.isolation == "keys":
        return False
    # A builtin: one of the kernel's entry points (plugins.discovery.BUILTIN_PLUGINS), in the
    # builtin distribution, signed by a release or development key (PluginManager._is_builtin).
    return not plugin.builtin


def granted_in_process(plugin: Plugin) -> bool:
    """The manifest asks for the ``in-process`` capability and an admin granted it (the
    grant machinery of the plugin manager: ``/plugin permissions name:X approve:true``)."""
    return granted(plugin, IN_PROCESS_CAPABILITY)


def granted(plugin: Plugin, capability: str) -> bool:
    """The manifest declares ``capability`` and an admin granted it."""
    manifest = plugin.manifest
    return (
        manifest is not None
        and capability in manifest.capabilities
        and f"capability:{capability}" in plugin.granted
    )


@dataclass(frozen=True)
class Limits:
    """What one isolated plugin's process may use (``resource.setrlimit``)."""

    memory_mb: int = 512
    """Address space (``RLIMIT_AS``)."""
    cpu_seconds: int = 3600
    """CPU time over the process's life (``RLIMIT_CPU``); it restarts after."""
    open_files: int = 256
    processes: int = 64
    """``RLIMIT_NPROC`` of the plugin's own uid (threads count); only when it drops to one:
    root ignores it, and for a non-root kernel it would count the kernel's own threads."""


class ProcessFailure(Exception):
    """An isolated plugin's process failed a call: it ended, hit a limit, or is restarting."""


class RemoteError(Exception):
    """An exception raised by the plugin's code in its process, carried by type name."""


_REMOTE: dict[str, type[RemoteError]] = {}


def _remote(name: str, message: str) -> Exception:
    """An exception whose class bears the plugin's exception's name (``ZeroDivisionError``),
    so the answer reads as it would in-process; never the plugin's own class."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,79}", name):
        name = "RemoteError"
    cls = _REMOTE.get(name)
    if cls is None:
        cls = _REMOTE[name] = type(name, (RemoteError,), {"__module__": "plugin"})
    return cls(message)


def describe_end(
    returncode: int | None, limits: Limits, *, wrapped: bool = False, oom: bool = False
) -> str:
    """Why a process ended. ``wrapped``: the status is bwrap's, which reports a child killed
    by signal N as 128 + N. ``oom``: its cgroup's OOM killer killed it."""
    if oom:
        return (
            f"its process went beyond its memory limit ({limits.memory_mb} MB resident, "
            "cgroup) and was killed"
        )
    if returncode is None:
        return "its process stopped answering"
    if wrapped and returncode > 128:
        returncode = -(returncode - 128)
    if returncode == 70:  # child.MEMORY_EXIT
        return f"its process reached its memory limit ({limits.memory_mb} MB) and was stopped"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = {
            "SIGKILL": ": memory or a kill from outside?",
            "SIGXCPU": f": its CPU time limit ({limits.cpu_seconds} s)",
            "SIGSEGV": ": a crash",
        }.get(name, "")
        return f"its process ended (killed by {name}{hint})"
    return f"its process ended (exit status {returncode})"


class Child:
    """One running process of an isolated plugin and the calls in flight to it."""

    def __init__(
        self,
        host: IsolationHost,
        plugin: Plugin,
        proc: subprocess.Popen[bytes],
        group: Group | None = None,
        wrapped: bool = False,
    ) -> None:
        self.host = host
        self.group = group
        """Its cgroups (removed when it ends)."""
        self.wrapped = wrapped
        """Started by bwrap: ``proc`` is bwrap, the plugin's process is inside."""
        self.plugin = plugin
        self.name = plugin.name
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.wfd = proc.stdin.fileno()
        self.rfd = proc.stdout.fileno()
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.sessions: dict[int, Any] = {}
        self.handles: dict[int, Any] = {}
        """Exec sessions and conversations the kernel holds for this process, by handle."""
        self.migrating: set[int] = set()
        """Calls running ``storage_migrations`` (the only ones that may record a version)."""
        self.ready: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.alive = True
        self.ending: str | None = None
        """Why the kernel ended it, when it did (a timeout, a disable)."""
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.started = time.monotonic()
        self.info: dict[str, Any] = {}
        self.plugin_log = logging.getLogger(f"clustercord.plugin.{self.name}")
        threading.Thread(target=self._read, name=f"plugin-{self.name}", daemon=True).start()
        threading.Thread(target=self._write, name=f"plugin-{self.name}-in", daemon=True).start()
        threading.Thread(target=self._drain, name=f"plugin-{self.name}-err", daemon=True).start()

    @property
    def pid(self) -> int:
        """The host pid of what the kernel started (bwrap, when wrapped): its process group,
        which the plugin's own process and its descendants share."""
        return self.proc.pid

    def processes(self) -> list[int]:
        """Host pids of every process of its group (bwrap's, the plugin's, its children)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        fields = handle.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                    found.append(int(entry))
        return sorted(found)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the process: the kernel's loop never blocks on a full pipe
        (a process that stops reading only stalls its own writer thread)."""
        self.outbox.put(encode(message))

    def kill(self, reason: str | None = None, *, failure: bool = True) -> None:
        """End the process and its descendants. With a ``reason`` (on the loop), the plugin
        is marked failed at once (unless ``failure`` is false: it was disabled)."""
        if reason is not None and self.ending is None:
            self.ending = reason
            self.alive = False
            self.host.ended(self, reason, failure=failure)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its descendants too
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.outbox.put(None)
        self._call_soon(self.release)

    def release(self) -> None:
        """Close what the kernel held for the process (exec sessions, conversations); on
        the loop."""
        handles, self.handles = list(self.handles.values()), {}
        for handle in handles:
            close = getattr(handle, "close", None)
            if close is None:
                continue
            task = asyncio.ensure_future(_quietly(close()))
            self.host._tasks.add(task)
            task.add_done_callback(self.host._tasks.discard)

    # -- threads -----------------------------------------------------------------------
    def _call_soon(self, function: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the kernel is gone
            self.loop.call_soon_threadsafe(function, *args)

    def _read(self) -> None:
        try:
            while True:
                message = read_frame(self.rfd)
                if message is None:
                    break
                op = message.get("op")
                if op == "done":
                    self._call_soon(self._done, message)
                elif op == "request":
                    self._call_soon(self.host.serve, self, message)
                elif op == "log":
                    level = message.get("level")
                    text = _CONTROL.sub(_escape, str(message.get("message"))[:4000])
                    self.plugin_log.log(
                        level if isinstance(level, int) else logging.INFO, "%s", text
                    )
                elif op in ("ready", "failed"):
                    self._call_soon(self._settle, message)
        except (FrameError, OSError, ValueError) as exc:
            self.ending = self.ending or f"its process broke the protocol ({exc})"
            self.kill()
        try:
            returncode: int | None = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = None
        self.alive = False
        self.outbox.put(None)
        with contextlib.suppress(OSError):
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        # Here, off the loop: the tasks its pid namespace ended may take a moment to leave.
        oom = self.group is not None and self.group.oom_killed()
        if self.group is not None:
            self.group.remove(wait=2.0)
        self._call_soon(self._ended, returncode, oom)

    def _write(self) -> None:
        while (data := self.outbox.get()) is not None:
            try:
                write_all(self.wfd, data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()[:1000]
            self.stderr.append(line)
            self.plugin_log.debug("stderr: %s", line)
        self.proc.stderr.close()

    # -- on the loop -------------------------------------------------------------------
    def _settle(self, message: dict[str, Any]) -> None:
        if not self.ready.done():
            self.ready.set_result(message)

    def _done(self, message: dict[str, Any]) -> None:
        future = self.pending.get(int(message.get("id", 0)))
        if future is not None and not future.done():
            future.set_result(message)

    def _ended(self, returncode: int | None, oom: bool = False) -> None:
        self.release()
        reason = self.ending or describe_end(
            returncode, self.host.limits, wrapped=self.wrapped, oom=oom
        )
        if not self.ready.done():
            tail = "; ".join(line for line in list(self.stderr)[-3:] if line)
            self.ready.set_result({"op": "failed", "error": reason + (f": {tail}" if tail else "")})
        for future in list(self.pending.values()):
            if not future.done():
                future.set_exception(ProcessFailure(reason))
        self.host.ended(self, reason)


_LIBC = ctypes.CDLL(None, use_errno=True)
"""Loaded here, in the kernel: the forked child before ``exec`` only calls it."""


def _before_exec(joins: list[int]) -> None:
    """In the forked child, before ``exec``: into its cgroups (bwrap and all under it are
    counted from the start), and SIGKILL when the kernel's thread that started it ends
    (bwrap's ``--die-with-parent`` then takes the whole namespace), so a plugin that stops
    reading its pipe cannot outlive a kernel killed with -9."""
    _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    cgroup_groups.join(joins)


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception:  # a session already gone: nothing to release
        log.debug("closing a handle failed", exc_info=True)


@dataclass
class Health:
    """What the host remembers of a plugin's failures (for the backoff and ``reason``)."""

    failures: int = 0
    reason: str | None = None
    retry_at: float = 0.0
    restarts: int = 0


class IsolationHost:
    """Spawns, supervises and proxies the isolated plugins of one kernel."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        """Counts crashes (a failed call or an ended process) and restarts, by plugin."""
        self.limits = Limits(memory_mb=settings.isolation_memory_mb)
        self.timeout = settings.isolation_timeout
        self.children: dict[str, Child] = {}
        self.health: dict[str, Health] = {}
        self.plugins: dict[str, Plugin] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Future[None]] = set()
        self.dropping = settings.isolation_uids is not None and os.geteuid() == 0
        self.view: View | None = None
        """The file and network view (probed at the first spawn: ``settings.isolation_sandbox``)."""
        self._view_error: str | None = None
        self.cgroups = Cgroups(self.limits.memory_mb, self.limits.processes + _WRAPPER_TASKS)
        self.seccomp = seccomp.machine() in seccomp.ARCHITECTURES
        """Each child installs the seccomp filter of :mod:`.seccomp` before plugin code (on
        the architectures it has numbers for)."""
        if not self.seccomp:
            log.warning(
                "isolated plugins run without a seccomp filter: none for architecture %s",
                seccomp.machine(),
            )
        self.database: Any = None
        """The kernel's :class:`~clustercord.storage.Database` (set by the plugin manager):
        migration versions, and ``delete_where`` on a connection of its own."""
        """Whether isolated processes drop to a uid of their own (the kernel is root)."""

    def isolates(self, plugin: Plugin) -> bool:
        return isolates(plugin, self.settings)

    def user(self, name: str) -> tuple[int, int] | None:
        """The ``(uid, gid)`` plugin ``name``'s process drops to, or ``None`` (no drop)."""
        base = self.settings.isolation_uids
        if base is None or not self.dropping:
            return None
        uid = base + zlib.crc32(f"{self.settings.data_dir}\0{name}".encode()) % UID_SPAN
        return uid, uid

    # -- lifecycle -------------------------------------------------------------------------
    async def activate(self, plugin: Plugin, pm: Any) -> None:
        """Start the plugin's process and register its stub with pluggy (``pm``); raises
        ImportError with the child's reason when it cannot load."""
        assert plugin.manifest is not None
        kernel_only = sorted(IN_PROCESS_ONLY & set(plugin.manifest.capabilities))
        if kernel_only:
            raise ImportError(
                f"capability {', '.join(kernel_only)} needs the in-process tier, and this "
                f"plugin runs isolated: an admin can grant it capability "
                f"{IN_PROCESS_CAPABILITY!r} (declared in its manifest) to run it in-process"
            )
        self.plugins[plugin.name] = plugin
        self.health[plugin.name] = Health()
        child = await self._spawn(plugin)
        # What the process says it implements is the plugin's word (its code ran there
        # already): only hookspecs' own names, with boolean options, are taken.
        reported = child.info.get("hooks")
        hooks: dict[str, dict[str, bool]] = {}
        for hook, options in reported.items() if isinstance(reported, dict) else ():
            if not isinstance(hook, str) or hook not in _HOOKSPECS:
                self.stop(plugin.name)
                raise ImportError(f"implements unknown hooks: {str(hook)[:80]}")
            opts = options if isinstance(options, dict) else {}
            hooks[hook] = {k: opts.get(k) is True for k in ("tryfirst", "trylast")}
        stub = IsolatedPackage(plugin.name, lambda spec, owner: self._handler(plugin, spec, owner))
        for hook, options in hooks.items():
            setattr(stub, hook, self._hook(plugin, hook, options))
        assert plugin.manifest is not None
        pm.register(stub, name=plugin.manifest.name)
        plugin.module = stub
        plugin.handlers = {
            command.path: stub.handler(command.handler, f"/{command.name}")
            for command in plugin.manifest.commands
        }

    def implements(self, name: str, hook: str) -> bool:
        plugin = self.plugins.get(name)
        module = plugin.module if plugin is not None else None
        return isinstance(module, IsolatedPackage) and callable(getattr(module, hook, None))

    async def migrate(self, plugin: Plugin) -> list[int]:
        """Run the plugin's ``storage_migrations`` in its process (see ``child.Plugin.migrate``);
        the versions applied. Raises what the failing step raised."""
        if not self.implements(plugin.name, "storage_migrations"):
            return []
        # The steps run in the plugin's process, outside any transaction of ours: another
        # kernel starting on the same data directory must wait until they are recorded, or
        # both read version 0 and run every step twice.
        held = None
        if self.database is not None and str(self.database.path) != ":memory:":
            held = await wait_for(
                Path(self.database.path).parent,
                MIGRATIONS_LOCK,
                purpose="it is migrating a plugin's stored data",
                wait=MIGRATIONS_WAIT,
            )
        try:
            applied = await self.call(
                plugin, "migrate", "storage_migrations", {"ctx": plugin.context}
            )
        finally:
            if held is not None:
                held.release()
        return [int(v) for v in applied or ()]

    def stop(self, name: str) -> None:
        """End the plugin's process (it was disabled)."""
        child = self.children.pop(name, None)
        if child is not None:
            child.kill("the plugin was disabled", failure=False)

    def close(self) -> None:
        ending = list(self.children.values())
        for name in list(self.children):
            self.stop(name)
        for child in ending:  # their cgroups can go once they are gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(2)
            if child.group is not None:
                child.group.remove(wait=2.0)
        self.cgroups.close()

    def status(self) -> dict[str, str]:
        """What contains isolated processes here (``plugins list``): the file and network
        view, the cgroups, the seccomp filter."""
        view = (
            self.view.reason
            if self.view is not None
            else (
                self._view_error
                or f"isolation_sandbox = {self.settings.isolation_sandbox}"
                " (probed when the first isolated plugin starts)"
            )
        )
        return {
            "view": view,
            "cgroups": self.cgroups.reason,
            "seccomp": "seccomp filter in each process"
            if self.seccomp
            else f"no seccomp filter (none for {seccomp.machine()})",
        }

    def _probe_view(self) -> View:
        """The view, probed once; ImportError (the plugin is not started) when the setting
        asks for bwrap and it cannot run here."""
        if self._view_error is not None:
            raise ImportError(self._view_error)
        if self.view is None:
            try:
                self.view = View.probe(
                    self.settings.isolation_sandbox, self.settings.data_dir, own_uid=self.dropping
                )
            except (ViewUnavailable, ValueError) as exc:
                self._view_error = str(exc)
                raise ImportError(self._view_error) from None
            log.info("isolated plugins: %s; %s", self.view.reason, self.cgroups.reason)
        return self.view

    def process(self, name: str) -> Child | None:
        """The plugin's running process, if it has one."""
        child = self.children.get(name)
        return child if child is not None and child.alive else None

    async def _spawn(self, plugin: Plugin) -> Child:
        source, verified = plugin.source, plugin.verified
        assert source.folder is not None and verified is not None
        view = self._probe_view() if self.view is None else self.view
        home = self.settings.data_dir / "plugins" / plugin.name
        home.mkdir(parents=True, exist_ok=True)
        _own_tmp(home / "tmp")
        os.chmod(home, 0o700)
        user = self.user(plugin.name)
        if user is not None:
            for path in (home, home / "tmp"):
                # Never through a link: the plugin owns its home and may have left one there.
                os.chown(path, *user, follow_symlinks=False)
            # Its own directory is reached from its working directory; nothing else of the
            # data directory by path (the database, the audit log, files), whatever the modes
            # of what lies inside.
            mode = self.settings.data_dir.stat().st_mode
            if mode & 0o007:
                os.chmod(self.settings.data_dir, mode & ~0o007)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "MALLOC_ARENA_MAX": "2",  # glibc's per-thread arenas would eat the address space
        }
        command = [sys.executable, "-I", "-B", "-m", "clustercord.isolation.child"]
        wrapped = view.bwrap is not None
        if wrapped:
            network = granted(plugin, NETWORK_CAPABILITY)
            command = [
                *view.command(
                    home=home,
                    folders=[source.folder, *map(Path, source.paths)],
                    network=network,
                    own_uid=user is not None,
                ),
                *command,
                "--wrapped",
            ]
        group = self.cgroups.create(plugin.name) if self.cgroups.available else None
        joins = group.join_descriptors() if group is not None else []
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=home,
                close_fds=True,
                start_new_session=True,
                preexec_fn=functools.partial(_before_exec, joins) if wrapped or joins else None,
            )
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            for fd in joins:
                os.close(fd)
        child = Child(self, plugin, proc, group, wrapped)
        self.children[plugin.name] = child
        child.send(
            {
                "op": "load",
                "name": plugin.name,
                "module": source.module,
                "folder": str(source.folder),
                "files": verified.signed["files"],
                # A marketplace plugin's own dependencies, installed beside it.
                "paths": list(source.paths),
                "limits": {
                    # With a memory cgroup, resident memory is bounded there; the address
                    # space stays bounded too (a 4 GB allocation still fails at once), above.
                    "memory_mb": self.limits.memory_mb * 2 + 512
                    if self.cgroups.memory
                    else self.limits.memory_mb,
                    "cpu_seconds": self.limits.cpu_seconds,
                    "open_files": self.limits.open_files,
                    "processes": self.limits.processes,
                },
                "user": {"uid": user[0], "gid": user[1]} if user is not None else None,
                "seccomp": self.seccomp,
            }
        )
        try:
            answer = await asyncio.wait_for(asyncio.shield(child.ready), HANDSHAKE_TIMEOUT)
        except TimeoutError:
            child.kill(f"its process did not load within {HANDSHAKE_TIMEOUT:g} s", failure=False)
            raise ImportError(f"its process did not load within {HANDSHAKE_TIMEOUT:g} s") from None
        if answer.get("op") != "ready":
            child.kill()
            self.children.pop(plugin.name, None)
            raise ImportError(f"in its process: {answer.get('error')}")
        child.info = answer
        return child

    async def _ready(self, plugin: Plugin) -> Child:
        """The plugin's live process, restarted (after the backoff) if it ended."""
        child = self.children.get(plugin.name)
        if child is not None and child.alive and child.ready.done():
            return child
        lock = self._locks.setdefault(plugin.name, asyncio.Lock())
        async with lock:
            child = self.children.get(plugin.name)
            if child is not None and child.alive and child.ready.done():
                return child
            health = self.health.setdefault(plugin.name, Health())
            wait = health.retry_at - time.monotonic()
            if wait > 0:
                raise ProcessFailure(
                    f"{health.reason or 'its process ended'}; it restarts in {wait:.1f} s"
                )
            try:
                child = await self._spawn(plugin)
            except ImportError as exc:
                self._failed(plugin.name, f"its process could not restart: {exc}")
                raise ProcessFailure(f"its process could not restart: {exc}") from None
            health.restarts += 1
            if self.metrics is not None:
                self.metrics.plugin_restarts.labels(plugin.name).inc()
            log.info("plugin %s: process restarted (pid %d)", plugin.name, child.pid)
            await self._reenable(plugin)
            return child

    async def _reenable(self, plugin: Plugin) -> None:
        """``on_enable`` again in a restarted process: what it set up in the process (its
        state, handlers it registers) is back before the call that restarted it is sent.
        A failure is logged and kept as the plugin's reason; the call goes on."""
        if plugin.context is None or not self.implements(plugin.name, "on_enable"):
            return
        try:
            await self.call(plugin, "hook", "on_enable", {"ctx": plugin.context})
        except Exception as exc:
            log.warning("plugin %s: on_enable failed after a restart: %s", plugin.name, exc)
            plugin.reason = f"on_enable failed after a restart: {type(exc).__name__}: {exc}"

    def ended(self, child: Child, reason: str, *, failure: bool = True) -> None:
        """A child's process ended or is being ended (called on the loop)."""
        if self.children.get(child.name) is child:
            del self.children[child.name]
            if failure:
                self._failed(child.name, reason)

    def _failed(self, name: str, reason: str) -> None:
        health = self.health.setdefault(name, Health())
        health.failures += 1
        if self.metrics is not None:
            self.metrics.plugin_crashes.labels(name).inc()
        health.reason = reason
        delay = 0.0 if health.failures == 1 else min(MAX_BACKOFF, 0.5 * 2 ** (health.failures - 2))
        health.retry_at = time.monotonic() + delay
        log.warning("plugin %s: %s", name, reason)
        plugin = self.plugins.get(name)
        if plugin is not None:
            plugin.reason = f"plugin {name}: {reason} (it restarts on the next call)"

    def _succeeded(self, name: str) -> None:
        health = self.health.get(name)
        if health is not None and health.failures:
            health.failures = 0
            plugin = self.plugins.get(name)
            if plugin is not None and plugin.reason and plugin.reason.startswith("plugin "):
                plugin.reason = None

    # -- calls -----------------------------------------------------------------------------
    def _hook(self, plugin: Plugin, hook: str, options: dict[str, bool]) -> Any:
        spec = getattr(hookspecs, hook)
        parameters = list(inspect.signature(spec).parameters.values())

        # pluggy reads a hook implementation's argument names from its code object, so the
        # proxy is compiled with the hookspec's own names (identifiers of our SDK, never
        # anything the plugin's process said).
        names = [p.name for p in parameters]
        if not all(name.isidentifier() for name in [*names, hook]):
            raise ImportError(f"hook {hook} has unusable argument names")

        async def forward(arguments: dict[str, Any]) -> Any:
            return await self.call(plugin, "hook", hook, arguments)

        namespace: dict[str, Any] = {"_forward": forward}
        pairs = ", ".join(f"{name!r}: {name}" for name in names)
        # A fixed template over hookspec names (see above):
        exec(
            f"async def {hook}({', '.join(names)}):\n    return await _forward({{{pairs}}})\n",
            namespace,
        )
        proxy = namespace[hook]
        marker = f"{hookspecs.PROJECT}_impl"
        setattr(
            proxy,
            marker,
            {
                "tryfirst": bool(options.get("tryfirst")),
                "trylast": bool(options.get("trylast")),
                "hookwrapper": False,
                "wrapper": False,
                "optionalhook": False,
                "specname": None,
            },
        )
        return proxy

    def _handler(self, plugin: Plugin, spec: str, owner: str) -> Any:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise ImportError(f"handler {spec} of {owner} is not a function")
        command = owner.startswith("/")

        async def proxy(
            ctx: Any = None,
            value: Any = None,
            values: Any = None,
            fields: Any = None,
            job: Any = None,
            request: Any = None,
        ) -> Any:
            args = {"value": value, "values": values, "fields": fields, "job": job}
            if command:
                args = {}
            elif job is not None:
                args = {"job": job}
            elif request is not None:  # an HTTP route: the request as an SDK value
                args = {"request": request}
            else:
                del args["job"]
            return await self.call(plugin, "handler", spec, {"ctx": ctx, **args}, command=command)

        proxy.__name__ = proxy.__qualname__ = attribute
        return proxy

    async def call(
        self,
        plugin: Plugin,
        kind: str,
        name: str,
        kwargs: dict[str, Any],
        *,
        command: bool = False,
    ) -> Any:
        """Call hook or handler ``name`` in the plugin's process with ``kwargs``."""
        child = await self._ready(plugin)
        ctx = kwargs.pop("ctx", None)
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = child.loop.create_future()
        child.pending[ident] = future
        child.sessions[ident] = ctx
        if kind == "migrate":
            child.migrating.add(ident)
        try:
            child.send(
                {
                    "op": "call",
                    "id": ident,
                    "kind": kind,
                    "name": name,
                    "command": command,
                    "args": {k: to_wire(v) for k, v in kwargs.items()},
                    "ctx": _describe(ctx),
                }
            )
            answer = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            # Not a TimeoutError: the guard would take it for its own budget's.
            reason = f"{name} did not answer within {self.timeout:g} s"
            child.kill(reason)
            raise ProcessFailure(f"{reason}; its process was stopped") from None
        except asyncio.CancelledError:
            child.kill(f"{name} overran its time budget")
            raise
        except (BrokenPipeError, OSError) as exc:
            child.kill()
            raise ProcessFailure(f"its process is gone ({exc})") from None
        finally:
            child.pending.pop(ident, None)
            child.sessions.pop(ident, None)
            child.migrating.discard(ident)
        if answer.get("ok"):
            self._succeeded(plugin.name)
            return from_wire(answer.get("value"))
        if answer.get("fatal") == "memory":
            reason = describe_end(70, self.limits)
            child.kill(reason)
            raise ProcessFailure(reason)
        error = answer.get("error")
        if (
            isinstance(error, dict)
            and error.get("trace")
            and error.get("type")
            not in (
                "CommandError",
                "UsageError",
                "PermissionDenied",
            )
        ):
            log.debug("plugin %s: %s failed in its process:\n%s", plugin.name, name, error["trace"])
        raise error_from_wire(error, remote=_remote)

    # -- the child's requests ----------------------------------------------------------------
    def serve(self, child: Child, message: dict[str, Any]) -> None:
        """A request of the child, on the loop: answered at once when the service is
        synchronous (store, scheduler, approvals, audit), from a task when it awaits
        (Kubernetes, ``send``, ``ask``, notifications)."""
        ident = message.get("id")
        try:
            value = self._serve(child, message)
        except Exception as exc:
            self._answer(child, ident, message, error=exc)
            return
        if inspect.isawaitable(value):
            task = asyncio.ensure_future(self._finish(child, ident, message, value))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        else:
            self._answer(child, ident, message, value)

    async def _finish(self, child: Child, ident: Any, message: dict[str, Any], work: Any) -> None:
        try:
            value = await work
        except Exception as exc:
            self._answer(child, ident, message, error=exc)
        else:
            self._answer(child, ident, message, value)

    def _answer(
        self,
        child: Child,
        ident: Any,
        message: dict[str, Any],
        value: Any = None,
        *,
        error: Exception | None = None,
    ) -> None:
        answer: dict[str, Any]
        if error is None:
            answer = {"op": "result", "id": ident, "ok": True, "value": to_wire(value)}
        elif isinstance(error, ClusterCordError):
            answer = {"op": "result", "id": ident, "ok": False, "error": error_to_wire(error)}
        else:
            log.warning(
                "plugin %s: request %s failed",
                child.name,
                message.get("method"),
                exc_info=error,
            )
            wire = {"type": "KernelError", "message": f"{type(error).__name__}: {error}"}
            answer = {"op": "result", "id": ident, "ok": False, "error": wire}
        if child.alive:
            with contextlib.suppress(OSError):
                child.send(answer)

    def _serve(self, child: Child, message: dict[str, Any]) -> Any:
        """The value of the request, or an awaitable of it."""
        plugin_ctx: PluginContext | None = child.plugin.context
        if plugin_ctx is None:
            raise CommandError(f"plugin {child.name} is not active")
        method = str(message.get("method", ""))
        raw_args, raw_kwargs = message.get("args") or [], message.get("kwargs") or {}
        if not isinstance(raw_args, list) or not isinstance(raw_kwargs, dict):
            raise CommandError(f"malformed request {method}")
        args = from_wire(raw_args)
        kwargs = {str(k): from_wire(v) for k, v in raw_kwargs.items()}
        call = message.get("call")
        session = child.sessions.get(call) if isinstance(call, int) else None
        if method in ("send", "ask"):
            if not isinstance(session, CommandContext):
                raise CommandError(f"ctx.{method} needs a command in progress")
            if method == "send":
                reply = args[0] if args else None
                if not isinstance(reply, Reply):
                    raise CommandError("ctx.send takes a Reply")
                return session.send(reply)
            confirmation = args[0] if args else None
            if not isinstance(confirmation, Confirmation):
                raise CommandError("ctx.confirm takes a prompt")
            return session.confirm(confirmation.prompt, danger=confirmation.danger)
        service, _, name = method.partition(".")
        if name in _OWN.get(service, frozenset()):
            return self._serve_own(child, plugin_ctx, session, call, service, name, args, kwargs)
        if name not in _SERVED.get(service, frozenset()):
            raise CommandError(f"{method} is not a service an isolated plugin can call")
        target: Any
        if service == "kube-user":
            if not isinstance(session, CommandContext):
                raise CommandError("acting for a user needs a command in progress")
            target = session.kubernetes
        elif service == "kube":
            target = plugin_ctx.kubernetes
            if target is None:
                raise CommandError(f"plugin {child.name} has no Kubernetes service")
        else:
            target = getattr(plugin_ctx, service, None)
            if target is None:
                raise CommandError(f"plugin {child.name} has no {service} service")
        function = getattr(target, name)
        try:
            inspect.signature(function).bind(*args, **kwargs)
        except TypeError as exc:
            raise CommandError(f"{method}: {exc}") from None
        if name == "exec":
            return self._hold(child, function(*args, **kwargs), "session")
        if service == "store":
            try:
                return function(*args, **kwargs)
            except sqlite3.Error as exc:  # its SQL: an answer, not a kernel failure
                raise CommandError(f"{method}: {exc}") from None
        return function(*args, **kwargs)

    async def _hold(self, child: Child, opening: Any, key: str, **more: Any) -> dict[str, Any]:
        """Open an exec session or a conversation and keep it for the process, by handle."""
        if len(child.handles) >= MAX_HANDLES:
            opening.close()  # the coroutine, never awaited
            raise CommandError(
                f"plugin {child.name} has {MAX_HANDLES} sessions open already: close some"
            )
        held = await opening
        if not child.alive:
            await _quietly(held.close())
            raise CommandError(f"plugin {child.name}'s process ended")
        handle = next(self._ids)
        child.handles[handle] = held
        return {key: handle, **{k: getter(held) for k, getter in more.items()}}

    def _handle(self, child: Child, args: list[Any], kind: type | tuple[type, ...]) -> Any:
        handle = args[0] if args else None
        held = child.handles.get(handle) if isinstance(handle, int) else None
        if held is None or not isinstance(held, kind):
            raise CommandError("no such session (it was closed, or is not this plugin's)")
        return held

    def _serve_own(
        self,
        child: Child,
        plugin_ctx: PluginContext,
        session: Any,
        call: Any,
        service: str,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        """Tables, exec sessions, conversations, read-only capability services, migrations."""
        if service == "table":
            if not args or not isinstance(args[0], str):
                raise CommandError("table: a table name is needed")
            try:
                return _table(self.database, plugin_ctx.store, name, args[0], args[1:], kwargs)
            except (sqlite3.Error, ValueError) as exc:  # its SQL or its name: an answer
                raise CommandError(f"table {args[0]}: {exc}") from None
        if service == "migrations":
            if call not in child.migrating:
                raise CommandError("migration versions are recorded only while migrating")
            return self._migration(child.name, name, args)
        if service == "exec":
            held = self._handle(child, args, object)
            if not hasattr(held, "close_stdin"):
                raise CommandError("no such exec session")
            return _exec(child, held, args[0], name, args[1:])
        if service in ("conversations", "conversation"):
            capability = plugin_ctx.services.get("conversations")
            if capability is None:
                raise CommandError(f"plugin {child.name} was not granted conversations")
            if service == "conversations":
                if not isinstance(session, CommandContext):
                    raise CommandError("a conversation is opened for a command in progress")
                title = str(args[0]) if args else "conversation"
                private = len(args) > 1 and args[1] is True
                opening = capability.open(title, for_invocation=session.invocation, private=private)
                return self._hold(child, opening, "handle", id=lambda held: str(held.id))
            conversation = self._handle(child, args, object)
            if not hasattr(conversation, "receive"):
                raise CommandError("no such conversation")
            if name == "send":
                reply = args[1] if len(args) > 1 else None
                if not isinstance(reply, (Reply, str)):
                    raise CommandError("conversation.send takes a Reply or a string")
                return conversation.send(reply)
            if name == "receive":
                timeout = args[1] if len(args) > 1 else 60.0
                if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
                    raise CommandError("conversation.receive: timeout is a number of seconds")
                return conversation.receive(max(0.0, min(float(timeout), 3600.0)))
            child.handles.pop(args[0], None)
            return conversation.close()
        found = plugin_ctx.services.get(service)
        if found is None:
            raise CommandError(f"plugin {child.name} was not granted {service}")
        function = getattr(found, name)
        try:
            inspect.signature(function).bind(*args, **kwargs)
        except TypeError as exc:
            raise CommandError(f"{service}.{name}: {exc}") from None
        return function(*args, **kwargs)

    def _migration(self, plugin: str, name: str, args: list[Any]) -> int | None:
        database = self.database
        if database is None:
            raise CommandError("the kernel keeps no migration versions here")
        scope = f"plugin:{plugin}"
        row = database.conn.execute(
            "SELECT version FROM _migrations WHERE scope = ?", (scope,)
        ).fetchone()
        current = int(row[0]) if row else 0
        if name == "version":
            return current
        version = args[0] if args else None
        if not isinstance(version, int) or isinstance(version, bool) or version <= current:
            raise CommandError(f"migration version {version!r} is not above {current}")
        with database.transaction():
            database.conn.execute(
                "INSERT INTO _migrations(scope, version) VALUES (?, ?) "
                "ON CONFLICT(scope) DO UPDATE SET version = excluded.version",
                (scope, version),
            )
        return None


async def _exec(child: Child, session: Any, handle: int, name: str, args: list[Any]) -> Any:
    """One operation on an exec session the kernel holds for the process."""
    if name == "read":
        timeout = args[0] if args else None
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
        ):
            raise CommandError("read: timeout is a number of seconds")
        try:
            chunk = await session.read(timeout)
        except TimeoutError:
            return {"timeout": True, "exit_code": session.exit_code}
        return {"chunk": chunk, "exit_code": session.exit_code}
    if name == "write":
        data = args[0] if args else None
        if not isinstance(data, (str, bytes)):
            raise CommandError("write takes str or bytes")
        await session.write(data)
        return None
    if name == "close_stdin":
        await session.close_stdin()
        return None
    if name == "resize":
        cols, rows = [*args, 0, 0][:2]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (cols, rows)):
            raise CommandError("resize takes two integers")
        await session.resize(cols, rows)
        return None
    child.handles.pop(handle, None)
    await session.close()
    return {"exit_code": session.exit_code}


def _table(
    database: Any, store: Any, method: str, short: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """One operation on the plugin's table ``short`` (``<plugin>__<short>``: the store
    prefixes it, so no other table is reachable by name). Writes take keyword arguments of
    :data:`_TABLE_OPTIONS` only; SQL fragments run on a connection that sees the plugin's
    tables alone: read-only for reads (``PluginStore.query``), and for ``delete_where`` one
    whose authorizer allows reading and deleting in that one table."""
    table = store.table(short)  # ValueError for a name that is not letters, digits, _
    allowed = _TABLE_OPTIONS.get(method, frozenset())
    if method == "rows_where":
        allowed = frozenset({"order_by", "select", "limit", "offset"})
    refused = sorted(set(kwargs) - allowed)
    if refused:
        raise CommandError(f"table.{method}: unsupported arguments {', '.join(refused)}")
    if method == "name":
        return table.name
    if method == "exists":
        return table.exists()
    if method == "columns_dict":
        return {k: getattr(v, "__name__", str(v)) for k, v in table.columns_dict.items()}
    if method == "count":
        return table.count if table.exists() else 0
    if method in ("count_where", "rows_where"):
        if not table.exists():
            return 0 if method == "count_where" else []
        where = args[0] if args else None
        params = args[1] if len(args) > 1 else []
        select = "count(*) AS n" if method == "count_where" else kwargs.get("select") or "*"
        sql = f'SELECT {select} FROM "{short}"'
        if where:
            sql += f" WHERE {where}"
        if method == "rows_where":
            if kwargs.get("order_by"):
                sql += f" ORDER BY {kwargs['order_by']}"
            limit, offset = kwargs.get("limit"), kwargs.get("offset")
            if not all(v is None or (isinstance(v, int) and v >= 0) for v in (limit, offset)):
                raise CommandError("rows_where: limit and offset are counts")
            if limit is not None or offset is not None:
                sql += f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset or 0)}"
        rows = store.query(sql, params)
        return rows[0]["n"] if method == "count_where" else rows
    if method == "get":
        from sqlite_utils.db import NotFoundError

        try:
            return table.get(args[0] if args else None)
        except NotFoundError:
            return None
    if method == "delete_where":
        # Its own connection, under the lock that serialises the kernel's writers (a
        # transaction of the shared connection would keep it waiting).
        with database.lock if database is not None else contextlib.nullcontext():
            _delete_where(database, table.name, args)
        return None
    with store.transaction():
        if method == "create":
            table.create(args[0] if args else {}, **kwargs)
        elif method == "create_index":
            table.create_index(args[0] if args else [], **kwargs)
        elif method == "add_column":
            table.add_column(*args[:2], **kwargs)
        elif method == "insert_all":
            table.insert_all(args[0] if args else [], **kwargs)
        elif method == "upsert_all":
            table.upsert_all(args[0] if args else [], **kwargs)
        elif method == "update":
            table.update(args[0] if args else None, args[1] if len(args) > 1 else {}, **kwargs)
        else:
            table.delete(args[0] if args else None)
    return None


def _delete_where(database: Any, full: str, args: list[Any]) -> None:
    where = args[0] if args else None
    params = args[1] if len(args) > 1 else []
    if database is None:
        raise CommandError("delete_where is not available here")
    conn = database.connect()
    try:

        def authorize(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
            if action in (sqlite3.SQLITE_DELETE, sqlite3.SQLITE_READ):
                return sqlite3.SQLITE_OK if arg1 == full else sqlite3.SQLITE_DENY
            if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION):
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        conn.set_authorizer(authorize)
        sql = f'DELETE FROM "{full}"' + (f" WHERE {where}" if where else "")
        conn.execute(sql, params)
    except sqlite3.Error as exc:
        raise CommandError(f"delete_where: {exc}") from None
    finally:
        conn.close()


def _describe(ctx: Any) -> dict[str, Any] | None:
    """A context as the child rebuilds it (its services become proxies there)."""
    if isinstance(ctx, CommandContext):
        return {
            "type": "command",
            "config": to_wire(dict(ctx.config)),
            "invocation": to_wire(ctx.invocation),
            "options": to_wire(ctx.options),
            "services": sorted(PROXIED_SERVICES & set(ctx.plugin.services)),
            "sealer": getattr(ctx.plugin, "sealer", None) is not None,
        }
    if isinstance(ctx, PluginContext):
        return {
            "type": "plugin",
            "config": to_wire(dict(ctx.config)),
            "services": sorted(PROXIED_SERVICES & set(ctx.services)),
            "sealer": getattr(ctx, "sealer", None) is not None,
        }
    return None


def _own_tmp(tmp: Path) -> None:
    """``<home>/tmp`` as a real directory. The plugin owns its home: it may have replaced
    ``tmp`` with a link to any host path (``/etc``), which the kernel, often root, would
    then make (chown) the plugin's. Whatever is there that is not a directory goes."""
    if tmp.is_symlink() or (tmp.exists() and not tmp.is_dir()):
        tmp.unlink()
    tmp.mkdir(exist_ok=True)


def home_of(settings: Settings, name: str) -> Path:
    """The directory of an isolated plugin's process: its ``HOME``, ``TMPDIR`` and cwd."""
    return settings.data_dir / "plugins" / name
