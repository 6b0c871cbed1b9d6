"""HorizontalPodAutoscalers in `autoscaling/v2` (stored) and `autoscaling/v1` (converted).

A real API server stores one object and serves it in both versions, converting through its
internal version (`k8s.io/kubernetes/pkg/apis/autoscaling/v1/conversion.go`):

- v1's `spec.targetCPUUtilizationPercentage` is v2's `Resource` metric `cpu` with a
  `Utilization` target; v1's `status.currentCPUUtilizationPercentage` is its current value;
- what v1 cannot say is kept in annotations, so a v1 read-modify-write loses nothing: the
  other metrics (`autoscaling.alpha.kubernetes.io/metrics`, in v1's MetricSpec form), the
  current metrics (`.../current-metrics`, v1's MetricStatus form), `behavior`
  (`.../behavior`, v2's form) and the status conditions (`.../conditions`);
- converting back, the annotated metrics come first, then the CPU target (as Kubernetes
  orders them), and the annotations are dropped.

`validate_hpa` is the API server's `ValidateHorizontalPodAutoscaler` (on the stored form, as
Kubernetes validates the internal version): minReplicas ≥ 1 (HPAScaleToZero is off by
default), maxReplicas ≥ 1 and ≥ minReplicas, a scaleTargetRef with a kind and a name, and
utilization targets above 0.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .errors import bad_request

Obj = dict[str, Any]
Cause = tuple[str, str, str]

V1, V2 = "autoscaling/v1", "autoscaling/v2"
METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
_ANNOTATIONS = (METRICS, CURRENT_METRICS, BEHAVIOR, CONDITIONS)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _put(out: Obj, key: str, value: Any) -> None:
    """Sets `key` unless the value is empty (Go's `omitempty`)."""
    if value not in (None, "", {}, []):
        out[key] = value


def _cpu_target(metric: Obj) -> int | None:
    """The utilization of a v2 metric that v1's targetCPUUtilizationPercentage can hold."""
    resource = metric.get("resource") or {}
    if metric.get("type") != "Resource" or resource.get("name") != "cpu":
        return None
    value = (resource.get("target") or {}).get("averageUtilization")
    return value if isinstance(value, int) else None


# -- v2 → v1 ---------------------------------------------------------------------------------


def to_v1(obj: Obj) -> Obj:
    """The stored (v2) HorizontalPodAutoscaler as autoscaling/v1 serves it."""
    meta = copy.deepcopy(obj.get("metadata") or {})
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()}
    v1_spec: Obj = {}
    _put(v1_spec, "scaleTargetRef", copy.deepcopy(spec.get("scaleTargetRef")))
    _put(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    others = []
    for metric in spec.get("metrics") or []:
        cpu = _cpu_target(metric)
        if cpu is not None:
            v1_spec["targetCPUUtilizationPercentage"] = cpu
        else:
            others.append(_metric_to_v1(metric))
    if others:
        annotations[METRICS] = _compact(others)
    if spec.get("behavior"):
        annotations[BEHAVIOR] = _compact(spec["behavior"])
    current = status.get("currentMetrics") or []
    if current:
        annotations[CURRENT_METRICS] = _compact([_status_to_v1(m) for m in current])
    if status.get("conditions"):
        annotations[CONDITIONS] = _compact(status["conditions"])
    if annotations:
        meta["annotations"] = annotations
    out: Obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": V1, "metadata": meta}
    out["spec"] = v1_spec
    if "status" in obj:
        v1_status: Obj = {}
        for key in ("observedGeneration", "lastScaleTime"):
            _put(v1_status, key, status.get(key))
        v1_status["currentReplicas"] = status.get("currentReplicas", 0)
        v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
        for metric in current:
            resource = metric.get("resource") or {}
            utilization = (resource.get("current") or {}).get("averageUtilization")
            if metric.get("type") == "Resource" and resource.get("name") == "cpu":
                _put(v1_status, "currentCPUUtilizationPercentage", utilization)
                break
        out["status"] = v1_status
    return out


def _metric_to_v1(metric: Obj) -> Obj:
    kind = metric.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = metric.get(key) or {}
        target = source.get("target") or {}
        body: Obj = {"name": source.get("name", "")}
        if kind == "ContainerResource":
            body["container"] = source.get("container", "")
        _put(body, "targetAverageUtilization", target.get("averageUtilization"))
        _put(body, "targetAverageValue", target.get("averageValue"))
        out[key] = body
    elif kind == "Pods":
        source = metric.get("pods") or {}
        body = {"metricName": (source.get("metric") or {}).get("name", "")}
        body["targetAverageValue"] = (source.get("target") or {}).get("averageValue", "0")
        _put(body, "selector", (source.get("metric") or {}).get("selector"))
        out["pods"] = body
    elif kind == "Object":
        source = metric.get("object") or {}
        target = source.get("target") or {}
        body = {
            "target": source.get("describedObject") or {},
            "metricName": (source.get("metric") or {}).get("name", ""),
            "targetValue": target.get("value", "0"),
        }
        _put(body, "selector", (source.get("metric") or {}).get("selector"))
        _put(body, "averageValue", target.get("averageValue"))
        out["object"] = body
    elif kind == "External":
        source = metric.get("external") or {}
        target = source.get("target") or {}
        body = {"metricName": (source.get("metric") or {}).get("name", "")}
        _put(body, "metricSelector", (source.get("metric") or {}).get("selector"))
        _put(body, "targetValue", target.get("value"))
        _put(body, "targetAverageValue", target.get("averageValue"))
        out["external"] = body
    return out


def _status_to_v1(metric: Obj) -> Obj:
    kind = metric.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = metric.get(key) or {}
        current = source.get("current") or {}
        body: Obj = {"name": source.get("name", "")}
        if kind == "ContainerResource":
            body["container"] = source.get("container", "")
        _put(body, "currentAverageUtilization", current.get("averageUtilization"))
        body["currentAverageValue"] = current.get("averageValue", "0")
        out[key] = body
    elif kind == "Pods":
        source = metric.get("pods") or {}
        body = {"metricName": (source.get("metric") or {}).get("name", "")}
        body["currentAverageValue"] = (source.get("current") or {}).get("averageValue", "0")
        _put(body, "selector", (source.get("metric") or {}).get("selector"))
        out["pods"] = body
    elif kind == "Object":
        source = metric.get("object") or {}
        current = source.get("current") or {}
        body = {
            "target": source.get("describedObject") or {},
            "metricName": (source.get("metric") or {}).get("name", ""),
            "currentValue": current.get("value", "0"),
        }
        _put(body, "selector", (source.get("metric") or {}).get("selector"))
        _put(body, "averageValue", current.get("averageValue"))
        out["object"] = body
    elif kind == "External":
        source = metric.get("external") or {}
        current = source.get("current") or {}
        body = {"metricName": (source.get("metric") or {}).get("name", "")}
        _put(body, "metricSelector", (source.get("metric") or {}).get("selector"))
        body["currentValue"] = current.get("value", "0")
        _put(body, "currentAverageValue", current.get("averageValue"))
        out["external"] = body
    return out


# -- v1 → v2 ---------------------------------------------------------------------------------


def _annotation(annotations: Obj, key: str) -> Any:
    """A conversion annotation's JSON (popped); a malformed one is a 400, as in Kubernetes
    (the conversion fails on it)."""
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"the annotation {key} is not valid JSON: {exc}") from exc


