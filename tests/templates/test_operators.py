"""Operator stacks (Flux, Argo CD + Tekton) in the sandbox: their pinned CRDs serve custom
resources, their cluster-wide rights come and go with the release, and the CRDs (which hold
every custom resource of the cluster) stay unless delete_data."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("server_side_apply")

CRD = "customresourcedefinitions/gitrepositories.source.toolkit.fluxcd.io"
RIGHTS = (
    "clusterroles/flux-gitops-crd-controller",
    "clusterrolebindings/flux-gitops-crd-controller",
    "clusterrolebindings/flux-gitops-cluster-reconciler",
)
SOURCE = """apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: app, namespace: gitops}
spec: {url: "https://example.com/app.git", interval: 5m, ref: {branch: main}}
"""


def found(cluster, *names):
    return {n for n in names if cluster.sandbox.kubectl("get", n, check=False).returncode == 0}


async def test_flux_brings_its_crds_and_rights_and_takes_the_rights_away(templates, homelab):
    info = await templates.run("/template info template:flux")
    assert info.reply.data["elevated"] == ["clusterWide"]

    deployed = await templates.run("/template deploy template:flux namespace:gitops wait:false")
    assert deployed.ok, deployed.text
    assert found(homelab, CRD, *RIGHTS) == {CRD, *RIGHTS}
    binding = homelab.kubectl(
        "get", RIGHTS[2], "-o", "jsonpath={.roleRef.name} {.subjects[0].namespace}"
    )
    assert binding == "cluster-admin gitops"  # upstream's cluster-reconciler, for this install
    # The vendored CRD serves its resource: a GitRepository can be created and read back.
    homelab.kubectl("apply", "-f", "-", input=SOURCE)
    assert (
        homelab.kubectl(
            "get", "gitrepositories.source.toolkit.fluxcd.io", "app", "-n", "gitops", "-o", "name"
        ).strip()
        == "gitrepository.source.toolkit.fluxcd.io/app"
    )

    # The CRDs are the cluster's: a second Flux elsewhere is refused, before anything exists.
    second = await templates.run("/template deploy template:flux namespace:gitops-2 wait:false")
    assert second.status == "error"
    assert (
        "CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io (belongs to "
        "another ClusterCord deployment)" in second.text
    )
    assert "namespace/gitops-2" not in homelab.kubectl("get", "namespaces", "-o", "name")

    kept = await templates.run("/template delete deployment:gitops/flux")
    assert kept.ok, kept.text
    assert (
        "CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io"
        in (kept.reply.data["kept"])
    )
    assert found(homelab, CRD, *RIGHTS) == {CRD}  # the rights went, the CRD stayed
    assert (
        homelab.kubectl(
            "get", "gitrepositories.source.toolkit.fluxcd.io", "-n", "gitops", "-o", "name"
        ).strip()
        == "gitrepository.source.toolkit.fluxcd.io/app"
    )

    # Deployed again where it was, it takes its kept CRDs back; delete_data removes them.
    again = await templates.run("/template deploy template:flux namespace:gitops wait:false")
    assert again.ok, again.text
    gone = await templates.run("/template delete deployment:gitops/flux delete_data:true")
    assert gone.ok, gone.text
    assert found(homelab, CRD, *RIGHTS) == set()


async def test_argocd_and_tekton_crds_serve_their_resources(templates, homelab):
    deployed = await templates.run(
        "/template deploy template:argocd-tekton namespace:delivery wait:false"
    )
    assert deployed.ok, deployed.text
    crds = homelab.kubectl("get", "crd", "-o", "name")
    for name in (
        "applications.argoproj.io",
        "appprojects.argoproj.io",
        "applicationsets.argoproj.io",
        "tasks.tekton.dev",
        "taskruns.tekton.dev",
        "pipelines.tekton.dev",
        "pipelineruns.tekton.dev",
    ):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in crds, name
    # Argo CD reads its settings by their upstream names, in its namespace.
    assert {"configmap/argocd-cm", "configmap/argocd-rbac-cm", "secret/argocd-secret"} <= (
        homelab.names("delivery", "configmaps,secrets")
    )
    task = (
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: hello, namespace: delivery}\n"
        "spec: {steps: [{name: hi, image: alpine:3.20.3, script: echo hi}]}\n"
    )
    homelab.kubectl("apply", "-f", "-", input=task)
    assert "task.tekton.dev/hello" in homelab.kubectl(
        "get", "tasks.tekton.dev", "-n", "delivery", "-o", "name"
    )
    gone = await templates.run(
        "/template delete deployment:delivery/argocd-tekton delete_data:true"
    )
    assert gone.ok, gone.text
    assert "tasks.tekton.dev" not in homelab.kubectl("get", "crd", "-o", "name")
