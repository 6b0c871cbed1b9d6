"""Helpers for the ``autocomplete`` hook: suggestions while the user types an option.

Discord shows at most 25 suggestions and drops an answer that comes after 3 seconds, so
these helpers rank what matches, cut the list, and give up quietly (an empty list) when
the cluster is slow or refuses: a missing suggestion is better than an error in a
half-typed command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from clustercord_sdk.errors import ClusterCordError

SUGGESTIONS_MAX = 25
"""Discord's limit on autocomplete choices."""

LOOKUP_TIMEOUT = 2.0
"""Seconds a lookup may take, leaving time to answer within Discord's 3."""

KUBERNETES_OPTIONS = {"namespace": "namespaces", "pod": "pods", "deployment": "deployments.apps"}
"""The options named after a kind of object, and the resource :func:`suggest` lists."""


def rank(names: Iterable[str], typed: str, limit: int = SUGGESTIONS_MAX) -> list[str]:
    """``names`` that start with ``typed`` (case-insensitive), then those that contain it,
    each group sorted, without repeats, at most ``limit``."""
    wanted = typed.strip().lower()
    unique = sorted(set(names))
    starts = [n for n in unique if n.lower().startswith(wanted)]
    contains = [n for n in unique if wanted in n.lower() and n not in starts]
    return (starts + contains)[:limit]


async def object_names(
    kubernetes: Any,
    resource: str,
    typed: str,
    *,
    namespace: str | None = None,
    cluster: str | None = None,
    timeout: float = LOOKUP_TIMEOUT,
) -> list[str]:
    """Names of ``resource`` objects (``pods``, ``deployments.apps``, ``namespaces``…)
    matching ``typed``, from the namespace and cluster the command would use. Give a
    :class:`~clustercord_sdk.kubernetes.Kubernetes` acting for the invoking user (in the
    hook, ``ctx.kubernetes.acting_for(invocation)``), so nobody is shown names they may not
    list."""
    try:
        items = await asyncio.wait_for(
            kubernetes.list(resource, namespace=namespace, cluster=cluster), timeout
        )
    except (ClusterCordError, TimeoutError):
        return []
    return rank((item["metadata"]["name"] for item in items), typed)


async def suggest(
    kubernetes: Any, option: str, typed: str, options: Mapping[str, Any]
) -> list[str]:
    """Suggestions for the options Kubernetes commands share: ``cluster`` (every cluster's
    name) and those of :data:`KUBERNETES_OPTIONS` (names of objects in the ``cluster`` and
    ``namespace`` already given in ``options``). Empty for any other option. Give a
    :class:`~clustercord_sdk.kubernetes.Kubernetes` acting for the invoking user."""
    if option == "cluster":
        return rank((c.name for c in kubernetes.clusters()), typed)
    resource = KUBERNETES_OPTIONS.get(option)
    if resource is None:
        return []
    namespace = None if resource == "namespaces" else options.get("namespace")
    return await object_names(
        kubernetes, resource, typed, namespace=namespace, cluster=options.get("cluster")
    )
