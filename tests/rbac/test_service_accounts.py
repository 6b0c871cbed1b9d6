"""The audit knows which ServiceAccounts exist: a binding to a missing one is a finding
(RBAC-063: whoever creates it inherits the role), and a missing ServiceAccount is no step
of an escalation path until it is created. Through the kernel, against the sandbox."""

from __future__ import annotations

import pytest

from .conftest import start_rbac

RBAC = "rbac.authorization.k8s.io"
NAMESPACE = "accounts"

BINDINGS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: {RBAC}/v1
kind: RoleBinding
metadata: {{name: ghost-edit, namespace: {NAMESPACE}}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: edit}}
subjects: [{{kind: ServiceAccount, name: ghost, namespace: {NAMESPACE}}}]
---
apiVersion: {RBAC}/v1
kind: ClusterRoleBinding
metadata: {{name: robot-admin}}
roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: robot, namespace: {NAMESPACE}}}]
---
apiVersion: {RBAC}/v1
kind: Role
metadata: {{name: pod-maker, namespace: {NAMESPACE}}}
rules:
- {{apiGroups: [""], resources: [pods], verbs: [create]}}
---
apiVersion: {RBAC}/v1
kind: RoleBinding
metadata: {{name: pod-maker, namespace: {NAMESPACE}}}
roleRef: {{apiGroup: {RBAC}, kind: Role, name: pod-maker}}
subjects: [{{apiGroup: {RBAC}, kind: User, name: u-pod-maker}}]
"""


@pytest.fixture(scope="module")
def planted(fresh):
    fresh.apply(BINDINGS)
    return fresh


@pytest.fixture
async def kernel(clustercord_harness, monkeypatch, planted):
    return await start_rbac(clustercord_harness, planted, monkeypatch)


def _of(findings, rule_id, name):
    return [f for f in findings if f["id"] == rule_id and f["subject"]["name"] == name]


async def test_missing_service_accounts_are_findings_until_created(kernel, planted):
    result = await kernel.run("/rbac audit all:true")
    assert result.ok, result.text
    findings = result.reply.data["findings"]
    (ghost,) = _of(findings, "RBAC-063", "ghost")
    assert ghost["subject"] == {"kind": "ServiceAccount", "name": "ghost", "namespace": NAMESPACE}
    assert ghost["message"] == (
        f"RoleBinding '{NAMESPACE}/ghost-edit' grants ClusterRole 'edit' to "
        f"sa:{NAMESPACE}/ghost, which does not exist"
    )
    assert ghost["severity"] == "medium" and "create the ServiceAccount" in ghost["recommendation"]
    assert _of(findings, "RBAC-063", "robot")
    # No pod can run as a ServiceAccount that does not exist: creating pods next to where
    # "robot" would live is no path to cluster-admin yet.
    assert not _of(findings, "RBAC-090", "u-pod-maker")
    summary = (result.reply.pages or [result.reply])[0].cards[0]
    objects = next(f.value for f in summary.fields if f.name == "Objects")
    listed = planted.kubectl("get", "sa", "-A", "--no-headers").stdout.splitlines()
    assert objects.endswith(f", {len(listed)} ServiceAccounts")

    planted.apply(
        "\n---\n".join(
            f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, "
            f"namespace: {NAMESPACE}}}"
            for name in ("ghost", "robot")
        )
    )
    result = await kernel.run("/rbac audit all:true")
    findings = result.reply.data["findings"]
    assert not [f for f in findings if f["id"] == "RBAC-063"]
    (path,) = _of(findings, "RBAC-090", "u-pod-maker")
    assert f"ServiceAccount {NAMESPACE}/robot is bound to cluster-admin" in " ".join(
        path["path"]["steps"]
    )
