"""Who is using a data directory: every kernel holds a shared lock on ``clustercord.lock``
for as long as it runs, so that what must be alone (restoring a backup) can tell, and one
``clustercord serve`` holds ``serving.lock`` so that a second one refuses to answer Discord
twice from the same data.

``flock`` locks belong to the open file and vanish with the process, so a ``kill -9`` never
leaves a stale lock behind (no pid files to clean up).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

from clustercord_sdk.errors import CommandError

USE_LOCK = "clustercord.lock"
SERVE_LOCK = "serving.lock"


class InstanceBusy(CommandError):
    """Another ClusterCord process holds the lock asked for."""


class DirectoryLock:
    """One flock on ``<data dir>/<name>``, shared or exclusive, released by :meth:`release`."""

    def __init__(self, data_dir: Path, name: str, *, exclusive: bool, purpose: str) -> None:
        self.path = data_dir / name
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            raise InstanceBusy(
                f"another ClusterCord process{holder} is using {data_dir}: {purpose}"
            ) from None
        if exclusive:  # say who holds it, for the message the next one gets
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def _holder(self) -> str:
        assert self._fd is not None
        pid = os.pread(self._fd, 32, 0).decode(errors="replace").strip()
        return f" (pid {pid})" if pid.isdigit() else ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


async def wait_for(data_dir: Path, name: str, *, purpose: str, wait: float) -> DirectoryLock:
    """``name`` held exclusively, waiting (without blocking the event loop) up to ``wait``
    seconds for another process to let go; :class:`InstanceBusy` after that."""
    data_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            return DirectoryLock(data_dir, name, exclusive=True, purpose=purpose)
        except InstanceBusy as busy:
            if time.monotonic() >= deadline:
                raise InstanceBusy(f"{busy} (waited {wait:g} s)") from None
            await asyncio.sleep(0.1)


def in_use(data_dir: Path) -> DirectoryLock:
    """The shared lock every kernel holds on its data directory."""
    return DirectoryLock(
        data_dir, USE_LOCK, exclusive=False, purpose="it is being restored from a backup"
    )


def alone(data_dir: Path, purpose: str) -> DirectoryLock:
    """The data directory to ourselves (no kernel running), or :class:`InstanceBusy`."""
    return DirectoryLock(data_dir, USE_LOCK, exclusive=True, purpose=purpose)


def serving(data_dir: Path) -> DirectoryLock:
    """The one ``serve`` of this data directory."""
    return DirectoryLock(
        data_dir,
        SERVE_LOCK,
        exclusive=True,
        purpose="it already serves Discord from this data directory; stop it first "
        "(two bots on the same data would answer every interaction twice)",
    )
