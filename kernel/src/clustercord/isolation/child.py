"""The process of one isolated plugin: ``python -I -B -m clustercord.isolation.child``.

Started by :mod:`clustercord.isolation.host` with a scrubbed environment, in the plugin's own
directory (``<data dir>/plugins/<name>/``), its standard input and output the pipe to the
kernel. Before a line of the plugin runs, this module, which is kernel code:

1. moves the pipe off descriptors 0 and 1 (standard output then goes to standard error, so a
   plugin's ``print`` cannot corrupt the protocol) and asks to die with its parent;
2. reads the ``load`` message and sets its resource limits (``resource.setrlimit``: address
   space, CPU time, open files, no core files; processes too when it drops privileges);
3. reads every signed ``.py`` file of the plugin into memory, checking each one's sha256
   against the signature the kernel verified;
4. when the kernel runs as root and gave it a user (``nobody`` by default): keeps a directory
   descriptor of each ``sys.path`` entry (so the interpreter's own modules stay importable
   through ``/proc/self/fd``), then drops to that user for good (``setgroups``, ``setgid``,
   ``setuid``; checked by trying ``setuid(0)`` again), so ``RLIMIT_NPROC`` holds and files of
   the kernel's user (``secret.key``, signing keys, kubeconfigs, ``/proc/<kernel>/``) are
   closed to it;
5. installs the seccomp filter of :mod:`clustercord.isolation.seccomp` (ptrace, mount,
   namespaces, BPF, keyrings, modules ... fail with ``EPERM``);
6. imports the plugin through :class:`~clustercord.plugins.loader.VerifiedImports`, from the
   in-memory signed source, and answers ``ready`` with the hooks it implements.

Then it serves ``call`` messages: hooks and ``module:function`` handlers, with ``ctx`` a proxy
of the SDK's interfaces whose every method is a ``request`` to the kernel (which acts with the
plugin's own kernel-side context: permission checks never happen here). A ``MemoryError`` is
reported as a breach of the memory limit and ends the process.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextvars
import ctypes
import dataclasses
import functools
import hashlib
import importlib
import inspect
import itertools
import logging
import os
import resource
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clustercord.isolation import seccomp
from clustercord.isolation.protocol import (
    encode,
    error_from_wire,
    error_to_wire,
    from_wire,
    read_frame,
    to_wire,
    write_all,
)
from clustercord.plugins.calling import declared_arguments
from clustercord.plugins.loader import SignedSourceLoader, UnsignedCode, VerifiedImports
from clustercord_sdk import hookspecs
from clustercord_sdk.context import CommandContext, PluginContext
from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import Confirmation, Reply
from clustercord_sdk.services import Approval, Job

CURRENT_CALL: contextvars.ContextVar[int | None] = contextvars.ContextVar("call", default=None)
MEMORY_EXIT = 70
"""Exit status after a ``MemoryError``: the process hit its address-space limit."""

_HOOKS = {
    name
    for name in dir(hookspecs)
    if getattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec", None) is not None
}


def _kernel_error(name: str, message: str) -> Exception:
    return CommandError(f"the kernel could not serve the request ({name}: {message})")


class Channel:
    """The pipe to the kernel: frames written under a lock, requests answered by id."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._lock:
            write_all(self.wfd, data)

    def _start(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        ident = next(self._ids)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self._pending[ident] = future
        self.send(
            {
                "op": "request",
                "id": ident,
                "call": CURRENT_CALL.get(),
                "method": method,
                "args": to_wire(list(args)),
                "kwargs": {k: to_wire(v) for k, v in kwargs.items()},
            }
        )
        return future

    def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A service call the plugin makes synchronously (store, scheduler, ...)."""
        return self._answer(self._start(method, args, kwargs).result())

    async def arequest(self, method: str, *args: Any, **kwargs: Any) -> Any:
        future = self._start(method, args, kwargs)
        return self._answer(await asyncio.wrap_future(future))

    def resolve(self, message: dict[str, Any]) -> None:
        future = self._pending.pop(int(message.get("id", 0)), None)
        if future is not None:
            future.set_result(message)

    @staticmethod
    def _answer(message: dict[str, Any]) -> Any:
        if message.get("ok"):
            return from_wire(message.get("value"))
        raise error_from_wire(message.get("error"), remote=_kernel_error)


# -- the proxies behind ctx ---------------------------------------------------------------
class StoreProxy:
    """:class:`clustercord_sdk.services.Store`, each call served by the kernel's store of
    this plugin."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def get(self, key: str, default: Any = None) -> Any:
        return self._channel.request("store.get", key, default)

    def set(self, key: str, value: Any) -> None:
        self._channel.request("store.set", key, value)

    def delete(self, key: str) -> None:
        self._channel.request("store.delete", key)

    def keys(self, prefix: str = "") -> list[str]:
        return list(self._channel.request("store.keys", prefix))

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        plain = dict(params) if isinstance(params, Mapping) else list(params)
        return list(self._channel.request("store.query", sql, plain))

    def table(self, name: str) -> TableProxy:
        return TableProxy(self._channel, str(name))

    def transaction(self) -> Any:
        raise CommandError(
            "ctx.store.transaction() is not available to an isolated plugin: each table "
            "call is atomic on its own"
        )


_COLUMN_TYPES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bytes: "BLOB", bool: "INTEGER"}


