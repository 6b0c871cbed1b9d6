"""Sandbox pods as isolated processes: Linux namespaces through bubblewrap (`bwrap`).

The sandbox runs no images, but what `kubectl exec`, `kubectl debug` and attach run in a pod
must not act on the machine that runs the sandbox. Each pod that gets a process gets, on its
first exec, one set of namespaces, held by a small init (the pod's PID 1) that bubblewrap
starts:

- PID (the init is PID 1; `kill 1` ends the pod's processes and nothing else), network (a
  loopback, plus a veth to a per-sandbox bridge, where the host allows it, carrying the pod's
  IP, so pods reach each other by pod IP), UTS (hostname = the pod's name), IPC, cgroup and
  mount namespaces;
- a read-only view of the host's system directories (`/usr` and its links, a few files of
  `/etc`), a new `/proc` and a minimal `/dev`, a private `/tmp` and home (`/root`, tmpfs),
  the pod's volumes at their `mountPath` (`emptyDir` and claims as empty private
  directories, ConfigMap and Secret volumes read-only, with their keys as files; `hostPath`
  is never mounted), its own `/etc/passwd`, `/etc/hosts`, `/etc/hostname`: nothing of the
  host's home, the sandbox's data directory or keys;
- a user of its own (a host uid nobody else uses, shown as `pod` by `id`), so a process limit
  counts the pod's processes only and nothing in a pod is root on the host;
- no capabilities, unless the container's `securityContext.capabilities.add` grants some of
  `GRANTABLE` (`NET_ADMIN` for a chaos ephemeral container, to shape that pod's traffic);
- limits from `resources.limits` where the host has them (setrlimit): `memory` → address space
  per process (else `Limits.memory`); processes per pod (`Limits.pids`, counted for the pod's
  uid); CPU time per process (`Limits.cpu_seconds`).

Every exec (and attach to an ephemeral container) enters those namespaces with `nsenter` and
drops to the pod's user and capabilities with `setpriv` (both util-linux). Ephemeral containers
share the pod's namespaces, as in Kubernetes. A pod's init and its processes end when the pod
is deleted, and all of them when the sandbox stops; if the sandbox dies without stopping
(SIGKILL), each init sees the end of its lifeline pipe and ends its pod, and the pods' files
are removed by the next sandbox that starts.

Not run as root, the sandbox makes the pods' namespaces inside user namespaces (bwrap nests
two; an exec joins the outer, which owns the others, then the inner): the pod's user is the
sandbox's own uid, there is no bridge (no veth can join namespaces of two user namespaces) and
no capability can be granted (the pod's user keeps none across exec); the process limit then
counts the sandbox user's other processes too, so it is raised by their number.

Where namespaces cannot be made (no bwrap, no user namespaces, a kernel that refuses), the
sandbox says so when it starts and refuses exec with a clear `Status`. `host_exec=True` (the
`--unsafe-host-exec` option) restores running commands as local processes, unisolated.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import errno
import fcntl
import itertools
import json
import logging
import os
import random
import re
import resource
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOME = "/root"

# Capabilities a container may be granted: they act within the pod's own namespaces. Others
# (SYS_ADMIN, SYS_MODULE, SYS_TIME, MKNOD, DAC_READ_SEARCH...) would reach the host: never.
GRANTABLE = frozenset(
    {"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "KILL", "CHOWN", "FOWNER", "FSETID"}
    | {"SYS_PTRACE", "SYS_CHROOT", "AUDIT_WRITE", "SETPCAP"}
)
# The host system directories a pod sees, read-only (merged-/usr hosts have links instead).
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Files and directories of the host's /etc a pod sees, read-only: what programs need to run.
ETC_ENTRIES = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "localtime",
    "protocols", "services", "ethertypes", "ssl", "ca-certificates", "os-release",
    "debian_version", "profile", "bash.bashrc", "inputrc", "terminfo", "iproute2", "mime.types",
    "magic", "netconfig", "networks", "host.conf", "gai.conf", "login.defs", "environment",
)  # fmt: skip

MiB = 1024 * 1024
STATE_PREFIX = "clustercord-pods-"  # the pods' private files, in the temporary directory
_UIDS = itertools.count(random.randrange(1 << 24, 1 << 30))  # one fresh host uid per pod
_PR_SET_PDEATHSIG = 1
_TIOCGPTPEER = 0x5441
_TIOCSPTLCK = 0x40045431
_NS_GET_USERNS = 0xB701
_NAMES = itertools.count(1)  # veth names in the bridge's namespace


class IsolationError(Exception):
    """Pod namespaces could not be made, or a process could not be started in them."""


@dataclass(frozen=True)
class Limits:
    """The sandbox's defaults; a container's `resources.limits.memory` narrows `memory`."""

    pids: int = 512  # processes (and threads) per pod, like the kubelet's podPidsLimit
    memory: int = 2048 * MiB  # address space per process, when the container sets no limit
    cpu_seconds: int = 3600  # CPU time per process
    tmpfs: int = 256 * MiB  # size of each of the pod's /tmp and home


@dataclass
class Launch:
    """How to start one process: what `podexec` spawns."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    preexec: Callable[[], None] | None = None
    open_pty: Callable[[], tuple[int, int]] = os.openpty
    notes: list[str] = field(default_factory=list)  # said on stderr before the command runs
    cleanup: Callable[[], None] | None = None
    kill: Callable[[int], None] = field(default=lambda pid: _kill_group(pid))
    controlling_terminal: bool = True  # whether the spawned process takes the terminal
    pass_fds: tuple[int, ...] = ()  # open files the spawned process inherits


