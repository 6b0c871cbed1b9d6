"""The SSO plugin's own rights on the cluster follow the mappings: its ServiceAccount may
impersonate only the mapped groups (never system:masters) and bind only the mapped
ClusterRoles, rewritten at each /sso map and kept across a kernel restart. Asked of the
sandbox API server with the real kubectl (``auth can-i --as`` the plugin's ServiceAccount)."""

from __future__ import annotations

import json

from tests.sso.conftest import ROLE

ACCOUNT = "system:serviceaccount:clustercord-system:plugin-sso"
CLUSTER_ROLE = "clustercord:plugin:sso"
OPS = "200000000000000003"


def can(cluster, verb: str, what: str) -> bool:
    answer = cluster.kubectl("auth", "can-i", verb, what, f"--as={ACCOUNT}", check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


async def test_impersonate_and_bind_only_what_is_mapped(sso):
    await sso.kernel.plugin_identities.settle()
    cluster = sso.cluster
    # The fixture mapped ROLE → dev-team (no ClusterRole).
    assert can(cluster, "impersonate", "groups/dev-team")
    assert not can(cluster, "impersonate", "groups/ops")
    assert not can(cluster, "impersonate", "groups/system:masters")
    assert not can(cluster, "bind", "clusterroles/view")
    assert not can(cluster, "bind", "clusterroles/cluster-admin")
    # Users are not narrowed (discord:<id> of anyone who may sign in: no pattern in RBAC).
    assert can(cluster, "impersonate", "users/discord:1")

    mapped = await sso.harness.run(
        f"/sso map role:{OPS} groups:ops namespaces:dev permissions:view"
    )
    assert mapped.ok and "⚠️" not in mapped.text, mapped.text
    assert can(cluster, "impersonate", "groups/ops")
    assert can(cluster, "impersonate", "groups/dev-team")
    assert can(cluster, "bind", "clusterroles/view")
    assert not can(cluster, "bind", "clusterroles/edit")
    assert not can(cluster, "bind", "clusterroles/cluster-admin")
    assert not can(cluster, "impersonate", "groups/system:masters")

    unmapped = await sso.harness.run(f"/sso map role:{OPS} groups:,")
    assert unmapped.ok, unmapped.text
    assert not can(cluster, "impersonate", "groups/ops")
    assert not can(cluster, "bind", "clusterroles/view")
    assert can(cluster, "impersonate", "groups/dev-team")


async def test_a_session_of_a_group_no_longer_mapped_is_refused_by_the_cluster(sso):
    config = await sso.kubeconfig()
    listed = await sso.kubectl(config, "get", "pods", "-n", "dev", "-o", "name")
    assert listed.returncode == 0 and "pod/shell" in listed.stdout, listed.stderr
    # Unmapped while the session still lists dev-team: the cluster no longer lets the
    # plugin impersonate the group, whatever the plugin's process holds.
    assert (await sso.harness.run(f"/sso map role:{ROLE} groups:,")).ok
    refused = await sso.kubectl(config, "get", "pods", "-n", "dev")
    assert refused.returncode != 0
    assert f'User "{ACCOUNT}" cannot impersonate resource "groups"' in refused.stderr, (
        refused.stderr
    )


async def test_the_narrowing_holds_after_a_kernel_restart(sso):
    await sso.kernel.plugin_identities.settle()
    sso.cluster.kubectl("delete", "clusterrole", CLUSTER_ROLE)
    kernel = await sso.harness.restart()
    try:
        manifest = kernel.manager.plugins["sso"].manifest
        # Provisioned again from scratch (as at enable), by a kernel that only has what it
        # stored: still the mapped group alone.
        await kernel.plugin_identities.provision("sso", manifest.permissions)
        await kernel.plugin_identities.settle()
        role = json.loads(
            sso.cluster.kubectl("get", "clusterrole", CLUSTER_ROLE, "-o", "json").stdout
        )
        assert {
            "apiGroups": [""],
            "resources": ["groups"],
            "verbs": ["impersonate"],
            "resourceNames": ["dev-team"],
        } in role["rules"]
        assert can(sso.cluster, "impersonate", "groups/dev-team")
        assert not can(sso.cluster, "impersonate", "groups/system:masters")
        assert not can(sso.cluster, "bind", "clusterroles/cluster-admin")
    finally:
        await kernel.http.close()


async def test_a_map_that_cannot_update_the_cluster_says_so(sso, monkeypatch):
    await sso.kernel.plugin_identities.settle()
    service = sso.kernel.plugin_identities.service
    real = service.request

    def down(cluster, method, path, **kwargs):
        if method == "PUT" and "clusterroles" in path:
            raise ConnectionError("connection refused")
        return real(cluster, method, path, **kwargs)

    monkeypatch.setattr(service, "request", down)
    mapped = await sso.harness.run(f"/sso map role:{OPS} groups:ops")
    assert mapped.ok, mapped.text
    assert f"⚠️ {sso.name}: SSO's own rights not yet fitted to the mappings" in mapped.text
    assert not can(sso.cluster, "impersonate", "groups/ops")
    # The next time the plugin uses the cluster, the kernel applies the stored mapping.
    monkeypatch.setattr(service, "request", real)
    config = await sso.kubeconfig()
    assert (await sso.kubectl(config, "get", "pods", "-n", "dev")).returncode == 0
    assert can(sso.cluster, "impersonate", "groups/ops")
