"""The real kubectl against the sandbox: the proof of its fidelity."""

from __future__ import annotations

import json
import subprocess
import time

from .conftest import KUBECTL

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
        env: [{{name: MODE, value: demo}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-config, labels: {{app: {name}}}}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80}}]
"""


def test_version_reports_the_sandbox(kubectl):
    out = kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.32.0-sandbox"


def test_get_namespaces_lists_the_system_ones(kubectl):
    out = kubectl("get", "ns").stdout
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert name in out


def test_create_namespace_from_a_file_gets_a_default_service_account(kubectl, unique):
    manifest = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {unique}}}\n"
    assert f"namespace/{unique} created" in kubectl("create", "-f", "-", input=manifest).stdout
    assert "default" in kubectl("get", "sa", "-n", unique).stdout
    assert "Active" in kubectl("get", "ns", unique).stdout


def test_apply_twice_is_unchanged_then_a_change_is_configured(kubectl, unique):
    first = kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx:1.27"))
    assert f"deployment.apps/{unique} created" in first.stdout
    assert f"configmap/{unique}-config created" in first.stdout
    assert f"service/{unique} created" in first.stdout
    again = kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx:1.27"))
    assert f"deployment.apps/{unique} unchanged" in again.stdout
    before = json.loads(kubectl("get", "deploy", unique, "-o", "json").stdout)
    changed = kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx:1.28"))
    assert f"deployment.apps/{unique} configured" in changed.stdout
    assert f"service/{unique} unchanged" in changed.stdout
    after = json.loads(kubectl("get", "deploy", unique, "-o", "json").stdout)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert before["metadata"]["generation"] == 1
    assert after["metadata"]["generation"] == 2
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    container = after["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.28"
    assert container["env"] == [{"name": "MODE", "value": "demo"}]  # merged by name, kept


def test_get_deploy_shows_server_columns(kubectl, unique):
    kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx"))
    header = kubectl("get", "deploy", unique).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    svc = kubectl("get", "svc", unique).stdout
    assert "ClusterIP" in svc and "80/TCP" in svc


def test_label_and_select(kubectl, unique):
    kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx"))
    assert "labeled" in kubectl("label", "cm", f"{unique}-config", "tier=frontend").stdout
    assert f"{unique}-config" in kubectl("get", "cm", "-l", "tier=frontend").stdout
    assert f"{unique}-config" in kubectl("get", "cm", "-l", "tier in (frontend,backend)").stdout
    assert f"{unique}-config" not in kubectl("get", "cm", "-l", "tier!=frontend").stdout
    assert f"{unique}-config" not in kubectl("get", "cm", "-l", "!tier").stdout
    empty = kubectl("get", "pods", "-l", f"app={unique},tier=none")
    assert "No resources found" in empty.stderr


def test_get_all_namespaces(kubectl):
    out = kubectl("get", "sa", "-A").stdout
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "kube-system" in out


def test_get_a_missing_object_is_not_found(kubectl):
    result = kubectl("get", "pod", "nope", check=False)
    assert result.returncode == 1
    assert 'Error from server (NotFound): pods "nope" not found' in result.stderr


def test_a_malformed_name_is_invalid_naming_the_field(kubectl):
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n"
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert 'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value' in result.stderr


def test_a_missing_required_field_is_invalid(kubectl, unique):
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: {unique}}}\n"
        "spec:\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{image: x}]\n"
    )
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert "spec.template.spec.containers[0].name: Required value" in result.stderr


def test_an_unknown_field_is_refused_by_strict_validation(kubectl, unique):
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {unique}}}\ndatta: {{}}\n"
    result = kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode == 1
    assert 'strict decoding error: unknown field "datta"' in result.stderr


def test_delete(kubectl, unique):
    kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx"))
    assert (
        f'configmap "{unique}-config" deleted' in kubectl("delete", "cm", f"{unique}-config").stdout
    )
    assert kubectl("get", "cm", f"{unique}-config", check=False).returncode == 1


def test_dry_run_server_stores_nothing(kubectl, unique):
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {unique}}}\n"
    out = kubectl("create", "-f", "-", "--dry-run=server", input=manifest).stdout
    assert "(server dry run)" in out
    assert kubectl("get", "cm", unique, check=False).returncode == 1
    kubectl("create", "-f", "-", input=manifest)
    assert "(server dry run)" in kubectl("delete", "cm", unique, "--dry-run=server").stdout
    assert kubectl("get", "cm", unique).returncode == 0


def test_scale_and_patch(kubectl, unique):
    kubectl("apply", "-f", "-", input=MANIFEST.format(name=unique, image="nginx"))
    kubectl("scale", "deploy", unique, "--replicas=5")
    assert kubectl("get", "deploy", unique, "-o", "jsonpath={.spec.replicas}").stdout == "5"
    kubectl(
        "patch",
        "deploy",
        unique,
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}',
    )
    names = kubectl(
        "get", "deploy", unique, "-o", "jsonpath={.spec.template.spec.containers[*].name}"
    ).stdout
    assert names == "web sidecar"  # strategic merge: merged by name, not replaced
    kubectl(
        "patch",
        "deploy",
        unique,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":1}]',
    )
    kubectl("patch", "deploy", unique, "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    got = json.loads(kubectl("get", "deploy", unique, "-o", "json").stdout)
    assert got["spec"]["replicas"] == 1 and got["metadata"]["labels"]["m"] == "1"


def test_explain_uses_the_served_openapi(kubectl):
    out = kubectl("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in out


def test_watch_sees_a_change(kubectl, kubeconfig, unique):
    assert KUBECTL is not None
    watcher = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "cm",
            "-w",
            "-n",
            "default",
            "--request-timeout=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let it list and start watching
        manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {unique}}}\n"
        kubectl("create", "-f", "-", input=manifest)
        deadline = time.monotonic() + 10
        seen = ""
        assert watcher.stdout is not None
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            seen += line
            if unique in line:
                break
        assert unique in seen
    finally:
        watcher.kill()
        watcher.wait(5)


def test_api_resources_shows_short_names(kubectl):
    out = kubectl("api-resources").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "deploy" in rows["deployments"] and "apps/v1" in rows["deployments"]
    assert "po" in rows["pods"]
    assert "rbac.authorization.k8s.io/v1" in rows["clusterroles"]
