"""What an isolated plugin's process sees of the host: bubblewrap (``bwrap``) around the child.

The child (``python -I -B -m clustercord.isolation.child``) is started inside a mount, pid,
IPC, UTS and (unless the plugin was granted capability ``network``) network namespace of its
own, where the filesystem is made of, and only of:

- read-only: the host's ``/usr``, ``/bin``, ``/sbin``, ``/lib*`` (the dynamic loader and C
  libraries), a short list of ``/etc`` files programs need (loader cache, name service, TLS
  roots; no ``shadow``), the Python installation (``sys.prefix``, ``sys.base_prefix``) and
  exactly the directories of the child interpreter's ``sys.path`` (the site packages, the
  editable source roots of the members), and the plugin's own verified folder;
- read-write: ``<data dir>/plugins/<name>/`` at its own path (its home, working directory and
  ``TMPDIR``);
- a private tmpfs ``/tmp``, a new ``/proc`` (its own processes only) and a minimal ``/dev``.

Nothing else of the data directory (``secret.key``, ``audit.key``, the keyring, uploaded
kubeconfigs, the database) nor the kernel user's home exists in that view; a ``sys.path``
entry that would contain the data directory is left out (and logged), never bound.

When the process drops to a uid of its own (the kernel is root) it keeps the existing drop;
otherwise it runs in a user namespace (``--unshare-user``) as a uid of its own inside, with no
capability. This module is the kernel's side only: it builds the command line and probes once
whether bwrap works here (:meth:`View.probe`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("clustercord.isolation")

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_ENTRIES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "localtime", "protocols",
    "services", "ssl", "ca-certificates", "host.conf", "gai.conf", "hosts", "resolv.conf",
    "passwd", "group", "mime.types", "os-release",
)  # fmt: skip
"""Files of the host's ``/etc`` the plugin sees, read-only: what Python and name resolution
need. ``hosts`` and ``resolv.conf`` only matter with capability ``network``."""
MODES = ("auto", "bwrap", "none")
INNER_UID = 1000
"""The uid and gid inside the user namespace (not root: no capability over its view)."""


class ViewUnavailable(Exception):
    """``isolation_sandbox = "bwrap"`` and bwrap cannot make the view here."""


@dataclass(frozen=True)
class View:
    """How isolated processes are wrapped: ``bwrap`` (the path of the tool) or ``None``."""

    bwrap: str | None
    reason: str
    """A line for the log and ``plugins list``: what holds, or why the view is missing."""
    python_paths: tuple[str, ...] = ()
    """The directories the child interpreter needs, read-only (probed once)."""

    @classmethod
    def probe(cls, mode: str, data_dir: Path, *, own_uid: bool) -> View:
        """Whether bwrap can wrap a child here (``auto``: a warning if not; ``bwrap``:
        :class:`ViewUnavailable`; ``none``: no view at all), tried as children will be
        started (``own_uid``: they drop to a uid themselves, no user namespace)."""
        if mode not in MODES:
            raise ValueError(f"isolation_sandbox must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "none":
            return cls(None, "no file or network view (isolation_sandbox = none)")
        bwrap = shutil.which("bwrap", path=SAFE_PATH)
        problem: str | None = None
        paths: tuple[str, ...] = ()
        if bwrap is None:
            problem = "bwrap is not installed (Debian package bubblewrap)"
        else:
            paths = python_paths(data_dir)
            view = cls(bwrap, "", paths)
            try:
                argv = [
                    *view.command(home=None, folders=(), network=False, own_uid=own_uid),
                    sys.executable, "-I", "-B", "-c", "import clustercord.isolation.child",
                ]  # fmt: skip
                result = subprocess.run(argv, capture_output=True, timeout=30, env=_PROBE_ENV)
            except (OSError, subprocess.TimeoutExpired) as exc:
                problem = f"bwrap could not run: {exc}"
            else:
                if result.returncode != 0:
                    tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:]
                    problem = "bwrap cannot make namespaces here: " + (
                        tail[0] if tail else f"exit {result.returncode}"
                    )
                    if not own_uid:
                        problem += " (no user namespaces for this user?)"
        if problem is None:
            assert bwrap is not None
            return cls(bwrap, "own file view, network only if declared (bubblewrap)", paths)
        if mode == "bwrap":
            raise ViewUnavailable(
                f"isolation_sandbox = bwrap, but {problem}: isolated plugins are not started"
            )
        log.warning(
            "isolated plugins run WITHOUT their own file and network view: %s "
            "(isolation_sandbox = auto; set it to none to silence this, or install bubblewrap)",
            problem,
        )
        return cls(None, f"no file or network view: {problem}")

    def command(
        self, *, home: Path | None, folders: Iterable[Path], network: bool, own_uid: bool
    ) -> list[str]:
        """The bwrap command line that runs what follows it in the plugin's view.

        ``folders``: read-only besides Python's own (the plugin's signed source, and the
        dependencies a marketplace plugin has installed beside it). ``own_uid``: the child
        drops to a uid of its own itself (root); otherwise a user namespace gives it one
        inside. ``network``: the plugin was granted it."""
        assert self.bwrap is not None
        argv = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        argv += ["--unshare-uts", "--hostname", "plugin", "--unshare-cgroup-try"]
        if not network:
            argv.append("--unshare-net")
        if not own_uid:
            argv += ["--unshare-user", "--uid", str(INNER_UID), "--gid", str(INNER_UID)]
            argv += ["--cap-drop", "ALL"]
        argv += _system_view()
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        readonly = [*self.python_paths, *(str(folder) for folder in folders)]
        writable = [str(home)] if home is not None else []
        binds = _outermost(readonly)
        argv += _parents([*binds, *writable])
        for path in binds:
            argv += ["--ro-bind", path, path]
        for path in writable:
            argv += ["--bind", path, path]
        if home is not None:
            argv += ["--chdir", str(home)]
        return [*argv, "--"]


_PROBE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def python_paths(data_dir: Path) -> tuple[str, ...]:
    """The directories the child interpreter reads: its prefixes and its ``sys.path`` as
    ``python -I`` builds it (site packages, ``.pth`` entries of editable installs). Any that
    would contain the data directory is left out: binding it would show the keys."""
    script = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path]))"
    found = subprocess.run(
        [sys.executable, "-I", "-B", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env=_PROBE_ENV,
        check=True,
    )
    candidates = [*json.loads(found.stdout), os.path.dirname(os.path.realpath(sys.executable))]
    data = os.path.realpath(data_dir)
    paths: list[str] = []
    for entry in candidates:
        if not entry or not os.path.exists(entry):
            continue
        real = os.path.realpath(entry)
        if os.path.isfile(real):  # python311.zip
            real = os.path.dirname(real)
        if _within(data, real):
            log.warning("isolated plugins do not see %s: it contains the data directory", real)
            continue
        if real not in paths:
            paths.append(real)
        if entry != real and entry not in paths and not _within(data, entry):
            paths.append(entry)  # the venv's own spelling, through its symlinks
    return tuple(paths)


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths, without those inside another (bound already), shortest first."""
    chosen: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(_within(path, outer) for outer in chosen):
            chosen.append(path)
    return chosen


def _parents(paths: Iterable[str]) -> list[str]:
    """Directories bwrap would otherwise create 0700 (a uid dropped to could not pass them),
    made 0755 first: the ancestors of each bound path that the system view does not hold."""
    made: list[str] = []
    system = tuple(f"/{name}" for name in SYSTEM_DIRS)
    for path in paths:
        parts = Path(path).parents
        for parent in reversed(list(parts)):
            text = str(parent)
            if text in ("/", "/tmp") or text in made or any(_within(text, s) for s in system):
                continue
            made.append(text)
    argv: list[str] = []
    for text in sorted(made, key=lambda p: (p.count("/"), p)):
        argv += ["--perms", "0755", "--dir", text]
    return argv


def _system_view() -> list[str]:
    """The host's system directories and the chosen ``/etc`` entries, read-only."""
    argv: list[str] = ["--perms", "0755", "--dir", "/etc"]
    for name in SYSTEM_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for name in ETC_ENTRIES:
        path = f"/etc/{name}"
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    return argv