# -- the sandbox's pods ------------------------------------------------------------------------


class Isolation:
    """The pods' namespaces for one sandbox: `await start()`, `launch(...)`, `await stop()`."""

    def __init__(self, host_exec: bool = False, limits: Limits | None = None) -> None:
        self.host_exec = host_exec
        self.limits = limits or Limits()
        self.available = False
        self.reason = "not started"
        self.network = False  # a bridge between the pods, where the host allows it
        self.rootless = os.geteuid() != 0  # then pods get user namespaces instead of a uid
        self._tools: dict[str, str] = {}
        self._pods: dict[tuple[str, str], PodNamespaces] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._state: Path | None = None
        self._bridge: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> str:
        """Probes the host once; returns the line the sandbox prints about pod processes."""
        if self.host_exec:
            self.reason = "--unsafe-host-exec"
            return (
                "Pod processes: UNSAFE (--unsafe-host-exec): kubectl exec, debug and attach run "
                "commands as local processes on this machine, as its user, unisolated"
            )
        self.available, self.reason = await asyncio.to_thread(self._probe)
        if not self.available:
            return (
                f"Pod processes: unavailable ({self.reason}); kubectl exec, debug and attach "
                "are refused (--unsafe-host-exec runs them on this machine, unisolated)"
            )
        _remove_stale_state()
        self._state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
        (self._state / "owner").write_text(str(os.getpid()))
        # Without root, the pods' namespaces belong to user namespaces of their own, between
        # which no veth can be moved: loopback only.
        if not self.rootless:
            self.network = self._spawn_bridge() and await asyncio.to_thread(self._bridge_ready)
        where = "with a bridge between pods" if self.network else "loopback only"
        if self.rootless:
            where += "; not root: in user namespaces, without a uid of their own"
        return f"Pod processes: isolated in their own namespaces (bubblewrap; {where})"

    def _probe(self) -> tuple[bool, str]:
        for tool in ("bwrap", "nsenter", "setpriv", "setsid"):
            path = shutil.which(tool, path=SAFE_PATH)
            if path is None:
                package = "bubblewrap" if tool == "bwrap" else "util-linux"
                return False, f"{tool} is not installed (Debian package {package})"
            self._tools[tool] = path
        self.rootless = os.geteuid() != 0
        user = ["--unshare-user"] if self.rootless else []
        try:
            probe = [self._tools["bwrap"], *user, *_NAMESPACES, *_system_view()]
            result = subprocess.run(
                [*probe, "--", "/bin/sh", "-c", ":"],
                capture_output=True,
                timeout=20,
                preexec_fn=_die_with_parent,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bwrap could not run: {exc}"
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
            if self.rootless:
                message += " (not root, and no user namespaces for this user)"
            return False, f"namespaces cannot be created here: {message}"
        return True, "isolated"

    def _spawn_bridge(self) -> bool:
        """A network namespace of the sandbox's own holding bridge `br0`: nothing appears on
        the host's network, and pods of two sandboxes never meet. (Started from the loop
        thread: it dies with the thread that started it.)"""
        script = "ip link set lo up && ip link add br0 type bridge && ip link set br0 up"
        unshare, ip = (shutil.which(tool, path=SAFE_PATH) for tool in ("unshare", "ip"))
        if unshare is None or ip is None:
            log.info("no bridge between sandbox pods: unshare or ip (iproute2) is missing")
            return False
        self._tools["ip"] = ip
        try:
            self._bridge = subprocess.Popen(
                [unshare, "--net", "--", "/bin/sh", "-c", f"{script} && exec sleep infinity"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={"PATH": SAFE_PATH},
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log.info("no bridge between sandbox pods: %s", exc)
            return False
        return True

    def _bridge_ready(self) -> bool:
        assert self._bridge is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._bridge.poll() is not None:
                assert self._bridge.stderr is not None
                log.info("no bridge between sandbox pods: %s", self._bridge.stderr.read().strip())
                self._bridge = None
                return False
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{self._bridge.pid}/exe").endswith("sleep"):
                    return True
            time.sleep(0.01)
        self._end_bridge()
        return False

    def _end_bridge(self) -> None:
        if self._bridge is not None:
            with contextlib.suppress(ProcessLookupError):
                self._bridge.kill()
            self._bridge.wait()
            if self._bridge.stderr is not None:
                self._bridge.stderr.close()
            self._bridge = None

    async def stop(self) -> None:
        """Ends every pod's processes, the bridge, and removes the pods' private files."""
        for key in list(self._pods):
            await self.release(*key)
        self._end_bridge()
        if self._state is not None:
            shutil.rmtree(self._state, ignore_errors=True)
            self._state = None

    async def release(self, namespace: str, name: str, uid: str | None = None) -> None:
        """The pod is gone (or restarted): its processes end, its private files go."""
        pod = self._pods.get((namespace, name))
        if pod is None or (uid is not None and pod.uid != uid):
            return
        del self._pods[(namespace, name)]
        await asyncio.to_thread(pod.end)

    def pod(self, namespace: str, name: str) -> PodNamespaces | None:
        """The namespaces held for a pod (None before its first exec, or after it ended)."""
        return self._pods.get((namespace, name))

    def processes(self) -> list[int]:
        """The host pids of every pod init the sandbox holds (for leak checks)."""
        return [p.init for p in self._pods.values() if p.alive()]

    # -- exec --------------------------------------------------------------------------------
    def refusal(self) -> str | None:
        """Why exec is refused, or None when it may run."""
        if self.host_exec or self.available:
            return None
        return (
            f"the ClusterCord sandbox cannot isolate pod processes on this machine: "
            f"{self.reason}; it refuses to run commands on the host (start the sandbox with "
            "--unsafe-host-exec to run them there, unisolated)"
        )

    async def launch(
        self,
        pod: Obj,
        container: Obj,
        command: list[str],
        tty: bool,
        configs: Callable[[str, str, str], Obj | None],
    ) -> Launch:
        """How to run `command` in `container` of `pod`; `configs(kind, namespace, name)`
        reads a ConfigMap or Secret for the pod's volumes. Raises `FileNotFoundError` when the
        command is not in the pod, `IsolationError` when the pod's namespaces cannot be made."""
        env = _environment(pod, container, tty)
        if self.host_exec:
            return _host_launch(command, env)
        if not self.available:
            raise IsolationError(self.refusal())
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            held = self._pods.get(key)
            if held is not None and (held.uid != meta.get("uid") or not held.alive()):
                await self.release(*key)  # a new pod of the same name, or a "restarted" one
                held = None
            if held is None:
                assert self._state is not None
                held = PodNamespaces(
                    pod, self._tools, self.limits, self._state, rootless=self.rootless
                )
                try:
                    held.spawn(configs)
                    await asyncio.to_thread(held.ready, self._bridge_pid())
                except BaseException:
                    await asyncio.to_thread(held.end)
                    raise
                self._pods[key] = held
        return held.launch(container, command, env, tty)

    def _bridge_pid(self) -> int | None:
        if self._bridge is None or self._bridge.poll() is not None:
            return None
        return self._bridge.pid

    def host_pid(self, namespace: str, name: str, pid: int) -> int | None:
        """The host pid of the process a pod knows as `pid` (None if there is none); in
        `host_exec` mode pids are the host's."""
        if self.host_exec:
            return pid
        held = self._pods.get((namespace, name))
        return held.host_pid(pid) if held is not None else None


# -- one pod's namespaces ----------------------------------------------------------------------

_NAMESPACES = (
    "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-ipc", "--unshare-cgroup-try",
)  # fmt: skip
# The pod's PID 1: ends on SIGTERM/SIGINT (so `kill 1` in the pod works); reaps orphans.
# A watcher reads the sandbox's lifeline (fd {fd}; dash names no fd above 9, /proc does): at
# its end (the sandbox died, even by SIGKILL) it ends the init, and the kernel the pod's other
# processes.
_INIT = (
    "trap 'exit 0' TERM INT; (read -r _ < /proc/self/fd/{fd}; kill -TERM 1) & "
    "while :; do sleep 2147483647 & wait $!; done"
)


class PodNamespaces:
    """A pod's init (PID 1 of its namespaces), its private files, its user."""

    def __init__(
        self, pod: Obj, tools: dict[str, str], limits: Limits, state: Path, rootless: bool = False
    ) -> None:
        meta = pod["metadata"]
        # Not root: bwrap makes a user namespace where the pod's uid is the sandbox's user.
        self.rootless = rootless
        self.pod = pod
        self.namespace, self.name = meta.get("namespace", ""), meta["name"]
        self.uid = meta.get("uid")
        # A hostNetwork pod's IP is its node's, shared: such a pod keeps its loopback only.
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        self.ip = "" if host_network else (pod.get("status") or {}).get("podIP") or ""
        self.tools = tools
        self.limits = limits
        self.user = os.getuid() if rootless else next(_UIDS)
        self.files = state / f"{self.namespace}_{self.name}_{(self.uid or '')[:8]}"
        self.bwrap: subprocess.Popen[bytes] | None = None
        self.init = 0  # host pid of the pod's PID 1
        self._info = -1  # bwrap's --info-fd, read by ready()
        self._lifeline = -1  # the write end of the pod's lifeline, closed when it ends

    # -- start -------------------------------------------------------------------------------
    def spawn(self, configs: Callable[[str, str, str], Obj | None]) -> None:
        """Starts bwrap (from the sandbox's loop thread: bwrap dies with the thread that
        started it); `ready()` then waits for the pod's init."""
        self.files.mkdir(mode=0o700)
        mounts = self._files_and_volumes(configs)
        # The lifeline: only this process holds its write end (never inherited), so when the
        # sandbox ends, however it ends, the pod's init sees the pipe's end and ends the pod.
        # Its read end is the pod user's, so the init can open it as /proc/self/fd/N.
        lifeline, self._lifeline = os.pipe()
        self._chown(lifeline)
        read, write = os.pipe()
        # Without root, the pod's user is the sandbox's own uid, mapped to itself: another uid
        # would make bwrap nest a second user namespace, which nsenter cannot join whole.
        user = ["--unshare-user"]
        argv = [
            self.tools["bwrap"],
            *(user if self.rootless else []),
            *_NAMESPACES,
            "--hostname", self.name,
            "--die-with-parent", "--as-pid-1", "--new-session", "--clearenv",
            "--info-fd", str(write),
            *_system_view(),
            "--perms", "1777", "--size", str(self.limits.tmpfs), "--tmpfs", "/tmp",
            "--perms", "0700", "--size", str(self.limits.tmpfs), "--tmpfs", HOME,
            *mounts,
            "--chdir", "/",
            "--",
            *self._drop(caps=()),
            "--pdeathsig", "SIGKILL",  # a uid change clears bwrap's; the init dies with bwrap
            "--", "/bin/sh", "-c", _INIT.format(fd=lifeline), "clustercord-pod-init",
        ]  # fmt: skip
        try:
            self.bwrap = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(write, lifeline),
                env={"PATH": SAFE_PATH},
                preexec_fn=self._limits,
            )
        finally:
            os.close(write)
            os.close(lifeline)
        self._info = read

    def ready(self, bridge: int | None) -> None:
        """Waits (blocking) for the pod's init, then connects it to the bridge."""
        assert self.bwrap is not None
        try:
            info = _read_info(self._info, self.bwrap)
        finally:
            os.close(self._info)
        if info is None:
            self.bwrap.wait(5)
            assert self.bwrap.stderr is not None
            message = self.bwrap.stderr.read().decode(errors="replace").strip()
            raise IsolationError(f"the pod's namespaces could not be made: {message}")
        self.init = int(info["child-pid"])
        # The pid is known before bwrap has built the pod's filesystem: wait for the init.
        deadline = time.monotonic() + 20
        while _program(self.init) in ("bwrap", "setpriv"):
            if time.monotonic() > deadline or self.bwrap.poll() is not None:
                raise IsolationError("the pod's init did not start")
            time.sleep(0.005)
        if not _running(self.init):
            raise IsolationError("the pod's init ended at once")
        if not self.rootless:  # the home (a tmpfs bwrap made as root) becomes the pod user's
            home = f"/proc/{self.init}/root{HOME}"
            hosts = {os.stat("/").st_dev}
            with contextlib.suppress(OSError):
                hosts.add(os.stat(HOME).st_dev)
            if os.stat(home).st_dev in hosts:  # never the host's own
                raise IsolationError("the pod's home is not its own")
            os.chown(home, self.user, self.user)
        if bridge is not None and self.ip:
            self._connect(bridge)

    def _files_and_volumes(self, configs: Callable[[str, str, str], Obj | None]) -> list[str]:
        """Writes the pod's /etc files and volumes under `self.files`; the bwrap mounts."""
        etc = self.files / "etc"
        etc.mkdir(mode=0o755)
        user = self.user
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            f"pod:x:{user}:{user}:sandbox pod user:{HOME}:/bin/sh\n"
        )
        (etc / "group").write_text(f"root:x:0:\nnogroup:x:65534:\npod:x:{user}:\n")
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        (etc / "hosts").write_text(hosts + (f"{self.ip}\t{self.name}\n" if self.ip else ""))
        (etc / "hostname").write_text(self.name + "\n")
        for path in etc.iterdir():
            path.chmod(0o644)
        mounts = ["--perms", "0755", "--dir", "/etc"]
        mounts += [
            arg
            for entry in ETC_ENTRIES
            for arg in ("--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}")
        ]
        mounts += ["--symlink", "../proc/self/mounts", "/etc/mtab"]
        for entry in ("passwd", "group", "hosts", "hostname"):
            mounts += ["--ro-bind", str(etc / entry), f"/etc/{entry}"]
        mounts += self._volumes(configs)
        return mounts

    def _volumes(self, configs: Callable[[str, str, str], Obj | None]) -> list[str]:
        spec = self.pod.get("spec") or {}
        volumes = self.files / "volumes"
        volumes.mkdir(mode=0o755)
        sources: dict[str, tuple[Path, bool]] = {}
        for volume in spec.get("volumes") or []:
            name = volume.get("name")
            if not isinstance(name, str) or not re.fullmatch(
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name
            ):
                continue
            target = volumes / name
            target.mkdir(mode=0o755)
            if "configMap" in volume or "secret" in volume:
                _write_config_volume(target, volume, self.namespace, configs)
                sources[name] = (target, True)
            elif "hostPath" in volume:
                continue  # nothing of the host: a hostPath volume is not mounted
            else:  # emptyDir, a claim, anything else: an empty private directory
                self._chown(target)
                sources[name] = (target, False)
        mounts: list[str] = []
        taken: set[str] = {"/", "/proc", "/dev", "/tmp", HOME, "/etc"}
        made: set[str] = set()
        containers = [
            *(spec.get("initContainers") or []),
            *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or []),
        ]
        for container in containers:
            for mount in container.get("volumeMounts") or []:
                source = sources.get(mount.get("name"))
                path = os.path.normpath(str(mount.get("mountPath") or ""))
                if source is None or not path.startswith("/") or path in taken:
                    continue
                if any(path.startswith(f"/{d}/") or path == f"/{d}" for d in SYSTEM_DIRS):
                    continue  # a volume never hides the read-only system directories
                directory, read_only = source
                sub = str(mount.get("subPath") or "")
                if sub:
                    inner = (directory / sub).resolve()
                    if not inner.is_relative_to(directory) or not inner.exists():
                        continue
                    directory = inner
                taken.add(path)
                # bwrap would make missing parents 0700: the pod's user could not pass them.
                parents = [str(p) for p in reversed(Path(path).parents) if str(p) != "/"]
                for parent in parents:
                    if parent not in made and not any(
                        parent == t or parent.startswith(f"{t}/") for t in taken
                    ):
                        mounts += ["--perms", "0755", "--dir", parent]
                        made.add(parent)
                verb = "--ro-bind" if read_only or mount.get("readOnly") else "--bind"
                mounts += [verb, str(directory), path]
        return mounts

    def _connect(self, bridge: int) -> None:
        """A veth from the pod's network namespace to the sandbox's bridge, with the pod's IP."""
        outside = f"v{next(_NAMES)}"
        steps = [
            (bridge, ["ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0",
                      "netns", str(self.init)]),
            (bridge, ["ip", "link", "set", outside, "master", "br0", "up"]),
            (self.init, ["ip", "addr", "add", f"{self.ip}/32", "dev", "eth0"]),
            (self.init, ["ip", "link", "set", "eth0", "up"]),
            (self.init, ["ip", "route", "add", "default", "dev", "eth0"]),
        ]  # fmt: skip
        for target, command in steps:
            result = subprocess.run(
                [
                    self.tools["nsenter"],
                    "-t",
                    str(target),
                    "-n",
                    "--",
                    self.tools["ip"],
                    *command[1:],
                ],
                capture_output=True,
                timeout=10,
            )
            if result.returncode != 0:
                log.warning(
                    "pod %s/%s keeps its loopback only: %s: %s",
                    self.namespace,
                    self.name,
                    " ".join(command),
                    result.stderr.decode(errors="replace").strip(),
                )
                return

    # -- exec --------------------------------------------------------------------------------
    def launch(self, container: Obj, command: list[str], env: dict[str, str], tty: bool) -> Launch:
        if not command or not self._executable(command[0]):
            name = command[0] if command else ""
            raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH", name)
        wanted = _capabilities(container)
        granted = sorted(c for c in wanted if c in GRANTABLE)
        notes = [
            f"sandbox: capability {c} is not granted in sandbox pods (it would reach the host)"
            for c in sorted(wanted - GRANTABLE)
        ]
        if self.rootless and granted:  # a process of the pod's user keeps none across exec
            notes += [
                f"sandbox: capability {c} cannot be granted: the sandbox does not run as root"
                for c in granted
            ]
            granted = []
        if (container.get("securityContext") or {}).get("privileged"):
            notes.append("sandbox: privileged is not granted in sandbox pods (no capabilities)")
        env = {**env, "HOME": HOME}
        cwd = str(container.get("workingDir") or "/")
        if cwd != "/":  # nsenter's --wd=DIR would be the host's DIR: change to it in the pod
            command = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *command]
        if tty:  # a session of the pod's own, its terminal controlling (job control works)
            command = [self.tools["setsid"], "--ctty", "--wait", "--", *command]
        # bwrap's cgroup namespace is "if possible": joined only when the pod has its own.
        cgroup = ["-C"] if _namespace(self.init, "cgroup") != _namespace(0, "cgroup") else []
        user: list[str] = []
        inner: list[str] = []
        owner = -1
        if self.rootless:
            # bwrap nests two user namespaces: the outer owns the pod's other namespaces, the
            # inner is its init's. Join the outer with them, then the inner (the init is PID 1).
            owner = _owner_userns(self.init)
            user = [f"--user=/proc/self/fd/{owner}", "--preserve-credentials"]
            inner = [self.tools["nsenter"], "-t", "1", "-U", "--preserve-credentials", "--"]
        argv = [
            self.tools["nsenter"], "-t", str(self.init), *user,
            "-p", "-n", "-u", "-i", "-m", *cgroup, "-r", "-w",
            "--", *inner, *self._drop(granted, joined=True), "--", *command,
        ]  # fmt: skip
        memory = _quantity((container.get("resources") or {}).get("limits", {}).get("memory"))
        return Launch(
            argv,
            env,
            "/",
            preexec=lambda: self._limits(memory),
            open_pty=self._open_pty if tty else os.openpty,
            notes=notes,
            kill=_kill_tree,
            controlling_terminal=not tty,
            pass_fds=(owner,) if owner >= 0 else (),
            cleanup=(lambda: os.close(owner)) if owner >= 0 else None,
        )

    def _drop(self, caps: Any, joined: bool = False) -> list[str]:
        """`setpriv` to the pod's user with only `caps` (none by default), no new privileges.
        (Without root, a process `joined` to the pod has no capability left to drop.)"""
        user = str(self.user)
        argv = [self.tools["setpriv"]]
        if self.rootless and joined:
            return [*argv, "--no-new-privs"]
        if not self.rootless:  # (in a user namespace the pod's user is the only one)
            argv += ["--reuid", user, "--regid", user, "--clear-groups"]
        if caps:
            names = ",".join(f"+{c.lower()}" for c in caps)
            argv += ["--bounding-set", f"-all,{names}", "--inh-caps", f"-all,{names}"]
            argv += ["--ambient-caps", names]
        else:
            argv += ["--bounding-set", "-all", "--inh-caps", "-all"]
        return [*argv, "--no-new-privs"]

    def _limits(self, memory: int | None = None) -> None:
        """In the child, before exec: the pod's limits (inherited by all it starts)."""
        _die_with_parent()
        os.umask(0o022)  # as in a container, whatever the sandbox's own umask
        address = memory or self.limits.memory
        pids = self.limits.pids
        if self.rootless:  # the limit counts all of the sandbox user's processes
            pids += sum(1 for entry in os.listdir("/proc") if _owned(entry))
        for limit, value in (
            (resource.RLIMIT_AS, address),
            (resource.RLIMIT_NPROC, pids),
            (resource.RLIMIT_CPU, self.limits.cpu_seconds),
        ):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(limit, (value, value))

    def _chown(self, target: int | Path) -> None:
        """Gives a file (or an open file) to the pod's user; without root it is already
        the sandbox user's, which is the pod's user in its user namespace."""
        if self.rootless:
            return
        if isinstance(target, int):
            os.fchown(target, self.user, self.user)
        else:
            os.chown(target, self.user, self.user)

    def _open_pty(self) -> tuple[int, int]:
        """A terminal of the pod's own /dev/pts (so `tty` in the pod names it)."""
        master = os.open(f"/proc/{self.init}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
        try:
            fcntl.ioctl(master, _TIOCSPTLCK, b"\0\0\0\0")
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
            self._chown(slave)
        except OSError:
            os.close(master)
            raise
        return master, slave

    def _executable(self, command: str) -> bool:
        """Whether `command` is a program in the pod (searched in its PATH, as runc does)."""
        root = f"/proc/{self.init}/root"
        if "/" in command:
            candidates = [command if command.startswith("/") else f"/{command}"]
        else:
            candidates = [f"{d}/{command}" for d in SAFE_PATH.split(":")]
        for candidate in candidates:
            try:
                info = os.lstat(root + candidate)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_mode & 0o111):
                return True
        return False

    def host_pid(self, pid: int) -> int | None:
        try:
            pid_ns = os.stat(f"/proc/{self.init}/ns/pid").st_ino
        except OSError:
            return None
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino != pid_ns:
                    continue
                with open(f"/proc/{entry}/status") as status:
                    for line in status:
                        if line.startswith("NSpid:") and line.split()[-1] == str(pid):
                            return int(entry)
            except OSError:
                continue
        return None

    # -- end ---------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.bwrap is not None and self.bwrap.poll() is None and _running(self.init)

    def end(self) -> None:
        """Kills the pod's PID 1 (the kernel then kills every process of its PID namespace),
        waits for bwrap, removes the pod's files."""
        if self.init:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init, signal.SIGKILL)
        if self.bwrap is not None:
            if self.bwrap.poll() is None:
                try:
                    self.bwrap.wait(5)
                except subprocess.TimeoutExpired:
                    self.bwrap.kill()
                    self.bwrap.wait()
            if self.bwrap.stderr is not None:
                self.bwrap.stderr.close()
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        shutil.rmtree(self.files, ignore_errors=True)


