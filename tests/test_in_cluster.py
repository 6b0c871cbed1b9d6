"""ClusterCord running in a pod: the cluster it lives in is `in-cluster`, reached with the
pod's mounted ServiceAccount (token, CA, namespace), and plugins still act as their own
ServiceAccounts there. The "pod" is this test; the API server is a real sandbox over HTTPS."""

from __future__ import annotations

import pytest

from clustercord.kubernetes import clusters

KERNEL_ACCOUNT = "system:serviceaccount:clustercord:clustercord"


@pytest.fixture
def mounted_account(sandbox_cluster, tmp_path, monkeypatch):
    """The files the kubelet would mount for ServiceAccount clustercord/clustercord (bound to
    cluster-admin, as a Helm chart for the bot would), and the pod's environment. No
    kubeconfig is left for the kernel to find."""
    cluster = sandbox_cluster()
    cluster.kubectl("create", "namespace", "clustercord")
    cluster.kubectl("create", "serviceaccount", "clustercord", "-n", "clustercord")
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        "clustercord",
        "--clusterrole=cluster-admin",
        "--serviceaccount=clustercord:clustercord",
    )
    token = cluster.kubectl("create", "token", "clustercord", "-n", "clustercord").stdout
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token.strip())
    (account / "ca.crt").write_bytes(cluster.server.certificate.ca_pem)
    (account / "namespace").write_text("clustercord")
    monkeypatch.setattr(clusters, "SERVICE_ACCOUNT_DIR", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.server.port))
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))  # and no ~/.kube/config either
    return cluster


async def test_in_a_pod_the_home_cluster_is_reached_with_the_mounted_account(
    clustercord_harness, mounted_account
):
    clustercord_harness.add_builtins(["cluster", "plugins"])
    await clustercord_harness.start()

    listed = await clustercord_harness.run("/cluster list")
    (cluster,) = listed.reply.data["clusters"]
    assert cluster["name"] == "in-cluster" and cluster["source"] == "in-cluster"
    assert cluster["namespace"] == "clustercord"  # the pod's namespace, as kubectl would
    status = await clustercord_harness.run("/cluster status")
    assert status.ok, status.text
    assert status.reply.data["version"] == "v1.32.0-sandbox"

    # The kernel authenticates as the pod's ServiceAccount …
    kubernetes = clustercord_harness.kernel.kubernetes
    review = kubernetes.request(
        "in-cluster",
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == KERNEL_ACCOUNT

    # … and the cluster plugin as its own, provisioned by the kernel's account.
    pods = await clustercord_harness.run("/pod list all_namespaces:true")
    assert pods.ok, pods.text
    assert kubernetes.plugin_identities.token("in-cluster", "cluster") is not None
    binding = mounted_account.kubectl("get", "clusterrolebinding", "clustercord:plugin:cluster")
    assert "clustercord:plugin:cluster" in binding.stdout


async def test_without_the_token_file_there_is_no_in_cluster_cluster(
    clustercord_harness, mounted_account
):
    (clusters.SERVICE_ACCOUNT_DIR / "token").unlink()
    clustercord_harness.add_builtins(["cluster", "plugins"])
    await clustercord_harness.start()
    listed = await clustercord_harness.run("/cluster list")
    assert listed.reply.data["clusters"] == []
