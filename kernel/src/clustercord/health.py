"""Readiness: what ``/readyz`` checks, each part named when it fails.

Parts, all checked at once so one slow part does not hide another:

- ``storage``: a write commits to the database (a full disk, a read-only file or a lock
  held elsewhere fail it);
- ``frontend``: the front end that serves says it can take work (the Discord gateway is
  connected, the interaction server listens); ``None`` until one registers itself;
- ``cluster <name>``: each configured cluster answers ``/version``;
- ``plugins``: the kernel has loaded its plugins, and none failed to load or enable
  (a plugin an operator disabled is not a failure).

Notes (:attr:`Readiness.notes`) name a part that works with less than configured (the
Discord gateway without the member events Discord refused): ``/readyz`` lists them after
its answer without failing.

``/healthz`` checks none of these: a process that answers is alive, and restarting it for
a cluster that is down would not bring the cluster back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

PART_TIMEOUT = 3.0
"""Seconds a part may take to answer before it counts as failing (probes run every ~10 s)."""
FAILED = ("failed to load", "on_enable failed", "storage migration failed")
"""How a plugin's reason begins when loading or enabling it failed (plugins/manager.py)."""

FrontendProbe = Callable[[], "str | None"]
"""What is wrong with the front end, or ``None`` when it can take work."""


class Readiness:
    """The readiness checks of one kernel (``Kernel.readiness``)."""

    def __init__(
        self,
        database: Any,
        manager: Any,
        kubernetes: Any,
        *,
        timeout: float = PART_TIMEOUT,
        mask: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._mask = mask
        """The audit log's secret masking: ``/readyz`` is unauthenticated, and an error's
        text may quote what it failed on."""
        self._database = database
        self._manager = manager
        self._kubernetes = kubernetes
        self.timeout = timeout
        self.frontend: FrontendProbe | None = None
        """Set by the front end that serves (``clustercord serve``); ``None``: not ready."""
        self.started = False
        """Set once the kernel has loaded and enabled its plugins."""
        self.lease: FrontendProbe | None = None
        """Set while ``serve`` waits for or holds the home cluster's Lease (lease.py)."""
        self.stopping = False
        """Set on SIGTERM: a stopping instance takes no new work, so it is not ready."""
        self.notes: dict[str, str] = {}
        """What works with less than configured, by part (the Discord gateway without member
        events Discord refused): shown by ``/readyz`` without making it fail."""

    async def problems(self) -> dict[str, str]:
        """What is wrong, by part; empty when ready."""
        found: dict[str, str] = {}
        if self.stopping:
            found["shutdown"] = "this instance is stopping"
        if self.frontend is None:
            found["frontend"] = "no front end is serving"
        else:
            problem = self.frontend()
            if problem:
                found["frontend"] = problem
        if self.lease is not None and (problem := self.lease()):
            found["lease"] = problem
        if not self.started:
            found["plugins"] = "not loaded yet"
        else:
            failed = sorted(
                f"{p.name} ({p.reason})"
                for p in self._manager.plugins.values()
                if p.reason and p.reason.startswith(FAILED)
            )
            if failed:
                found["plugins"] = "; ".join(failed)
        checks: dict[str, Callable[[], None]] = {"storage": self._write}
        try:
            clusters = [c.name for c in self._kubernetes.registry.list()]
        except Exception as exc:  # the registry could not be read (database, key)
            found["clusters"] = f"cannot list clusters: {exc}"
            clusters = []
        for name in clusters:
            checks[f"cluster {name}"] = _version_of(self._kubernetes, name)
        answers = await asyncio.gather(
            *(self._within(check) for check in checks.values()), return_exceptions=False
        )
        for part, problem in zip(checks, answers, strict=True):
            if problem:
                found[part] = problem
        return {part: self._mask(problem) for part, problem in found.items()}

    async def _within(self, check: Callable[[], None]) -> str | None:
        # The thread of a check that times out runs on; probes are rare enough for that.
        try:
            await asyncio.wait_for(asyncio.to_thread(check), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _write(self) -> None:
        with self._database.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO _kv (scope, key, value) VALUES ('kernel', 'ready', ?)",
                [str(time.time())],
            )


def _version_of(kubernetes: Any, cluster: str) -> Callable[[], None]:
    def check() -> None:
        kubernetes.request(cluster, "GET", "/version")

    return check