# -- helpers -----------------------------------------------------------------------------------


def _system_view() -> list[str]:
    """The host's system directories, read-only, with a new /proc and a minimal /dev."""
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return [*args, "--proc", "/proc", "--dev", "/dev"]


def _read_info(fd: int, process: subprocess.Popen[bytes], timeout: float = 20) -> Obj | None:
    """bwrap's --info-fd JSON (the pod init's host pid), or None if bwrap failed."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096)
            data += chunk
            with contextlib.suppress(ValueError):
                info = json.loads(data)
                if isinstance(info, dict) and "child-pid" in info:
                    return info
            if not chunk:
                return None
        elif process.poll() is not None:
            return None
    process.kill()
    return None


def _die_with_parent() -> None:
    """In a child before exec: SIGKILL when the sandbox (its parent thread) dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _remove_stale_state() -> None:
    """Removes the pods' files of sandboxes that died without stopping (kill -9)."""
    for path in Path(tempfile.gettempdir()).glob(f"{STATE_PREFIX}*"):
        try:
            owner = int((path / "owner").read_text())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


def _namespace(pid: int, kind: str) -> str:
    """Which `kind` namespace `pid` (0: this process) is in ("" if unknown)."""
    try:
        return os.readlink(f"/proc/{pid or 'self'}/ns/{kind}")
    except OSError:
        return ""