def _column_type(value: Any) -> Any:
    """A column type as it crosses the pipe: Python types become SQLite's names."""
    if isinstance(value, type):
        return _COLUMN_TYPES.get(value, "TEXT")
    return value


class TableProxy:
    """``ctx.store.table(name)``: the plugin's table ``<plugin>__<name>``, each operation a
    request the kernel serves on that table only (the subset of ``sqlite_utils.db.Table``
    plugins use: create, insert, upsert, update, get, rows, rows_where, count, delete ...).
    SQL fragments (``where``, ``select``, ``order_by``) run on the kernel's read-only
    connection that sees this plugin's tables alone."""

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel = channel
        self._name = name

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.request(f"table.{method}", self._name, *args, **kwargs)

    @property
    def name(self) -> str:
        return str(self._call("name"))

    def exists(self) -> bool:
        return bool(self._call("exists"))

    @property
    def count(self) -> int:
        return int(self._call("count"))

    def count_where(self, where: str | None = None, where_args: Any = None) -> int:
        return int(self._call("count_where", where, _params(where_args)))

    @property
    def columns_dict(self) -> dict[str, str]:
        return dict(self._call("columns_dict"))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.rows_where()

    def rows_where(
        self,
        where: str | None = None,
        where_args: Any = None,
        order_by: str | None = None,
        select: str = "*",
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(
            self._call(
                "rows_where",
                where,
                _params(where_args),
                order_by=order_by,
                select=select,
                limit=limit,
                offset=offset,
            )
        )

    def get(self, pk_values: Any) -> dict[str, Any]:
        found = self._call("get", pk_values)
        if found is None:
            from sqlite_utils.db import NotFoundError

            raise NotFoundError(f"no row {pk_values!r} in {self._name}")
        return dict(found)

    def create(self, columns: Mapping[str, Any], **kwargs: Any) -> TableProxy:
        self._call("create", {k: _column_type(v) for k, v in columns.items()}, **kwargs)
        return self

    def create_index(self, columns: Any, **kwargs: Any) -> TableProxy:
        self._call("create_index", list(columns), **kwargs)
        return self

    def add_column(self, name: str, col_type: Any = None, **kwargs: Any) -> TableProxy:
        self._call("add_column", name, _column_type(col_type), **kwargs)
        return self

    def insert(self, record: Mapping[str, Any], **kwargs: Any) -> TableProxy:
        self._call("insert_all", [dict(record)], **kwargs)
        return self

    def insert_all(self, records: Any, **kwargs: Any) -> TableProxy:
        self._call("insert_all", [dict(r) for r in records], **kwargs)
        return self

    def upsert(self, record: Mapping[str, Any], **kwargs: Any) -> TableProxy:
        self._call("upsert_all", [dict(record)], **kwargs)
        return self

    def upsert_all(self, records: Any, **kwargs: Any) -> TableProxy:
        self._call("upsert_all", [dict(r) for r in records], **kwargs)
        return self

    def update(
        self, pk_values: Any, updates: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> TableProxy:
        self._call("update", pk_values, dict(updates or {}), **kwargs)
        return self

    def delete(self, pk_values: Any) -> TableProxy:
        self._call("delete", pk_values)
        return self

    def delete_where(self, where: str | None = None, where_args: Any = None) -> TableProxy:
        self._call("delete_where", where, _params(where_args))
        return self


def _params(params: Any) -> Any:
    if params is None:
        return []
    return dict(params) if isinstance(params, Mapping) else list(params)


class KubernetesProxy:
    """:class:`clustercord_sdk.kubernetes.Kubernetes`: the kernel performs each call as the
    plugin's own identity (and, acting for a command, checks the invoking user too)."""

    def __init__(self, channel: Channel, *, acting: bool = False) -> None:
        self._channel = channel
        self._service = "kube-user" if acting else "kube"

    def acting_for(self, invocation: Any) -> KubernetesProxy:
        # The kernel acts for the invocation of the call in flight, never for one the
        # plugin made up: only which call this is travels.
        return KubernetesProxy(self._channel, acting=True)

    def clusters(self) -> list[Any]:
        return list(self._channel.request(f"{self._service}.clusters"))

    def target(self, cluster: str | None = None, namespace: str | None = None) -> tuple[str, str]:
        found = self._channel.request(f"{self._service}.target", cluster, namespace)
        return (str(found[0]), str(found[1]))

    async def exec(self, name: str, command: Any, **kwargs: Any) -> ExecProxy:
        """``pods/exec``: the kernel opens the session as the plugin's identity (checked as
        in-process); its input and output travel over the pipe."""
        plain = command if isinstance(command, str) else list(command)
        opened = await self._channel.arequest(f"{self._service}.exec", name, plain, **kwargs)
        return ExecProxy(self._channel, int(opened["session"]))

    def __getattr__(self, name: str) -> Any:
        if name not in (
            "version",
            "check",
            "get",
            "list",
            "create",
            "patch",
            "apply",
            "delete",
            "logs",
            "narrow",
        ):
            raise AttributeError(name)
        method = f"{self._service}.{name}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._channel.arequest(method, *args, **kwargs)

        call.__name__ = name
        return call


class ExecProxy:
    """:class:`clustercord_sdk.kubernetes.ExecSession` whose WebSocket is the kernel's."""

    def __init__(self, channel: Channel, session: int) -> None:
        self._channel = channel
        self._session = session
        self._exit_code: int | None = None
        self._closed = False

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    async def read(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        answer = await self._channel.arequest("exec.read", self._session, timeout)
        if answer.get("exit_code") is not None:
            self._exit_code = int(answer["exit_code"])
        if answer.get("timeout"):
            raise TimeoutError(f"no output within {timeout} s")
        chunk = answer.get("chunk")
        if chunk is None:
            return None
        return (str(chunk[0]), bytes(chunk[1]))

    def __aiter__(self) -> Any:
        return self._chunks()

    async def _chunks(self) -> Any:
        while (chunk := await self.read()) is not None:
            yield chunk

    async def write(self, data: str | bytes) -> None:
        await self._channel.arequest("exec.write", self._session, data)

    async def close_stdin(self) -> None:
        await self._channel.arequest("exec.close_stdin", self._session)

    async def resize(self, cols: int, rows: int) -> None:
        await self._channel.arequest("exec.resize", self._session, int(cols), int(rows))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        answer = await self._channel.arequest("exec.close", self._session)
        if isinstance(answer, dict) and answer.get("exit_code") is not None:
            self._exit_code = int(answer["exit_code"])

    async def __aenter__(self) -> ExecProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ConversationProxy:
    """:class:`clustercord_sdk.services.Conversation` held by the kernel."""

    def __init__(self, channel: Channel, handle: int, ident: str) -> None:
        self._channel = channel
        self._handle = handle
        self._id = ident

    @property
    def id(self) -> str:
        return self._id

    async def send(self, reply: Reply | str) -> str:
        return str(await self._channel.arequest("conversation.send", self._handle, reply))

    async def receive(self, timeout: float = 60.0) -> Any:
        return await self._channel.arequest("conversation.receive", self._handle, timeout)

    async def close(self) -> None:
        await self._channel.arequest("conversation.close", self._handle)


class ConversationsProxy:
    """The ``conversations`` capability: opened where the command in flight came from (the
    kernel takes the invocation of the call, never one the plugin describes)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def open(
        self, title: str, *, for_invocation: Any = None, private: bool = False
    ) -> ConversationProxy:
        opened = await self._channel.arequest("conversations.open", str(title), bool(private))
        return ConversationProxy(self._channel, int(opened["handle"]), str(opened["id"]))


class _Identity:
    def __init__(self, user: str, groups: Any) -> None:
        self.user = user
        self.groups = tuple(groups)

    def __repr__(self) -> str:
        return f"KubernetesIdentity(user={self.user!r}, groups={self.groups!r})"


class IdentityMapProxy:
    """The ``identity-map`` capability, read only: who a Discord user is in Kubernetes."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def resolve(self, user_id: str, roles: Any = ()) -> _Identity:
        found = self._channel.request("identity-map.resolve", str(user_id), list(roles))
        return _Identity(str(found["user"]), found["groups"])

    def discord_ids_of(self, kubernetes_user: str) -> list[str]:
        return list(self._channel.request("identity-map.discord_ids_of", str(kubernetes_user)))


class ClusterRegistryProxy:
    """The ``cluster-registry`` capability, read only (list, defaults, problems); adding,
    removing or choosing clusters needs the in-process tier."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def list(self) -> builtins.list[dict[str, Any]]:
        return builtins.list(self._channel.request("cluster-registry.list"))

    def defaults(self, user: str) -> tuple[str | None, str | None]:
        found = self._channel.request("cluster-registry.defaults", str(user))
        return (found[0], found[1])

    def problems(self) -> builtins.list[str]:
        return builtins.list(self._channel.request("cluster-registry.problems"))

    def __getattr__(self, name: str) -> Any:
        if name in ("add", "remove", "use"):
            raise CommandError(
                f"cluster-registry {name} is not available to an isolated plugin: it needs "
                "the in-process tier (an admin's in-process grant)"
            )
        raise AttributeError(name)


SERVICES: dict[str, Callable[[Channel], Any]] = {
    "conversations": ConversationsProxy,
    "identity-map": IdentityMapProxy,
    "cluster-registry": ClusterRegistryProxy,
}
"""Capability services an isolated plugin gets (as proxies), by capability."""


class SchedulerProxy:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def every(self, interval: str, handler: str, **kwargs: Any) -> Job:
        return self._channel.request("scheduler.every", interval, handler, **kwargs)  # type: ignore[no-any-return]

    def cron(self, expression: str, handler: str, **kwargs: Any) -> Job:
        return self._channel.request("scheduler.cron", expression, handler, **kwargs)  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> bool:
        return bool(self._channel.request("scheduler.cancel", job_id))

    def jobs(self) -> list[Job]:
        return list(self._channel.request("scheduler.jobs"))


class ApprovalsProxy:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def request(self, action: str, summary: str, **kwargs: Any) -> Approval:
        return self._channel.request("approvals.request", action, summary, **kwargs)  # type: ignore[no-any-return]

    def get(self, approval_id: str) -> Approval | None:
        return self._channel.request("approvals.get", approval_id)  # type: ignore[no-any-return]

    def pending(self) -> list[Approval]:
        return list(self._channel.request("approvals.pending"))


class SealerProxy:
    """``ctx.sealer``: sealed and opened by the kernel with the plugin's own key (the key
    never enters the process)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def seal(self, data: bytes) -> bytes:
        return bytes(self._channel.request("sealer.seal", bytes(data)))

    def open(self, token: bytes) -> bytes:
        return bytes(self._channel.request("sealer.open", bytes(token)))


class AuditProxy:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def record(self, action: str, **kwargs: Any) -> None:
        self._channel.request("audit.record", action, **kwargs)


class NotifierProxy:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def notify(self, reply: Reply, **kwargs: Any) -> None:
        await self._channel.arequest("notifier.notify", reply, **kwargs)


class _KernelLog(logging.Handler):
    """Log records of the plugin go to the kernel's ``clustercord.plugin.<name>`` logger."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._channel.send(
                {"op": "log", "level": record.levelno, "message": self.format(record)}
            )
        except Exception:  # the kernel is gone: nothing to log to
            pass


# -- the plugin -----------------------------------------------------------------------------
class _MemoryLoader(SignedSourceLoader):
    """Compiles the source read (and checked) before privileges were dropped."""

    def __init__(self, fullname: str, path: str, sha256: str, label: str, source: bytes) -> None:
        super().__init__(fullname, path, sha256, label)
        self._source = source

    def get_data(self, path: str) -> bytes:
        if path == self.path:
            return self._source
        raise OSError(f"{path}: not readable from an isolated plugin's loader")


class MemoryImports(VerifiedImports):
    """:class:`VerifiedImports` over sources held in memory: the plugin's folder need not
    be readable once the process runs as an unprivileged user."""

    def __init__(self, sources: Mapping[str, bytes]) -> None:
        super().__init__()
        self._sources = dict(sources)

    def _spec(self, fullname: str, root: str, parts: tuple[str, ...]) -> Any:
        spec = super()._spec(fullname, root, parts)
        loader = spec.loader
        assert isinstance(loader, SignedSourceLoader)
        folder = self._packages[root][0]
        key = Path(loader.path).relative_to(folder).as_posix()
        spec.loader = _MemoryLoader(
            fullname, loader.path, loader.sha256, loader.label, self._sources[key]
        )
        return spec


def read_sources(folder: Path, files: Mapping[str, str]) -> dict[str, bytes]:
    """Every signed ``.py`` file of the plugin, checked against its sha256."""
    sources = {}
    for relative, sha256 in files.items():
        if not relative.endswith(".py"):
            continue
        data = (folder / relative).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise UnsignedCode(f"plugin file {relative} changed after the plugin was verified")
        sources[relative] = data
    return sources


def set_limits(limits: Mapping[str, Any], *, processes: bool) -> None:
    def limit(which: int, value: int) -> None:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value if which != resource.RLIMIT_CPU else hard))

    limit(resource.RLIMIT_AS, int(limits["memory_mb"]) * 1024 * 1024)
    limit(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    limit(resource.RLIMIT_CORE, 0)
    if processes:
        limit(resource.RLIMIT_NPROC, int(limits["processes"]))


def pin_sys_path() -> None:
    """Keep ``sys.path`` importable after the drop: each directory by a descriptor opened
    now (``/proc/self/fd/N``), so ancestors closed to the new user (``/root``) do not matter."""
    pins: dict[str, str] = {}
    for entry in sys.path:
        if entry and entry not in pins and os.path.isdir(entry):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            pins[entry] = f"/proc/self/fd/{fd}"

    def pinned(path: str) -> str:
        for entry, pin in pins.items():
            if path == entry or path.startswith(entry.rstrip("/") + "/"):
                return pin + path[len(entry.rstrip("/")) :]
        return path

    sys.path[:] = [pinned(entry) for entry in sys.path]
    # Packages imported already look for their submodules in their own __path__.
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [pinned(p) for p in search]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("privileges could not be dropped")


def _no_stop_iteration(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """A sync handler's ``StopIteration`` (a bare ``next()``) as a ``RuntimeError``: raised
    into the executor's future as it is, it would never reach the call, which would hang
    until its timeout (as PEP 479 does for generators)."""
    try:
        return function(**kwargs)
    except StopIteration as exc:
        raise RuntimeError(f"StopIteration escaped the handler: {exc!r}") from None


def die_with_parent(*, wrapped: bool = False) -> None:
    """SIGKILL when the parent ends; gone at once if it ended already. ``wrapped``: the
    parent is bwrap's init (pid 1 of the plugin's pid namespace), which takes the whole
    namespace with it when the kernel's bwrap ends (``--die-with-parent``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if not wrapped and os.getppid() == 1:
        os._exit(0)


def _sealer(channel: Channel, described: Mapping[str, Any]) -> dict[str, Any]:
    """``sealer=`` when the kernel gives the plugin one (and the SDK has the field)."""
    names = {f.name for f in dataclasses.fields(PluginContext)}
    if described.get("sealer") and "sealer" in names:
        return {"sealer": SealerProxy(channel)}
    return {}


class Plugin:
    """The imported plugin and how to call it."""

    def __init__(self, name: str, module: types.ModuleType, channel: Channel) -> None:
        self.name = name
        self.module = module
        self.channel = channel
        self.hooks: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}
        self.options: dict[str, dict[str, bool]] = {}
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.executor = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="handler")
        self.log = logging.getLogger(f"clustercord.plugin.{name}")
        self.log.handlers[:] = [_KernelLog(channel)]
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        marker = f"{hookspecs.PROJECT}_impl"
        for attribute in dir(module):
            function = getattr(module, attribute, None)
            opts = getattr(function, marker, None) if callable(function) else None
            if function is None or not isinstance(opts, dict):
                continue
            hook = opts.get("specname") or attribute
            if hook not in _HOOKS:
                raise ImportError(f"implements unknown hooks: {hook}")
            if opts.get("hookwrapper") or opts.get("wrapper"):
                raise ImportError(f"{hook}: hook wrappers are not available to isolated plugins")
            params = inspect.signature(function).parameters.values()
            names = tuple(
                p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            )
            self.hooks[hook] = (function, names)
            self.options[hook] = {
                "tryfirst": bool(opts.get("tryfirst")),
                "trylast": bool(opts.get("trylast")),
            }

    def context(self, described: Mapping[str, Any] | None) -> Any:
        if described is None:
            return None
        channel = self.channel
        plugin = PluginContext(
            plugin=self.name,
            config=dict(from_wire(described.get("config") or {})),
            store=StoreProxy(channel),
            scheduler=SchedulerProxy(channel),
            approvals=ApprovalsProxy(channel),
            audit=AuditProxy(channel),
            notifier=NotifierProxy(channel),
            log=self.log,
            kubernetes=KubernetesProxy(channel),
            **_sealer(channel, described),
            services={
                name: SERVICES[name](channel)
                for name in described.get("services") or ()
                if name in SERVICES
            },
        )
        if described.get("type") != "command":
            return plugin

        async def send(reply: Reply) -> None:
            await channel.arequest("send", reply)

        async def ask(confirmation: Confirmation) -> bool:
            return bool(await channel.arequest("ask", confirmation))

        return CommandContext(
            invocation=from_wire(described["invocation"]),
            options=dict(from_wire(described.get("options") or {})),
            plugin=plugin,
            _send=send,
            _ask=ask,
        )

    def handler(self, spec: str) -> Callable[..., Any]:
        found = self.handlers.get(spec)
        if found is None:
            module_name, _, attribute = spec.partition(":")
            module = importlib.import_module(f"{self.module.__name__}.{module_name}")
            found = getattr(module, attribute, None)
            if not callable(found):
                raise ImportError(f"handler {spec} is not a function")
            self.handlers[spec] = found
        return found

    async def invoke(self, message: Mapping[str, Any]) -> Any:
        ctx = self.context(message.get("ctx"))
        args = {k: from_wire(v) for k, v in (message.get("args") or {}).items()}
        if ctx is not None:
            args["ctx"] = ctx
        name = str(message.get("name"))
        if message.get("kind") == "migrate":
            return await self.migrate(ctx)
        if message.get("kind") == "hook":
            function, names = self.hooks[name]
            kwargs = {k: args[k] for k in names if k in args}
        else:
            function, kwargs = declared_arguments(
                self.handler(name), args, positional="ctx" if message.get("command") else None
            )
        if inspect.isasyncgenfunction(function):
            last: Any = None
            async for item in function(**kwargs):
                if last is not None and isinstance(ctx, CommandContext):
                    await ctx.send(last if isinstance(last, Reply) else Reply(text=str(last)))
                last = item
            return last
        if inspect.iscoroutinefunction(function):
            return await function(**kwargs)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self.executor, functools.partial(context.run, _no_stop_iteration, function, kwargs)
        )

    async def migrate(self, ctx: Any) -> list[int]:
        """``storage_migrations``, run here against the proxied store: the kernel says which
        version is recorded, each step above it runs in order and the kernel records its
        version once it has succeeded (a failed step is not recorded: it runs again at the
        next activation, so steps are written to be re-runnable)."""
        found = self.hooks.get("storage_migrations")
        if found is None:
            return []
        function, names = found
        loop = asyncio.get_running_loop()
        kwargs = {"ctx": ctx} if "ctx" in names else {}
        steps = function(**kwargs)
        if inspect.isawaitable(steps):
            steps = await steps
        pairs = sorted(((int(v), fn) for v, fn in steps or ()), key=lambda pair: pair[0])
        current = int(await self.channel.arequest("migrations.version"))
        applied = []
        for version, step in pairs:
            if version <= current:
                continue
            context = contextvars.copy_context()
            await loop.run_in_executor(
                self.executor, functools.partial(context.run, step, ctx.store)
            )
            await self.channel.arequest("migrations.record", version)
            applied.append(version)
            current = version
        return applied


