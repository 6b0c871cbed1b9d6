"""``/chaos mesh-install`` and ``/chaos litmus-install``: a pinned release of Chaos Mesh (all
of its chart's default install: CRDs, controller, chaos-daemon, dashboard, DNS server, admission
webhooks) or Litmus (its CRDs and operator, and what runs a Litmus workflow without a ChaosCenter:
Argo Workflows' CRDs and workflow-controller, the accounts and roles workflows and experiments
run as, chaos-exporter) applied from files vendored in the plugin
(``install/<project>-<version>/``, their sources in ``install/README.md``).

Objects are created in file order (CRDs, then namespace, accounts and roles, then the
workloads, webhook configurations last), each with the invoking admin's own rights checked
first. Which objects are already there is asked of the cluster first (a server-side dry run of
each creation: no read right is needed for it), and only the missing ones are created: a second
run creates nothing, an interrupted one is finished, and a release a previous plugin version
installed in part (Chaos Mesh's controller alone, Litmus' operator alone, same version) gets the
rest: then the objects that version made otherwise (Chaos Mesh's namespace without the Pod
Security label, its controller without the chaos-daemon client certificate; nothing of Litmus')
are patched up to date, and since a new CA is made
whenever a certificate Secret or webhook configuration is missing, the ones already there are
renewed with it (one CA behind every certificate and caBundle). A controller Deployment of
another version (its ``app.kubernetes.io/version`` label) is refused: nothing is asked or
changed.
"""

from __future__ import annotations

import base64
import datetime
import gzip
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from clustercord_sdk import CommandContext, Reply, Table
from clustercord_sdk.errors import CommandError

RESOURCES = {
    # kind → the resource as permissions name it, and whether it lives in a namespace
    "CustomResourceDefinition": ("customresourcedefinitions.apiextensions.k8s.io", False),
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ClusterRole": ("clusterroles.rbac.authorization.k8s.io", False),
    "ClusterRoleBinding": ("clusterrolebindings.rbac.authorization.k8s.io", False),
    "Role": ("roles.rbac.authorization.k8s.io", True),
    "RoleBinding": ("rolebindings.rbac.authorization.k8s.io", True),
    "Service": ("services", True),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "Deployment": ("deployments.apps", True),
    "DaemonSet": ("daemonsets.apps", True),
    "MutatingWebhookConfiguration": (
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        False,
    ),
    "ValidatingWebhookConfiguration": (
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
        False,
    ),
}
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


@dataclass(frozen=True)
class Certificate:
    """What one generated Secret holds besides the CA: a certificate the install's CA signs,
    as the chart's ``genSignedCert`` makes it (its common name, DNS names and use)."""

    common_name: str
    dns_names: tuple[str, ...]
    client: bool = False
    """A TLS client's certificate (``clientAuth``); otherwise a server's (``serverAuth``)."""


@dataclass(frozen=True)
class Release:
    project: str
    name: str
    """As people call it: Chaos Mesh, Litmus."""
    version: str
    folder: str
    namespace: str
    controller: str
    """The Deployment whose ``app.kubernetes.io/version`` label says what is installed."""
    label_version: str
    certificates: Mapping[str, Certificate] = field(default_factory=dict)
    """Secret name → the certificate it gets at install, all signed by one CA made per install
    (Chaos Mesh's, as its chart's ``genCA`` does): the vendored Secret's ``data`` and the
    webhook configurations' ``caBundle`` say ``PLACEHOLDER`` until then."""
    refreshed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Objects a previous plugin version made otherwise (by :func:`describe`) → the parts
    (dotted paths) brought up to date when the cluster's lack what the vendored ones hold."""
    parts: str = ""
    """What runs once it is installed, as the confirmation names it."""


_MESH_WEBHOOK = "chaos-mesh-controller-manager.chaos-mesh"


