"""A native experiment as Chaos Mesh (``chaos-mesh.org/v1alpha1``) or Litmus
(``litmuschaos.io/v1alpha1`` ChaosEngine) objects, for teams that run those operators.

Field names follow Chaos Mesh 2.6 (PodChaos, NetworkChaos, StressChaos) and Litmus 3
(ChaosEngine with ``TARGET_PODS`` and the experiments' documented environment variables).
What has no counterpart (a drain in Chaos Mesh, disk stress in either) is a clear error.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from clustercord_builtins.chaos.experiments import Experiment
from clustercord_sdk.errors import CommandError

MESH = "chaos-mesh.org/v1alpha1"
LITMUS = "litmuschaos.io/v1alpha1"


def to_chaos_mesh(experiment: Experiment) -> list[dict[str, Any]]:
    kind, p = experiment.kind, experiment.parameters
    meta = {"name": f"clustercord-{experiment.id}", "namespace": experiment.namespace}
    selector = {"namespaces": [experiment.namespace],
                "pods": {experiment.namespace: [experiment.target]}}  # fmt: skip
    duration = f"{math.ceil(p['duration'])}s" if p.get("duration") else None
    if kind in ("kill-pod", "pod-failure"):
        spec: dict[str, Any] = {
            "action": "pod-kill" if kind == "kill-pod" else "pod-failure",
            "mode": "one",
            "selector": selector,
        }
        if kind == "kill-pod" and p.get("grace") is not None:
            spec["gracePeriod"] = int(p["grace"])
        if duration and kind == "pod-failure":
            spec["duration"] = duration
        return [{"apiVersion": MESH, "kind": "PodChaos", "metadata": meta, "spec": spec}]
    if kind.startswith("network-"):
        spec = {"mode": "one", "selector": selector, "direction": "to", "duration": duration}
        if kind == "network-delay":
            delay = {"latency": f"{p['latency_ms']:g}ms"}
            if p.get("jitter_ms"):
                delay["jitter"] = f"{p['jitter_ms']:g}ms"
            if p.get("correlation") is not None:
                delay["correlation"] = f"{p['correlation']:g}"
            spec.update(action="delay", delay=delay)
        elif kind == "network-bandwidth":
            spec.update(action="bandwidth", bandwidth={"rate": p["rate"], "limit": 20971520,
                                                       "buffer": 10000})  # fmt: skip
        else:
            action, key = {
                "network-loss": ("loss", "loss"),
                "network-corruption": ("corrupt", "corrupt"),
                "network-duplicate": ("duplicate", "duplicate"),
            }[kind]
            spec.update(action=action, **{action: {key: f"{p['percent']:g}"}})
        return [{"apiVersion": MESH, "kind": "NetworkChaos", "metadata": meta, "spec": spec}]
    if kind in ("cpu-stress", "memory-stress"):
        if kind == "cpu-stress":
            stressors = {"cpu": {"workers": int(p.get("workers") or 1), "load": int(p["percent"])}}
        else:
            stressors = {"memory": {"workers": 1, "size": f"{int(p['size_bytes'])}B"}}
        spec = {"mode": "one", "selector": selector, "stressors": stressors, "duration": duration}
        return [{"apiVersion": MESH, "kind": "StressChaos", "metadata": meta, "spec": spec}]
    raise CommandError(f"Chaos Mesh has no counterpart of {kind} (export it as litmus)")


_LITMUS = {
    "kill-pod": "pod-delete",
    "pod-failure": "pod-delete",
    "network-delay": "pod-network-latency",
    "network-loss": "pod-network-loss",
    "network-corruption": "pod-network-corruption",
    "network-duplicate": "pod-network-duplication",
    "cpu-stress": "pod-cpu-hog-exec",
    "memory-stress": "pod-memory-hog-exec",
    "disk-stress": "disk-fill",
    "drain-node": "node-drain",
}


def to_litmus(experiment: Experiment) -> list[dict[str, Any]]:
    kind, p = experiment.kind, experiment.parameters
    name = _LITMUS.get(kind)
    if name is None:
        raise CommandError(f"Litmus has no counterpart of {kind}")
    env: dict[str, Any] = {}
    if p.get("duration"):
        env["TOTAL_CHAOS_DURATION"] = str(math.ceil(p["duration"]))
    if kind == "drain-node":
        env["TARGET_NODE"] = experiment.target
    else:
        env["TARGET_PODS"] = experiment.target
    if kind == "network-delay":
        env["NETWORK_LATENCY"] = str(round(p["latency_ms"]))
        env["JITTER"] = str(round(p.get("jitter_ms") or 0))
    elif kind == "network-loss":
        env["NETWORK_PACKET_LOSS_PERCENTAGE"] = f"{p['percent']:g}"
    elif kind == "network-corruption":
        env["NETWORK_PACKET_CORRUPTION_PERCENTAGE"] = f"{p['percent']:g}"
    elif kind == "network-duplicate":
        env["NETWORK_PACKET_DUPLICATION_PERCENTAGE"] = f"{p['percent']:g}"
    elif kind == "cpu-stress":
        env["CPU_CORES"] = str(int(p.get("workers") or 1))
    elif kind == "memory-stress":
        env["MEMORY_CONSUMPTION"] = str(max(1, int(p["size_bytes"]) >> 20))
    namespace = experiment.namespace or "default"
    return [
        {
            "apiVersion": LITMUS,
            "kind": "ChaosEngine",
            "metadata": {"name": f"clustercord-{experiment.id}", "namespace": namespace},
            "spec": {
                "engineState": "active",
                "appinfo": {"appns": namespace},
                "chaosServiceAccount": f"{name}-sa",
                "experiments": [
                    {
                        "name": name,
                        "spec": {
                            "components": {"env": [{"name": k, "value": v} for k, v in env.items()]}
                        },
                    }
                ],
            },
        }
    ]


def as_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)
