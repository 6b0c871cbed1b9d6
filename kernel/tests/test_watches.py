"""How pod and node changes become events: start, crash once per restart, relist after 410."""

from __future__ import annotations

from clustercord.kubernetes.watches import ClusterWatcher


def pod(name, *, phase="Running", ready=True, restarts=0, waiting=None, last=None, uid=None):
    status = {"name": "app", "ready": ready, "restartCount": restarts, "state": {}}
    if waiting:
        status["state"] = {"waiting": {"reason": waiting}}
    if last:
        status["lastState"] = {"terminated": last}
    return {
        "metadata": {
            "name": name,
            "namespace": "games",
            "uid": uid or name,
            "labels": {"app": "mc"},
        },
        "spec": {"nodeName": "nas"},
        "status": {"phase": phase, "containerStatuses": [status]},
    }


class Listing:
    """Stands in for the cluster's list endpoint (the watch itself is tested end to end)."""

    def __init__(self, items, version="100"):
        self.items, self.version = items, version

    def request(self, cluster, method, path):
        return {"metadata": {"resourceVersion": self.version}, "items": self.items}


def types(events):
    return [(e.type, e.name, e.data.get("reason")) for e in events]


def test_a_pod_that_becomes_ready_starts_once():
    watcher = ClusterWatcher(None, "lab", None)
    assert types(watcher._observe("pods", "ADDED", pod("mc-0", phase="Pending", ready=False))) == []
    assert types(watcher._observe("pods", "MODIFIED", pod("mc-0"))) == [("pod:start", "mc-0", None)]
    assert watcher._observe("pods", "MODIFIED", pod("mc-0")) == []  # no change, no event


def test_crashes_are_reported_once_per_restart_with_their_reason():
    watcher = ClusterWatcher(None, "lab", None)
    watcher._observe("pods", "ADDED", pod("mc-0"))
    oom = {"reason": "OOMKilled", "exitCode": 137}
    first = watcher._observe(
        "pods",
        "MODIFIED",
        pod("mc-0", ready=False, restarts=1, waiting="CrashLoopBackOff", last=oom),
    )
    assert types(first) == [("pod:crash", "mc-0", "OOMKilled")]
    again = watcher._observe(
        "pods",
        "MODIFIED",
        pod("mc-0", ready=False, restarts=1, waiting="CrashLoopBackOff", last=oom),
    )
    assert again == []
    exit_1 = watcher._observe(
        "pods", "MODIFIED", pod("mc-0", ready=False, restarts=2, last={"exitCode": 1})
    )
    assert types(exit_1) == [("pod:crash", "mc-0", "exit code 1")]


def test_the_first_list_announces_nothing_and_a_relist_after_410_announces_what_was_missed():
    watcher = ClusterWatcher(None, "lab", None)
    watcher.service = Listing([pod("mc-0", phase="Pending", ready=False), pod("web-0")])
    version, missed = watcher._relist("pods")
    assert (version, missed) == ("100", [])  # the bot restarted: nothing is new

    watcher.service = Listing([pod("mc-0")], version="250")  # mc-0 started, web-0 is gone
    version, missed = watcher._relist("pods")
    assert version == "250"
    assert types(missed) == [("pod:start", "mc-0", None)]
    assert set(watcher.pods) == {"mc-0"}


def test_nodes_report_not_ready_and_ready_transitions():
    watcher = ClusterWatcher(None, "lab", None)

    def node(status):
        return {
            "metadata": {"name": "pi-2"},
            "status": {"conditions": [{"type": "Ready", "status": status}]},
        }

    assert watcher._observe("nodes", "ADDED", node("True")) == []
    assert types(watcher._observe("nodes", "MODIFIED", node("False"))) == [
        ("node:not-ready", "pi-2", None)
    ]
    assert types(watcher._observe("nodes", "MODIFIED", node("True"))) == [
        ("node:ready", "pi-2", None)
    ]
