"""Does the cluster meet a template's requirements? Checked before anything is created.

What is compared: the Kubernetes version with ``requirements.kubernetes_version``; ready
nodes with ``nodes``; allocatable CPU and memory of the ready nodes with the larger of the
declared requirement and the template's own requests; a StorageClass for its claims (the
named one, or a default); a LoadBalancer implementation when a Service asks for one; GPUs
when ``GPU`` is declared.
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

from clustercord_builtins.templates.policy import Estimate, format_bytes, format_cpu
from clustercord_builtins.templates.template import Template
from clustercord_sdk.options import parse_quantity

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")


def version_of(git_version: str) -> str | None:
    found = re.match(r"v?(\d+)\.(\d+)", git_version or "")
    return f"{found.group(1)}.{found.group(2)}" if found else None


def version_ok(specifier: str, version: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier.replace(" ", "")).contains(version, prereleases=True)


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def unmet(
    kube: Any,
    cluster: str,
    template: Template,
    objects: list[dict[str, Any]],
    estimate: Estimate,
    values: dict[str, Any],
) -> list[str]:
    """What the cluster lacks, one line each; empty when every requirement is met."""
    wanted = template.requirements
    missing: list[str] = []
    answer, listed = await asyncio.gather(
        kube.version(cluster=cluster), kube.list("nodes", cluster=cluster)
    )
    version = version_of(str(answer.get("gitVersion", "")))
    spec = wanted.get("kubernetes_version")
    if spec and (version is None or not version_ok(spec, version)):
        missing.append(f"Kubernetes {spec} (the cluster runs {version or 'an unknown version'})")

    nodes = [n for n in listed if _ready(n)]
    if len(nodes) < int(wanted.get("nodes", 1)):
        missing.append(f"{wanted.get('nodes', 1)} ready nodes (the cluster has {len(nodes)})")
    allocatable = [(n.get("status") or {}).get("allocatable") or {} for n in nodes]
    cpu = sum((parse_quantity(a.get("cpu", "0")) for a in allocatable), Decimal(0))
    memory = sum((parse_quantity(a.get("memory", "0")) for a in allocatable), Decimal(0))
    need_cpu = max(parse_quantity(wanted.get("cpu", "0")), estimate.cpu_requests)
    need_memory = max(parse_quantity(wanted.get("memory", "0")), estimate.memory_requests)
    if cpu < need_cpu:
        missing.append(
            f"{format_cpu(need_cpu)} CPU allocatable (ready nodes have {format_cpu(cpu)})"
        )
    if memory < need_memory:
        missing.append(
            f"{format_bytes(need_memory)} memory allocatable (ready nodes have "
            f"{format_bytes(memory)})"
        )
    if "GPU" in template.features and not any(
        parse_quantity(a.get(r, "0")) > 0 for a in allocatable for r in GPU_RESOURCES
    ):
        missing.append("a GPU (no ready node offers nvidia.com/gpu, amd.com/gpu or i915)")

    claims = [o for o in objects if o.get("kind") == "PersistentVolumeClaim"]
    if claims or "PersistentVolumes" in template.features:
        missing += await _storage(kube, cluster, claims, values)
    balanced = [
        o["metadata"]["name"]
        for o in objects
        if o.get("kind") == "Service" and (o.get("spec") or {}).get("type") == "LoadBalancer"
    ]
    if (balanced or "LoadBalancer" in template.features) and not await _load_balancer(
        kube, cluster, nodes
    ):
        which = f" for Service {', '.join(balanced)}" if balanced else ""
        missing.append(
            f"a LoadBalancer implementation{which} (no cloud provider and no LoadBalancer "
            "Service has an address: install MetalLB or use service_type NodePort)"
        )
    return missing


async def _storage(
    kube: Any, cluster: str, claims: list[dict[str, Any]], values: dict[str, Any]
) -> list[str]:
    classes = await kube.list("storageclasses.storage.k8s.io", cluster=cluster)
    names = {c["metadata"]["name"] for c in classes}
    default = [
        c["metadata"]["name"]
        for c in classes
        if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"
    ]
    missing = []
    for claim in claims:
        wanted = (claim.get("spec") or {}).get("storageClassName")
        if wanted and wanted not in names:
            known = ", ".join(sorted(names)) or "none"
            missing.append(
                f"StorageClass {wanted} for claim {claim['metadata']['name']} (classes: {known})"
            )
            break
        if not wanted and not default:
            known = ", ".join(sorted(names)) or "none"
            missing.append(
                "a default StorageClass for the template's claims (classes: "
                f"{known}; set storage_class)"
            )
            break
    return missing


async def _load_balancer(kube: Any, cluster: str, nodes: list[dict[str, Any]]) -> bool:
    """A cloud provider (nodes with a providerID) or a LoadBalancer that got an address."""
    if any((n.get("spec") or {}).get("providerID") for n in nodes):
        return True
    services = await kube.list("services", all_namespaces=True, cluster=cluster)
    return any(
        ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        for s in services
        if (s.get("spec") or {}).get("type") == "LoadBalancer"
    )
