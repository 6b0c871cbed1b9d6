"""Community templates: the validation pipeline on submit, votes and the verified badge."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("server_side_apply")

APP = """{% import "lib.j2" as lib with context %}
{{ lib.app("whoami", "traefik/whoami:v1.10.3", "1.10.3", ports=[{"name": "web", "port": 80}],
    requests=["10m", "16Mi"], limits=["100m", "64Mi"], probe={"http": "/", "port": "web"}) }}
---
{{ lib.claim("whoami", "data", "1Gi") }}
"""
EXTRA = """apiVersion: v1
kind: ConfigMap
metadata: {name: whoami-extra}
data: {greeting: hello}
"""


ADMIN = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: whoami-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"""


def submission(version="1.0.0", manifests=None, **changes):
    data = {
        "name": "whoami",
        "version": version,
        "category": "OTHER",
        "description": "Tiny HTTP echo server",
        "author": "someone",
        "manifests": manifests
        or [{"name": "app.yaml", "content": APP}, {"name": "extra.yaml", "content": EXTRA}],
    }
    data.update(changes)
    return data


def write(tmp_path, data, name="whoami.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


async def test_submit_deploy_vote_verify_update_and_delete(templates, homelab, tmp_path):
    submitted = await templates.run(f"/template submit file:{write(tmp_path, submission())}")
    assert submitted.ok, submitted.text
    assert submitted.reply.data["status"] == "validated"
    # The dry run's throwaway namespace is gone again.
    assert not [
        n for n in homelab.kubectl("get", "ns", "-o", "name").split() if "cc-validate-" in n
    ]
    found = await templates.run("/template search query:echo")
    assert [(t["name"], t["source"], t["status"]) for t in found.reply.data["templates"]] == [
        ("whoami", "community", "validated")
    ]

    voted = await templates.run("/template vote template:whoami", user="111")
    assert voted.ok and voted.reply.data["votes"] == 1
    twice = await templates.run("/template vote template:whoami", user="111")
    assert twice.status == "error" and twice.text == "you already voted for whoami"
    refused = await templates.run(
        "/template verify template:whoami", user="111", frontend="discord"
    )
    assert refused.status == "denied"
    verified = await templates.run("/template verify template:whoami")
    assert verified.ok
    info = await templates.run("/template info template:whoami")
    assert info.reply.data["status"] == "verified"

    deployed = await templates.run("/template deploy template:whoami namespace:echo")
    assert deployed.ok, deployed.text
    assert "configmap/whoami-extra" in homelab.names("echo", "configmaps")
    # Version 2 drops the ConfigMap and the claim: update prunes one and keeps the other.
    v2 = submission("2.0.0", [{"name": "app.yaml", "content": APP.split("---")[0]}])
    assert (await templates.run(f"/template submit file:{write(tmp_path, v2, 'v2.json')}")).ok
    updated = await templates.run("/template update deployment:echo/whoami")
    assert updated.ok, updated.text
    assert updated.reply.data["pruned"] == ["ConfigMap/whoami-extra"]
    left = homelab.names("echo", "configmaps,persistentvolumeclaims") - {
        "configmap/kube-root-ca.crt"
    }
    assert left == {"persistentvolumeclaim/whoami-data"}
    deleted = await templates.run("/template delete deployment:echo/whoami delete_data:true")
    assert deleted.ok
    assert (
        "PersistentVolumeClaim/whoami-data" in deleted.reply.data["deleted"]
    )  # retained, then removed
    assert homelab.names("echo", "all,configmaps,secrets,persistentvolumeclaims") <= {
        "configmap/kube-root-ca.crt"
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "x",', "the submitted template: invalid JSON at line 1, column 14"),
        (submission(category="GAMES"), "categor"),
        (
            submission(
                manifests=[
                    {
                        "name": "a.yaml",
                        "content": "apiVersion: apps/v1\nkind: Deployment\n"
                        "metadata: {name: a}\nspec: {replicas: two}\n",
                    }
                ]
            ),
            "Deployment/a: spec: 'selector' is a required property (Kubernetes 1.30 schema)",
        ),
        (
            submission(
                manifests=[
                    {
                        "name": "a.yaml",
                        "content": APP.replace("traefik/whoami:v1.10.3", "traefik/whoami:latest"),
                    }
                ]
            ),
            "the security policy refuses it:\n- Deployment/whoami "
            "spec.template.spec.containers[0].image: "
            "image 'traefik/whoami:latest' uses the latest tag: pin a version [latest-tag]",
        ),
        (
            submission(
                manifests=[
                    {
                        "name": "a.yaml",
                        "content": APP.replace("probe=", "host_network=True, probe="),
                    }
                ]
            ),
            "the manifests use hostNetwork but requirements.features does not declare it",
        ),
        (submission(name="minecraft"), "minecraft is the name of a curated template"),
        (
            submission(requirements={"features": ["clusterWide"]}),
            "a community template may not create cluster-wide objects",
        ),
        (
            submission(manifests=[{"name": "a.yaml", "content": ADMIN}]),
            "the manifests use clusterWide but requirements.features does not declare it",
        ),
    ],
)
async def test_bad_submissions_are_refused_with_the_reason(templates, tmp_path, content, message):
    result = await templates.run(f"/template submit file:{write(tmp_path, content)}")
    assert result.status == "error"
    assert result.text.startswith("whoami.json was not accepted: ")
    assert message in result.text
    listed = await templates.run("/template search category:other")
    assert listed.reply.data["templates"] == []  # nothing was stored


async def test_a_privileged_template_is_blocked_even_when_declared(templates, tmp_path):
    manifest = """apiVersion: apps/v1
kind: Deployment
metadata: {name: root}
spec:
  selector: {matchLabels: {app: root}}
  template:
    metadata: {labels: {app: root}}
    spec:
      hostPID: true
      containers:
        - name: root
          image: busybox:1.37.0
          securityContext: {privileged: true}
          resources: {limits: {cpu: 100m, memory: 64Mi}}
"""
    data = submission(
        manifests=[{"name": "root.yaml", "content": manifest}],
        requirements={"features": ["runAsRoot", "hostPath"]},
    )
    result = await templates.run(f"/template submit file:{write(tmp_path, data)}")
    assert (
        "spec.template.spec.hostPID: hostPID shares the host's namespace: not allowed [host-pid]"
        in result.text
    )
    assert (
        "securityContext.privileged: privileged containers are not allowed [privileged-container]"
        in result.text
    )


async def test_a_submission_cannot_claim_popularity_or_verification(templates, tmp_path):
    data = submission(popularity=100000, verified=True)
    assert (await templates.run(f"/template submit file:{write(tmp_path, data)}")).ok
    found = await templates.run("/template search query:echo")
    (row,) = found.reply.data["templates"]
    assert (row["status"], row["popularity"]) == ("validated", 0)
    info = await templates.run("/template info template:whoami")
    fields = {f.name: f.value for f in info.reply.cards[0].fields}
    assert fields["Status"] == "🧪 community (validated)"
