"""HorizontalPodAutoscalers in autoscaling/v1 and v2: one stored object served in both
versions, converted as the API server converts it (issue 18), through the real kubectl 1.32
(whose `autoscale` sends a v1 object as protobuf) and the official Python client."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from clustercord_sandbox import autoscaling

from .test_real_clients import _request

HPAS = "/apis/autoscaling/{v}/namespaces/default/horizontalpodautoscalers"


@pytest.fixture(scope="module")
def api_client(kubeconfig) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def _v2(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "200Mi"},
                },
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            },
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
    }
    body.update(spec)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": body,
    }


def test_kubectl_autoscale_creates_an_hpa_kubectl_get_prints(kubectl, unique):
    kubectl("create", "deployment", unique, "--image=nginx")
    result = kubectl(
        "autoscale", "deployment", unique, "--min", "1", "--max", "5", "--cpu-percent", "80"
    )
    assert f"horizontalpodautoscaler.autoscaling/{unique} autoscaled" in result.stdout
    table = kubectl("get", "hpa", unique).stdout.splitlines()
    assert table[0].split() == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE",
    ]  # fmt: skip
    assert f"Deployment/{unique}   cpu: <unknown>/80%   1         5" in table[1]
    # The same object in both versions.
    v1 = json.loads(kubectl("get", f"horizontalpodautoscalers.v1.autoscaling/{unique}",
                            "-o", "json").stdout)  # fmt: skip
    v2 = json.loads(kubectl("get", f"horizontalpodautoscalers.v2.autoscaling/{unique}",
                            "-o", "json").stdout)  # fmt: skip
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 80
    assert v1["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert v1["metadata"]["uid"] == v2["metadata"]["uid"]
    assert v1["metadata"]["resourceVersion"] == v2["metadata"]["resourceVersion"]
    described = kubectl("describe", "hpa", unique).stdout
    assert "resource cpu on pods  (as a percentage of request):  <unknown> / 80%" in described


def test_a_v1_round_trip_loses_nothing_of_v2(server, api_client, unique):
    v2_api = client.AutoscalingV2Api(api_client)
    v1_api = client.AutoscalingV1Api(api_client)
    v2_api.create_namespaced_horizontal_pod_autoscaler("default", _v2(unique))
    # The v1 view: the CPU target as v1's field, the rest in the API server's annotations.
    seen = api_client.sanitize_for_serialization(
        v1_api.read_namespaced_horizontal_pod_autoscaler(unique, "default")
    )
    assert seen["spec"]["targetCPUUtilizationPercentage"] == 70
    annotations = seen["metadata"]["annotations"]
    assert json.loads(annotations[autoscaling.METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "200Mi"}}
    ]
    assert json.loads(annotations[autoscaling.BEHAVIOR]) == {
        "scaleDown": {"stabilizationWindowSeconds": 60}
    }
    # A v1 client changes what it knows (maxReplicas) and writes the whole object back.
    seen["spec"]["maxReplicas"] = 9
    v1_api.replace_namespaced_horizontal_pod_autoscaler(unique, "default", seen)
    stored = api_client.sanitize_for_serialization(
        v2_api.read_namespaced_horizontal_pod_autoscaler(unique, "default")
    )
    assert stored["spec"]["maxReplicas"] == 9
    # Kubernetes puts the annotated metrics first, then v1's CPU target.
    assert stored["spec"]["metrics"] == _v2(unique)["spec"]["metrics"]
    assert stored["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 60}}
    assert not (stored["metadata"].get("annotations") or {}), "conversion annotations stay out"


def test_status_and_conditions_survive_v1(server, api_client, unique):
    status, _ = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    v2_status = {
        "currentReplicas": 3,
        "desiredReplicas": 4,
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu",
             "current": {"averageUtilization": 91, "averageValue": "450m"}}},
        ],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}],
    }  # fmt: skip
    path = f"{HPAS.format(v='v2')}/{unique}/status"
    status, body = _request(
        server, "PATCH", path, {"status": v2_status}, "application/merge-patch+json"
    )
    assert status == 200, body
    status, body = _request(server, "GET", f"{HPAS.format(v='v1')}/{unique}")
    v1 = json.loads(body)
    assert v1["status"]["currentCPUUtilizationPercentage"] == 91
    assert v1["status"]["currentReplicas"] == 3
    assert json.loads(v1["metadata"]["annotations"][autoscaling.CONDITIONS])[0]["type"] == (
        "AbleToScale"
    )
    # The v1 status written back keeps the v2 status whole.
    status, body = _request(server, "PUT", f"{HPAS.format(v='v1')}/{unique}/status", v1)
    assert status == 200, body
    status, body = _request(server, "GET", f"{HPAS.format(v='v2')}/{unique}")
    assert json.loads(body)["status"] == v2_status


def test_kubectl_get_hpa_prints_both_targets(kubectl, server, unique):
    status, _ = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    row = kubectl("get", "hpa", unique, "--no-headers").stdout
    assert "memory: <unknown>/200Mi, cpu: <unknown>/70%" in row


def test_a_v1_merge_patch_changes_the_stored_target(kubectl, server, unique):
    status, _ = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    kubectl(
        "patch", f"horizontalpodautoscalers.v1.autoscaling/{unique}", "--type=merge",
        "-p", '{"spec":{"targetCPUUtilizationPercentage":55}}',
    )  # fmt: skip
    _, body = _request(server, "GET", f"{HPAS.format(v='v2')}/{unique}")
    metrics = json.loads(body)["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["memory", "cpu"]
    assert metrics[1]["resource"]["target"]["averageUtilization"] == 55


@pytest.mark.parametrize(
    ("spec", "message", "causes"),
    [
        (
            {"minReplicas": 0},
            "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            ["spec.minReplicas"],
        ),
        (
            {"minReplicas": 4, "maxReplicas": 3},
            "spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`",
            ["spec.maxReplicas"],
        ),
        (
            {"scaleTargetRef": {"name": "x"}},
            "spec.scaleTargetRef.kind: Required value",
            ["spec.scaleTargetRef.kind"],
        ),
        (
            {"scaleTargetRef": None},
            "[spec.scaleTargetRef.kind: Required value, spec.scaleTargetRef.name: Required value]",
            ["spec.scaleTargetRef.kind", "spec.scaleTargetRef.name"],
        ),
        (
            {"targetCPUUtilizationPercentage": 0},
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: "
            "must be greater than 0",
            ["spec.metrics[0].resource.target.averageUtilization"],
        ),
    ],
)
def test_invalid_hpas_are_refused_as_the_api_server_refuses_them(
    server, unique, spec, message, causes
):
    v1_spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": unique},
        "maxReplicas": 3,
        **spec,
    }
    v1_spec = {k: v for k, v in v1_spec.items() if v is not None}
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": unique}, "spec": v1_spec}  # fmt: skip
    status, answer = _request(server, "POST", HPAS.format(v="v1"), body)
    assert status == 422
    assert answer.endswith(b"}\n")
    status_body = json.loads(answer)
    assert status_body["message"] == (
        f'HorizontalPodAutoscaler.autoscaling "{unique}" is invalid: {message}'
    )
    assert [c["field"] for c in status_body["details"]["causes"]] == causes
    status, _ = _request(server, "GET", f"{HPAS.format(v='v2')}/{unique}")
    assert status == 404, "nothing was stored"


def test_kubectl_autoscale_with_max_below_min_is_refused(kubectl, unique):
    kubectl("create", "deployment", unique, "--image=nginx")
    result = kubectl("autoscale", "deployment", unique, "--min", "4", "--max", "2", check=False)
    assert result.returncode != 0
    # kubectl checks this one itself before sending anything.
    assert "--max=MAXPODS must be larger or equal to --min=MINPODS" in result.stderr


def test_discovery_lists_both_versions_v2_preferred(server):
    _, body = _request(server, "GET", "/apis/autoscaling")
    group = json.loads(body)
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    _, body = _request(server, "GET", "/apis/autoscaling/v1")
    names = {r["name"]: r for r in json.loads(body)["resources"]}
    assert set(names) == {"horizontalpodautoscalers", "horizontalpodautoscalers/status"}
    assert names["horizontalpodautoscalers"]["shortNames"] == ["hpa"]
    assert names["horizontalpodautoscalers"]["categories"] == ["all"]


def test_openapi_v2_describes_the_v1_kind(server):
    _, body = _request(server, "GET", "/openapi/v2")
    definitions = json.loads(body)["definitions"]
    v1 = definitions["io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"]
    assert v1["x-kubernetes-group-version-kind"] == [
        {"group": "autoscaling", "kind": "HorizontalPodAutoscaler", "version": "v1"}
    ]
    assert (
        "targetCPUUtilizationPercentage"
        in (definitions["io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec"]["properties"])
    )


def test_a_v1_watch_sees_v1_objects(api_client, server, unique):
    v1_api = client.AutoscalingV1Api(api_client)
    rv = v1_api.list_namespaced_horizontal_pod_autoscaler("default").metadata.resource_version
    threading.Timer(0.3, lambda: _request(server, "POST", HPAS.format(v="v2"), _v2(unique))).start()
    w = watch.Watch()
    deadline = time.monotonic() + 10
    for event in w.stream(
        v1_api.list_namespaced_horizontal_pod_autoscaler,
        "default",
        resource_version=rv,
        timeout_seconds=5,
    ):
        hpa = event["object"]
        if hpa.metadata.name == unique:
            w.stop()
            assert event["type"] == "ADDED"
            assert hpa.spec.target_cpu_utilization_percentage == 70
            break
        assert time.monotonic() < deadline
    else:
        pytest.fail("the v1 watch never saw the HPA")


def test_deleting_through_v1_deletes_the_one_object(api_client, server, unique):
    status, _ = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    v1_api = client.AutoscalingV1Api(api_client)
    v1_api.delete_namespaced_horizontal_pod_autoscaler(unique, "default")
    with pytest.raises(ApiException) as caught:
        client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler(
            unique, "default"
        )
    assert caught.value.status == 404


def test_a_malformed_conversion_annotation_is_a_bad_request(server, unique):
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": unique, "annotations": {autoscaling.METRICS: "[not json"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                     "maxReplicas": 2}}  # fmt: skip
    status, answer = _request(server, "POST", HPAS.format(v="v1"), body)
    assert status == 400, answer
    assert autoscaling.METRICS in json.loads(answer)["message"]
    status, _ = _request(server, "GET", f"{HPAS.format(v='v2')}/{unique}")
    assert status == 404


def test_conversion_round_trips():
    stored = _v2("x")
    stored["metadata"]["annotations"] = {"team": "a"}
    stored["status"] = {"currentReplicas": 1, "desiredReplicas": 2}
    served = autoscaling.to_v1(stored)
    assert served["metadata"]["annotations"]["team"] == "a"
    assert autoscaling.to_v2(served) == stored
    # v1 alone: the CPU target and nothing else.
    plain = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
             "metadata": {"name": "y"},
             "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "y"},
                      "minReplicas": 1, "maxReplicas": 2}}  # fmt: skip
    assert autoscaling.to_v1(autoscaling.to_v2(plain)) == plain


@pytest.mark.parametrize("spelling", ["True", "true"])  # the client up to v36, from v37
def test_a_v1_watch_in_both_wire_forms(server, unique, spelling):
    status, body = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    rv = int(json.loads(body)["metadata"]["resourceVersion"]) - 1
    path = f"{HPAS.format(v='v1')}?watch={spelling}&resourceVersion={rv}&timeoutSeconds=1"
    status, body = _request(server, "GET", path)
    events = [json.loads(line) for line in body.decode().splitlines() if line]
    mine = [e for e in events if e["object"]["metadata"]["name"] == unique]
    assert mine and mine[0]["type"] == "ADDED"
    assert mine[0]["object"]["apiVersion"] == "autoscaling/v1"
    assert mine[0]["object"]["spec"]["targetCPUUtilizationPercentage"] == 70


def test_a_v1_update_without_min_replicas_gets_the_default(server, unique):
    status, _ = _request(server, "POST", HPAS.format(v="v2"), _v2(unique))
    assert status == 201
    _, body = _request(server, "GET", f"{HPAS.format(v='v1')}/{unique}")
    v1 = json.loads(body)
    del v1["spec"]["minReplicas"]
    status, body = _request(server, "PUT", f"{HPAS.format(v='v1')}/{unique}", v1)
    assert status == 200, body
    assert json.loads(body)["spec"]["minReplicas"] == 1


def test_kubectl_explains_both_versions(kubectl):
    v1 = kubectl(
        "explain", "hpa.spec.targetCPUUtilizationPercentage", "--api-version=autoscaling/v1"
    ).stdout
    assert "VERSION:    v1" in v1 and "target average CPU utilization" in v1
    v2 = kubectl("explain", "hpa.spec.metrics", "--api-version=autoscaling/v2").stdout
    assert "VERSION:    v2" in v2 and "FIELD: metrics <[]MetricSpec>" in v2
