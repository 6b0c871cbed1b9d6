"""One operation at a time per deployment, across replicas: a Lease in its namespace.

Deploy, update and delete each hold ``clustercord-lock-<release>`` while they run. The Lease
says which process holds it (an annotation: host name, boot id, process id and the process's
start time). A Lease is taken over at once when its holder is known to be dead: the same
host and boot, and that process is gone (or the pid now belongs to a process started at
another time), or the host was rebooted since. So a deploy killed with ``kill -9`` blocks
nothing: the next attempt, from a restarted bot on the same machine, proceeds at once. A
holder on another machine cannot be checked from here: its Lease expires after its duration
and is then taken over, so nothing stays locked forever (Helm's "another operation is in
progress" deadlock, helm#11863).
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clustercord_sdk.errors import CommandError

LEASES = "leases.coordination.k8s.io"
DURATION = 600  # seconds: longer than any deploy with its readiness wait
HOLDER = "clustercord.dev/holder-process"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def lock_name(release: str) -> str:
    return f"clustercord-lock-{release}"


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or ``None``
    when there is no such process (or no ``/proc`` to ask)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> dict[str, str]:
    """Who holds a lock taken here: enough to tell later whether this process still lives."""
    return {
        "host": socket.gethostname(),
        "boot": boot_id(),
        "pid": str(os.getpid()),
        "start": start_time(os.getpid()) or "",
    }


def holder_dead(lease: dict[str, Any]) -> str | None:
    """Why the process holding ``lease`` is known to be dead, or ``None`` (alive, or on
    another machine: unknown)."""
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        holder = json.loads(annotations.get(HOLDER) or "null")
    except ValueError:
        return None
    if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
        return None
    boot = boot_id()
    if holder.get("boot") and boot and holder["boot"] != boot:
        return "the machine was restarted since it took the lock"
    try:
        pid = int(holder.get("pid", ""))
    except ValueError:
        return None
    if not holder.get("start") or not holder.get("boot") or not boot:
        return None  # no /proc here: the process cannot be checked
    started = start_time(pid)
    if started is None:
        return f"process {pid} that held it is gone"
    if started != holder["start"]:
        return f"process {pid} that held it is gone (the pid is another process's now)"
    return None


def expired(lease: dict[str, Any], now: datetime) -> bool:
    spec = lease.get("spec") or {}
    since = spec.get("renewTime") or spec.get("acquireTime")
    if not since:
        return True
    started = datetime.fromisoformat(since.replace("Z", "+00:00"))
    return started + timedelta(seconds=int(spec.get("leaseDurationSeconds", DURATION))) < now


@asynccontextmanager
async def held(kube: Any, cluster: str, namespace: str, release: str, holder: str):  # type: ignore[no-untyped-def]
    """Hold the deployment's lock for the ``with`` block, or refuse at once."""
    name = lock_name(release)
    now = _now()
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "clustercord"},
            "annotations": {HOLDER: json.dumps(this_process(), sort_keys=True)},
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": DURATION,
            "acquireTime": _stamp(now),
            "renewTime": _stamp(now),
        },
    }
    for attempt in range(2):
        try:
            await kube.create(LEASES, lease, namespace=namespace, cluster=cluster)
            break
        except CommandError as error:
            if not str(error).startswith("conflict") or attempt:
                raise
        found = await kube.list(
            LEASES, namespace=namespace, field_selector=f"metadata.name={name}", cluster=cluster
        )
        if found and not expired(found[0], now) and holder_dead(found[0]) is None:
            spec = found[0].get("spec") or {}
            raise CommandError(
                f"another /template operation on {release} is in progress (held by "
                f"{spec.get('holderIdentity', '?')} since {spec.get('acquireTime', '?')}); "
                "try again when it has finished"
            )
        if found:  # a dead or expired holder's lease: take it over
            await kube.delete(LEASES, name, namespace=namespace, cluster=cluster)
    try:
        yield
    finally:
        try:
            await kube.delete(LEASES, name, namespace=namespace, cluster=cluster)
        except CommandError:
            pass  # gone already (a deleted namespace takes its leases along)