async def serve(channel: Channel, plugin: Plugin) -> None:
    loop = asyncio.get_running_loop()
    tasks: dict[int, asyncio.Task[None]] = {}
    ended = asyncio.Event()

    async def run(message: dict[str, Any]) -> None:
        ident = int(message["id"])
        CURRENT_CALL.set(ident)
        answer: dict[str, Any]
        try:
            value = await plugin.invoke(message)
            answer = {"op": "done", "id": ident, "ok": True, "value": to_wire(value)}
        except MemoryError:
            answer = {"op": "done", "id": ident, "ok": False, "fatal": "memory"}
            answer["error"] = {"type": "MemoryError", "message": "memory limit reached"}
            channel.send(answer)
            os._exit(MEMORY_EXIT)
        except Exception as exc:
            error = error_to_wire(exc)
            error["trace"] = "".join(traceback.format_exception(exc))[-4000:]
            answer = {"op": "done", "id": ident, "ok": False, "error": error}
        finally:
            tasks.pop(ident, None)
        channel.send(answer)

    def start(message: dict[str, Any]) -> None:
        tasks[int(message["id"])] = loop.create_task(run(message))

    def cancel(message: dict[str, Any]) -> None:
        task = tasks.get(int(message.get("id", 0)))
        if task is not None:
            task.cancel()

    def read() -> None:
        try:
            while True:
                message = read_frame(channel.rfd)
                if message is None:
                    break
                op = message.get("op")
                if op == "result":
                    channel.resolve(message)
                elif op == "call":
                    loop.call_soon_threadsafe(start, message)
                elif op == "cancel":
                    loop.call_soon_threadsafe(cancel, message)
        finally:
            os._exit(0)  # the kernel closed the pipe (or went away): nothing left to serve

    threading.Thread(target=read, name="kernel-pipe", daemon=True).start()
    await ended.wait()


