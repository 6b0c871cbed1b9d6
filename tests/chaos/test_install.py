"""`/chaos mesh install` and `/chaos litmus install` against the sandbox, checked with kubectl:
the pinned release's CRDs and controller objects after an admin's confirmation, a dry run that
lists them and changes nothing, refusals that change nothing, a second run that finds the
release installed, an interrupted install finished by the next run, and the Chaos Mesh and
Litmus files then applied. The sandbox runs no images: the controller Deployment exists but
its container does not run, so the experiments are applied, not executed."""

from __future__ import annotations

import base64
import json
import time

import yaml
from cryptography import x509

from .conftest import ADMIN, ALICE, VIEWER
from .test_experiment_files import write
from .test_interop import POD_CHAOS, podchaos

ENGINE = {
    "apiVersion": "litmuschaos.io/v1alpha1",
    "kind": "ChaosEngine",
    "metadata": {"name": "nginx-chaos", "namespace": "media"},
    "spec": {"engineState": "active", "chaosServiceAccount": "litmus-admin",
             "experiments": [{"name": "pod-delete"}]},
}  # fmt: skip


def crds(cluster, group: str) -> list[str]:
    found = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
    return sorted(c["metadata"]["name"] for c in found if c["spec"]["group"] == group)


def exists(cluster, *what: str) -> bool:
    return cluster.kubectl("get", *what, check=False).returncode == 0


def served(cluster, resource: str) -> None:
    deadline = time.monotonic() + 15
    while not exists(cluster, resource, "-A"):
        assert time.monotonic() < deadline, f"{resource} is not served"
        time.sleep(0.2)


