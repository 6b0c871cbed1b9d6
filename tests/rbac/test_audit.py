"""The audit through the kernel: every risk rule fires on a planted binding, a fresh cluster
audits clean, escalation paths are spelled out, and a broken binding is a finding."""

from __future__ import annotations

import pytest
import yaml

from .conftest import start_rbac

RBAC = "rbac.authorization.k8s.io"

CLUSTER, HERE = True, False
CERTS, ADMISSION, CRDS = (
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
)
#: rule id → (apiGroup, resource, verb, where the planted role is bound: cluster-wide, in the
#: planted namespace, or in the named namespace)
PLANTED = {
    "RBAC-001": ("*", "*", "*", CLUSTER),
    "RBAC-002": ("*", "*", "*", HERE),
    "RBAC-003": ("apps", "daemonsets", "*", HERE),
    "RBAC-004": ("", "*", "list", HERE),
    "RBAC-010": ("", "secrets", "list", HERE),
    "RBAC-011": ("", "secrets", "get", HERE),
    "RBAC-012": ("", "serviceaccounts/token", "create", HERE),
    "RBAC-013": ("", "secrets", "create", HERE),
    "RBAC-020": ("", "users", "impersonate", CLUSTER),
    "RBAC-021": (RBAC, "roles", "bind", HERE),
    "RBAC-022": (RBAC, "clusterroles", "escalate", CLUSTER),
    "RBAC-023": (RBAC, "rolebindings", "create", HERE),
    "RBAC-024": (RBAC, "roles", "patch", HERE),
    "RBAC-030": ("", "pods", "create", HERE),
    "RBAC-031": ("batch", "cronjobs", "create", HERE),
    "RBAC-032": ("", "pods/exec", "create", HERE),
    "RBAC-033": ("", "pods/ephemeralcontainers", "patch", HERE),
    "RBAC-034": ("", "pods", "update", HERE),
    "RBAC-040": ("", "nodes/proxy", "get", CLUSTER),
    "RBAC-041": ("", "nodes/status", "patch", CLUSTER),
    "RBAC-042": (CERTS, "certificatesigningrequests/approval", "update", CLUSTER),
    "RBAC-043": (ADMISSION, "mutatingwebhookconfigurations", "create", CLUSTER),
    "RBAC-044": ("", "persistentvolumes", "create", CLUSTER),
    "RBAC-045": ("", "services/status", "patch", HERE),
    "RBAC-046": ("", "pods/status", "update", HERE),
    "RBAC-047": ("", "namespaces", "patch", CLUSTER),
    "RBAC-048": (CRDS, "customresourcedefinitions", "create", CLUSTER),
    "RBAC-049": ("", "configmaps", "update", "kube-system"),
}
NAMED = {"RBAC-049": ["aws-auth"]}  # a resourceNames rule
NAMESPACE = "planted"


def _user(rule_id: str) -> str:
    return f"u-{rule_id.lower()}"


def planted_manifest() -> str:
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for rule_id, (group, resource, verb, scope) in PLANTED.items():
        rule = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
        if rule_id in NAMED:
            rule["resourceNames"] = NAMED[rule_id]
        name = f"risk-{rule_id.lower()}"
        subject = [{"apiGroup": RBAC, "kind": "User", "name": _user(rule_id)}]
        ref = {"apiGroup": RBAC, "kind": "ClusterRole", "name": name}
        docs.append(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": [rule],
            }
        )
        if scope is True:
            binding = {"kind": "ClusterRoleBinding", "metadata": {"name": name}}
        else:
            namespace = scope or NAMESPACE
            binding = {"kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace}}
        docs.append({"apiVersion": f"{RBAC}/v1", **binding, "roleRef": ref, "subjects": subject})
    # Broad subjects, and bindings that grant nothing.
    docs += [
        _binding("ClusterRoleBinding", "anon-view", "view", a_user("system:anonymous")),
        _binding("ClusterRoleBinding", "everyone-edit", "edit", a_group("system:authenticated")),
        _binding("RoleBinding", "sas-view", "view", a_group("system:serviceaccounts:planted")),
        _binding("RoleBinding", "dangling", "no-such-role", a_user("u-dangling")),
        _binding("ClusterRoleBinding", "role-ref", "a-role", a_user("u-badref"), ref_kind="Role"),
    ]  # fmt: skip
    return yaml.safe_dump_all(docs)


def a_user(name: str) -> dict:
    return {"kind": "User", "name": name}


def a_group(name: str) -> dict:
    return {"kind": "Group", "name": name}


def _binding(kind: str, name: str, role: str, subject: dict, ref_kind: str = "ClusterRole") -> dict:
    meta = (
        {"name": name} if kind == "ClusterRoleBinding" else {"name": name, "namespace": NAMESPACE}
    )
    subject = {**subject, "apiGroup": RBAC}
    ref = {"apiGroup": RBAC, "kind": ref_kind, "name": role}
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": ref,
        "subjects": [subject],
    }


