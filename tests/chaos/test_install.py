"""`/chaos mesh-install` and `/chaos litmus-install` against the sandbox, checked with kubectl:
the pinned release's objects after an admin's confirmation (all of Chaos Mesh's default install:
CRDs, controller, the privileged chaos-daemon DaemonSet, dashboard, DNS server, admission
webhooks, with one CA per install behind every certificate and caBundle; Litmus' CRDs and
operator with what runs a Litmus workflow without a ChaosCenter: Argo Workflows' CRDs and
workflow-controller, the argo-chaos and litmus-admin accounts and their roles, chaos-exporter),
a dry run that lists
them and changes nothing, refusals that change nothing, a second run that finds the release
installed, a release a previous version installed in part or an interrupted install finished by
the next run, and the Chaos Mesh and Litmus files then applied. The sandbox runs no images: the
Deployments and the DaemonSet's pods exist but their containers do not run, so the experiments
are applied, not executed."""

from __future__ import annotations

import base64
import json
import logging
import time
from importlib import resources

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

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


ARGO_CRDS = [
    "clusterworkflowtemplates.argoproj.io", "cronworkflows.argoproj.io",
    "workflows.argoproj.io", "workflowtaskresults.argoproj.io", "workflowtasksets.argoproj.io",
    "workflowtemplates.argoproj.io",
]  # fmt: skip
LITMUS_WORKFLOW = {
    # as ChaosCenter's experiments are written: an Argo Workflow run as argo-chaos whose step
    # applies a ChaosEngine (the engine runs as litmus-admin)
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "nginx-pod-delete", "namespace": "litmus"},
    "spec": {
        "entrypoint": "chaos", "serviceAccountName": "argo-chaos",
        "templates": [
            {"name": "chaos", "steps": [[{"name": "pod-delete", "template": "pod-delete"}]]},
            {"name": "pod-delete",
             "resource": {"action": "apply", "manifest": yaml.safe_dump(ENGINE)}},
        ],
    },
}  # fmt: skip


def crds(cluster, group: str) -> list[str]:
    found = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
    return sorted(c["metadata"]["name"] for c in found if c["spec"]["group"] == group)


def exists(cluster, *what: str) -> bool:
    return cluster.kubectl("get", *what, check=False).returncode == 0


def get(cluster, *what: str) -> dict:
    return json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)


def certificate(secret: dict, key: str = "tls.crt") -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"][key]))


