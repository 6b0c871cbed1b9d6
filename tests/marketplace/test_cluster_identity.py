"""What installing, updating and removing a marketplace plugin does to a real (sandbox)
cluster, checked with the real kubectl: its ServiceAccount and role follow its versions, and
nothing of it is left after removal."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
ROLE = "clustercord:plugin:hello"


def exists(cluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, "-o", "json", check=False).returncode == 0


def rules(cluster) -> list[dict]:
    return json.loads(cluster.kubectl("get", "clusterrole", ROLE, "-o", "json").stdout)["rules"]


async def test_role_follows_versions_and_remove_leaves_nothing(
    market_harness, market, wheels, sandbox_cluster
):
    cluster = sandbox_cluster("empty")
    harness = market_harness
    market.publish(wheels["hello-0.2.0"])
    await harness.start()
    installed = await harness.run("/plugin install name:hello")
    assert installed.ok, installed.text
    assert "• read: pods" in installed.asked[0].prompt  # shown before anything was downloaded
    assert harness.plugin("hello").state == "awaiting-approval"
    assert not exists(cluster, "clusterrole", ROLE)  # nothing before an admin approves
    assert (await harness.run("/plugin permissions name:hello approve:true")).ok
    await harness.kernel.plugin_identities.settle()
    assert exists(cluster, "serviceaccount", "plugin-hello", "-n", "clustercord-system")
    assert any("pods" in rule.get("resources", []) for rule in rules(cluster))

    # 0.3.0 drops pods:read: the role goes at once, and so does the grant.
    market.publish(wheels["hello-0.3.0"])
    updated = await harness.run("/plugin update name:hello")
    assert updated.ok, updated.text
    assert "- pods:read" in updated.asked[0].prompt
    assert harness.plugin("hello").state == "enabled"
    assert not exists(cluster, "clusterrole", ROLE)
    assert harness.plugin("hello").granted == []

    removed = await harness.run("/plugin remove name:hello purge_data:true")
    assert removed.ok, removed.text
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not exists(cluster, kind, ROLE), kind
    assert not exists(cluster, "serviceaccount", "plugin-hello", "-n", "clustercord-system")
    assert "hello" not in harness.kernel.manager.plugins
    assert harness.kernel.database.kv_keys("hello") == []  # its data purged
    # Installing it again asks again: the grant went with it.
    market.publish(wheels["hello-0.2.0"])
    again = await harness.run("/plugin install name:hello version:0.2.0")
    assert again.ok, again.text
    assert harness.plugin("hello").state == "awaiting-approval"
