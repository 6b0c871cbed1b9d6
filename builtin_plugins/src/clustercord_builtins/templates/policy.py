"""The security policy every template passes: curated ones in CI, community ones on submit.

Blocked outright (no declaration makes them acceptable): privileged containers, the
host's PID and IPC namespaces, container-runtime sockets and privilege escalation.
Host networking, host paths, host ports, running as root and cluster-wide objects (an
operator's CRDs, ClusterRoles and ClusterRoleBindings) are allowed only when
``requirements.features`` declares them; the template is then marked *elevated*.
Images must name a version (no ``latest``, no bare name). Missing limits are warnings.
Rule ids follow kube-linter's names, so findings can be looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clustercord_builtins.templates.kinds import SUPPORTED, describe, kind_of, namespaced
from clustercord_sdk.options import parse_quantity

RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "cri-dockerd.sock")


@dataclass(frozen=True)
class Finding:
    rule: str
    object: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.object} {self.path}: {self.message} [{self.rule}]"


@dataclass
class Estimate:
    """What a template asks of the cluster: requests and limits times replicas, and storage."""

    cpu_requests: Decimal = Decimal(0)
    cpu_limits: Decimal = Decimal(0)
    memory_requests: Decimal = Decimal(0)
    memory_limits: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)
    containers: int = 0

    def as_dict(self) -> dict[str, str]:
        return {
            "cpu_requests": format_cpu(self.cpu_requests),
            "cpu_limits": format_cpu(self.cpu_limits),
            "memory_requests": format_bytes(self.memory_requests),
            "memory_limits": format_bytes(self.memory_limits),
            "storage": format_bytes(self.storage),
        }


@dataclass
class Report:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    elevated: set[str] = field(default_factory=set)
    """The elevated features the manifests use (hostNetwork, hostPath, hostPort, runAsRoot)."""
    estimate: Estimate = field(default_factory=Estimate)

    @property
    def ok(self) -> bool:
        return not self.errors


def format_cpu(value: Decimal) -> str:
    if value < 1 and value != 0:
        return f"{int(value * 1000)}m"
    return f"{value.normalize():f}"


def format_bytes(value: Decimal) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            shown = (value / size).quantize(Decimal("0.1")).normalize()
            return f"{shown:f}{unit}"
    return f"{int(value)}"


def image_problem(image: str) -> str | None:
    """Why an image reference is refused, or ``None`` when it names a version or digest."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag: pin a version (never latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the latest tag: pin a version"
    return None


def pod_spec(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The pod spec inside a workload, and its path."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        return (
            ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec"),
            "spec.jobTemplate.spec.template.spec",
        )
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (spec.get("template") or {}).get("spec"), "spec.template.spec"
    if kind == "Pod":
        return spec, "spec"
    return None, ""


def check(objects: list[dict[str, Any]], declared_features: tuple[str, ...] = ()) -> Report:
    """Run every rule over ``objects`` and estimate their resources."""
    report = Report()
    for obj in objects:
        name = describe(obj)
        if kind_of(obj) is None:
            report.errors.append(
                Finding(
                    "unsupported-kind",
                    name,
                    "apiVersion/kind",
                    f"{obj.get('apiVersion')}/{obj.get('kind')} is not a kind templates may "
                    f"create (supported: {SUPPORTED})",
                )
            )
            continue
        if not namespaced(obj):
            # Operators (Argo CD, Flux, Tekton) need their CRDs and cluster-wide rights: allowed
            # only when declared, and the template is then elevated (admins are warned).
            report.elevated.add("clusterWide")
            continue
        if obj.get("kind") in ("Role", "RoleBinding"):
            _check_rbac(report, name, obj)
            continue
        if obj.get("kind") == "PersistentVolumeClaim":
            report.estimate.storage += _storage(obj.get("spec") or {})
        spec, path = pod_spec(obj)
        if spec is None:
            continue
        replicas = int((obj.get("spec") or {}).get("replicas", 1) or 0)
        for template in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
            report.estimate.storage += _storage(template.get("spec") or {}) * replicas
        _check_pod(report, name, spec, path, replicas)
    for feature in sorted(report.elevated - set(declared_features)):
        report.errors.append(
            Finding(
                "undeclared-elevated",
                "template",
                "requirements.features",
                f"the manifests use {feature} but requirements.features does not declare it",
            )
        )
    return report


ESCALATING_VERBS = frozenset({"escalate", "bind", "impersonate"})


