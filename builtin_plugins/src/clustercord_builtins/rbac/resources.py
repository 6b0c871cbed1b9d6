"""Which API group a resource lives in, and a clear refusal for a resource nobody knows.

Users type ``deployments`` rather than ``deployments.apps``; the RBAC rules name resources
and groups separately. The well-known resources below settle the group; any resource a rule
of the cluster names is known too (CRDs), so only a typo is refused.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from clustercord_sdk.errors import UsageError
from clustercord_sdk.permissions import PermissionError_, parse_permission
from clustercord_sdk.rbac import RBACSnapshot

_BY_GROUP: dict[str, tuple[str, ...]] = {
    "": (
        "pods", "services", "endpoints", "configmaps", "secrets", "serviceaccounts",
        "persistentvolumeclaims", "persistentvolumes", "nodes", "namespaces", "events",
        "limitranges", "resourcequotas", "replicationcontrollers", "podtemplates", "bindings",
        "componentstatuses", "users", "groups",
    ),
    "apps": ("deployments", "statefulsets", "daemonsets", "replicasets", "controllerrevisions"),
    "batch": ("jobs", "cronjobs"),
    "rbac.authorization.k8s.io": ("roles", "clusterroles", "rolebindings", "clusterrolebindings"),
    "networking.k8s.io": ("ingresses", "networkpolicies", "ingressclasses"),
    "storage.k8s.io": ("storageclasses", "volumeattachments", "csidrivers", "csinodes"),
    "policy": ("poddisruptionbudgets",),
    "autoscaling": ("horizontalpodautoscalers",),
    "certificates.k8s.io": ("certificatesigningrequests",),
    "admissionregistration.k8s.io": (
        "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
        "validatingadmissionpolicies",
    ),
    "apiextensions.k8s.io": ("customresourcedefinitions",),
    "coordination.k8s.io": ("leases",),
    "authentication.k8s.io": ("tokenreviews", "userextras", "uids"),
    "authorization.k8s.io": ("subjectaccessreviews",),
    "scheduling.k8s.io": ("priorityclasses",),
    "node.k8s.io": ("runtimeclasses",),
    "discovery.k8s.io": ("endpointslices",),
}  # fmt: skip
WELL_KNOWN: dict[str, str] = {r: g for g, names in _BY_GROUP.items() for r in names}


@dataclass(frozen=True)
class Resource:
    """A resource as an access check needs it."""

    resource: str
    group: str
    subresource: str

    def __str__(self) -> str:
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{name}/{self.subresource}" if self.subresource else name


def known_resources(snapshot: RBACSnapshot) -> dict[str, set[str]]:
    """Resource → the groups it is known in (well-known ones plus every rule's)."""
    known: dict[str, set[str]] = {}
    for name, group in WELL_KNOWN.items():
        known.setdefault(name, set()).add(group)
    for role in (*snapshot.cluster_roles.values(), *snapshot.roles.values()):
        for rule in role.rules:
            for resource in rule.resources:
                base = resource.split("/", 1)[0]
                if base != "*":
                    known.setdefault(base, set()).update(g for g in rule.api_groups if g != "*")
    return known


def resolve_resource(text: str, subresource: str | None, snapshot: RBACSnapshot) -> Resource:
    """``deployments`` → ``deployments.apps``; ``pods/log`` or ``pods`` + ``log`` → the
    subresource; an unknown resource is refused with the closest known names."""
    try:
        parsed = parse_permission(f"{text.strip().lower()}:get")
    except PermissionError_:
        raise UsageError(
            f"resource {text!r} is not a resource name (e.g. pods, deployments.apps, pods/log)"
        ) from None
    sub = subresource.strip().lower() if subresource else (parsed.subresource or "")
    if parsed.resource == "*":
        return Resource("*", parsed.group, sub)
    known = known_resources(snapshot)
    if parsed.resource not in known:
        close = difflib.get_close_matches(parsed.resource, list(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(
            f"unknown resource {parsed.resource!r}: no built-in API serves it and no role of "
            f"this cluster names it{hint}"
        )
    group = parsed.group
    if not group:
        # A built-in resource keeps its own group even when some rule also names it in
        # another (deployments is apps, whatever a stray rule says); otherwise the core
        # group, then the first alphabetically.
        groups = known[parsed.resource]
        if parsed.resource in WELL_KNOWN:
            group = WELL_KNOWN[parsed.resource]
        else:
            group = "" if "" in groups or not groups else sorted(groups)[0]
    return Resource(parsed.resource, group, sub)