async def test_chaos_mesh_is_installed_once_after_confirmation_then_its_files_apply(
    chaos, homelab, tmp_path
):
    dry = await chaos.run("/chaos mesh install dry_run:true", user=ADMIN, frontend="discord")
    assert dry.ok, dry.text
    listed = dry.reply.data["install"]["objects"]
    assert "CustomResourceDefinition podchaos.chaos-mesh.org" in listed
    assert "Deployment chaos-mesh/chaos-controller-manager" in listed
    assert "Secret chaos-mesh/chaos-mesh-webhook-certs" in listed
    assert crds(homelab, "chaos-mesh.org") == [] and not exists(homelab, "ns", "chaos-mesh")

    # Not a ClusterCord admin (though cluster-admin in Kubernetes); an admin who says no.
    denied = await chaos.run("/chaos mesh install", user=ALICE, frontend="discord")
    assert denied.status == "denied", denied.text
    cancelled = await chaos.run("/chaos mesh install", user=ADMIN, yes=False)
    assert cancelled.ok and "nothing was installed" in cancelled.text
    assert crds(homelab, "chaos-mesh.org") == [] and not exists(homelab, "ns", "chaos-mesh")

    made = await chaos.run("/chaos mesh install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    report = made.reply.data["install"]
    assert report["version"] == "v2.8.3" and report["existed"] == []
    assert len(crds(homelab, "chaos-mesh.org")) == 23  # every CRD of the release
    assert len(report["created"]) == len(listed)
    deployment = json.loads(
        homelab.kubectl("get", "deploy", "-n", "chaos-mesh", "chaos-controller-manager",
                        "-o", "json").stdout
    )  # fmt: skip
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "2.8.3"
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/chaos-mesh/chaos-mesh:v2.8.3"
    assert exists(
        homelab, "clusterrolebinding", "chaos-mesh-chaos-controller-manager-cluster-level"
    )
    secret = json.loads(
        homelab.kubectl("get", "secret", "-n", "chaos-mesh", "chaos-mesh-webhook-certs",
                        "-o", "json").stdout
    )  # fmt: skip
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "chaos-mesh-controller-manager.chaos-mesh.svc" in names.get_values_for_type(x509.DNSName)
    assert "BEGIN" not in made.text and secret["data"]["tls.key"] not in json.dumps(
        made.reply.data
    )  # the key is in the cluster only

    again = await chaos.run("/chaos mesh install", user=ADMIN, frontend="discord")
    assert again.ok and "already installed" in again.text and "2.8.3" in again.text
    assert again.reply.data["install"]["created"] == []

    served(homelab, "podchaos")
    text = yaml.safe_dump(POD_CHAOS)
    applied = await chaos.run(
        f"/chaos mesh experiment file:{write(tmp_path, text)}", user=ALICE, frontend="discord"
    )
    assert applied.ok and applied.reply.data["interop"]["applied"] is True, applied.text
    assert podchaos(homelab) == ["kill-one"]


async def test_an_interrupted_litmus_install_is_finished_by_the_next_run(chaos, homelab, tmp_path):
    # What a first run killed after two objects leaves: the next one creates the rest.
    homelab.kubectl("create", "namespace", "litmus")
    homelab.kubectl("create", "serviceaccount", "litmus", "-n", "litmus")
    made = await chaos.run("/chaos litmus install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    report = made.reply.data["install"]
    assert report["existed"] == ["Namespace litmus", "ServiceAccount litmus/litmus"]
    assert crds(homelab, "litmuschaos.io") == [
        "chaosengines.litmuschaos.io", "chaosexperiments.litmuschaos.io",
        "chaosresults.litmuschaos.io",
    ]  # fmt: skip
    labels = json.loads(
        homelab.kubectl("get", "deploy", "-n", "litmus", "litmus", "-o", "json").stdout
    )["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "3.18.0"
    again = await chaos.run("/chaos litmus install dry_run:true", user=ADMIN, frontend="discord")
    assert "Litmus is already installed on sandbox, version 3.18.0" in again.text

    served(homelab, "chaosengines")
    applied = await chaos.run(
        f"/chaos litmus workflow file:{write(tmp_path, yaml.safe_dump(ENGINE))}",
        user=ALICE, frontend="discord",
    )  # fmt: skip
    assert applied.ok and applied.reply.data["interop"]["applied"] is True, applied.text
    assert exists(homelab, "chaosengine", "-n", "media", "nginx-chaos")


async def test_an_admin_without_the_kubernetes_rights_installs_nothing(chaos, homelab):
    from clustercord.config import AccessConfig

    from .conftest import IDENTITY

    # VIEWER made a ClusterCord admin: their Kubernetes identity still may not create CRDs.
    await chaos.restart(
        identity=IDENTITY, access=AccessConfig(admins=frozenset({f"user:{VIEWER}"}))
    )
    refused = await chaos.run("/chaos litmus install", user=VIEWER, frontend="discord")
    assert not refused.ok and "customresourcedefinitions" in refused.text, refused.text
    assert crds(homelab, "litmuschaos.io") == [] and not exists(homelab, "ns", "litmus")


def test_the_narrowed_roles_are_the_vendored_releases_own():
    from clustercord_builtins.chaos.install import INSTALL_ROLES, RELEASES, objects

    made: dict[str, set[str]] = {}
    for release in RELEASES.values():
        for obj in objects(release):
            if obj["kind"] in ("ClusterRole", "Role"):
                resource = f"{obj['kind'].lower()}s.rbac.authorization.k8s.io"
                made.setdefault(resource, set()).add(obj["metadata"]["name"])
            elif obj["kind"].endswith("Binding"):
                ref = obj["roleRef"]
                resource = f"{ref['kind'].lower()}s.rbac.authorization.k8s.io"
                assert ref["name"] in INSTALL_ROLES[resource]  # binds only its own roles
    assert {k: set(v) for k, v in INSTALL_ROLES.items()} == made


async def test_escalate_and_bind_reach_only_the_install_roles(chaos, homelab):
    await chaos.kernel.plugin_identities.settle()
    account = "system:serviceaccount:clustercord-system:plugin-chaos"

    def can(verb, what):
        answer = homelab.kubectl("auth", "can-i", verb, what, f"--as={account}", check=False)
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return answer.stdout.strip() == "yes"

    assert can("bind", "clusterroles/litmus")
    assert can("escalate", "clusterroles/chaos-mesh-chaos-controller-manager-cluster-level")
    assert can("bind", "roles/chaos-mesh-chaos-controller-manager-control-plane")
    for verb in ("bind", "escalate"):
        assert not can(verb, "clusterroles/cluster-admin")
        assert not can(verb, "clusterroles/admin")
        assert not can(verb, "roles/anything")