@pytest.fixture(scope="module")
def planted(fresh):
    fresh.apply(planted_manifest())
    return fresh


@pytest.fixture
async def kernel(clustercord_harness, monkeypatch, fresh):
    return await start_rbac(clustercord_harness, fresh, monkeypatch)


async def test_a_fresh_cluster_audits_clean_but_counts_its_own_bindings(kernel):
    result = await kernel.run("/rbac audit all:true")
    assert result.ok, result.text
    assert result.reply.data["findings"] == []
    assert result.reply.data["summary"]["hidden_system_findings"] > 0
    system = await kernel.run("/rbac audit include_system:true all:true")
    ids = {f["id"] for f in system.reply.data["findings"]}
    # system:masters holds cluster-admin through the bootstrap binding
    assert "RBAC-001" in ids
    assert all(f["system"] for f in system.reply.data["findings"])


async def test_every_rule_fires_on_its_planted_binding(planted, kernel):
    result = await kernel.run("/rbac audit all:true")
    assert result.ok, result.text
    findings = result.reply.data["findings"]
    by_user: dict[str, set[str]] = {}
    for finding in findings:
        by_user.setdefault(finding["subject"]["name"], set()).add(finding["id"])
    missing = [rule for rule in PLANTED if rule not in by_user.get(_user(rule), set())]
    assert missing == []
    # A planted rule fires its own risk, not unrelated ones.
    assert by_user[_user("RBAC-011")] == {"RBAC-011"}
    assert by_user[_user("RBAC-045")] == {"RBAC-045"}
    assert by_user["system:anonymous"] == {"RBAC-050"}
    assert "RBAC-051" in by_user["system:authenticated"]
    assert by_user["system:serviceaccounts:planted"] == {"RBAC-052"}
    assert by_user["u-dangling"] == {"RBAC-060"} and by_user["u-badref"] == {"RBAC-061"}
    finding = next(
        f for f in findings if f["id"] == "RBAC-032" and f["subject"]["name"] == "u-rbac-032"
    )
    assert finding["path"]["binding"] == {
        "kind": "RoleBinding",
        "name": "risk-rbac-032",
        "namespace": NAMESPACE,
    }
    assert finding["path"]["role"] == {"kind": "ClusterRole", "name": "risk-rbac-032"}
    assert finding["path"]["rule"] == {
        "verbs": ["create"],
        "apiGroups": [""],
        "resources": ["pods/exec"],
    }
    assert finding["severity"] == "high" and finding["recommendation"]
    dangling = next(f for f in findings if f["id"] == "RBAC-060")
    assert 'clusterrole.rbac.authorization.k8s.io "no-such-role" not found' in dangling["message"]