RELEASES = {
    "chaos-mesh": Release(
        "chaos-mesh", "Chaos Mesh", "v2.8.3", "chaos-mesh-v2.8.3", "chaos-mesh",
        "chaos-controller-manager", "2.8.3",
        {
            # the admission webhooks' server: the controller's Service, as the API server calls it
            "chaos-mesh-webhook-certs": Certificate(
                f"{_MESH_WEBHOOK}.svc",
                ("chaos-mesh-controller-manager", _MESH_WEBHOOK, f"{_MESH_WEBHOOK}.svc"),
            ),
            # chaos-daemon's gRPC server and the controller as its client (mutual TLS); the
            # names are the chart's (the controller dials the pod's IP, naming this server)
            "chaos-mesh-daemon-certs": Certificate(
                "chaos-daemon.chaos-mesh.org", ("localhost", "chaos-daemon.chaos-mesh.org")
            ),
            "chaos-mesh-daemon-client-certs": Certificate(
                "controller-manager.chaos-mesh.org",
                ("localhost", "controller-manager.chaos-mesh.org"),
                client=True,
            ),
        },
        {
            # The previous plugin version installed the controller alone: no Pod Security
            # label for the privileged daemon, no daemon client certificate (mTLS off).
            "Namespace chaos-mesh": ("metadata.labels",),
            "Deployment chaos-mesh/chaos-controller-manager": ("metadata.labels", "spec.template"),
        },
        parts="controller-manager, chaos-daemon, dashboard, DNS server, admission webhooks",
    ),
    "litmus": Release(
        "litmus", "Litmus", "3.18.0", "litmus-3.18.0", "litmus", "litmus", "3.18.0",
        # what the previous plugin version installed (the operator alone) needs no update: the
        # Argo Workflows and exporter objects are only added
        parts="chaos-operator, Argo Workflows v3.3.1 controller, chaos-exporter",
    ),
}  # fmt: skip
INSTALL_ROLES = {
    "clusterroles.rbac.authorization.k8s.io": (
        "chaos-mesh-chaos-controller-manager-cluster-level",
        "chaos-mesh-chaos-controller-manager-target-namespace",
        "chaos-mesh-chaos-dashboard-cluster-level",
        "chaos-mesh-chaos-dashboard-target-namespace",
        "chaos-mesh-chaos-dns-server-cluster-level",
        "chaos-mesh-chaos-dns-server-target-namespace",
        "litmus",
        "infra-cluster-role",
        "litmus-admin-cluster-role",
    ),
    "roles.rbac.authorization.k8s.io": (
        "chaos-mesh-chaos-controller-manager-control-plane",
        "chaos-mesh-chaos-dns-server-control-plane",
        "infra-ops-role",
    ),
}
"""The (Cluster)Roles the vendored releases create and bind (a test compares them with the
files): the only ones the plugin's ``escalate`` and ``bind`` are narrowed to (:func:`narrow`)."""
PATCHED = {
    "namespaces": ("chaos-mesh",),
    "deployments.apps": ("chaos-controller-manager",),
    "secrets": (
        "chaos-mesh-daemon-certs", "chaos-mesh-daemon-client-certs", "chaos-mesh-webhook-certs",
    ),
    "mutatingwebhookconfigurations.admissionregistration.k8s.io": ("chaos-mesh-mutation",),
    "validatingwebhookconfigurations.admissionregistration.k8s.io": (
        "chaos-mesh-validation", "chaos-mesh-validation-auth",
    ),
}  # fmt: skip
"""What an install may patch (the releases' ``refreshed`` objects, their certificate Secrets
and webhook configurations; a test compares them with the files): the plugin's ``patch`` of
these resources is narrowed to these names (:func:`narrow`), so it cannot repoint anyone
else's webhook, read-modify another Secret or change another Deployment."""
VERSION_LABEL = "app.kubernetes.io/version"
PLACEHOLDER = "(generated at install)"
"""Where a vendored file leaves a Secret's ``data`` or a webhook's ``caBundle`` to the install."""


def objects(release: Release) -> list[dict[str, Any]]:
    """The release's objects in the order they are created, as vendored. Litmus' operator
    Deployment carries no version label of its own: it gets the release's."""
    folder = resources.files("clustercord_builtins.chaos").joinpath("install", release.folder)
    found: list[dict[str, Any]] = []
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".yaml.gz"):
            text = gzip.decompress(item.read_bytes()).decode("utf-8")
        elif item.name.endswith(".yaml"):
            text = item.read_text("utf-8")
        else:
            continue
        found.extend(d for d in yaml.safe_load_all(text) if d)
    for obj in found:
        if obj["kind"] not in RESOURCES:
            raise CommandError(f"{release.folder}: unexpected kind {obj['kind']}")
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == release.controller:
            labels = obj["metadata"].setdefault("labels", {})
            labels[VERSION_LABEL] = release.label_version
    return found