def dns_names(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.DNSName)


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def ready_nodes(cluster) -> list[str]:
    return sorted(
        n["metadata"]["name"] for n in get(cluster, "nodes")["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    )  # fmt: skip


DAEMON = "app.kubernetes.io/component=chaos-daemon"


def daemon_pod_nodes(cluster, want: int) -> list[str]:
    """The nodes of chaos-daemon's pods, once the sandbox's DaemonSet controller made them."""
    deadline = time.monotonic() + 15
    while True:
        pods = get(cluster, "pods", "-n", "chaos-mesh", "-l", DAEMON)
        nodes = sorted(p["spec"].get("nodeName", "") for p in pods["items"])
        if len(nodes) >= want or time.monotonic() > deadline:
            return nodes
        time.sleep(0.2)


MESH_SECRETS = (
    "chaos-mesh-webhook-certs", "chaos-mesh-daemon-certs", "chaos-mesh-daemon-client-certs",
)  # fmt: skip
WEBHOOKS = (
    ("mutatingwebhookconfiguration", "chaos-mesh-mutation", 19),
    ("validatingwebhookconfiguration", "chaos-mesh-validation", 19),
    ("validatingwebhookconfiguration", "chaos-mesh-validation-auth", 1),
)
NETWORK_AND_STRESS = [
    {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": "slow-media", "namespace": "media"},
        "spec": {"action": "delay", "mode": "one", "selector": {"namespaces": ["media"]},
                 "delay": {"latency": "100ms"}, "duration": "30s"},
    },
    {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "StressChaos",
        "metadata": {"name": "burn-media", "namespace": "media"},
        "spec": {"mode": "one", "selector": {"namespaces": ["media"]},
                 "stressors": {"cpu": {"workers": 1, "load": 50}}, "duration": "30s"},
    },
]  # fmt: skip


def served(cluster, resource: str) -> None:
    deadline = time.monotonic() + 15
    while not exists(cluster, resource, "-A"):
        assert time.monotonic() < deadline, f"{resource} is not served"
        time.sleep(0.2)


async def test_chaos_mesh_is_installed_once_after_confirmation_then_its_files_apply(
    chaos, homelab, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    since = max((r["seq"] for r in chaos.kernel.audit.iter_rows()), default=0)
    dry = await chaos.run("/chaos mesh-install dry_run:true", user=ADMIN, frontend="discord")
    assert dry.ok, dry.text
    listed = dry.reply.data["install"]["objects"]
    for wanted in (
        "CustomResourceDefinition podchaos.chaos-mesh.org",
        "Namespace chaos-mesh",
        "Deployment chaos-mesh/chaos-controller-manager",
        "Secret chaos-mesh/chaos-mesh-webhook-certs",
        "Secret chaos-mesh/chaos-mesh-daemon-certs",
        "Secret chaos-mesh/chaos-mesh-daemon-client-certs",
        "DaemonSet chaos-mesh/chaos-daemon",
        "Service chaos-mesh/chaos-daemon",
        "Deployment chaos-mesh/chaos-dashboard",
        "Service chaos-mesh/chaos-dashboard",
        "Deployment chaos-mesh/chaos-dns-server",
        "ConfigMap chaos-mesh/dns-server-config",
        "MutatingWebhookConfiguration chaos-mesh-mutation",
        "ValidatingWebhookConfiguration chaos-mesh-validation",
        "ValidatingWebhookConfiguration chaos-mesh-validation-auth",
    ):
        assert wanted in listed, wanted
    assert dry.reply.data["install"]["missing"] == listed
    # webhook configurations last: they never point at a Service not made yet
    assert all("WebhookConfiguration" in o for o in listed[-3:])
    assert crds(homelab, "chaos-mesh.org") == [] and not exists(homelab, "ns", "chaos-mesh")
    assert not exists(homelab, "mutatingwebhookconfiguration", "chaos-mesh-mutation")

    # Not a ClusterCord admin (though cluster-admin in Kubernetes); an admin who says no.
    denied = await chaos.run("/chaos mesh-install", user=ALICE, frontend="discord")
    assert denied.status == "denied", denied.text
    cancelled = await chaos.run("/chaos mesh-install", user=ADMIN, yes=False)
    assert cancelled.ok and "nothing was installed" in cancelled.text
    assert crds(homelab, "chaos-mesh.org") == [] and not exists(homelab, "ns", "chaos-mesh")
    prompt = cancelled.asked[0].prompt
    assert "PRIVILEGED DaemonSet" in prompt and "EVERY node" in prompt, prompt
    assert "admission webhooks" in prompt and "chaos-mesh-validation-auth" in prompt, prompt

    made = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    report = made.reply.data["install"]
    assert report["version"] == "v2.8.3" and report["existed"] == []
    assert len(crds(homelab, "chaos-mesh.org")) == 23  # every CRD of the release
    assert report["created"] == listed
    namespace = get(homelab, "namespace", "chaos-mesh")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    deployment = get(homelab, "deploy", "-n", "chaos-mesh", "chaos-controller-manager")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "2.8.3"
    controller = deployment["spec"]["template"]["spec"]
    assert controller["containers"][0]["image"] == "ghcr.io/chaos-mesh/chaos-mesh:v2.8.3"
    env = {e["name"]: e.get("value") for e in controller["containers"][0]["env"]}
    assert env["CHAOS_DAEMON_CLIENT_CERT"] == "/etc/chaos-daemon/cert/tls.crt"  # mTLS on
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in controller["volumes"]}
    assert volumes["chaos-daemon-client-cert"] == "chaos-mesh-daemon-client-certs"
    assert exists(
        homelab, "clusterrolebinding", "chaos-mesh-chaos-controller-manager-cluster-level"
    )

    # chaos-daemon: privileged, on every Ready node, its runtime socket containerd's
    daemonset = get(homelab, "daemonset", "-n", "chaos-mesh", "chaos-daemon")
    pod_spec = daemonset["spec"]["template"]["spec"]
    daemon = pod_spec["containers"][0]
    assert daemon["image"] == "ghcr.io/chaos-mesh/chaos-daemon:v2.8.3"
    assert daemon["securityContext"]["privileged"] is True and pod_spec["hostPID"] is True
    assert daemon["command"][daemon["command"].index("--runtime") + 1] == "containerd"
    assert {"name": "socket-path", "hostPath": {"path": "/run/containerd"}} in [
        {"name": v["name"], "hostPath": {"path": v["hostPath"]["path"]}}
        for v in pod_spec["volumes"] if "hostPath" in v
    ]  # fmt: skip
    nodes = ready_nodes(homelab)
    assert nodes and daemon_pod_nodes(homelab, len(nodes)) == nodes  # one pod per Ready node
    assert exists(homelab, "service", "-n", "chaos-mesh", "chaos-daemon")
    dashboard = get(homelab, "service", "-n", "chaos-mesh", "chaos-dashboard")
    assert dashboard["spec"]["type"] == "ClusterIP"
    assert exists(homelab, "deploy", "-n", "chaos-mesh", "chaos-dashboard")
    assert exists(homelab, "clusterrolebinding", "chaos-mesh-chaos-dashboard-target-namespace")
    assert exists(homelab, "deploy", "-n", "chaos-mesh", "chaos-dns-server")

    # One CA per install: it signed the three certificates and is every webhook's caBundle
    secrets = {s: get(homelab, "secret", "-n", "chaos-mesh", s) for s in MESH_SECRETS}
    ca = certificate(secrets["chaos-mesh-webhook-certs"], "ca.crt")
    for secret in secrets.values():
        assert certificate(secret, "ca.crt") == ca
        certificate(secret).verify_directly_issued_by(ca)
    server = certificate(secrets["chaos-mesh-webhook-certs"])
    assert "chaos-mesh-controller-manager.chaos-mesh.svc" in dns_names(server)
    daemon_cert = certificate(secrets["chaos-mesh-daemon-certs"])
    assert dns_names(daemon_cert) == ["localhost", "chaos-daemon.chaos-mesh.org"]
    assert usages(daemon_cert) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    client = certificate(secrets["chaos-mesh-daemon-client-certs"])
    assert dns_names(client) == ["localhost", "controller-manager.chaos-mesh.org"]
    assert usages(client) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    for kind, name, count in WEBHOOKS:
        config = get(homelab, kind, name)
        assert len(config["webhooks"]) == count
        for hook in config["webhooks"]:
            bundle = x509.load_pem_x509_certificate(
                base64.b64decode(hook["clientConfig"]["caBundle"])
            )
            assert bundle == ca
            server.verify_directly_issued_by(bundle)  # the API server trusts the webhook
            assert hook["clientConfig"]["service"]["name"] == "chaos-mesh-controller-manager"

    # The keys are in the cluster only: not in the replies, the prompts, the audit or the logs
    keys = [s["data"]["tls.key"] for s in secrets.values()]
    shown = json.dumps(
        [made.text, made.reply.data, dry.text, dry.reply.data, cancelled.asked[0].prompt,
         list(chaos.kernel.audit.iter_rows(since))],
        default=str,
    ) + caplog.text  # fmt: skip
    for key in keys:
        assert key not in shown and base64.b64decode(key).decode()[40:120] not in shown
    assert "PRIVATE KEY" not in shown

    again = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert again.ok and "already installed" in again.text and "2.8.3" in again.text
    assert again.reply.data["install"]["created"] == [] and not again.asked
    assert get(homelab, "secret", "-n", "chaos-mesh", MESH_SECRETS[0]) == secrets[MESH_SECRETS[0]]

    served(homelab, "podchaos")
    text = yaml.safe_dump(POD_CHAOS)
    applied = await chaos.run(
        f"/chaos mesh-experiment file:{write(tmp_path, text)}", user=ALICE, frontend="discord"
    )
    assert applied.ok and applied.reply.data["interop"]["applied"] is True, applied.text
    assert podchaos(homelab) == ["kill-one"]


async def test_an_interrupted_litmus_install_is_finished_by_the_next_run(chaos, homelab, tmp_path):
    # What a first run killed after two objects leaves: the next one creates the rest.
    homelab.kubectl("create", "namespace", "litmus")
    homelab.kubectl("create", "serviceaccount", "litmus", "-n", "litmus")
    made = await chaos.run("/chaos litmus-install", user=ADMIN, frontend="discord")
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
    again = await chaos.run("/chaos litmus-install dry_run:true", user=ADMIN, frontend="discord")
    assert "Litmus is already installed on sandbox, version 3.18.0" in again.text

    served(homelab, "chaosengines")
    applied = await chaos.run(
        f"/chaos litmus-workflow file:{write(tmp_path, yaml.safe_dump(ENGINE))}",
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
    refused = await chaos.run("/chaos litmus-install", user=VIEWER, frontend="discord")
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
    assert can("bind", "clusterroles/infra-cluster-role")  # Litmus' Argo Workflows accounts
    assert can("escalate", "clusterroles/litmus-admin-cluster-role")
    assert can("bind", "roles/infra-ops-role")
    for verb in ("bind", "escalate"):
        assert not can(verb, "clusterroles/cluster-admin")
        assert not can(verb, "clusterroles/admin")
        assert not can(verb, "roles/anything")


async def test_after_the_install_network_and_stress_chaos_files_apply(chaos, homelab, tmp_path):
    """What the chaos-daemon is for: NetworkChaos and StressChaos objects are accepted once the
    release is installed. The sandbox stores the admission webhook configurations but does not
    call them (nor run the controller behind them), so this shows the CRDs and the file check,
    not Chaos Mesh's own webhooks or daemon at work."""
    made = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    served(homelab, "networkchaos")
    served(homelab, "stresschaos")
    text = yaml.safe_dump_all(NETWORK_AND_STRESS)
    applied = await chaos.run(
        f"/chaos mesh-experiment file:{write(tmp_path, text)}", user=ALICE, frontend="discord"
    )
    assert applied.ok and applied.reply.data["interop"]["applied"] is True, applied.text
    assert exists(homelab, "networkchaos", "-n", "media", "slow-media")
    assert exists(homelab, "stresschaos", "-n", "media", "burn-media")


def previous_version_objects() -> list[dict]:
    """What the previous plugin version installed: the CRDs and the controller (no daemon,
    dashboard, DNS server nor webhooks), its namespace without the Pod Security label, its
    controller without the daemon's client certificate (mTLS off), and its webhook certificate
    Secret from a CA of its own (whose key it did not keep)."""
    from dataclasses import replace

    from clustercord_builtins.chaos.install import (
        RELEASES,
        WEBHOOK_KINDS,
        certificate_material,
        filled,
        objects,
    )  # fmt: skip

    mesh = RELEASES["chaos-mesh"]
    webhook = "chaos-mesh-webhook-certs"
    its_own = replace(mesh, certificates={webhook: mesh.certificates[webhook]})
    material = certificate_material(its_own)
    old = []
    for obj in objects(mesh):
        name = obj["metadata"]["name"]
        if obj["kind"] in WEBHOOK_KINDS or (
            obj["kind"] != "CustomResourceDefinition"
            and any(p in name for p in ("daemon", "dashboard", "dns"))
        ):
            continue
        if obj["kind"] == "Namespace":
            obj["metadata"].pop("labels")
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            container = pod["containers"][0]
            container["env"] = [e for e in container["env"] if "CERT" not in e["name"]
                                and "CLIENT_KEY" not in e["name"]]  # fmt: skip
            container["volumeMounts"] = container["volumeMounts"][:1]
            pod["volumes"] = pod["volumes"][:1]
        old.append(filled(obj, its_own, material))
    return old


async def test_a_release_the_previous_plugin_version_installed_gets_the_rest(chaos, homelab):
    from clustercord_builtins.chaos.install import describe

    old = previous_version_objects()
    homelab.kubectl("create", "-f", "-", input="\n".join(json.dumps(o) for o in old))
    assert not exists(homelab, "daemonset", "-n", "chaos-mesh", "chaos-daemon")
    old_ca = certificate(get(homelab, "secret", "-n", "chaos-mesh", MESH_SECRETS[0]), "ca.crt")
    outdated = [
        "Namespace chaos-mesh",
        "Secret chaos-mesh/chaos-mesh-webhook-certs",
        "Deployment chaos-mesh/chaos-controller-manager",
    ]

    dry = await chaos.run("/chaos mesh-install dry_run:true", user=ADMIN, frontend="discord")
    assert dry.ok and "would create" in dry.text and "already installed" not in dry.text
    plan = dry.reply.data["install"]
    assert len(plan["existed"]) == len(old) and plan["outdated"] == outdated
    assert "DaemonSet chaos-mesh/chaos-daemon" in plan["missing"]
    assert not exists(homelab, "daemonset", "-n", "chaos-mesh", "chaos-daemon")
    assert "labels" not in get(homelab, "namespace", "chaos-mesh")["metadata"] or (
        "pod-security.kubernetes.io/enforce"
        not in get(homelab, "namespace", "chaos-mesh")["metadata"]["labels"]
    )

    made = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    prompt = made.asked[0].prompt
    assert f"{len(old)} objects are already there" in prompt, prompt
    assert "it adds: Secret chaos-mesh-daemon-client-certs, ServiceAccount chaos-daemon" in prompt
    assert "0 CRD(s)" in prompt and "PRIVILEGED" in prompt
    assert "it updates: Namespace chaos-mesh (metadata.labels)" in prompt
    assert "a new CA" in prompt and len(prompt) <= 2000  # one Discord message
    report = made.reply.data["install"]
    assert report["updated"] == outdated
    assert set(report["created"]) == set(report["objects"]) - {describe(o) for o in old}
    assert len(crds(homelab, "chaos-mesh.org")) == 23
    labels = get(homelab, "namespace", "chaos-mesh")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    controller = get(homelab, "deploy", "-n", "chaos-mesh", "chaos-controller-manager")
    volumes = [v["name"] for v in controller["spec"]["template"]["spec"]["volumes"]]
    assert volumes == ["webhook-certs", "chaos-daemon-client-cert"]  # mTLS on
    # The old webhook certificate is replaced: the new CA is behind every one and every caBundle
    secrets = {s: get(homelab, "secret", "-n", "chaos-mesh", s) for s in MESH_SECRETS}
    ca = certificate(secrets["chaos-mesh-webhook-certs"], "ca.crt")
    assert ca != old_ca
    for secret in secrets.values():
        certificate(secret).verify_directly_issued_by(ca)
    for kind, name, _ in WEBHOOKS:
        for hook in get(homelab, kind, name)["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca.public_bytes(
                serialization.Encoding.PEM
            )

    shown = json.dumps([made.text, made.reply.data, prompt, dry.text, dry.reply.data])
    assert "PRIVATE KEY" not in shown
    assert not any(s["data"]["tls.key"] in shown for s in secrets.values())

    again = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert "already installed" in again.text and again.reply.data["install"]["created"] == []
    assert again.reply.data["install"]["updated"] == [] and not again.asked


async def test_another_version_installed_is_left_alone(chaos, homelab):
    homelab.kubectl("create", "namespace", "chaos-mesh")
    homelab.kubectl(
        "create", "deployment", "chaos-controller-manager", "-n", "chaos-mesh",
        "--image=ghcr.io/chaos-mesh/chaos-mesh:v2.7.0",
    )  # fmt: skip
    homelab.kubectl(
        "label", "deployment", "chaos-controller-manager", "-n", "chaos-mesh",
        "app.kubernetes.io/version=2.7.0",
    )  # fmt: skip
    refused = await chaos.run("/chaos mesh-install", user=ADMIN, frontend="discord")
    assert "already installed on sandbox, version 2.7.0" in refused.text, refused.text
    assert "changes nothing" in refused.text and not refused.asked
    assert crds(homelab, "chaos-mesh.org") == []
    assert not exists(homelab, "daemonset", "-n", "chaos-mesh", "chaos-daemon")


async def test_patch_reaches_only_what_an_install_updates(chaos, homelab):
    """Admission webhooks, a privileged DaemonSet and certificate Secrets are powerful. The
    plugin may create them (RBAC cannot narrow `create` to names) but patch only the objects an
    install updates (`PATCHED`, narrowed at enable): never another webhook configuration (to
    repoint it), Secret, Deployment or namespace, and no DaemonSet at all (to swap the daemon's
    image); nor update, delete or read any of them."""
    from clustercord_builtins.chaos.install import PATCHED

    await chaos.kernel.plugin_identities.settle()
    account = "system:serviceaccount:clustercord-system:plugin-chaos"

    def can(verb, what, *more):
        answer = homelab.kubectl("auth", "can-i", verb, what, *more, f"--as={account}", check=False)
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return answer.stdout.strip() == "yes"

    for resource, names in PATCHED.items():
        where = ("-n", "chaos-mesh") if resource in ("secrets", "deployments.apps") else ()
        assert can("create", resource, *where)
        for name in names:
            assert can("patch", f"{resource}/{name}", *where), (resource, name)
            assert not can("update", f"{resource}/{name}", *where)
            assert not can("delete", f"{resource}/{name}", *where)
        assert not can("patch", f"{resource}/someone-else", *where), resource
    assert not can("get", "secrets/chaos-mesh-webhook-certs", "-n", "chaos-mesh")
    assert not can("patch", "secrets/admin-token", "-n", "kube-system")
    assert not can("patch", "namespaces/kube-system")
    assert not can("patch", "deployments.apps/coredns", "-n", "kube-system")
    assert can("create", "daemonsets.apps", "-n", "chaos-mesh")
    for verb in ("update", "patch", "delete"):
        assert not can(verb, "daemonsets.apps/chaos-daemon", "-n", "chaos-mesh")
        assert not can(verb, "daemonsets.apps/kube-proxy", "-n", "kube-system")


def test_the_patched_names_are_what_the_vendored_files_let_an_install_update():
    from clustercord_builtins.chaos.install import (
        PATCHED,
        RELEASES,
        RESOURCES,
        describe,
        objects,
        signed,
    )

    patched: dict[str, set[str]] = {}
    for release in RELEASES.values():
        for obj in objects(release):
            if signed(obj) or describe(obj) in release.refreshed:
                resource = RESOURCES[obj["kind"]][0]
                patched.setdefault(resource, set()).add(obj["metadata"]["name"])
        assert set(release.certificates) <= patched.get("secrets", set())
    assert {k: set(v) for k, v in PATCHED.items()} == patched


def can_i(cluster, account: str, verb: str, what: str, *more: str) -> bool:
    answer = cluster.kubectl("auth", "can-i", verb, what, *more, f"--as={account}", check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


async def test_litmus_install_brings_argo_workflows_and_then_a_litmus_workflow_applies(
    chaos, homelab, tmp_path
):
    """What a Litmus workflow needs (Argo Workflows' CRDs and controller, the argo-chaos
    account it runs as, litmus-admin for its ChaosEngines, chaos-exporter) comes with the
    operator. The sandbox runs no images: the workflow-controller's Deployment exists but does
    not run, so the Workflow is applied, not executed (no pod, no ChaosEngine made from it)."""
    dry = await chaos.run("/chaos litmus-install dry_run:true", user=ADMIN, frontend="discord")
    assert dry.ok and "would create" in dry.text, dry.text
    listed = dry.reply.data["install"]["objects"]
    for wanted in (
        *(f"CustomResourceDefinition {c}" for c in ARGO_CRDS),
        "ServiceAccount litmus/argo-chaos",
        "ClusterRole infra-cluster-role",
        "ClusterRoleBinding argo-chaos-infra-cluster-role-binding",
        "RoleBinding litmus/argo-chaos-ops-role-binding",
        "ServiceAccount litmus/litmus-admin",
        "ConfigMap litmus/workflow-controller-configmap",
        "Deployment litmus/workflow-controller",
        "Deployment litmus/chaos-exporter",
        "Service litmus/chaos-exporter",
    ):
        assert wanted in listed, wanted
    assert not any("subscriber" in o or "event-tracker" in o for o in listed)  # ChaosCenter's
    assert dry.reply.data["install"]["missing"] == listed
    assert [r[1] for r in dry.reply.tables[0].rows] == ["would create"] * len(listed)
    assert crds(homelab, "argoproj.io") == [] and not exists(homelab, "ns", "litmus")
    assert not exists(homelab, "clusterrole", "infra-cluster-role")

    cancelled = await chaos.run("/chaos litmus-install", user=ADMIN, yes=False)
    assert cancelled.ok and "nothing was installed" in cancelled.text
    prompt = cancelled.asked[0].prompt
    assert "Argo Workflows v3.3.1 controller" in prompt and "chaos-exporter" in prompt, prompt
    assert "cluster-wide RBAC" in prompt and "infra-cluster-role" in prompt, prompt
    assert "litmus/argo-chaos" in prompt and len(prompt) <= 2000
    assert crds(homelab, "argoproj.io") == [] and not exists(homelab, "ns", "litmus")

    made = await chaos.run("/chaos litmus-install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    assert made.reply.data["install"]["created"] == listed
    assert crds(homelab, "argoproj.io") == ARGO_CRDS
    controller = get(homelab, "deploy", "-n", "litmus", "workflow-controller")
    container = controller["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "litmuschaos/workflow-controller:v3.3.1"
    args = container["args"]
    assert args[args.index("--executor-image") + 1] == "litmuschaos/argoexec:v3.3.1"
    assert args[args.index("--container-runtime-executor") + 1] == "k8sapi"
    assert "--namespaced" in args  # it runs the Workflows of namespace litmus, as Litmus does
    config = get(homelab, "configmap", "-n", "litmus", "workflow-controller-configmap")["data"]
    assert config["containerRuntimeExecutor"] == "k8sapi" and "instanceID" not in config
    exporter = get(homelab, "deploy", "-n", "litmus", "chaos-exporter")
    assert exporter["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "litmuschaos/chaos-exporter:3.18.0"
    )
    assert exists(homelab, "service", "-n", "litmus", "chaos-exporter")
    for deployment in get(homelab, "deploy", "-n", "litmus")["items"]:  # images pinned
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert c["image"].rpartition(":")[2] not in ("", "latest", "ci"), c["image"]
    assert exists(homelab, "serviceaccount", "-n", "litmus", "argo-chaos")
    # The accounts' rights are real: argo-chaos may make ChaosEngines anywhere and Workflow
    # pods; the controller's account (the operator's, litmus) may run Workflows
    argo_chaos = "system:serviceaccount:litmus:argo-chaos"
    assert can_i(homelab, argo_chaos, "create", "chaosengines.litmuschaos.io", "-n", "media")
    assert can_i(homelab, argo_chaos, "get", "configmaps", "-n", "litmus")
    assert not can_i(homelab, argo_chaos, "get", "secrets", "-n", "media")
    controller_account = "system:serviceaccount:litmus:litmus"
    assert can_i(homelab, controller_account, "update", "workflows.argoproj.io", "-n", "litmus")
    assert can_i(homelab, controller_account, "create", "pods", "-n", "litmus")
    assert can_i(
        homelab, "system:serviceaccount:litmus:litmus-admin", "create", "pods/exec", "-n", "media"
    )

    served(homelab, "workflows.argoproj.io")
    applied = await chaos.run(
        f"/chaos litmus-workflow file:{write(tmp_path, yaml.safe_dump(LITMUS_WORKFLOW))}",
        user=ALICE, frontend="discord",
    )  # fmt: skip
    assert applied.ok and applied.reply.data["interop"]["applied"] is True, applied.text
    workflow = get(homelab, "workflow", "-n", "litmus", "nginx-pod-delete")
    assert workflow["spec"]["serviceAccountName"] == "argo-chaos"
    carried = yaml.safe_load(workflow["spec"]["templates"][1]["resource"]["manifest"])
    assert carried == ENGINE  # the ChaosEngine it would create, kept as written

    again = await chaos.run("/chaos litmus-install", user=ADMIN, frontend="discord")
    assert again.ok and "already installed" in again.text and "3.18.0" in again.text
    assert again.reply.data["install"]["created"] == [] and not again.asked
    assert again.reply.data["install"]["existed"] == listed


def operator_only() -> list[dict]:
    """What the previous plugin version installed: chaos-operator's files (1-3) alone, the
    operator Deployment with the version label that version gave it."""
    from clustercord_builtins.chaos.install import RELEASES, VERSION_LABEL

    folder = resources.files("clustercord_builtins.chaos").joinpath("install", "litmus-3.18.0")
    old = []
    for name in ("1-crds.yaml", "2-rbac.yaml", "3-operator.yaml"):
        old += [d for d in yaml.safe_load_all(folder.joinpath(name).read_text("utf-8")) if d]
    for obj in old:
        if obj["kind"] == "Deployment":
            obj["metadata"]["labels"][VERSION_LABEL] = RELEASES["litmus"].label_version
    return old


async def test_a_litmus_the_previous_plugin_version_installed_gets_argo_workflows(chaos, homelab):
    from clustercord_builtins.chaos.install import describe

    old = operator_only()
    homelab.kubectl("create", "-f", "-", input="\n".join(json.dumps(o) for o in old))
    before = get(homelab, "deploy", "-n", "litmus", "litmus")
    was = [describe(o) for o in old]

    dry = await chaos.run("/chaos litmus-install dry_run:true", user=ADMIN, frontend="discord")
    assert dry.ok and "would create" in dry.text and "already installed" not in dry.text
    plan = dry.reply.data["install"]
    assert plan["existed"] == was and plan["outdated"] == []
    assert set(plan["missing"]) == set(plan["objects"]) - set(was)
    assert "Deployment litmus/workflow-controller" in plan["missing"]
    assert crds(homelab, "argoproj.io") == []
    assert not exists(homelab, "serviceaccount", "-n", "litmus", "argo-chaos")

    made = await chaos.run("/chaos litmus-install", user=ADMIN, frontend="discord")
    assert made.ok, made.text
    prompt = made.asked[0].prompt
    assert f"{len(old)} objects are already there" in prompt, prompt
    assert "6 CRD(s)" in prompt and "it adds: ClusterRole infra-cluster-role" in prompt, prompt
    assert "Deployment workflow-controller" in prompt and "cluster-wide RBAC" in prompt
    assert "ClusterRole(s) infra-cluster-role, litmus-admin-cluster-role bound" in prompt
    assert len(prompt) <= 2000
    report = made.reply.data["install"]
    assert report["existed"] == was and report["updated"] == []
    assert report["created"] == plan["missing"]
    assert crds(homelab, "argoproj.io") == ARGO_CRDS
    assert exists(homelab, "deploy", "-n", "litmus", "workflow-controller")
    assert exists(homelab, "deploy", "-n", "litmus", "chaos-exporter")
    assert exists(homelab, "serviceaccount", "-n", "litmus", "argo-chaos")
    after = get(homelab, "deploy", "-n", "litmus", "litmus")  # the operator is left as it was
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]

    again = await chaos.run("/chaos litmus-install", user=ADMIN, frontend="discord")
    assert "already installed" in again.text and again.reply.data["install"]["created"] == []
    assert not again.asked


def test_the_confirmation_fits_one_discord_message_however_much_is_added():
    """A release of which only one object is there: every other one is added, more than a
    message holds for Chaos Mesh. The cluster-wide roles are then counted and fewer objects
    named, and what runs, the privileged DaemonSet and the webhooks are still said."""
    from clustercord_builtins.chaos.install import RELEASES, Plan, _prompt, objects

    prompts = {}
    for key, release in RELEASES.items():
        wanted = objects(release)
        plan = Plan(wanted[1:], wanted[:1], [], False)
        prompts[key] = _prompt(release, "homelab-production-eu-west", plan)
        assert len(prompts[key]) <= 2000, (key, len(prompts[key]))
        assert release.parts in prompts[key] and "cluster-wide RBAC" in prompts[key]
    mesh = prompts["chaos-mesh"]
    assert "PRIVILEGED DaemonSet" in mesh and "admission webhooks" in mesh
    assert "more" in mesh and "6 ClusterRole(s) bound to 3 ServiceAccount(s)" in mesh
    litmus = prompts["litmus"]  # short enough: the roles and accounts by name
    assert "Argo Workflows v3.3.1 controller" in litmus
    assert "infra-cluster-role, litmus, litmus-admin-cluster-role bound to" in litmus
