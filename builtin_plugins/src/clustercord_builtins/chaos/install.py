"""``/chaos mesh install`` and ``/chaos litmus install``: a pinned release of Chaos Mesh or
Litmus (its CRDs and its controller, nothing else) applied from files vendored in the plugin
(``install/<project>-<version>/``, their sources in ``install/README.md``).

Objects are created in file order (CRDs, then namespace, accounts and roles, then the
controller), each with the invoking admin's own rights checked first; one that already exists
is left as it is, so a second run creates nothing and an interrupted one finishes. Whether a
release is installed is read from its controller Deployment's ``app.kubernetes.io/version``
label: then nothing is asked or changed ("already installed, version X").
"""

from __future__ import annotations

import base64
import datetime
import gzip
from dataclasses import dataclass
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
    "Deployment": ("deployments.apps", True),
}


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
    generated_secret: str | None = None
    """A webhook certificate Secret made at install time (Chaos Mesh's, as its chart does)."""


RELEASES = {
    "chaos-mesh": Release(
        "chaos-mesh", "Chaos Mesh", "v2.8.3", "chaos-mesh-v2.8.3", "chaos-mesh",
        "chaos-controller-manager", "2.8.3", "chaos-mesh-webhook-certs",
    ),
    "litmus": Release(
        "litmus", "Litmus", "3.18.0", "litmus-3.18.0", "litmus", "litmus", "3.18.0"
    ),
}  # fmt: skip
INSTALL_ROLES = {
    "clusterroles.rbac.authorization.k8s.io": (
        "chaos-mesh-chaos-controller-manager-cluster-level",
        "chaos-mesh-chaos-controller-manager-target-namespace",
        "litmus",
    ),
    "roles.rbac.authorization.k8s.io": ("chaos-mesh-chaos-controller-manager-control-plane",),
}
"""The (Cluster)Roles the vendored releases create and bind (a test compares them with the
files): the only ones the plugin's ``escalate`` and ``bind`` are narrowed to (:func:`narrow`)."""
VERSION_LABEL = "app.kubernetes.io/version"
PLACEHOLDER = "(generated at install: a CA and a serving certificate)"


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
    if release.generated_secret:
        found.insert(_before_controller(found, release), _secret_stub(release))
    return found


def _before_controller(found: list[dict[str, Any]], release: Release) -> int:
    return next(
        i for i, o in enumerate(found)
        if o["kind"] == "Deployment" and o["metadata"]["name"] == release.controller
    )  # fmt: skip


def _secret_stub(release: Release) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": release.generated_secret, "namespace": release.namespace},
        "data": PLACEHOLDER,
    }


def describe(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def webhook_secret_data(release: Release) -> dict[str, str]:
    """A CA and a certificate for the controller's webhook Service, as the chart's ``genCA``
    and ``genSignedCert`` make them (5 years; the Service's in-cluster names). Made per
    install and never shown: only the cluster holds the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=1825)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{release.project}-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    service = "chaos-mesh-controller-manager"
    names = [service, f"{service}.{release.namespace}", f"{service}.{release.namespace}.svc"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def pem(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "ca.crt": pem(ca.public_bytes(serialization.Encoding.PEM)),
        "tls.crt": pem(cert.public_bytes(serialization.Encoding.PEM)),
        "tls.key": pem(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        ),
    }


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
        "dry_run": dry_run, "created": [], "existed": [],
    }  # fmt: skip
    installed = await installed_version(ctx, release, cluster)
    if installed is not None:
        same = installed == release.label_version
        text = (
            f"{release.name} is already installed on {cluster}, version {installed}"
            + ("; nothing to do." if same else f" (this plugin installs {release.version}; "
               "it changes nothing: upgrade it with the project's own tools).")
        )  # fmt: skip
        return Reply(text=text, data={"install": {**summary, "installed": installed}})
    wanted = objects(release)
    for obj in wanted:  # the admin's own rights, for every object, before anything is made
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        await ctx.kubernetes.check("create", resource, namespace=namespace, cluster=cluster)
    listed = [describe(o) for o in wanted]
    summary["objects"] = listed
    if dry_run:
        return Reply(
            text=f"🧪 Dry run: {release.name} {release.version} on {cluster} would create "
            f"{len(listed)} objects (nothing was changed):",
            tables=[_table(listed, "would create")],
            data={"install": summary},
        )
    crds = sum(1 for o in wanted if o["kind"] == "CustomResourceDefinition")
    prompt = (
        f"Install {release.name} {release.version} on cluster {cluster}: {crds} CRDs and "
        f"{len(wanted) - crds} controller objects in namespace {release.namespace} "
        "(ClusterRoles included)?"
    )
    if not await ctx.confirm(prompt, danger=True):
        return Reply(text="Cancelled: nothing was installed.", data={"install": summary})
    rows = []
    for obj in wanted:
        resource, namespaced = RESOURCES[obj["kind"]]
        namespace = obj["metadata"].get("namespace") if namespaced else None
        body = obj
        if obj["kind"] == "Secret" and obj.get("data") == PLACEHOLDER:
            body = {**obj, "data": webhook_secret_data(release)}
        try:
            await ctx.kubernetes.create(resource, body, namespace=namespace, cluster=cluster)
        except CommandError as error:
            if not str(error).startswith("conflict"):
                made = ", ".join(summary["created"]) or "nothing"
                raise CommandError(
                    f"installing {release.name} {release.version} stopped at "
                    f"{describe(obj)}: {error}. Created before: {made}; run it again to finish."
                ) from None
            summary["existed"].append(describe(obj))
            rows.append([describe(obj), "already there"])
            continue
        summary["created"].append(describe(obj))
        rows.append([describe(obj), "created"])
    return Reply(
        text=(
            f"✅ {release.name} {release.version} installed on {cluster}: "
            f"{len(summary['created'])} objects created, {len(summary['existed'])} already there."
        ),
        tables=[Table(["OBJECT", "RESULT"], rows, title=f"{release.name} {release.version}")],
        data={"install": summary},
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


def _table(listed: list[str], what: str) -> Table:
    return Table(["OBJECT", "ACTION"], [[o, what] for o in listed])


async def narrow(kubernetes: Any) -> None:
    """Creating the operators' roles needs RBAC's ``escalate``, binding them ``bind``: as
    declared, on any role. Narrowed to the vendored releases' own roles (the kernel compiles
    ``resourceNames`` into the plugin's ClusterRole on every cluster), so the plugin's account
    cannot grant itself or anyone ``cluster-admin`` or another existing role."""
    for resource, names in INSTALL_ROLES.items():
        for verb in ("escalate", "bind"):
            await kubernetes.narrow(f"{resource}:{verb}", list(names), wait=False)
