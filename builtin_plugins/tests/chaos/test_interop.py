"""Chaos Mesh and Litmus objects against their CRD schemas, vendored from named releases:
every export passes them; wrong fields, unknown fields, wrong kinds and hostile files are
refused with their place."""

from __future__ import annotations

import re

import pytest
import yaml

from clustercord_builtins.chaos import export, interop
from clustercord_builtins.chaos.experiments import Experiment

PARAMETERS = {
    "kill-pod": {"grace": 5},
    "pod-failure": {"duration": 30},
    "network-delay": {"latency_ms": 100, "jitter_ms": 10, "correlation": 25, "duration": 60},
    "network-loss": {"percent": 10, "duration": 60},
    "network-corruption": {"percent": 5, "duration": 60},
    "network-duplicate": {"percent": 5, "duration": 60},
    "network-bandwidth": {"rate": "1mbps", "duration": 60},
    "cpu-stress": {"percent": 80, "workers": 2, "duration": 60},
    "memory-stress": {"size_bytes": 256 << 20, "duration": 60},
    "drain-node": {"timeout": 60, "duration": 600},
}


def experiment(kind: str) -> Experiment:
    node = kind == "drain-node"
    return Experiment(
        id="ex-1", kind=kind, cluster="homelab", namespace="" if node else "media",
        target="pi-1" if node else "jellyfin-0", parameters=PARAMETERS[kind], user="1",
        state="ended", started=0.0,
    )  # fmt: skip


def test_the_vendored_releases_are_named_and_hold_the_kinds():
    assert interop.VERSIONS == {"chaos-mesh": "v2.8.3", "litmus": "3.31.0"}
    assert {"PodChaos", "NetworkChaos", "StressChaos"} <= set(interop.kinds("chaos-mesh"))
    assert {"ChaosEngine", "ChaosExperiment", "Workflow"} <= set(interop.kinds("litmus"))


@pytest.mark.parametrize("kind", sorted(PARAMETERS))
def test_every_export_passes_their_own_schemas(kind):
    if kind != "drain-node":
        for obj in export.to_chaos_mesh(experiment(kind)):
            interop.validate("chaos-mesh", obj)
    if kind != "network-bandwidth":
        for obj in export.to_litmus(experiment(kind)):
            interop.validate("litmus", obj)


POD_CHAOS = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "PodChaos",
    "metadata": {"name": "a", "namespace": "media"},
    "spec": {"action": "pod-kill", "mode": "one", "selector": {"namespaces": ["media"]}},
}


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"action": "pod-explode"}, "spec.action: 'pod-explode' is not one of"),
        ({"selectr": {}}, "spec: unknown field 'selectr'"),
        ({"duration": 30}, "spec.duration: 30 is not of type 'string'"),
        ({"mode": None}, "spec.mode: None is not"),
    ],
)
def test_chaos_mesh_objects_their_schema_refuses(change, refusal):
    spec = {k: v for k, v in {**POD_CHAOS["spec"], **change}.items() if v is not None}
    if change.get("mode", 1) is None:
        spec["mode"] = None
    with pytest.raises(
        interop.InteropError, match=re.escape("refused by the chaos-mesh v2.8.3 schema")
    ) as e:
        interop.validate("chaos-mesh", {**POD_CHAOS, "spec": spec})
    assert refusal in str(e.value)


def test_unknown_kinds_and_versions_are_named():
    with pytest.raises(
        interop.InteropError, match=re.escape("FooChaos of chaos-mesh.org/v1alpha1 is not")
    ):
        interop.validate("chaos-mesh", {**POD_CHAOS, "kind": "FooChaos"})
    with pytest.raises(interop.InteropError, match="not served by PodChaos"):
        interop.validate("chaos-mesh", {**POD_CHAOS, "apiVersion": "chaos-mesh.org/v9"})
    with pytest.raises(interop.InteropError, match=re.escape("is not a litmus 3.31.0 kind")):
        interop.validate("litmus", POD_CHAOS)


def litmus_workflow(engine: dict) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "w", "namespace": "litmus"},
        "spec": {
            "entrypoint": "run",
            "templates": [
                {"name": "run", "steps": [[{"name": "chaos", "template": "engine"}]]},
                {"name": "engine", "resource": {"action": "create",
                                                "manifest": yaml.safe_dump(engine)}},
            ],
        },
    }  # fmt: skip


def test_a_litmus_workflow_is_checked_with_the_engines_it_carries():
    (engine,) = export.to_litmus(experiment("kill-pod"))
    assert interop.validate_litmus_workflow(litmus_workflow(engine)) == [engine]
    broken = {**engine, "spec": {**engine["spec"], "engineState": "exploding"}}
    with pytest.raises(interop.InteropError) as refused:
        interop.validate_litmus_workflow(litmus_workflow(broken))
    assert "spec.templates[1].resource.manifest: spec.engineState" in str(refused.value)


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        (b"a: [", "not YAML at line"),
        (b"", "holds no object"),
        (b"x" * (interop.MAX_BYTES + 1), "at most"),
        (b"- 1\n", "an object with apiVersion and kind"),
        (b"a: " + b"[" * 1000 + b"]" * 1000, "nests"),
        (b"\n---\n".join([b"a: 1"] * 21), "at most 20"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_hostile_files_are_refused_before_validation(data, refusal):
    with pytest.raises(interop.InteropError, match=refusal):
        interop.read_objects(data)
