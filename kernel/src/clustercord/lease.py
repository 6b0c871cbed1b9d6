"""One active bot per Discord application: a Lease in the home cluster.

The data directory's flock (instance.py) keeps two ``clustercord serve`` on one machine from
answering twice; two pods (a rollout, a second replica by mistake, another machine with a
copy of the config) share no file. With ``home_cluster`` configured, ``serve`` first takes
the Lease ``clustercord`` (``coordination.k8s.io/v1``) in that cluster's namespace, holds it
by renewing it every few seconds, and only then answers; a second instance waits, not ready,
until the Lease is released (a clean stop deletes it) or expires (its holder died without
stopping: ``DURATION`` seconds after its last renewal, and after the waiting instance last saw
it change by its own clock, so that no other machine's clock is trusted). An instance that
cannot renew in time stops answering: the other may have taken over.

Writes carry the ``resourceVersion`` read: of two instances racing for an expired Lease the
API server accepts one update and answers the other 409, so both never hold it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from clustercord.kubernetes.calls import ApiStatusError

log = logging.getLogger("clustercord.lease")

NAME = "clustercord"
DURATION = 15
"""Seconds a Lease stays valid after its last renewal."""
RENEW = 5.0
"""Seconds between two renewals (three tries before it expires)."""
MARGIN = 2.0
"""Seconds before the others may take the Lease over that its holder stops trusting it (by
its own monotonic clock, from the moment it sent its last renewal): a process frozen past
its Lease (SIGSTOP, a long pause, a frozen VM) must not answer what reached it meanwhile."""


def holder_identity() -> str:
    """Who holds it, as ``kubectl get lease`` shows: the pod's (host's) name and our pid."""
    return f"{socket.gethostname()}/{os.getpid()}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")


class ServeLease:
    """The Lease ``name`` in ``namespace`` of ``cluster``, through the kernel's Kubernetes
    service (its own credentials: the bot's ServiceAccount in a pod)."""

    def __init__(
        self,
        kubernetes: Any,
        cluster: str,
        namespace: str,
        *,
        name: str = NAME,
        identity: str | None = None,
        duration: int = DURATION,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kubernetes = kubernetes
        self.cluster = cluster
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity or holder_identity()
        self.duration = duration
        self._clock = clock
        self._monotonic = monotonic
        self._trusted_until = 0.0
        self._observed: tuple[str, float] | None = None
        """The Lease's resourceVersion as last read, and when (monotonic) it was first seen."""
        self.held = False
        self.holder: str | None = None
        """Who holds it, as last read (``None``: nobody)."""

    # -- one step each (blocking: run them in a thread) ---------------------------------
    def try_acquire(self) -> bool:
        """Take or renew the Lease; ``False`` when another live holder has it."""
        sent = self._monotonic()  # before the renewTime stamped below: never later
        now = self._clock()
        try:
            lease = self._kubernetes.request(self.cluster, "GET", self.path)
        except ApiStatusError as error:
            if error.status != 404:
                raise
            return self._write("POST", self._collection, self._body(now, None, now), sent)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        # Alive by the holder's stamp on our wall clock, or by what we saw ourselves: the
        # record changed (or we first saw it) less than ``duration`` ago on our monotonic
        # clock. The second keeps a standby whose clock runs ahead from taking a live Lease.
        version = str(lease["metadata"]["resourceVersion"])
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, sent)
        seen_alive = sent - self._observed[1] < duration
        alive = seen_alive or (renewed is not None and renewed + timedelta(seconds=duration) > now)
        if holder and holder != self.identity and alive:
            self.held, self.holder = False, holder
            return False
        acquired = _parse(spec.get("acquireTime")) if holder == self.identity else now
        body = self._body(now, lease["metadata"]["resourceVersion"], acquired or now)
        if holder and holder != self.identity:
            log.warning("taking over the Lease %s from %s (expired)", self.name, holder)
            body["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return self._write("PUT", self.path, body, sent)

    def valid(self) -> bool:
        """Whether this instance may answer now: it holds the Lease and renewed it less than
        ``duration - MARGIN`` seconds ago by its own monotonic clock (see :data:`MARGIN`)."""
        return self.held and self._monotonic() < self._trusted_until

    def release(self) -> None:
        """Give it up (a clean stop): the next instance need not wait for it to expire."""
        if not self.held:
            return
        self.held, self._trusted_until = False, 0.0
        try:
            lease = self._kubernetes.request(self.cluster, "GET", self.path)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                version = lease["metadata"]["resourceVersion"]
                self._kubernetes.request(
                    self.cluster,
                    "DELETE",
                    self.path,
                    body={"preconditions": {"resourceVersion": version}},
                )
        except Exception as exc:  # it expires anyway
            log.warning("could not release the Lease %s: %s", self.name, exc)

    def _body(self, now: datetime, version: str | None, acquired: datetime) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "labels": {"app.kubernetes.io/name": "clustercord"},
        }
        if version is not None:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _stamp(acquired),
                "renewTime": _stamp(now),
            },
        }

    def _write(self, method: str, path: str, body: dict[str, Any], sent: float) -> bool:
        try:
            self._kubernetes.request(self.cluster, method, path, body=body)
        except ApiStatusError as error:
            if error.status == 409:  # another instance wrote first: it holds it
                self.held = False
                return False
            raise
        self.held, self.holder = True, self.identity
        self._trusted_until = sent + self.duration - MARGIN
        return True

    # -- while serving --------------------------------------------------------------------
    async def acquire(self, *, every: float = RENEW, say: Callable[[str], None] = log.info) -> None:
        """Wait until this instance holds the Lease (an unreachable cluster is retried)."""
        told = None
        while True:
            try:
                if await asyncio.to_thread(self.try_acquire):
                    return
                problem = f"the Lease {self.name} is held by {self.holder}: waiting"
            except Exception as exc:
                problem = f"cannot take the Lease {self.name}: {exc}: retrying"
            if problem != told:
                say(problem)
                told = problem
            await asyncio.sleep(every)

    async def keep(self, stop: asyncio.Event, *, every: float = RENEW) -> None:
        """Renew until ``stop``; returns early (``held`` false) when the Lease was lost or
        could not be renewed before it would expire, and the caller must stop answering."""
        deadline = asyncio.get_running_loop().time() + self.duration
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
                break
            except TimeoutError:
                pass
            try:
                renewed = await asyncio.to_thread(self.try_acquire)
            except Exception as exc:
                log.warning("could not renew the Lease %s: %s", self.name, exc)
                renewed = None
            now = asyncio.get_running_loop().time()
            if renewed:
                deadline = now + self.duration
            elif renewed is False or now >= deadline:
                self.held = False
                log.error("lost the Lease %s (held by %s): stopping", self.name, self.holder)
                return


def for_kernel(kernel: Any) -> ServeLease | None:
    """The Lease of ``kernel``'s ``home_cluster`` (in that cluster's namespace), or ``None``
    when none is configured. A home cluster the registry does not know is a clear error."""
    name = kernel.settings.home_cluster
    if not name:
        return None
    cluster = kernel.kubernetes.registry.get(name)  # UsageError naming the known ones
    return ServeLease(kernel.kubernetes, cluster.name, cluster.namespace or "default")


async def hold(kernel: Any, lease: ServeLease | None, say: Callable[[str], None]) -> None:
    """Wait for the Lease (if any) with ``/healthz`` up and ``/readyz`` saying who holds it,
    so that the waiting pod is alive but gets no traffic."""
    if lease is None:
        return
    kernel.readiness.lease = lambda: (
        None if lease.held else f"held by {lease.holder or 'another instance'}: waiting"
    )
    if kernel.http.settings.enabled and kernel.http.url is None:
        await kernel.http.start()
    await lease.acquire(say=say)
    say(f"holding the Lease {lease.name} in cluster {lease.cluster} as {lease.identity}")
