"""The cost-analysis example as a third-party plugin: built into a wheel by pip, signed by
its publisher, published into a signed index, installed with /plugin install (its
permissions shown and approved), run in its own process against a sandbox cluster, removed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
COST = Path(__file__).parents[2] / "examples" / "cost-analysis"
LAB = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-lab"}},
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "notebook", "namespace": "acme-lab"},
        "spec": {
            "containers": [
                {
                    "name": "jupyter",
                    "image": "jupyter",
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                }
            ]
        },
    },
]


def cost_wheel(work: Path, signer) -> Path:
    source = work / "cost"
    shutil.copytree(
        COST, source, ignore=shutil.ignore_patterns("__pycache__", "SIGNATURE.asc", "tests")
    )
    signer.sign(source / "src" / "clustercord_cost")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("-q", "-w", str(work / "out"), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    return next((work / "out").glob("clustercord_cost-0.1.0-*.whl"))


async def test_install_approve_report_and_remove_the_cost_plugin(
    market_harness, market, publisher, sandbox_cluster, tmp_path
):
    cluster = sandbox_cluster("homelab")
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": LAB}))
    cluster.wait_running("notebook", "acme-lab")
    market.publish(
        cost_wheel(tmp_path / "build", publisher),
        meta={"cost": {"category": "finops", "stars": 3}},
    )
    harness = market_harness
    await harness.start()
    browsed = await harness.run("/plugin browse category:finops")
    assert [e["name"] for e in browsed.reply.data["entries"]] == ["cost"]
    installed = await harness.run("/plugin install name:cost")
    assert installed.ok, installed.text
    assert "list: pods, persistentvolumeclaims" in installed.asked[0].prompt
    assert harness.plugin("cost").state == "awaiting-approval"
    assert (await harness.run("/plugin permissions name:cost approve:true")).ok
    assert harness.kernel.isolation.process("cost") is not None  # its own process

    report = await harness.run("/cost report namespace:acme-lab")
    assert report.ok, report.text
    # 1 core × 0.031 + 2 GiB × 0.004 = 0.039 an hour, × 730 hours (the default prices).
    assert report.reply.data["total"] == "28.47" and "28.47 USD" in report.text

    removed = await harness.run("/plugin remove name:cost")
    assert removed.ok, removed.text
    assert (await harness.run("/cost report")).status != "ok"