def _check_rbac(report: Report, name: str, obj: dict[str, Any]) -> None:
    """A template's Role may let its own workloads (a CI runner) manage pods in the release's
    namespace; it may never grant everything, grant the rights to grant, or bind anything but
    its own Role to its own ServiceAccounts: that would reach beyond the release."""

    def block(rule: str, where: str, message: str) -> None:
        report.errors.append(Finding(rule, name, where, message))

    if obj["kind"] == "Role":
        for index, rule in enumerate(obj.get("rules") or []):
            where = f"rules[{index}]"
            for field_ in ("apiGroups", "resources", "verbs"):
                if "*" in (rule.get(field_) or []):
                    block("wildcard-in-rules", f"{where}.{field_}", "a wildcard grants everything")
            verbs = ESCALATING_VERBS & set(rule.get("verbs") or [])
            if verbs:
                block(
                    "access-to-create-rbac",
                    f"{where}.verbs",
                    f"{', '.join(sorted(verbs))} lets the holder grant itself more",
                )
            if rule.get("nonResourceURLs"):
                block("wildcard-in-rules", f"{where}.nonResourceURLs", "a Role cannot grant URLs")
        return
    ref = obj.get("roleRef") or {}
    if ref.get("kind") != "Role":
        block(
            "cluster-role-binding",
            "roleRef.kind",
            f"a template binds only the Roles it ships, not a {ref.get('kind')}",
        )
    namespace = (obj.get("metadata") or {}).get("namespace")
    for index, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") != "ServiceAccount" or subject.get("namespace") not in (
            None,
            namespace,
        ):
            block(
                "foreign-subject",
                f"subjects[{index}]",
                "a template binds only ServiceAccounts of its own namespace",
            )


def _storage(spec: dict[str, Any]) -> Decimal:
    wanted = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return parse_quantity(wanted) if wanted else Decimal(0)


def _check_pod(report: Report, name: str, spec: dict[str, Any], path: str, replicas: int) -> None:
    def block(rule: str, where: str, message: str) -> None:
        report.errors.append(Finding(rule, name, where, message))

    for flag, rule in (("hostPID", "host-pid"), ("hostIPC", "host-ipc")):
        if spec.get(flag):
            block(rule, f"{path}.{flag}", f"{flag} shares the host's namespace: not allowed")
    if spec.get("hostNetwork"):
        report.elevated.add("hostNetwork")
    pod_root = (spec.get("securityContext") or {}).get("runAsUser") == 0
    for index, volume in enumerate(spec.get("volumes") or []):
        host = volume.get("hostPath")
        if host is None:
            continue
        where = f"{path}.volumes[{index}].hostPath.path"
        if str(host.get("path", "")).rstrip("/").endswith(RUNTIME_SOCKETS):
            block("docker-sock", where, f"mounting {host.get('path')} hands over the host")
        else:
            report.elevated.add("hostPath")
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{index}]"
            security = container.get("securityContext") or {}
            if security.get("privileged"):
                block(
                    "privileged-container",
                    f"{where}.securityContext.privileged",
                    "privileged containers are not allowed",
                )
            if security.get("allowPrivilegeEscalation"):
                block(
                    "privilege-escalation-container",
                    f"{where}.securityContext.allowPrivilegeEscalation",
                    "privilege escalation is not allowed",
                )
            runs_as = security.get("runAsUser")
            if runs_as == 0 or (runs_as is None and pod_root):
                report.elevated.add("runAsRoot")
            if any(p.get("hostPort") for p in container.get("ports") or []):
                report.elevated.add("hostPort")
            problem = image_problem(str(container.get("image", "")))
            if problem:
                block("latest-tag", f"{where}.image", problem)
            _resources(report, name, where, container, replicas)


def _resources(
    report: Report, name: str, where: str, container: dict[str, Any], replicas: int
) -> None:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    missing = [r for r in ("cpu", "memory") if r not in limits]
    if missing:
        report.warnings.append(
            Finding(
                "unset-limits",
                name,
                f"{where}.resources.limits",
                f"container {container.get('name')} has no {' or '.join(missing)} limit",
            )
        )
    estimate = report.estimate
    estimate.containers += 1
    # Kubernetes defaults a missing request to the limit.
    estimate.cpu_requests += _quantity(requests.get("cpu") or limits.get("cpu")) * replicas
    estimate.memory_requests += _quantity(requests.get("memory") or limits.get("memory")) * replicas
    estimate.cpu_limits += _quantity(limits.get("cpu")) * replicas
    estimate.memory_limits += _quantity(limits.get("memory")) * replicas


def _quantity(value: Any) -> Decimal:
    return parse_quantity(str(value)) if value not in (None, "") else Decimal(0)