def to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HorizontalPodAutoscaler in the stored (v2) form."""
    meta = copy.deepcopy(obj.get("metadata") or {})
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    annotations = dict(meta.get("annotations") or {})
    v2_spec: Obj = {}
    _put(v2_spec, "scaleTargetRef", copy.deepcopy(spec.get("scaleTargetRef")))
    _put(v2_spec, "minReplicas", spec.get("minReplicas"))
    v2_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics = [_metric_to_v2(m) for m in _list(_annotation(annotations, METRICS))]
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None:
        metrics.append(_cpu_metric(cpu))
    _put(v2_spec, "metrics", metrics)
    behavior = _annotation(annotations, BEHAVIOR)
    _put(v2_spec, "behavior", behavior if isinstance(behavior, dict) else None)
    current = [_status_to_v2(m) for m in _list(_annotation(annotations, CURRENT_METRICS))]
    if not current and status.get("currentCPUUtilizationPercentage") is not None:
        utilization = status["currentCPUUtilizationPercentage"]
        current = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": utilization}},
            }
        ]
    conditions = _list(_annotation(annotations, CONDITIONS))
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out: Obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": V2, "metadata": meta}
    out["spec"] = v2_spec
    if "status" in obj:
        v2_status: Obj = {}
        for key in ("observedGeneration", "lastScaleTime"):
            _put(v2_status, key, status.get(key))
        v2_status["currentReplicas"] = status.get("currentReplicas", 0)
        v2_status["desiredReplicas"] = status.get("desiredReplicas", 0)
        _put(v2_status, "currentMetrics", current)
        _put(v2_status, "conditions", conditions)
        out["status"] = v2_status
    return out


def _list(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _cpu_metric(utilization: Any) -> Obj:
    target = {"type": "Utilization", "averageUtilization": utilization}
    return {"type": "Resource", "resource": {"name": "cpu", "target": target}}


def _metric_to_v2(metric: Obj) -> Obj:
    kind = metric.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = metric.get(key) or {}
        target: Obj = {}
        if source.get("targetAverageUtilization") is not None:
            target = {
                "type": "Utilization",
                "averageUtilization": source["targetAverageUtilization"],
            }
        else:
            target = {"type": "AverageValue", "averageValue": source.get("targetAverageValue")}
        body: Obj = {"name": source.get("name", "")}
        if kind == "ContainerResource":
            body["container"] = source.get("container", "")
        body["target"] = {k: v for k, v in target.items() if v is not None}
        out[key] = body
    elif kind == "Pods":
        source = metric.get("pods") or {}
        out["pods"] = {
            "metric": _metric_id(source.get("metricName"), source.get("selector")),
            "target": {"type": "AverageValue", "averageValue": source.get("targetAverageValue")},
        }
    elif kind == "Object":
        source = metric.get("object") or {}
        target = {"type": "Value", "value": source.get("targetValue")}
        if source.get("averageValue") is not None:
            target = {"type": "AverageValue", **target, "averageValue": source["averageValue"]}
        out["object"] = {
            "describedObject": source.get("target") or {},
            "metric": _metric_id(source.get("metricName"), source.get("selector")),
            "target": {k: v for k, v in target.items() if v is not None},
        }
    elif kind == "External":
        source = metric.get("external") or {}
        if source.get("targetValue") is not None:
            target = {"type": "Value", "value": source["targetValue"]}
        else:
            target = {"type": "AverageValue", "averageValue": source.get("targetAverageValue")}
        out["external"] = {
            "metric": _metric_id(source.get("metricName"), source.get("metricSelector")),
            "target": {k: v for k, v in target.items() if v is not None},
        }
    return out


def _metric_id(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _put(out, "selector", selector)
    return out


def _status_to_v2(metric: Obj) -> Obj:
    kind = metric.get("type", "")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = metric.get(key) or {}
        current: Obj = {}
        _put(current, "averageValue", source.get("currentAverageValue"))
        _put(current, "averageUtilization", source.get("currentAverageUtilization"))
        body: Obj = {"name": source.get("name", "")}
        if kind == "ContainerResource":
            body["container"] = source.get("container", "")
        body["current"] = current
        out[key] = body
    elif kind == "Pods":
        source = metric.get("pods") or {}
        out["pods"] = {
            "metric": _metric_id(source.get("metricName"), source.get("selector")),
            "current": {"averageValue": source.get("currentAverageValue")},
        }
    elif kind == "Object":
        source = metric.get("object") or {}
        current = {"value": source.get("currentValue")}
        _put(current, "averageValue", source.get("averageValue"))
        out["object"] = {
            "describedObject": source.get("target") or {},
            "metric": _metric_id(source.get("metricName"), source.get("selector")),
            "current": current,
        }
    elif kind == "External":
        source = metric.get("external") or {}
        current = {"value": source.get("currentValue")}
        _put(current, "averageValue", source.get("currentAverageValue"))
        out["external"] = {
            "metric": _metric_id(source.get("metricName"), source.get("metricSelector")),
            "current": current,
        }
    return out


# -- defaults and validation (on the stored form) --------------------------------------------


def default_hpa(obj: Obj) -> None:
    """`minReplicas` defaults to 1 in both versions (`SetDefaults_HorizontalPodAutoscaler`);
    a new HPA's status is empty, which v2 writes as `desiredReplicas: 0` (not omitempty)."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("minReplicas", 1)
    obj.setdefault("status", {"desiredReplicas": 0})


