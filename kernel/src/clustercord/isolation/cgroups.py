"""A control group per isolated plugin process: resident memory and number of tasks.

Where the kernel may create cgroups (cgroup v2 with the ``memory``/``pids`` controllers
delegated to its own group, or cgroup v1 hierarchies of those controllers mounted writable),
each process of an isolated plugin runs in a group of its own, made *under the kernel's own
group* (``<kernel's group>/clustercord-<kernel pid>/<plugin>-<n>``), so every limit above the
kernel still binds its plugins: ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1; and
``memory.memsw.limit_in_bytes`` where swap is accounted) from ``isolation_memory_mb``, and
``pids.max`` from the process limit. A process that goes beyond its memory is killed by the
kernel's OOM killer within its group alone; :meth:`Group.oom_killed` tells the host so.

The process joins its group before ``exec`` (a descriptor of ``cgroup.procs`` written from the
forked child), so bwrap and everything under it are inside from the first instruction.
Where no controller is available, :class:`Cgroups` says why once (``reason``) and nothing
fails. Groups are removed when their process ends, and at start the empty groups of kernels
that died without removing theirs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("clustercord.isolation")

PREFIX = "clustercord-"
_SERIAL = itertools.count(1)
"""Numbers groups across every kernel of this process (tests run several, one after the
other, under the same ``clustercord-<pid>``): a group left behind never blocks a new one."""
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Controller:
    """Where one controller lives for this kernel: ``base`` is the kernel's own group."""

    name: str  # memory | pids
    version: int  # 1 or 2
    base: Path


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """``(mount point, root, fstype, super options)`` of each cgroup file system."""
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if " - " not in line:
                continue
            tail = line.split(" - ", 1)[1].split()
            fstype = tail[0]
            if fstype in ("cgroup", "cgroup2"):
                options = set(tail[2].split(",")) if len(tail) > 2 else set()
                found.append((_unescape(fields[4]), fields[3], fstype, options))
    return found


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _own_groups() -> dict[str, str]:
    """This process's group by hierarchy: ``{"": path (v2), "memory": path, ...}``."""
    groups: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as handle:
        for line in handle:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for name in parts[1].split(",") if parts[1] else [""]:
                    groups[name] = parts[2]
    return groups


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def discover() -> tuple[dict[str, Controller], str]:
    """The controllers this kernel may use, and a line saying what it found."""
    mounts, own = _mounts(), _own_groups()
    controllers: dict[str, Controller] = {}
    for point, root, fstype, _options in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = Path(point) / _relative(own[""], root)
        if _writable(base):
            for name in sorted(_delegated(base)):
                controllers.setdefault(name, Controller(name, 2, base))
    for point, root, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for name in ("memory", "pids"):
            if name in options and name not in controllers and name in own:
                base = Path(point) / _relative(own[name], root)
                if _writable(base):
                    controllers[name] = Controller(name, 1, base)
    if not controllers:
        return {}, "no cgroup controller available (memory bounded by address space only)"
    missing = sorted({"memory", "pids"} - set(controllers))
    line = ", ".join(f"{c.name} (cgroup v{c.version})" for c in controllers.values())
    if missing:
        line += f"; not available: {', '.join(missing)}"
    return controllers, f"cgroups: {line}"


def _delegated(base: Path) -> set[str]:
    """Of ``memory`` and ``pids``, what groups made under ``base`` can use (cgroup v2): what
    ``base`` enables for its children, enabling it if it may (v2 refuses that to a group
    that holds processes, unless an administrator delegated a subtree)."""
    wanted = {"memory", "pids"}
    try:
        available = set((base / "cgroup.controllers").read_text().split()) & wanted
        enabled = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()
    for name in sorted(available - enabled):
        with contextlib.suppress(OSError):
            (base / "cgroup.subtree_control").write_text(f"+{name}")
    with contextlib.suppress(OSError):
        enabled = set((base / "cgroup.subtree_control").read_text().split())
    return available & enabled


def _relative(path: str, root: str) -> str:
    if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root) :]
    return path.lstrip("/")


