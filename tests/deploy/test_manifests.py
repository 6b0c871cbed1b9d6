"""deploy/: every overlay renders, passes Kubernetes 1.30's strict schemas, meets Pod Security
"restricted", and its RBAC names exactly the plugins' identities."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from clustercord_builtins.templates.validation import ManifestError, validate_object

from .conftest import OVERLAYS, find, objects

BUILTINS = Path(__file__).resolve().parents[2] / "builtin_plugins/src/clustercord_builtins"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_passes_strict_kubernetes_1_30_schemas(overlay):
    rendered = objects(overlay)
    kinds = {o["kind"] for o in rendered}
    assert {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    } <= kinds
    for obj in rendered:
        validate_object(obj, "1.30")
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace", "clustercord-system") == "clustercord-system"


def test_the_strict_validation_catches_a_misspelled_field():
    """The check above is not vacuous: one unknown field in the Deployment fails it."""
    deployment = copy.deepcopy(find(objects("gateway"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(ManifestError, match="readOnlyRootFileSystem"):
        validate_object(deployment, "1.30")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_meets_pod_security_restricted(overlay):
    rendered = objects(overlay)
    namespace = find(rendered, "Namespace", "clustercord-system")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = find(rendered, "Deployment", "clustercord")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not any("hostPath" in v for v in pod["volumes"])
    # The data directory is the PVC; the config the ConfigMap; tokens and keys from a Secret.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        volumes[mounts["/var/lib/clustercord"]]["persistentVolumeClaim"]["claimName"]
        == (find(rendered, "PersistentVolumeClaim")["metadata"]["name"])
    )
    config = volumes[mounts["/etc/clustercord"]]["configMap"]["name"]
    assert "[http]" in find(rendered, "ConfigMap", config)["data"]["clustercord.toml"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secrets["DISCORD_TOKEN"] == secrets["CLUSTERCORD_SECRET_KEY"] == "clustercord-secrets"
    assert not any(o["kind"] == "Secret" for o in rendered)  # never shipped in the manifests
    # Probes and scrapes on the [http] port, the paths of the kernel's HTTP service.
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    http_port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert annotations["prometheus.io/port"] == str(http_port)
    assert f':{http_port}"' in find(rendered, "ConfigMap", config)["data"]["clustercord.toml"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_each_mode_gets_its_entry_point_and_ingress():
    gateway = objects("gateway")
    assert not any(o["kind"] == "Ingress" for o in gateway)
    assert find(gateway, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "serve",
        "--mode",
        "gateway",
    ]

    interactions = objects("interactions")
    container = find(interactions, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["serve", "--mode", "interactions"]
    assert "DISCORD_PUBLIC_KEY" in {e["name"] for e in container["env"]}
    (rule,) = find(interactions, "Ingress")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/interactions"
    assert path["backend"]["service"]["port"]["name"] == "interactions"
    allowed = find(interactions, "NetworkPolicy")["spec"]["ingress"][0]["ports"]
    assert {p["port"] for p in allowed} == {8080, 8090}

    sso = objects("sso")
    (rule,) = find(sso, "Ingress")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    # only the plugin's routes are public, not /metrics
    assert path["path"] == "/plugins/sso/" and path["backend"]["service"]["port"]["name"] == "http"
    toml = find(sso, "ConfigMap")["data"]["clustercord.toml"]
    assert f'public_url = "https://{rule["host"]}"' in toml


def _plugins_with_permissions() -> set[str]:
    out = set()
    for manifest in BUILTINS.glob("*/manifest.json"):
        if json.loads(manifest.read_text()).get("permissions"):
            out.add(manifest.parent.name)
    return out


def test_the_kernel_rbac_names_each_plugin_identity_and_nothing_else():
    rendered = objects("gateway")
    plugins = _plugins_with_permissions()
    assert {"cluster", "terminal", "sso"} <= plugins
    roles = {f"clustercord:plugin:{p}" for p in plugins}
    accounts = {f"plugin-{p}" for p in plugins}
    cluster_role = find(rendered, "ClusterRole", "clustercord:kernel")
    role = find(rendered, "Role", "clustercord:kernel")
    for rule in cluster_role["rules"] + role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        names = rule.get("resourceNames")
        if rule["verbs"] == ["create"] and rule["resources"] != ["serviceaccounts/token"]:
            assert names is None  # create cannot be limited by name: listed alone
            continue
        assert names, f"{rule} must name its objects"
        if rule["resources"] == ["namespaces"]:
            assert names == ["clustercord-system"] and rule["verbs"] == ["get"]
        elif rule["resources"] == ["leases"]:  # the serve Lease (one active bot)
            assert names == ["clustercord"] and "create" not in rule["verbs"], rule
        elif rule["resources"][0].startswith("serviceaccounts"):
            assert set(names) == accounts, rule
        else:
            assert set(names) == roles, rule
    escalating = [r for r in cluster_role["rules"] if {"escalate", "bind"} & set(r["verbs"])]
    assert escalating and all(set(r["resourceNames"]) == roles for r in escalating)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_a_configuration_the_kernel_accepts(overlay, tmp_path):
    """The kernel's own loader reads the ConfigMap's file where the pod mounts it: the HTTP
    service listens on the port the probes and Prometheus use."""
    from clustercord.config import load_settings
    from clustercord.http.settings import HttpSettings

    rendered = objects(overlay)
    container = find(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")["mountPath"]
    config = Path(env["CLUSTERCORD_CONFIG"])
    assert config.parent == Path(mount)
    (data,) = find(rendered, "ConfigMap")["data"].items()
    assert data[0] == config.name
    (tmp_path / config.name).write_text(data[1])

    settings = load_settings(
        {"CLUSTERCORD_DATA_DIR": str(tmp_path), "CLUSTERCORD_CONFIG": str(tmp_path / config.name)}
    )
    http = HttpSettings.load(settings.http)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert http.enabled and http.host == "0.0.0.0" and http.port == ports["http"]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert http.tls == "off"  # TLS ends at the Ingress; probes speak plain HTTP
    if overlay == "sso":
        host = find(rendered, "Ingress")["spec"]["rules"][0]["host"]
        assert http.public_url == f"https://{host}"
