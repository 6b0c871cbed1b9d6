"""What the kernel refuses to a plugin that impersonates, whatever the plugin asks: only
Discord identities, no system: groups, only API paths, and only with users:impersonate."""

from __future__ import annotations

import pytest

from clustercord_sdk.errors import PermissionDenied, UsageError


@pytest.fixture
async def kernel(clustercord_harness, sandbox_cluster):
    sandbox_cluster("empty")
    clustercord_harness.add_builtins(["sso", "help"])
    return await clustercord_harness.start()


async def test_only_discord_users_and_no_system_groups(kernel):
    kubernetes = kernel.manager.plugins["sso"].context.kubernetes
    for user in (
        "admin",
        "system:admin",
        "system:serviceaccount:kube-system:default",
        "discord:alice",
        "discord:1 ",
        "",
    ):
        with pytest.raises(PermissionDenied, match="only Discord identities"):
            await kubernetes.impersonated("GET", "/api", user=user, cluster="sandbox")
    for group in ("system:masters", "system:authenticated", ""):
        with pytest.raises(PermissionDenied, match="group"):
            await kubernetes.impersonated(
                "GET", "/api", user="discord:1", groups=[group], cluster="sandbox"
            )
    for path in ("http://evil.example/api", "/api/../x", "/api\r\nX: y", "api", "//evil/api"):
        with pytest.raises(UsageError, match="not a path"):
            await kubernetes.impersonated("GET", path, user="discord:1", cluster="sandbox")
    with pytest.raises(PermissionDenied, match="only Discord identities"):
        await kubernetes.impersonated_websocket("/api/v1/x/exec", user="admin", cluster="sandbox")
    status, _, _ = await kubernetes.impersonated("GET", "/api", user="discord:1", cluster="sandbox")
    assert status == 200


async def test_a_plugin_without_users_impersonate_cannot(kernel):
    kubernetes = kernel.manager.plugins["help"].context.kubernetes
    with pytest.raises(PermissionDenied, match="users:impersonate"):
        await kubernetes.impersonated("GET", "/api", user="discord:1", cluster="sandbox")