def _owner_userns(pid: int) -> int:
    """An open file of the user namespace that owns `pid`'s network namespace."""
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(net, _NS_GET_USERNS)
    finally:
        os.close(net)


def _owned(entry: str) -> bool:
    """Whether /proc/`entry` is a process of this process's user."""
    try:
        return entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == os.getuid()
    except OSError:
        return False


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _kill_tree(pid: int) -> None:
    """Kills `pid`'s process group and every descendant (in the pod, they may have sessions
    of their own)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat_file:
                    parent = int(stat_file.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    _kill_group(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)


def _program(pid: int) -> str:
    """The name of the program `pid` runs ("" when it is gone)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _capabilities(container: Obj) -> set[str]:
    added = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
    return {str(c).upper().removeprefix("CAP_") for c in added if isinstance(c, str)}


def _write_config_volume(
    target: Path, volume: Obj, namespace: str, configs: Callable[[str, str, str], Obj | None]
) -> None:
    """A ConfigMap's or Secret's keys as files (its `items` when given), read-only."""
    if "configMap" in volume:
        source = volume.get("configMap") or {}
        obj = configs("configmaps", namespace, str(source.get("name") or ""))
        files = {k: str(v).encode() for k, v in ((obj or {}).get("data") or {}).items()}
        binary = (obj or {}).get("binaryData") or {}
        files.update({k: base64.b64decode(v) for k, v in binary.items()})
    else:
        source = volume.get("secret") or {}
        obj = configs("secrets", namespace, str(source.get("secretName") or ""))
        files = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
        files.update({k: str(v).encode() for k, v in ((obj or {}).get("stringData") or {}).items()})
    mode = source.get("defaultMode")
    mode = mode if isinstance(mode, int) and 0 <= mode <= 0o777 else 0o644
    items = source.get("items")
    chosen = (
        [(i.get("key"), i.get("path"), i.get("mode")) for i in items if isinstance(i, dict)]
        if items
        else [(k, k, None) for k in files]
    )
    for key, path, item_mode in chosen:
        if key not in files or not isinstance(path, str):
            continue
        out = (target / path).resolve()
        if not out.is_relative_to(target.resolve()):
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(files[key])
        out.chmod(item_mode if isinstance(item_mode, int) else mode)


