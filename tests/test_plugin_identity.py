"""Plugins act on a cluster as their own ServiceAccount, with RBAC compiled from their manifest,
against a real sandbox API server (kubectl checks what the kernel created)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from clustercord.kubernetes.calls import ApiStatusError
from clustercord_sdk.permissions import compile_rules, parse_permissions
from clustercord_sdk.rbac import UserInfo

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

PERMISSIONS = [
    "pods:read",
    "pods/log:get",
    "deployments.apps:patch",
    "selfsubjectreviews.authentication.k8s.io:create",
]
ACCOUNT = "system:serviceaccount:clustercord-system:plugin-inspector"
ROLE = "clustercord:plugin:inspector"
INSPECTOR = {
    "manifest": {
        "permissions": PERMISSIONS,
        "commands": [
            {
                "name": "inspector",
                "description": "look around",
                "subcommands": [
                    {"name": "whoami", "description": "who", "handler": "commands:run"},
                    {"name": "secrets", "description": "peek", "handler": "commands:secrets"},
                ],
            }
        ],
    },
    "modules": {
        "commands": """
            async def run(ctx):
                review = await ctx.kubernetes.create(
                    "selfsubjectreviews.authentication.k8s.io",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )
                pods = await ctx.kubernetes.list("pods", namespace="default")
                return f"{review['status']['userInfo']['username']} saw {len(pods)} pods"

            async def secrets(ctx):
                await ctx.kubernetes.list("secrets", namespace="default")
        """
    },
}


def get(cluster, *args: str) -> dict:
    """The object(s) ``kubectl get`` shows, as JSON."""
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


@pytest.fixture
def cluster(sandbox_cluster):
    """A sandbox whose token issuer the test can reach (its clock, its minimum duration:
    one minute, so a test can ask for short tokens)."""
    return sandbox_cluster("empty", min_token_seconds=60)


@pytest.fixture
def inspector(clustercord_harness, make_plugin, cluster) -> Path:
    """The installed folder of the `inspector` plugin (with the `plugins` builtin to run it)."""
    clustercord_harness.add_builtins(["plugins"])
    return clustercord_harness.add_plugin(make_plugin("inspector", **INSPECTOR))


async def approved(harness):
    await harness.start()
    answer = await harness.run("/plugin permissions name:inspector approve:true")
    assert answer.ok, answer.text
    await identities(harness).settle()
    return harness


@pytest.fixture
async def harness(clustercord_harness, inspector):
    return await approved(clustercord_harness)


def identities(harness):
    return harness.kernel.kubernetes.plugin_identities


async def test_plugin_gets_a_service_account_with_exactly_its_rules(harness, cluster):
    # Approving (and so enabling) the plugin provisioned its identity before it ever ran.
    account = get(cluster, "serviceaccount", "plugin-inspector", "-n", "clustercord-system")
    assert account["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clustercord"
    role = get(cluster, "clusterrole", ROLE)
    assert role["rules"] == compile_rules(PERMISSIONS)
    assert role["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clustercord"
    binding = get(cluster, "clusterrolebinding", ROLE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "plugin-inspector", "namespace": "clustercord-system"}
    ]
    # The cluster agrees the account may do what was declared and nothing more.
    can = cluster.kubectl("auth", "can-i", "--list", f"--as={ACCOUNT}").stdout
    assert "pods/log" in can and "deployments.apps" in can and "secrets" not in can

    ran = await harness.run("/inspector whoami")
    assert ran.text == f"{ACCOUNT} saw 0 pods"
    # A second run reuses the token.
    token = identities(harness).token("sandbox", "inspector")
    assert (await harness.run("/inspector whoami")).ok
    assert identities(harness).token("sandbox", "inspector") is token


async def test_the_plugins_token_never_carries_the_kernels_credentials(harness, cluster):
    await harness.run("/inspector whoami")
    client = identities(harness).client(
        "sandbox", "inspector", tuple(parse_permissions(PERMISSIONS))
    )
    configuration = client.configuration
    token = identities(harness).token("sandbox", "inspector").value
    assert configuration.auth_settings()["BearerToken"]["value"] == f"Bearer {token}"
    assert configuration.cert_file is None and configuration.key_file is None
    assert configuration.username is None and configuration.password is None
    # The kernel's own client is untouched.
    kernel = harness.kernel.kubernetes.client("sandbox").configuration
    assert kernel.auth_settings()["BearerToken"]["value"].endswith(cluster.server.admin_token)


async def test_undeclared_call_refused_in_process_and_by_the_api_server(harness, cluster):
    refused = await harness.run("/inspector secrets")
    assert refused.status == "denied"
    assert "plugin inspector may not list secrets in namespace default on cluster sandbox" in (
        refused.text
    )
    assert "its manifest does not declare secrets:list (declare secrets:read)" in refused.text

    # Around the in-process guard, with the plugin's own credentials: the server says no.
    declared = tuple(parse_permissions(PERMISSIONS))
    path = "/api/v1/namespaces/default/secrets"
    with pytest.raises(ApiStatusError) as forbidden:
        identities(harness).request("sandbox", "inspector", declared, "GET", path)
    assert forbidden.value.status == 403
    message = json.loads(forbidden.value.body)["message"]
    assert f'User "{ACCOUNT}" cannot list resource "secrets"' in message
    # The kernel's own credentials could have: it is the plugin's identity that lacks it.
    assert harness.kernel.kubernetes.request("sandbox", "GET", path)["items"] == []


async def test_token_is_refreshed_before_expiry_and_after_a_401(harness, cluster):
    now = [1_900_000_000.0]
    identity = identities(harness)
    identity.token_seconds = 100
    identity.clock = cluster.server.tokens.clock = lambda: now[0]

    ran = await harness.run("/inspector whoami")
    assert ran.ok, ran.text
    first = identity.token("sandbox", "inspector")
    assert first.expires_at == now[0] + 100 and first.refresh_at == now[0] + 80

    now[0] += 79  # still fresh: reused
    assert (await harness.run("/inspector whoami")).ok
    assert identity.token("sandbox", "inspector") is first

    now[0] += 2  # past 80% of its life: replaced before it expires
    assert (await harness.run("/inspector whoami")).ok
    second = identity.token("sandbox", "inspector")
    assert second.value != first.value and second.expires_at == now[0] + 100

    # The cluster sees it expire while the kernel thinks it fresh (a skewed clock):
    # the 401 gets one new token and the call succeeds.
    cluster.server.tokens.clock = lambda: now[0] + 101
    ran = await harness.run("/inspector whoami")
    assert ran.text == f"{ACCOUNT} saw 0 pods"
    third = identity.token("sandbox", "inspector")
    assert third.value not in (first.value, second.value)


async def test_recreated_service_account_is_recovered(harness, cluster):
    assert (await harness.run("/inspector whoami")).ok
    cluster.kubectl("delete", "serviceaccount", "plugin-inspector", "-n", "clustercord-system")
    # The old token is now refused (401); the kernel recreates the account and carries on.
    assert (await harness.run("/inspector whoami")).text == f"{ACCOUNT} saw 0 pods"
    get(cluster, "serviceaccount", "plugin-inspector", "-n", "clustercord-system")


async def test_disable_removes_the_binding_and_enable_restores_it(harness, cluster):
    assert (await harness.run("/inspector whoami")).ok
    old_token = identities(harness).token("sandbox", "inspector").value

    disabled = await harness.run("/plugin disable name:inspector")
    assert disabled.ok, disabled.text
    for kind in ("clusterrolebinding", "clusterrole"):
        gone = cluster.kubectl("get", kind, ROLE, check=False)
        assert gone.returncode == 1 and "NotFound" in gone.stderr
    # The ServiceAccount stays, but its tokens no longer grant anything.
    listed = cluster.kubectl("--token", old_token, "get", "pods", check=False)
    assert listed.returncode == 1 and f'User "{ACCOUNT}" cannot list resource "pods"' in (
        listed.stderr
    )

    enabled = await harness.run("/plugin enable name:inspector")
    assert enabled.ok, enabled.text
    await identities(harness).settle()
    assert get(cluster, "clusterrole", ROLE)["rules"] == compile_rules(PERMISSIONS)
    assert get(cluster, "clusterrolebinding", ROLE)["roleRef"]["name"] == ROLE
    assert (await harness.run("/inspector whoami")).text == f"{ACCOUNT} saw 0 pods"


async def test_rules_follow_an_approved_update(harness, cluster, inspector):
    assert (await harness.run("/inspector whoami")).ok
    manifest = json.loads((inspector / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    manifest["permissions"] = [*PERMISSIONS, "configmaps:read"]
    (inspector / "manifest.json").write_text(json.dumps(manifest))
    harness.signer.sign(inspector)
    await harness.restart()
    assert (await harness.run("/plugin permissions name:inspector approve:true")).ok

    assert (await harness.run("/inspector whoami")).ok
    assert get(cluster, "clusterrole", ROLE)["rules"] == compile_rules(manifest["permissions"])


async def test_kernel_credentials_without_rbac_rights_refuse_the_plugin(
    clustercord_harness, inspector, cluster, tmp_path, monkeypatch, caplog
):
    # The kernel's kubeconfig user may read everything but manage no RBAC.
    cluster.server.add_token("viewer-token", UserInfo.authenticated("viewer"))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": "viewer-token"}
    limited = tmp_path / "viewer-kubeconfig"
    limited.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(limited))

    harness = await approved(clustercord_harness)
    with caplog.at_level(logging.WARNING, logger="clustercord.kubernetes.identity"):
        refused = await harness.run("/inspector whoami")
    assert refused.status == "error"
    assert "cluster sandbox: ClusterCord could not set up plugin inspector's own identity" in (
        refused.text
    )
    assert "the plugin does not act on this cluster" in refused.text
    assert any(
        "cannot set up the identity of plugin inspector" in r.message for r in caplog.records
    )
    # Nothing was done with the kernel's credentials instead.
    assert cluster.kubectl("get", "clusterrole", ROLE, check=False).returncode == 1


async def test_a_plugin_declaring_no_permission_has_no_cluster_access(
    clustercord_harness, make_plugin, cluster
):
    """A trusted plugin that declares nothing is enabled without approval, and gets nothing:
    no ServiceAccount, and never the kernel's credentials (which could list Secrets and
    bind cluster-admin)."""
    quiet = {
        "commands": [{"name": "quiet", "description": "try", "handler": "commands:run"}],
    }
    code = """
        from clustercord_sdk.errors import CommandError

        async def run(ctx):
            outcomes = []
            for attempt in (
                lambda: ctx.kubernetes.version(),
                lambda: ctx.kubernetes.list("secrets", namespace="default"),
                lambda: ctx.kubernetes.create(
                    "clusterrolebindings.rbac.authorization.k8s.io",
                    {"metadata": {"name": "quiet-admin"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                 "kind": "ClusterRole", "name": "cluster-admin"},
                     "subjects": [{"kind": "Group", "name": "system:authenticated",
                                   "apiGroup": "rbac.authorization.k8s.io"}]},
                ),
            ):
                try:
                    await attempt()
                    outcomes.append("allowed")
                except CommandError as exc:
                    outcomes.append(str(exc))
            return " | ".join(outcomes)
    """
    clustercord_harness.add_plugin(make_plugin("quiet", manifest=quiet, modules={"commands": code}))
    await clustercord_harness.start()
    assert clustercord_harness.plugin("quiet").state == "enabled"
    answer = await clustercord_harness.run("/quiet")
    outcomes = answer.text.split(" | ")
    assert "allowed" not in outcomes, answer.text
    assert (
        "plugin quiet declares no Kubernetes permission: it has no access to clusters"
        in (outcomes[0])
    )
    missing = cluster.kubectl("get", "clusterrolebinding", "quiet-admin", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    accounts = cluster.kubectl("get", "serviceaccounts", "-A", "-o", "name").stdout
    assert "plugin-quiet" not in accounts