def describe(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


@dataclass(frozen=True)
class Material:
    """What an install generates: the CA's certificate (base64 of its PEM, as a ``caBundle``
    and a Secret's ``ca.crt`` hold it) and each generated Secret's ``data``. Keys included:
    only ever sent to the cluster, never shown."""

    ca_bundle: str
    secrets: Mapping[str, Mapping[str, str]]


def certificate_material(release: Release) -> Material:
    """One CA for this install, and for each of the release's certificates a key and a
    certificate it signs, as the chart's ``genCA`` and ``genSignedCert`` make them (RSA 2048,
    5 years); each Secret gets ``ca.crt``, ``tls.crt`` and ``tls.key``. Made per install and
    never shown: only the cluster holds the keys (the CA's own key is dropped here)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=1825)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def usage(ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True, key_encipherment=not ca, key_cert_sign=ca,
            content_commitment=False, data_encipherment=False, key_agreement=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        )  # fmt: skip

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = name(f"{release.project}-ca")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_pem = b64(ca.public_bytes(serialization.Encoding.PEM))
    secrets: dict[str, dict[str, str]] = {}
    for secret, wanted in release.certificates.items():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        use = ExtendedKeyUsageOID.CLIENT_AUTH if wanted.client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder().subject_name(name(wanted.common_name))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([use]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in wanted.dns_names]), False
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        secrets[secret] = {
            "ca.crt": ca_pem,
            "tls.crt": b64(cert.public_bytes(serialization.Encoding.PEM)),
            "tls.key": b64(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            ),
        }
    return Material(ca_pem, secrets)


def filled(obj: dict[str, Any], release: Release, material: Material | None) -> dict[str, Any]:
    """``obj`` with its placeholders replaced by ``material``; with ``None`` (asking the
    cluster whether the object exists, no key made for that) by empty values."""
    if obj["kind"] == "Secret" and obj.get("data") == PLACEHOLDER:
        name = obj["metadata"]["name"]
        if name not in release.certificates:
            raise CommandError(f"{release.folder}: no certificate is made for Secret {name}")
        return {**obj, "data": dict(material.secrets[name]) if material else {}}
    if obj["kind"] in WEBHOOK_KINDS:
        hooks = []
        for hook in obj.get("webhooks") or []:
            config = dict(hook.get("clientConfig") or {})
            if config.get("caBundle") == PLACEHOLDER:
                if material:
                    config["caBundle"] = material.ca_bundle
                else:
                    del config["caBundle"]
            hooks.append({**hook, "clientConfig": config})
        return {**obj, "webhooks": hooks}
    return obj


# -- the commands ----------------------------------------------------------------------------
async def mesh_install(ctx: CommandContext) -> Reply:
    return await install(ctx, RELEASES["chaos-mesh"])


async def litmus_install(ctx: CommandContext) -> Reply:
    return await install(ctx, RELEASES["litmus"])


async def install(ctx: CommandContext, release: Release) -> Reply:
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))
    dry_run = bool(ctx.options.get("dry_run"))
    summary: dict[str, Any] = {
        "project": release.project, "version": release.version, "cluster": cluster,
        "dry_run": dry_run, "created": [], "updated": [], "existed": [],
    }  # fmt: skip
    installed = await installed_version(ctx, release, cluster)
    if installed is not None and installed != release.label_version:
        text = (
            f"{release.name} is already installed on {cluster}, version {installed} (this "
            f"plugin installs {release.version}; it changes nothing: upgrade it with the "
            "project's own tools)."
        )
        return Reply(text=text, data={"install": {**summary, "installed": installed}})
    wanted = objects(release)
    for obj in wanted:  # the admin's own rights, for every object, before anything is made
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        await ctx.kubernetes.check("create", resource, namespace=namespace, cluster=cluster)
    summary["objects"] = [describe(o) for o in wanted]
    plan = await _survey(ctx, release, wanted, cluster)
    for obj, _ in plan.updates:  # and, for what it would change, theirs to patch it
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        await ctx.kubernetes.check(
            "patch", resource, name=obj["metadata"]["name"], namespace=namespace, cluster=cluster
        )
    summary["existed"] = [describe(o) for o in plan.present]
    summary["missing"] = [describe(o) for o in plan.missing]
    summary["outdated"] = [describe(o) for o, _ in plan.updates]
    if installed is not None:
        summary["installed"] = installed
    if not plan.missing and not plan.updates:
        return Reply(
            text=f"{release.name} is already installed on {cluster}, version "
            f"{installed or release.label_version}; nothing to do.",
            data={"install": summary},
        )
    if dry_run:
        return Reply(
            text=f"🧪 Dry run: {release.name} {release.version} on {cluster} would create "
            f"{len(plan.missing)} objects and update {len(plan.updates)} "
            f"({len(plan.present)} already there; nothing was changed):",
            tables=[_table(wanted, plan)],
            data={"install": summary},
        )
    if not await ctx.confirm(_prompt(release, cluster, plan), danger=True):
        return Reply(text="Cancelled: nothing was installed.", data={"install": summary})
    rows = await _apply(ctx, release, wanted, plan, cluster, summary)
    return Reply(
        text=(
            f"✅ {release.name} {release.version} installed on {cluster}: "
            f"{len(summary['created'])} objects created, {len(summary['updated'])} updated, "
            f"{len(summary['existed'])} already there."
        ),
        tables=[Table(["OBJECT", "RESULT"], rows, title=f"{release.name} {release.version}")],
        data={"install": summary},
    )


async def _apply(
    ctx: CommandContext,
    release: Release,
    wanted: list[dict[str, Any]],
    plan: Plan,
    cluster: str,
    summary: dict[str, Any],
) -> list[list[str]]:
    """Create and patch what ``plan`` says, in file order (what an object needs is made or
    updated before it), the certificates made here; the table's rows."""
    material = certificate_material(release) if plan.renew else None
    updates = {id(o): parts for o, parts in plan.updates}
    missing = {id(o) for o in plan.missing}
    rows = []
    for obj in wanted:
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        body = filled(obj, release, material)
        try:
            if id(obj) in missing:
                await ctx.kubernetes.create(resource, body, namespace=namespace, cluster=cluster)
            elif id(obj) in updates:
                await ctx.kubernetes.patch(
                    resource, obj["metadata"]["name"], _parts(body, updates[id(obj)]),
                    namespace=namespace, cluster=cluster,
                )  # fmt: skip
            else:
                rows.append([describe(obj), "already there"])
                continue
        except CommandError as error:
            if id(obj) in missing and str(error).startswith("conflict"):  # made meanwhile
                summary["existed"].append(describe(obj))
                rows.append([describe(obj), "already there"])
                continue
            done = ", ".join(summary["created"] + summary["updated"]) or "nothing"
            raise CommandError(
                f"installing {release.name} {release.version} stopped at "
                f"{describe(obj)}: {error}. Done before: {done}; run it again to finish."
            ) from None
        what = "created" if id(obj) in missing else "updated"
        summary[what].append(describe(obj))
        rows.append([describe(obj), what])
    return rows


@dataclass
class Plan:
    """What an install changes: objects to create, objects there (and which of them it
    updates, with the parts), and whether it makes a new CA (``renew``)."""

    missing: list[dict[str, Any]]
    present: list[dict[str, Any]]
    updates: list[tuple[dict[str, Any], tuple[str, ...]]]
    renew: bool


async def _survey(
    ctx: CommandContext, release: Release, wanted: list[dict[str, Any]], cluster: str
) -> Plan:
    """Which of ``wanted`` the cluster lacks, which it has, and which of those to update.

    Whether an object is there is asked as a server-side dry run of its creation, as the
    plugin (the create right it has anyway; no read right on Secrets, roles or webhooks
    needed), placeholders left empty: "already exists" means there; "not found" (its
    namespace is not made yet) means missing; anything else stops here.

    Updated: the release's ``refreshed`` objects whose parts lack what the vendored ones
    hold (read as the plugin); and when a certificate Secret or webhook configuration is
    missing, the ones already there, since the install's new CA must be behind all of them
    (the CA that signed the old ones was never kept, as with the chart's ``genCA``)."""
    missing, present = [], []
    for obj in wanted:
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        try:
            await ctx.plugin.kubernetes.create(
                resource, filled(obj, release, None), namespace=namespace, cluster=cluster,
                dry_run=True,
            )  # fmt: skip
        except CommandError as error:
            if str(error).startswith("conflict"):
                present.append(obj)
                continue
            if not str(error).startswith("not found"):
                raise CommandError(
                    f"cannot install {release.name} {release.version}: {describe(obj)}: "
                    f"{error}. Nothing was changed."
                ) from None
        missing.append(obj)
    renew = any(signed(o) for o in missing)
    updates: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    for obj in present:
        parts = release.refreshed.get(describe(obj))
        if parts:
            resource, namespaced = RESOURCES[obj["kind"]]
            namespace = obj["metadata"].get("namespace") if namespaced else None
            have = await ctx.plugin.kubernetes.get(
                resource, obj["metadata"]["name"], namespace=namespace, cluster=cluster
            )
            stale = tuple(p for p in parts if not _covers(_part(have, p), _part(obj, p)))
            if stale:
                updates.append((obj, stale))
        elif renew and signed(obj):
            updates.append((obj, ("data",) if obj["kind"] == "Secret" else ("webhooks",)))
    return Plan(missing, present, updates, renew)


def signed(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` holds what the install's CA makes (a certificate Secret, a caBundle)."""
    if obj["kind"] == "Secret":
        return obj.get("data") == PLACEHOLDER
    return obj["kind"] in WEBHOOK_KINDS and any(
        (h.get("clientConfig") or {}).get("caBundle") == PLACEHOLDER for h in obj["webhooks"]
    )


def _part(obj: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        obj = (obj or {}).get(key) or {}
    return obj


def _parts(body: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """A merge patch setting ``paths`` of ``body`` (a list in it replaces the object's)."""
    patch: dict[str, Any] = {}
    for path in paths:
        *parents, last = path.split(".")
        into = patch
        for key in parents:
            into = into.setdefault(key, {})
        into[last] = _part(body, path)
    return patch


def _covers(have: Any, want: Any) -> bool:
    """Whether ``have`` (as the cluster returns it, defaults added) holds all of ``want``."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and _covers(have[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and all(any(_covers(h, w) for h in have) for w in want)
    return have == want or str(have) == str(want)


def _prompt(release: Release, cluster: str, plan: Plan) -> str:
    """What the admin agrees to, plainly: what runs once installed, how many objects, what is
    already there and what is added or changed, and the powerful ones by name; in one Discord
    message (the cluster-wide roles counted rather than named, then fewer added objects named,
    when it would not fit)."""
    prompt = ""
    for named, shown in [(True, SHOWN), *((False, n) for n in range(SHOWN, -1, -5))]:
        prompt = _prompt_text(release, cluster, plan, shown, named)
        if len(prompt) <= MESSAGE:
            break
    return prompt


def _prompt_text(release: Release, cluster: str, plan: Plan, shown: int, named: bool) -> str:
    missing = plan.missing
    crds = sum(1 for o in missing if o["kind"] == "CustomResourceDefinition")
    text = (
        f"Install {release.name} {release.version} ({release.parts}) on cluster {cluster}: "
        f"{crds} CRD(s) and {len(missing) - crds} objects in namespace {release.namespace} "
        "(ClusterRoles included)"
    )
    if plan.present:  # a previous install (or an interrupted one): say what is added
        # named without the namespace, said once above: the prompt fits one message
        others = [_short(o) for o in missing if o["kind"] != "CustomResourceDefinition"]
        more = f" and {len(others) - shown} more" if len(others) > shown else ""
        text += f"; {len(plan.present)} objects are already there and left as they are"
        if others:
            text += ", it adds: " + ", ".join(others[:shown]) + more
    if plan.updates:
        text += "; it updates: " + ", ".join(
            f"{_short(o)} ({', '.join(parts)})" for o, parts in plan.updates
        )
    if plan.renew and any(signed(o) for o in plan.present):
        text += " (a new CA: the certificates already there are replaced)"
    warnings = []
    for obj in missing:
        if obj["kind"] == "DaemonSet" and _privileged(obj):
            warnings.append(
                f"⚠️ {describe(obj)} is a PRIVILEGED DaemonSet: a pod on EVERY node with the "
                "host's PIDs, /sys and the container runtime's socket (root on the nodes)"
            )
    bound = _cluster_wide(missing, named)
    if bound:
        warnings.append(bound)
    hooks = [describe(o) for o in missing if o["kind"] in WEBHOOK_KINDS]
    if hooks:
        warnings.append(
            f"⚠️ admission webhooks ({', '.join(hooks)}): the API server sends every "
            f"{release.name} object to the controller, and refuses it while that is down"
        )
    return "\n".join([text + "?", *warnings])


def _cluster_wide(missing: list[dict[str, Any]], named: bool = True) -> str:
    """The ClusterRoles the install binds to ServiceAccounts, and which (what those may do
    reaches every namespace); counted only when ``named`` is false; "" when it binds none."""
    roles: set[str] = set()
    accounts: set[str] = set()
    for obj in missing:
        if obj["kind"] == "ClusterRoleBinding" and obj["roleRef"]["kind"] == "ClusterRole":
            roles.add(obj["roleRef"]["name"])
            accounts.update(
                f"{s.get('namespace', '')}/{s['name']}" for s in obj.get("subjects") or []
            )
    if not roles:
        return ""
    if not named:
        return (
            f"⚠️ cluster-wide RBAC: {len(roles)} ClusterRole(s) bound to {len(accounts)} "
            "ServiceAccount(s): their rights reach every namespace"
        )
    return (
        f"⚠️ cluster-wide RBAC: ClusterRole(s) {', '.join(sorted(roles))} bound to "
        f"ServiceAccount(s) {', '.join(sorted(accounts))}: their rights reach every namespace"
    )


def _short(obj: dict[str, Any]) -> str:
    return f"{obj['kind']} {obj['metadata']['name']}"


SHOWN = 30
"""Objects a prompt names at most (a Discord message holds 2,000 characters)."""
MESSAGE = 2000
"""A Discord message's length at most, which the prompt keeps to."""


def _privileged(obj: dict[str, Any]) -> bool:
    spec = obj["spec"]["template"]["spec"]
    return bool(spec.get("hostPID")) or any(
        (c.get("securityContext") or {}).get("privileged") for c in spec["containers"]
    )


async def installed_version(ctx: CommandContext, release: Release, cluster: str) -> str | None:
    """The version label of the release's controller Deployment, or ``None`` if there is none
    (read as the plugin: whether something is installed is no secret)."""
    try:
        found = await ctx.plugin.kubernetes.get(
            "deployments.apps", release.controller, namespace=release.namespace, cluster=cluster
        )
    except CommandError as error:
        if str(error).startswith("not found"):
            return None
        raise
    labels = found["metadata"].get("labels") or {}
    return str(labels.get(VERSION_LABEL) or "unknown")


def _table(wanted: list[dict[str, Any]], plan: Plan) -> Table:
    missing = {id(o) for o in plan.missing}
    updates = {id(o): parts for o, parts in plan.updates}
    rows = []
    for obj in wanted:
        if id(obj) in missing:
            rows.append([describe(obj), "would create"])
        elif id(obj) in updates:
            rows.append([describe(obj), f"would update {', '.join(updates[id(obj)])}"])
        else:
            rows.append([describe(obj), "already there"])
    return Table(["OBJECT", "ACTION"], rows)


async def narrow(kubernetes: Any) -> None:
    """Creating the operators' roles needs RBAC's ``escalate``, binding them ``bind``: as
    declared, on any role. Narrowed to the vendored releases' own roles (the kernel compiles
    ``resourceNames`` into the plugin's ClusterRole on every cluster), so the plugin's account
    cannot grant itself or anyone ``cluster-admin`` or another existing role. Its ``patch`` of
    namespaces, Deployments, Secrets and webhook configurations likewise reaches only what an
    install updates (:data:`PATCHED`)."""
    for resource, names in INSTALL_ROLES.items():
        for verb in ("escalate", "bind"):
            await kubernetes.narrow(f"{resource}:{verb}", list(names), wait=False)
    for resource, names in PATCHED.items():
        await kubernetes.narrow(f"{resource}:patch", list(names), wait=False)
