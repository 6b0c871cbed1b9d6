"""The legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) and `/version`.

kubectl 1.32 first asks for aggregated discovery (`as=APIGroupDiscoveryList`); when the answer
is plain `application/json` it falls back to these documents, so the sandbox serves only them.
"""

from __future__ import annotations

from typing import Any

from .openapi import KUBERNETES_VERSION
from .registry import Registry

SERVER_ADDRESSES = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]


def version_info() -> dict[str, str]:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"{KUBERNETES_VERSION}-sandbox",
        "gitCommit": "clustercord-sandbox",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "n/a (ClusterCord sandbox, Python)",
        "compiler": "cpython",
        "platform": "sandbox/any",
    }


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": SERVER_ADDRESSES,
    }


def group_list(registry: Registry) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for group, version in registry.group_versions():
        if group:
            groups.setdefault(group, []).append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, versions) for name, versions in groups.items()],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = [v for g, v in registry.group_versions() if g == name]
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    rows = registry.in_group_version(group, version)
    if not rows:
        return None
    resources: list[dict[str, Any]] = []
    for rt in rows:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            resources.append(_subresource(rt, sub))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _subresource(rt: Any, sub: str) -> dict[str, Any]:
    kind, verbs, group, version = rt.kind, ["get", "patch", "update"], None, None
    if sub == "scale":
        kind, group, version = "Scale", "autoscaling", "v1"
    elif sub == "log":
        kind, verbs = "Pod", ["get"]
    elif sub == "eviction":
        kind, verbs, group, version = "Eviction", ["create"], "policy", "v1"
    elif sub in ("exec", "attach"):
        kind, verbs = "PodExecOptions", ["create", "get"]
    elif sub == "portforward":
        kind, verbs = "PodPortForwardOptions", ["create", "get"]
    elif sub == "token":
        kind, verbs, group, version = "TokenRequest", ["create"], "authentication.k8s.io", "v1"
    elif sub == "binding":
        kind, verbs = "Binding", ["create"]
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if group is not None:
        entry["group"], entry["version"] = group, version
    return entry
