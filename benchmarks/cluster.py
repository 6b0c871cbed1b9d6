"""Benchmarks of the Kubernetes side: the sandbox, the official client, kubectl, events.

Run from benchmarks/run.py (``hatch run bench``); each figure is printed with a
baseline measured in the same run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

PODS = 5_000
EVENTS = 10_000


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i:05d}", "namespace": "bench", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27.3"}]},
    }


async def _fill(server: Any) -> None:
    from clustercord_sandbox.objects import WriteOptions

    registry = server.registry
    namespaces = registry.lookup("", "v1", "namespaces")
    pods = registry.lookup("", "v1", "pods")
    server.api.create(namespaces, "", {"metadata": {"name": "bench"}}, WriteOptions())
    for i in range(PODS):
        server.api.create(pods, "bench", _pod(i), WriteOptions())


def bench_sandbox(reps: int, scratch: Path) -> list[tuple[str, str, str]]:
    """5,000 pods: the official client's list, and `kubectl get pods -A`."""
    import yaml
    from kubernetes import client, config

    from clustercord_sandbox.background import BackgroundSandbox

    rows = []
    box = BackgroundSandbox()
    server = box.start()
    try:
        box.call(server.controllers.stop())  # a fixed set of pods: nothing to reconcile
        server.controllers = None
        box.call(_fill(server), timeout=300)
        kubeconfig = box.write_kubeconfig(scratch / "bench-kubeconfig")
        api_client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig.read_text()))
        core = client.CoreV1Api(api_client)

        def listed_with_client() -> int:
            return len(core.list_pod_for_all_namespaces().items)

        def raw_json() -> int:
            # The same request, decoded as plain JSON: the cost of the client's models shows.
            response = core.list_pod_for_all_namespaces(_preload_content=False)
            return len(json.loads(response.read())["items"])

        client_s, raw_s = [], []
        listed_with_client()  # warm-up: connection, TLS
        for _ in range(reps):
            start = time.perf_counter()
            count = listed_with_client()
            client_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw_json()
            raw_s.append(time.perf_counter() - start)
        if count != PODS:
            raise RuntimeError(f"listed {count} pods, expected {PODS}")
        print(f"  official client, list {PODS:,} pods   p50 {_median(client_s) * 1000:7.0f} ms")
        print(f"  same request, raw JSON (no models) p50 {_median(raw_s) * 1000:7.0f} ms")
        rows.append(
            (
                f"client: list {PODS:,} pods",
                f"p50 {_median(client_s) * 1000:.0f} ms",
                f"p50 {_median(raw_s) * 1000:.0f} ms (raw JSON)",
            )
        )

        kubectl = shutil.which("kubectl")
        if kubectl is None:
            print("  kubectl not installed: `kubectl get pods -A` skipped")
            return rows
        base = [kubectl, "--kubeconfig", str(kubeconfig)]
        get_s, ns_s = [], []
        for _ in range(max(3, reps // 2)):
            start = time.perf_counter()
            out = subprocess.run(
                [*base, "get", "pods", "-A", "--no-headers"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            get_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([*base, "get", "ns"], capture_output=True, check=True)
            ns_s.append(time.perf_counter() - start)
        if out.count("\n") != PODS:
            raise RuntimeError(f"kubectl listed {out.count(chr(10))} pods, expected {PODS}")
        print(f"  kubectl get pods -A ({PODS:,} pods)  p50 {_median(get_s) * 1000:7.0f} ms")
        print(f"  kubectl get ns (kubectl's own cost) p50 {_median(ns_s) * 1000:7.0f} ms")
        rows.append(
            (
                f"kubectl get pods -A, {PODS:,}",
                f"p50 {_median(get_s) * 1000:.0f} ms",
                f"p50 {_median(ns_s) * 1000:.0f} ms (get ns)",
            )
        )
    finally:
        box.stop()
    return rows


def bench_pod_events(kernel: Any) -> tuple[str, str, str]:
    """10,000 pod changes → derived pod:start events → hooks of the subscribed plugins."""
    from clustercord.kubernetes.watches import ClusterWatcher

    watcher = ClusterWatcher(None, "bench", None)
    subscribers = len(kernel.events.subscribers("pod:start"))
    changes = []
    for i in range(EVENTS):
        running = {
            "metadata": {
                "name": f"p{i}",
                "namespace": "bench",
                "uid": f"u{i}",
                "labels": {"app": "bench"},
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0}],
            },
        }
        changes.append(running)
    delivered = 0
    start = time.perf_counter()
    for change in changes:
        for event in watcher._observe("pods", "MODIFIED", change):
            delivered += kernel.events.publish_sync(event)
    elapsed = time.perf_counter() - start
    if delivered != EVENTS * subscribers:
        raise RuntimeError(f"delivered {delivered}, expected {EVENTS * subscribers}")
    rate = EVENTS / elapsed
    print(
        f"  {EVENTS:,} pod changes → pod:start → {subscribers} plugins: "
        f"{rate:,.0f} events/s ({rate * subscribers:,.0f} hook calls/s)"
    )
    return (
        f"pod events → {subscribers} plugins",
        f"{rate:,.0f} events/s",
        f"{rate * subscribers:,.0f} hook calls/s",
    )