def validate_hpa(obj: Obj) -> list[Cause]:
    """`ValidateHorizontalPodAutoscalerSpec`'s errors, in its order and words."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    causes: list[Cause] = []
    minimum, maximum = spec.get("minReplicas"), spec.get("maxReplicas", 0)
    if isinstance(minimum, int) and minimum < 1:
        causes.append(_invalid("spec.minReplicas", minimum, "must be greater than or equal to 1"))
    if isinstance(maximum, int) and maximum < 1:
        causes.append(_invalid("spec.maxReplicas", maximum, "must be greater than 0"))
    if isinstance(minimum, int) and isinstance(maximum, int) and maximum < minimum:
        causes.append(
            _invalid("spec.maxReplicas", maximum, "must be greater than or equal to `minReplicas`")
        )
    ref = spec.get("scaleTargetRef")
    ref = ref if isinstance(ref, dict) else {}
    ref_causes = [
        (f"spec.scaleTargetRef.{key}", "FieldValueRequired", "Required value")
        for key in ("kind", "name")
        if not ref.get(key)
    ]
    causes += ref_causes
    if not ref_causes:
        for index, metric in enumerate(spec.get("metrics") or []):
            if not isinstance(metric, dict):
                continue
            for key in ("resource", "containerResource"):
                target = (metric.get(key) or {}).get("target") or {}
                value = target.get("averageUtilization")
                if target.get("type") == "Utilization" and isinstance(value, int) and value < 1:
                    path = f"spec.metrics[{index}].{key}.target.averageUtilization"
                    causes.append(_invalid(path, value, "must be greater than 0"))
    return causes


def _invalid(path: str, value: Any, message: str) -> Cause:
    return (path, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {message}")


# -- kubectl get hpa -------------------------------------------------------------------------


def targets(obj: Obj) -> str:
    """The TARGETS column (`formatHPAMetrics` of kubectl 1.32's printers): each metric as
    `name: current/target`, two at most, then `+ N more...`."""
    if obj.get("apiVersion") == V1:
        obj = to_v2(obj)
    specs = (obj.get("spec") or {}).get("metrics") or []
    statuses = (obj.get("status") or {}).get("currentMetrics") or []
    if not specs:
        return "<none>"
    shown: list[str] = []
    for index, spec in enumerate(specs):
        status = statuses[index] if index < len(statuses) else {}
        shown.append(_format_metric(spec, status))
    text = ", ".join(shown[:2])
    if len(shown) > 2:
        text += f" + {len(shown) - 2} more..."
    return text


def _format_metric(spec: Obj, status: Obj) -> str:
    kind = spec.get("type", "")
    key = {
        "Resource": "resource",
        "ContainerResource": "containerResource",
        "Pods": "pods",
        "Object": "object",
        "External": "external",
    }.get(kind, "")
    source, current = spec.get(key) or {}, (status.get(key) or {}).get("current") or {}
    target = source.get("target") or {}
    if kind in ("Resource", "ContainerResource"):
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            now = current.get("averageValue") or "<unknown>"
            return f"{name}: {now}/{target['averageValue']}"
        utilization = current.get("averageUtilization")
        now = f"{utilization}%" if utilization is not None else "<unknown>"
        wanted = target.get("averageUtilization")
        return f"{name}: {now}/{wanted}%" if wanted is not None else f"{name}: {now}/<auto>"
    name = (source.get("metric") or {}).get("name", "")
    if kind == "Pods":
        return f"{name}: {current.get('averageValue') or '<unknown>'}/{target.get('averageValue')}"
    if target.get("averageValue") is not None:
        now = current.get("averageValue") or "<unknown>"
        return f"{name}: {now}/{target['averageValue']} (avg)"
    return f"{name}: {current.get('value') or '<unknown>'}/{target.get('value')}"
