"""What may be hit, checked before anything is recorded or changed.

Reads here go through the plugin's own identity (``ctx.plugin.kubernetes``): whether a
namespace is protected or marked production is policy, which a user who may only touch pods
in one namespace must still be held to. The user's own rights are checked separately, with
``Kubernetes.check`` (a SubjectAccessReview for their identity).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from clustercord_builtins.chaos.experiments import EVERY_NAMESPACE, Experiments
from clustercord_sdk.errors import CommandError, PermissionDenied
from clustercord_sdk.kubernetes import Kubernetes

DEFAULT_PROTECTED = ("kube-system", "clustercord-system")
ALLOW_ANNOTATION = "chaos.clustercord.io/allow"
ENVIRONMENT_KEY = "clustercord.io/environment"
"""A namespace labelled or annotated ``clustercord.io/environment: production`` is production."""


def _words(value: Any) -> set[str]:
    return {w.strip() for w in str(value or "").replace(",", " ").split() if w.strip()}


def protected_namespaces(config: Mapping[str, Any], experiments: Experiments) -> set[str]:
    return (
        set(DEFAULT_PROTECTED)
        | _words(config.get("protected_namespaces"))
        | set(experiments.protected())
    )


async def check_namespace(
    kube: Kubernetes,
    config: Mapping[str, Any],
    experiments: Experiments,
    cluster: str,
    namespace: str,
) -> bool:
    """Refuses a protected namespace (or, in opt-in mode, one not annotated
    ``chaos.clustercord.io/allow=true``); returns whether it is production (approval)."""
    if namespace in protected_namespaces(config, experiments):
        raise PermissionDenied(
            f"namespace {namespace} is protected from chaos experiments "
            "(an admin changes that with /chaos config unprotect)"
        )
    ns = await kube.get("namespaces", namespace, cluster=cluster)
    meta = ns.get("metadata") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    if config.get("opt_in") and annotations.get(ALLOW_ANNOTATION) != "true":
        raise PermissionDenied(
            f"namespace {namespace} has not opted in to chaos experiments (opt-in mode: "
            f"annotate it {ALLOW_ANNOTATION}=true)"
        )
    marked = {labels.get(ENVIRONMENT_KEY), annotations.get(ENVIRONMENT_KEY)}
    return (
        "production" in marked
        or namespace in _words(config.get("production_namespaces"))
        or cluster in _words(config.get("production_clusters"))
    )


def check_target_free(experiments: Experiments, cluster: str, namespace: str, target: str) -> None:
    holding = experiments.holding(cluster, namespace, target)
    if holding is not None:
        where = f"{namespace}/{target}" if namespace else target
        raise CommandError(
            f"{where} is already under experiment {holding.id} ({holding.kind}, {holding.state}): "
            "one experiment per target at a time (/chaos stop experiment:" + holding.id + ")"
        )


DEFAULT_MAX_PODS = 3


def blast_limit(
    config: Mapping[str, Any], experiments: Experiments, namespace: str
) -> tuple[int, str]:
    """The most pods of ``namespace`` under experiments at once, and where that limit comes
    from: the namespace's own (``/chaos config blast-radius namespace:``), else the one set
    from chat for every namespace, else the plugin's ``max_pods`` setting."""
    chosen = experiments.max_pods()
    if namespace in chosen:
        return chosen[namespace], f"set for namespace {namespace} with /chaos config blast-radius"
    if EVERY_NAMESPACE in chosen:
        return chosen[EVERY_NAMESPACE], "set for every namespace with /chaos config blast-radius"
    return int(config.get("max_pods", DEFAULT_MAX_PODS)), "the plugin's max_pods setting"


def check_blast_radius(
    config: Mapping[str, Any],
    experiments: Experiments,
    cluster: str,
    namespace: str,
    adding: int,
    doing: str = "this fault hits",
) -> None:
    """Refuses ``adding`` more pods of ``namespace`` when, with the pods already under open
    experiments there (awaiting approval included: approving must not exceed it), they would
    be more than the namespace's limit. Called before anything is recorded or changed."""
    limit, source = blast_limit(config, experiments, namespace)
    live = [
        e
        for e in experiments.in_states(
            ("injecting", "active", "rollback-failed", "awaiting-approval")
        )
        if e.cluster == cluster and e.namespace == namespace and e.kind != "drain-node"
    ]
    if len(live) + adding > limit:
        already = f", and {len(live)} already are ({', '.join(e.id for e in live)})" if live else ""
        raise PermissionDenied(
            f"blast radius: {doing} {adding} pod(s) of namespace {namespace}{already}; the "
            f"limit is {limit} ({source}). Nothing was changed."
        )


async def check_budgets(kube: Kubernetes, pod: dict[str, Any], cluster: str) -> None:
    """Refuses a pod that a PodDisruptionBudget currently allows no disruption of."""
    namespace = pod["metadata"]["namespace"]
    labels = pod["metadata"].get("labels") or {}
    budgets = await kube.list("poddisruptionbudgets.policy", namespace=namespace, cluster=cluster)
    for budget in budgets:
        if not selects((budget.get("spec") or {}).get("selector"), labels):
            continue
        allowed = (budget.get("status") or {}).get("disruptionsAllowed")
        if allowed is not None and int(allowed) <= 0:
            raise PermissionDenied(
                f"PodDisruptionBudget {namespace}/{budget['metadata']['name']} allows no "
                f"disruption of {pod['metadata']['name']} now (an admin may override with "
                "force:true)"
            )


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector's verdict; an empty or missing one selects nothing (as for PDBs in
    policy/v1, where an empty selector selects every pod of the namespace)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


async def find_pod(kube: Kubernetes, name: str, namespace: str, cluster: str) -> dict[str, Any]:
    """The pod, or an error that names the pods it may have meant."""
    try:
        return await kube.get("pods", name, namespace=namespace, cluster=cluster)
    except CommandError as error:
        if not str(error).startswith("not found"):
            raise
    names = [
        p["metadata"]["name"] for p in await kube.list("pods", namespace=namespace, cluster=cluster)
    ]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    close += [n for n in names if n.startswith(name) and n not in close][:3]
    hint = f"; did you mean {', '.join(close[:3])}?" if close else ""
    raise CommandError(f"no pod {name!r} in namespace {namespace}{hint}")


async def find_node(kube: Kubernetes, name: str, cluster: str) -> dict[str, Any]:
    try:
        return await kube.get("nodes", name, cluster=cluster)
    except CommandError as error:
        if not str(error).startswith("not found"):
            raise
    names = [n["metadata"]["name"] for n in await kube.list("nodes", cluster=cluster)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (nodes: {', '.join(names)})"
    raise CommandError(f"no node {name!r}{hint}")
