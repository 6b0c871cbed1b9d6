"""Watches with selectors see objects enter and leave their selection, like the API server's
watch cache: leaving is a DELETED event, entering an ADDED one."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from .conftest import KUBECTL


@pytest.fixture(scope="module")
def core(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def _watch_in_background(list_call, **kwargs) -> queue.Queue:
    """Streams a watch on a thread; its events (type, name, labels or phase) land in a queue."""
    events: queue.Queue = queue.Queue()
    rv = list_call(**kwargs).metadata.resource_version

    def run() -> None:
        for event in watch.Watch().stream(
            list_call, resource_version=rv, timeout_seconds=8, **kwargs
        ):
            obj = event["object"]
            events.put((event["type"], obj.metadata.name, obj.metadata.resource_version, obj))

    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.3)  # let the watch connect before the changes start
    return events


def _next(events: queue.Queue) -> tuple:
    return events.get(timeout=5)


def _relabel(core, name: str, value: str) -> None:
    core.patch_namespaced_config_map(name, "default", {"metadata": {"labels": {"sel": value}}})


def test_label_selector_watch_sees_objects_leave_and_enter(core, unique):
    events = _watch_in_background(
        core.list_namespaced_config_map, namespace="default", label_selector=f"sel={unique}"
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": unique, "labels": {"sel": unique}}, "data": {"a": "1"}}
    )
    assert _next(events)[:2] == ("ADDED", unique)
    core.patch_namespaced_config_map(unique, "default", {"data": {"a": "2"}})
    assert _next(events)[:2] == ("MODIFIED", unique)

    _relabel(core, unique, "elsewhere")
    kind, name, rv, obj = _next(events)
    assert (kind, name) == ("DELETED", unique)
    # The object as the watch last saw it, at the version of the change that hid it.
    assert obj.metadata.labels == {"sel": unique}
    current = core.read_namespaced_config_map(unique, "default")
    assert rv == current.metadata.resource_version

    core.patch_namespaced_config_map(unique, "default", {"data": {"a": "3"}})  # unseen
    _relabel(core, unique, unique)
    kind, name, _, obj = _next(events)
    assert (kind, name, obj.data) == ("ADDED", unique, {"a": "3"})
    core.delete_namespaced_config_map(unique, "default")
    assert _next(events)[:2] == ("DELETED", unique)
    assert events.empty()


def test_an_object_that_never_matched_is_not_sent(core, unique):
    events = _watch_in_background(
        core.list_namespaced_config_map, namespace="default", label_selector=f"sel={unique}"
    )
    other = f"{unique}-other"
    core.create_namespaced_config_map("default", {"metadata": {"name": other}})
    core.patch_namespaced_config_map(other, "default", {"data": {"a": "1"}})
    core.delete_namespaced_config_map(other, "default")
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": unique, "labels": {"sel": unique}}}
    )
    assert _next(events)[:2] == ("ADDED", unique)  # the first event is the matching one


def test_field_selector_watch_sees_a_pod_leave_its_phase(core, unique):
    events = _watch_in_background(
        core.list_namespaced_pod, namespace="default", field_selector="status.phase=Pending"
    )
    pod = {"metadata": {"name": unique}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    core.create_namespaced_pod("default", pod)
    assert _next(events)[:2] == ("ADDED", unique)
    core.patch_namespaced_pod_status(unique, "default", {"status": {"phase": "Failed"}})
    kind, name, _, obj = _next(events)
    while kind == "MODIFIED":  # the scheduler may note it is unschedulable while Pending
        kind, name, _, obj = _next(events)
    assert (kind, name, obj.status.phase) == ("DELETED", unique, "Pending")


def test_kubectl_watch_with_a_label_selector_sees_the_object_leave(
    kubeconfig, core, unique, kubectl
):
    assert KUBECTL is not None
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": unique, "labels": {"sel": unique}}}
    )
    process = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "cm",
            "-l",
            f"sel={unique}",
            "-w",
            "--output-watch-events",
            "--request-timeout=6s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # kubectl lists, then watches from the list's version
        _relabel(core, unique, "elsewhere")
        _relabel(core, unique, unique)
        time.sleep(1.0)
    finally:
        process.terminate()
    out, _ = process.communicate(timeout=10)
    rows = [line.split() for line in out.splitlines() if unique in line]
    assert [row[0] for row in rows] == ["ADDED", "DELETED", "ADDED"], out