@dataclass
class Group:
    """The groups of one process (one directory per controller)."""

    directories: list[tuple[Controller, Path]] = field(default_factory=list)
    memory_bytes: int = 0

    def join_descriptors(self) -> list[int]:
        """Descriptors of each ``cgroup.procs``, opened now (before the fork): the child
        writes ``0`` (itself) to each before ``exec``."""
        paths = dict.fromkeys(path for _, path in self.directories)  # v2: one for all
        return [os.open(path / "cgroup.procs", os.O_WRONLY) for path in paths]

    def oom_killed(self) -> bool:
        """Whether the OOM killer killed a process of this group (it went beyond its
        memory)."""
        for controller, path in self.directories:
            if controller.name != "memory":
                continue
            with contextlib.suppress(OSError, ValueError):
                if controller.version == 2:
                    events = (path / "memory.events").read_text()
                    return _counter(events, "oom_kill") > 0
                control = (path / "memory.oom_control").read_text()
                if "oom_kill " in control:
                    return _counter(control, "oom_kill") > 0
                return int((path / "memory.failcnt").read_text()) > 0
        return False

    def remove(self, wait: float = 0.0) -> None:
        """Remove the groups; ``wait``: seconds to let killed tasks leave them first."""
        deadline = time.monotonic() + wait
        for _, path in self.directories:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        log.debug("cgroup %s not removed (tasks left)", path)
                        break
                    time.sleep(0.02)
        self.directories = []


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def join(descriptors: list[int]) -> None:
    """In the forked child, before ``exec``: move itself into its groups."""
    for fd in descriptors:
        os.write(fd, b"0")


class Cgroups:
    """Groups for the isolated processes of one kernel (``available`` false: none)."""

    def __init__(self, memory_mb: int, processes: int) -> None:
        self.memory_mb = memory_mb
        self.processes = processes
        self.controllers, self.reason = discover()
        self._roots: dict[str, Path] = {}
        if self.controllers:
            self._remove_stale()
        else:
            log.warning("isolated plugins: %s", self.reason)

    @property
    def available(self) -> bool:
        return bool(self.controllers)

    @property
    def memory(self) -> bool:
        return "memory" in self.controllers

    def _root(self, base: Path, version: int) -> Path:
        """``clustercord-<pid>`` under the kernel's group ``base`` (made again if another
        kernel of this process removed it when it closed). In v2, one directory serves every
        controller, enabled for its children at once."""
        root = base / f"{PREFIX}{os.getpid()}"
        if not root.is_dir():
            root.mkdir(exist_ok=True)
            if version == 2:
                names = sorted(c.name for c in self.controllers.values() if c.base == base)
                with contextlib.suppress(OSError):
                    (root / "cgroup.subtree_control").write_text(" ".join(f"+{n}" for n in names))
        self._roots[str(root)] = root
        return root

    def create(self, plugin: str) -> Group:
        """The groups of a new process of ``plugin``, limits set; an empty group where it
        cannot be made (logged: the process runs without it)."""
        group = Group(memory_bytes=self.memory_mb * 1024 * 1024)
        name = f"{_SAFE.sub('_', plugin)[:60]}-{next(_SERIAL)}"
        made: dict[Path, Path] = {}
        for controller in self.controllers.values():
            try:
                path = made.get(controller.base)
                if path is None:
                    path = self._root(controller.base, controller.version) / name
                    path.mkdir()
                    made[controller.base] = path
                group.directories.append((controller, path))
                self._limit(controller, path, group.memory_bytes)
            except OSError as exc:
                log.warning(
                    "plugin %s: no %s cgroup for its process: %s", plugin, controller.name, exc
                )
        return group

    def _limit(self, controller: Controller, path: Path, memory: int) -> None:
        if controller.name == "pids":
            (path / "pids.max").write_text(str(self.processes))
        elif controller.version == 2:
            (path / "memory.max").write_text(str(memory))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(memory))
            with contextlib.suppress(OSError):  # swap accounting may be off
                (path / "memory.memsw.limit_in_bytes").write_text(str(memory))

    def close(self) -> None:
        """Remove the kernel's ``clustercord-<pid>`` groups once empty (the groups of its
        processes were removed as they ended; another kernel of this process may still
        hold some: then it stays)."""
        for root in self._roots.values():
            with contextlib.suppress(OSError):
                root.rmdir()
        self._roots = {}

    def _remove_stale(self) -> None:
        """Empty groups left by kernels that died (kill -9) before removing theirs."""
        for controller in self.controllers.values():
            with contextlib.suppress(OSError):
                for root in controller.base.glob(f"{PREFIX}*"):
                    pid = root.name[len(PREFIX) :]
                    if not pid.isdigit() or int(pid) == os.getpid():
                        continue
                    if os.path.exists(f"/proc/{pid}"):
                        continue
                    for child in root.iterdir():
                        with contextlib.suppress(OSError):
                            if child.is_dir():
                                child.rmdir()
                    with contextlib.suppress(OSError):
                        root.rmdir()
