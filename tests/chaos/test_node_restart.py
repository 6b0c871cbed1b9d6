"""`/chaos node-restart`: a privileged pod reboots the node, always after an admin's approval.

The sandbox models the reboot (``clustercord_sandbox.noderestart``): the node NotReady for a
while, then Ready with a new boot ID and every container of its pods restarted. kubectl checks
what the cluster shows; the reboot pod is gone afterwards, and a reboot pod left by a bot that
died is removed at the next start.
"""

from __future__ import annotations

import json
import time

from .conftest import ADMIN, VIEWER, cluster_marks, run, start_chaos
from .test_drain import node_pods
from .test_pod_faults import until_status

NODE = "pi-1"


def node(cluster, name: str = NODE) -> dict:
    return json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)


def ready(obj: dict) -> bool:
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(cluster, name: str = NODE) -> dict[str, int]:
    return {
        p["metadata"]["name"]: sum(s["restartCount"] for s in p["status"]["containerStatuses"])
        for p in node_pods(cluster, name)
        if p["status"].get("phase") == "Running"
    }


def running_on(cluster, name: str = NODE) -> dict[str, int]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = restarts(cluster, name)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no running pod on {name}")


async def test_node_restart_waits_for_approval_then_the_node_reboots_and_comes_back(chaos, homelab):
    homelab.kubectl("annotate", "node", NODE, "sandbox.clustercord.io/reboot-seconds=1")
    before = running_on(homelab)
    boot = node(homelab)["status"]["nodeInfo"]["bootID"]

    dry = await run(chaos, f"/chaos node-restart node:{NODE} dry_run:true")
    assert dry.ok, dry.text
    assert dry.reply.data["experiment"]["dry_run"] is True
    assert any("privileged pod" in c for c in dry.reply.data["experiment"]["changes"])
    assert cluster_marks(homelab) == "" and restarts(homelab) == before

    asked = await run(chaos, f"/chaos node-restart node:{NODE}")  # not production: still asks
    assert asked.ok, asked.text
    experiment = asked.reply.data["experiment"]
    assert experiment["status"] == "awaiting-approval" and "approval" in asked.text
    assert cluster_marks(homelab) == "" and ready(node(homelab))

    approved = await run(chaos, f"/approval approve id:{experiment['approval']}", user=ADMIN)
    assert approved.ok, approved.text
    done = await until_status(chaos, experiment["id"], "ended", seconds=30)
    assert done["status"] == "ended", done
    result = done["result"]
    assert result["rebooted"] is True
    assert result["not_ready_seconds"] >= 0.5

    # kubectl: the node is back with a new boot, every container restarted once, the pods'
    # last state says they died with the host; the reboot pod is gone.
    after = node(homelab)
    assert ready(after) and after["status"]["nodeInfo"]["bootID"] != boot
    now = restarts(homelab)
    # (The sandbox's DaemonSet controller replaces daemon pods of a NotReady node; the other
    # pods stay and restart.)
    survivors = set(before) & set(now)
    assert survivors and all(now[p] == before[p] + 1 for p in survivors)
    assert result["restarted_containers"] == len(survivors)
    pod = next(p for p in node_pods(homelab, NODE) if p["metadata"]["name"] in survivors)
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] == "Unknown"
    assert cluster_marks(homelab) == ""


async def test_node_restart_refusals_change_nothing(chaos, homelab):
    before = running_on(homelab)
    unknown = await run(chaos, "/chaos node-restart node:pi-3")
    assert not unknown.ok and "no node 'pi-3'" in unknown.text and "pi-1" in unknown.text
    denied = await run(chaos, f"/chaos node-restart node:{NODE}", user=VIEWER)
    assert not denied.ok and "nodes" in denied.text, denied.text
    bad = await run(chaos, f"/chaos node-restart node:{NODE} timeout:-5m")
    assert not bad.ok and "is negative" in bad.text

    asked = await run(chaos, f"/chaos node-restart node:{NODE}")
    experiment = asked.reply.data["experiment"]
    assert (await run(chaos, f"/approval deny id:{experiment['approval']}", user=ADMIN)).ok
    status = await run(chaos, f"/chaos status experiment:{experiment['id']}")
    assert status.reply.data["experiment"]["status"] == "refused"
    assert ready(node(homelab)) and restarts(homelab) == before
    assert cluster_marks(homelab) == ""


async def test_only_a_privileged_host_pid_pod_reboots_a_sandbox_node(homelab):
    # The model follows the kernel: `reboot` in a pod's own PID namespace reboots nothing.
    homelab.kubectl("annotate", "node", NODE, "sandbox.clustercord.io/reboot-seconds=0.5")
    boot = node(homelab)["status"]["nodeInfo"]["bootID"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "not-a-reboot", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "hostPID": True,
            "containers": [{"name": "c", "image": "busybox", "command": ["reboot"]}],
        },
    }
    homelab.kubectl("apply", "-f", "-", input=json.dumps(pod))
    time.sleep(1.5)
    assert ready(node(homelab)) and node(homelab)["status"]["nodeInfo"]["bootID"] == boot


async def test_a_reboot_pod_left_by_a_dead_bot_is_removed_at_start(clustercord_harness, homelab):
    # What a bot killed after creating the pod leaves: the marked pod, no record of it here.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "chaos-node-restart-ex-dead",
            "namespace": "default",
            "labels": {"chaos.clustercord.io/experiment": "ex-dead"},
            "annotations": {
                "chaos.clustercord.io/node-restart": NODE,
                "chaos.clustercord.io/expires": "2099-01-01T00:00:00Z",
            },
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]},
    }
    homelab.kubectl("apply", "-f", "-", input=json.dumps(pod))
    assert cluster_marks(homelab) == "pod/chaos-node-restart-ex-dead"
    await start_chaos(clustercord_harness)
    assert cluster_marks(homelab) == ""


async def test_a_node_that_does_not_come_back_in_time_fails_the_experiment_and_its_pod_goes(
    chaos, homelab
):
    homelab.kubectl("annotate", "node", NODE, "sandbox.clustercord.io/reboot-seconds=4")
    asked = await run(chaos, f"/chaos node-restart node:{NODE} timeout:1s")
    experiment = asked.reply.data["experiment"]
    assert (await run(chaos, f"/approval approve id:{experiment['approval']}", user=ADMIN)).ok
    done = await until_status(chaos, experiment["id"], "failed", seconds=15)
    assert done["status"] == "failed", done
    assert "did not go through a restart within 1 s" in str(done), done
    assert cluster_marks(homelab) == ""  # the reboot pod was deleted all the same
    deadline = time.monotonic() + 15
    while not ready(node(homelab)):  # the sandbox's node comes back on its own
        assert time.monotonic() < deadline
        time.sleep(0.2)
