"""One operation at a time per deployment, across replicas: a Lease in its namespace.

Deploy, update and delete each hold ``clustercord-lock-<release>`` while they run. A Lease
left by a crashed replica expires after its duration and is then taken over, so nothing
stays locked forever (Helm's "another operation is in progress" deadlock, helm#11863).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from clustercord_sdk.errors import CommandError

LEASES = "leases.coordination.k8s.io"
DURATION = 600  # seconds: longer than any deploy with its readiness wait


def lock_name(release: str) -> str:
    return f"clustercord-lock-{release}"


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        if found and not expired(found[0], now):
            spec = found[0].get("spec") or {}
            raise CommandError(
                f"another /template operation on {release} is in progress (held by "
                f"{spec.get('holderIdentity', '?')} since {spec.get('acquireTime', '?')}); "
                "try again when it has finished"
            )
        if found:  # a crashed holder's lease: take it over
            await kube.delete(LEASES, name, namespace=namespace, cluster=cluster)
    try:
        yield
    finally:
        try:
            await kube.delete(LEASES, name, namespace=namespace, cluster=cluster)
        except CommandError:
            pass  # gone already (a deleted namespace takes its leases along)
