"""Events as a real cluster keeps them (issue 18): repeats aggregated into one Event (count,
lastTimestamp; series in events.k8s.io) as client-go's recorder does, and expired after the
API server's --event-ttl (a DELETED watch event, gone from `kubectl get events`)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from clustercord_sandbox.background import BackgroundSandbox
from clustercord_sandbox.cli import duration
from clustercord_sandbox.server import SandboxServer

from .conftest import kubectl_runner
from .test_real_clients import _request


def _wait(check, timeout: float = 10.0, what: str = "the condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _scaling_events(kubectl, name: str) -> list[dict]:  # type: ignore[type-arg]
    items = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    return [
        e
        for e in items
        if e["involvedObject"]["name"] == name and e["reason"] == "ScalingReplicaSet"
    ]


def _scale(kubectl, name: str, replicas: int) -> None:
    kubectl("scale", f"deployment/{name}", f"--replicas={replicas}")

    def settled() -> bool:
        rs = json.loads(kubectl("get", "rs", "-l", f"app={name}", "-o", "json").stdout)["items"]
        return bool(rs) and rs[0]["spec"]["replicas"] == replicas

    _wait(settled, what=f"the ReplicaSet to want {replicas}")


def test_repeated_events_are_counted_on_one_event(kubectl, server, unique):
    kubectl("create", "deployment", unique, "--image=nginx")
    _wait(lambda: _scaling_events(kubectl, unique), what="the first ScalingReplicaSet")
    for replicas in (2, 1, 2, 1, 2):
        _scale(kubectl, unique, replicas)
    events = _wait(
        lambda: [e for e in _scaling_events(kubectl, unique) if e.get("count") == 3],
        what="the scale-up event counted three times",
    )
    by_message = {e["message"]: e for e in _scaling_events(kubectl, unique)}
    up = next(m for m in by_message if "from 1 to 2" in m)
    down = next(m for m in by_message if "from 2 to 1" in m)
    assert len(by_message) == len(_scaling_events(kubectl, unique)), "one Event per message"
    assert by_message[up]["count"] == 3 and by_message[down]["count"] == 2
    assert events[0]["firstTimestamp"] <= events[0]["lastTimestamp"]
    # `kubectl events` shows the count the way a cluster's does.
    shown = kubectl("events", "--for", f"deployment/{unique}").stdout
    line = next(line for line in shown.splitlines() if "from 1 to 2" in line)
    assert "(x3 over " in line, shown
    # The same Event in events.k8s.io: a series.
    name = by_message[up]["metadata"]["name"]

    def mirrored() -> dict | None:  # type: ignore[type-arg]
        status, body = _request(
            server, "GET", f"/apis/events.k8s.io/v1/namespaces/default/events/{name}"
        )
        event = json.loads(body) if status == 200 else {}
        return event if (event.get("series") or {}).get("count") == 3 else None

    new = _wait(mirrored, what="the events.k8s.io series")
    assert new["deprecatedCount"] == 3
    assert new["series"]["lastObservedTime"].endswith("Z")
    wide = kubectl("get", "events", "-o", "wide", "--field-selector", f"metadata.name={name}")
    header = wide.stdout.splitlines()[0].split()
    assert header[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert "COUNT" in header and "SOURCE" in header
    assert " 3 " in wide.stdout.splitlines()[1] + " "
    assert "deployment-controller" in wide.stdout


def test_different_messages_stay_separate_events(kubectl, unique):
    kubectl("create", "deployment", unique, "--image=nginx")
    _scale(kubectl, unique, 3)
    _scale(kubectl, unique, 2)
    messages = sorted(e["message"] for e in _scaling_events(kubectl, unique))
    assert len(messages) == 3 and all(e.get("count") == 1 for e in _scaling_events(kubectl, unique))


def test_many_similar_events_are_combined(kubectl, unique):
    """client-go's aggregator: from the 10th different message for one object and reason,
    one Event counts them, "(combined from similar events): <latest>"."""
    kubectl("create", "deployment", unique, "--image=nginx", "--replicas=12")

    def created() -> list[dict]:  # type: ignore[type-arg]
        items = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
        return [
            e
            for e in items
            if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"].startswith(unique)
        ]

    events = _wait(
        lambda: (found := created()) and sum(e["count"] for e in found) == 12 and found,
        what="twelve SuccessfulCreate",
    )
    combined = [e for e in events if e["message"].startswith("(combined from similar events)")]
    assert len(events) == 10 and len(combined) == 1, [e["message"] for e in events]
    assert combined[0]["count"] == 3
    assert combined[0]["message"].startswith("(combined from similar events): Created pod: ")
    shown = kubectl("events", "--for", f"replicaset/{combined[0]['involvedObject']['name']}")
    assert "(x3 over " in shown.stdout and "combined from similar events" in shown.stdout


# -- expiry ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_lived() -> BackgroundSandbox:
    box = BackgroundSandbox(event_ttl=1.5)
    box.start()
    yield box
    box.stop()


def _event(name: str) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
        "reason": "Testing",
        "message": f"hello from {name}",
        "type": "Normal",
    }


def test_events_expire_after_the_ttl_with_a_deleted_watch_event(short_lived, unique):
    server = short_lived.server
    assert server is not None
    status, body = _request(server, "POST", "/api/v1/namespaces/default/events", _event(unique))
    assert status == 201, body
    rv = json.loads(body)["metadata"]["resourceVersion"]
    kubeconfig = short_lived.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
    kubectl = kubectl_runner(kubeconfig)
    assert unique in kubectl("get", "events").stdout
    started = time.monotonic()
    # A watch from the creation sees the expiry as DELETED, as the real server's lease does.
    status, body = _request(
        server,
        "GET",
        f"/api/v1/namespaces/default/events?watch=true&resourceVersion={rv}&timeoutSeconds=4",
    )
    changes = [json.loads(line) for line in body.decode().splitlines() if line]
    deleted = [c for c in changes if c["object"]["metadata"].get("name") == unique]
    assert deleted and deleted[0]["type"] == "DELETED", changes
    assert time.monotonic() - started >= 1.0, "not before its TTL"
    assert unique not in kubectl("get", "events").stdout
    status, _ = _request(server, "GET", f"/api/v1/namespaces/default/events/{unique}")
    assert status == 404
    # Its events.k8s.io copy goes too.
    status, _ = _request(
        server, "GET", f"/apis/events.k8s.io/v1/namespaces/default/events/{unique}"
    )
    assert status == 404


def test_a_write_renews_an_events_lease(short_lived, unique):
    server = short_lived.server
    assert server is not None
    path = f"/api/v1/namespaces/default/events/{unique}"
    status, _ = _request(server, "POST", "/api/v1/namespaces/default/events", _event(unique))
    assert status == 201
    for count in (2, 3, 4):  # 3 s in all, twice the TTL: each write renews the lease
        time.sleep(0.75)
        status, body = _request(
            server, "PATCH", path, {"count": count}, "application/merge-patch+json"
        )
        assert status == 200, body
    _wait(lambda: _request(server, "GET", path)[0] == 404, timeout=5, what="the expiry")


def test_other_objects_never_expire(short_lived, unique):
    server = short_lived.server
    assert server is not None
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": unique}}
    status, _ = _request(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 201
    time.sleep(2.5)
    status, _ = _request(server, "GET", f"/api/v1/namespaces/default/configmaps/{unique}")
    assert status == 200


def test_the_event_ttl_option():
    assert duration("1h") == 3600
    assert duration("1h30m") == 5400
    assert duration("90s") == 90
    assert duration("500ms") == 0.5
    assert duration("45") == 45
    for bad in ("", "0", "-5", "1x", "h", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            duration(bad)
    with pytest.raises(ValueError, match="event_ttl must be positive"):
        SandboxServer(event_ttl=0)


def test_the_sandbox_command_takes_an_event_ttl(tmp_path):
    """`clustercord sandbox --event-ttl 1s`: an Event created with kubectl is gone soon."""
    from .conftest import KUBECTL
    from .test_cli import SCRIPT

    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "sandbox", "--port", "0", "--event-ttl", "1s",
         "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for _ in range(4):  # the banner, the address, the hint, the pods' line
            process.stdout.readline()
        kubectl = kubectl_runner(kubeconfig)
        kubectl("create", "-f", "-", input=json.dumps(_event("short")))
        assert "hello from short" in kubectl("get", "events").stdout
        _wait(
            lambda: "hello from short" not in kubectl("get", "events").stdout,
            timeout=6,
            what="the event to expire",
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def test_a_bad_event_ttl_is_refused_at_start(tmp_path):
    from .test_cli import SCRIPT

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "sandbox", "--port", "0", "--event-ttl", "soon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "argument --event-ttl: invalid duration 'soon'" in result.stderr


def test_the_python_client_sees_counts_series_and_expiry(short_lived, unique, tmp_path):
    """The official client: a repeat's count in core/v1, its series in events.k8s.io, and
    the expiry as a DELETED event of its watch."""
    from kubernetes import client, config, watch

    kubeconfig = short_lived.write_kubeconfig(tmp_path / "kubeconfig")
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    core, new = client.CoreV1Api(api_client), client.EventsV1Api(api_client)
    body = _event(unique)
    body["count"], body["lastTimestamp"] = 4, "2026-01-01T00:00:04Z"
    body["firstTimestamp"] = "2026-01-01T00:00:00Z"
    created = core.create_namespaced_event("default", body)
    assert created.count == 4
    series = _wait(
        lambda: _series_of(new, unique), timeout=5, what="the events.k8s.io copy's series"
    )
    assert series.count == 4
    w = watch.Watch()
    seen = []
    for event in w.stream(
        core.list_namespaced_event,
        "default",
        resource_version=created.metadata.resource_version,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED" and event["object"].metadata.name == unique:
            w.stop()
            break
    assert ("DELETED", unique) in seen


def _series_of(api, name: str):  # type: ignore[no-untyped-def]
    from kubernetes.client.rest import ApiException

    try:
        return api.read_namespaced_event(name, "default").series
    except ApiException:
        return None