def main() -> int:
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    die_with_parent(wrapped="--wrapped" in sys.argv[1:])
    channel = Channel(rfd, wfd)
    load = read_frame(rfd)
    if load is None or load.get("op") != "load":
        return 2
    try:
        user = load.get("user")
        set_limits(load["limits"], processes=user is not None)
        folder = Path(load["folder"])
        files = dict(load["files"])
        sources = read_sources(folder, files)
        # The plugin's own dependencies (a marketplace plugin's, installed beside it); the
        # plugin's package itself is still imported from its verified sources only.
        sys.path.extend(p for p in load.get("paths", ()) if p not in sys.path)
        if user is not None:
            pin_sys_path()
            drop_privileges(int(user["uid"]), int(user["gid"]))
        if load.get("seccomp"):
            seccomp.install()  # for good, every thread, before a line of the plugin runs
        threading.stack_size(4 * 1024 * 1024)
        finder = MemoryImports(sources).install()
        module = finder.import_package(str(load["module"]), folder, files)
        plugin = Plugin(str(load["name"]), module, channel)
    except MemoryError:
        channel.send({"op": "failed", "error": "its memory limit was reached while importing"})
        return MEMORY_EXIT
    except BaseException as exc:
        channel.send({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    channel.send(
        {
            "op": "ready",
            "pid": os.getpid(),
            "uid": os.getuid(),
            "hooks": plugin.options,
        }
    )
    asyncio.run(serve(channel, plugin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
