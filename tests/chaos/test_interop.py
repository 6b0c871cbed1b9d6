"""`/chaos mesh-experiment` and `/chaos litmus-workflow` against the sandbox: files checked
against the vendored CRD schemas, applied (as the user) only where the cluster has the CRDs,
refused with the place of the error otherwise; kubectl sees what was created."""

from __future__ import annotations

import json
import time
from importlib import resources

import yaml

from .conftest import VIEWER, run
from .test_experiment_files import write

POD_CHAOS = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "PodChaos",
    "metadata": {"name": "kill-one", "namespace": "media"},
    "spec": {"action": "pod-kill", "mode": "one", "selector": {"namespaces": ["media"]}},
}


def podchaos(cluster) -> list[str]:
    found = cluster.kubectl("get", "podchaos", "-A", "-o", "json", check=False)
    if found.returncode != 0:
        return []
    return [i["metadata"]["name"] for i in json.loads(found.stdout)["items"]]


def install_podchaos_crd(cluster) -> None:
    crd = resources.files("clustercord_builtins.chaos").joinpath(
        "crds", "chaos-mesh-v2.8.3", "podchaos.yaml"
    )
    cluster.kubectl("apply", "-f", "-", input=crd.read_text("utf-8"))
    deadline = time.monotonic() + 15
    while cluster.kubectl("get", "podchaos", "-A", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the PodChaos CRD was not served"
        time.sleep(0.2)


async def test_a_chaos_mesh_file_is_validated_then_applied_where_chaos_mesh_runs(
    chaos, homelab, tmp_path
):
    text = yaml.safe_dump(POD_CHAOS)
    absent = await run(chaos, f"/chaos mesh-experiment file:{write(tmp_path, text)}")
    assert absent.ok, absent.text
    assert absent.reply.data["interop"]["applied"] is False
    assert "podchaos.chaos-mesh.org" in absent.text and "v2.8.3" in absent.text

    install_podchaos_crd(homelab)
    dry = await run(chaos, f"/chaos mesh-experiment file:{write(tmp_path, text)} dry_run:true")
    assert dry.ok, dry.text
    assert podchaos(homelab) == []
    denied = await run(chaos, f"/chaos mesh-experiment file:{write(tmp_path, text)}", user=VIEWER)
    assert not denied.ok and podchaos(homelab) == []
    applied = await run(chaos, f"/chaos mesh-experiment file:{write(tmp_path, text)}")
    assert applied.ok, applied.text
    assert applied.reply.data["interop"]["applied"] is True
    assert podchaos(homelab) == ["kill-one"]  # kubectl sees it


async def test_invalid_files_are_refused_with_the_place_and_nothing_is_applied(
    chaos, homelab, tmp_path
):
    install_podchaos_crd(homelab)
    bad = {**POD_CHAOS, "spec": {**POD_CHAOS["spec"], "action": "pod-explode", "selectr": {}}}
    result = await run(chaos, f"/chaos mesh-experiment file:{write(tmp_path, yaml.safe_dump(bad))}")
    assert not result.ok
    assert "spec.action: 'pod-explode' is not one of" in result.text
    assert "unknown field 'selectr'" in result.text
    assert podchaos(homelab) == []
    engine = {"apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosEngine",
              "metadata": {"name": "e"}, "spec": {"engineState": "exploding"}}  # fmt: skip
    litmus = await run(
        chaos, f"/chaos litmus-workflow file:{write(tmp_path, yaml.safe_dump(engine))}"
    )
    assert not litmus.ok and "spec.engineState" in litmus.text
    wrong = await run(
        chaos, f"/chaos litmus-workflow file:{write(tmp_path, yaml.safe_dump(POD_CHAOS))}"
    )
    assert not wrong.ok and "is not a litmus 3.31.0 kind" in wrong.text