ESCALATORS = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: deployer, namespace: {NAMESPACE}}}
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: deployer-admin}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: deployer, namespace: {NAMESPACE}}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: binder}}
rules:
- {{apiGroups: [{RBAC}], resources: [clusterroles], verbs: [bind]}}
- {{apiGroups: [{RBAC}], resources: [clusterrolebindings], verbs: [create]}}
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: binder}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: binder}}
subjects: [{{apiGroup: {RBAC}, kind: User, name: u-binder}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: self-editor}}
rules:
- {{apiGroups: [{RBAC}], resources: [clusterroles], verbs: [escalate]}}
- {{apiGroups: [{RBAC}], resources: [clusterroles], verbs: [update], resourceNames: [self-editor]}}
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: self-editor}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: self-editor}}
subjects: [{{apiGroup: {RBAC}, kind: User, name: u-self-editor}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: masters-impersonator}}
rules:
- {{apiGroups: [""], resources: [groups], verbs: [impersonate], resourceNames: [system:masters]}}
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: masters-impersonator}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: masters-impersonator}}
subjects: [{{apiGroup: {RBAC}, kind: User, name: u-masters}}]
"""


async def test_escalation_paths_are_spelled_out(planted, kernel):
    planted.apply(ESCALATORS)
    findings = (await kernel.run("/rbac audit all:true")).reply.data["findings"]
    escalations: dict[str, list[str]] = {}
    for f in findings:
        if f["id"] == "RBAC-090":
            assert f["severity"] == "critical" and f["path"]["steps"]
            escalations.setdefault(f["subject"]["name"], []).append(f["message"])
    assert (
        f"user:u-rbac-030 can create pods in namespace {NAMESPACE}, where ServiceAccount "
        "deployer is bound to cluster-admin, so user:u-rbac-030 is effectively cluster-admin"
    ) in escalations["u-rbac-030"]
    assert any("create tokens for" in m for m in escalations["u-rbac-012"])
    assert any("create workloads in" in m for m in escalations["u-rbac-031"])
    assert escalations["u-rbac-020"] == [
        "user:u-rbac-020 can impersonate User u-rbac-001, who is cluster-admin, "
        "so user:u-rbac-020 is effectively cluster-admin"
    ]
    assert any("bind the cluster-admin ClusterRole" in m for m in escalations["u-binder"])
    assert any(
        "add any rule to ClusterRole 'self-editor'" in m for m in escalations["u-self-editor"]
    )
    assert any("impersonate the group system:masters" in m for m in escalations["u-masters"])
    # escalate alone (no way to write a role it is bound to) is a risk, not a path
    assert not any("escalate" in m for m in escalations.get("u-rbac-022", []))
    # a subject who is already cluster-admin has nowhere to escalate to
    assert "u-rbac-001" not in escalations and "deployer" not in escalations
    # the path reads binding → role → rule for the permission that opens it
    path = next(
        f for f in findings if f["id"] == "RBAC-090" and f["subject"]["name"] == "u-rbac-030"
    )
    assert path["path"]["binding"]["name"] == "risk-rbac-030"
    assert path["path"]["steps"][1] == (
        f"ServiceAccount {NAMESPACE}/deployer is bound to cluster-admin "
        "(ClusterRoleBinding 'deployer-admin')"
    )


async def test_default_cluster_roles_fire_only_what_they_grant(planted, kernel):
    """view, edit and admin bound to people: the risks each truly carries, no more."""
    planted.apply(
        yaml.safe_dump_all(
            [
                _binding(
                    "RoleBinding", f"people-{role}", role, {"kind": "User", "name": f"p-{role}"}
                )
                for role in ("view", "edit", "admin")
            ]
        )
    )
    findings = (await kernel.run("/rbac audit all:true")).reply.data["findings"]
    ids: dict[str, set[str]] = {}
    for f in findings:
        ids.setdefault(f["subject"]["name"], set()).add(f["id"])
    assert "p-view" not in ids  # view reads no secrets and writes nothing
    assert {"RBAC-010", "RBAC-013", "RBAC-030", "RBAC-031", "RBAC-032"} <= ids["p-edit"]
    # Kubernetes' edit grants no ephemeral containers, and "get secrets" adds nothing to list
    assert "RBAC-033" not in ids["p-edit"] and "RBAC-011" not in ids["p-edit"]
    assert not {"RBAC-001", "RBAC-002", "RBAC-021", "RBAC-022", "RBAC-023"} & ids["p-edit"]
    assert "RBAC-020" in ids["p-edit"]  # edit may impersonate the namespace's ServiceAccounts
    assert {"RBAC-023", "RBAC-024"} <= ids["p-admin"]  # admin manages the namespace's RBAC
    assert not {"RBAC-001", "RBAC-002", "RBAC-022", "RBAC-040"} & ids["p-admin"]