def _quantity(value: Any) -> int | None:
    """A memory quantity (`256Mi`, `1G`, `1e9`) in bytes; None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    units = {
        "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
        "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    }  # fmt: skip
    for suffix, factor in units.items():
        if text.endswith(suffix):
            try:
                return int(float(text[: -len(suffix)]) * factor)
            except ValueError:
                return None
    try:
        return int(float(text))
    except ValueError:
        return None


def _environment(pod: Obj, container: Obj, tty: bool) -> dict[str, str]:
    """A clean environment: nothing of the sandbox's own (its tokens) reaches the command."""
    env = {
        str(e["name"]): str(e["value"])
        for e in container.get("env") or []
        if isinstance(e, dict) and "name" in e and isinstance(e.get("value"), str)
    }
    env.update({"PATH": SAFE_PATH, "HOSTNAME": pod["metadata"]["name"]})
    if tty:
        env["TERM"] = "xterm"
    return env


def _host_launch(command: list[str], env: dict[str, str]) -> Launch:
    """`--unsafe-host-exec`: a local process in a temporary directory (removed after)."""
    workdir = tempfile.mkdtemp(prefix="clustercord-exec-")
    return Launch(
        list(command),
        {**env, "HOME": workdir},
        workdir,
        cleanup=lambda: shutil.rmtree(workdir, ignore_errors=True),
    )
