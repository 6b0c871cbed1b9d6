"""``/healthz``, ``/readyz`` and ``/metrics`` on the kernel's HTTP service, reached with a
real HTTP client: readiness names the part that is broken (a read-only database, a cluster
at a dead address, a plugin that failed to enable, no front end), and the metrics parse
with Prometheus' own text parser and move with the commands people run."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clustercord.metrics import NAMES

MANIFEST = {
    "commands": [
        {
            "name": "probe",
            "description": "Commands that end in each way",
            "subcommands": [
                {"name": "fine", "description": "Works", "handler": "commands:fine"},
                {"name": "broken", "description": "Fails", "handler": "commands:broken"},
            ],
        }
    ]
}
COMMANDS = """
def fine(ctx):
    return "fine"

def broken(ctx):
    raise RuntimeError("it broke")
"""
FAILING = """
@hookimpl
def on_enable(ctx):
    raise RuntimeError("cannot start with AKIAABCDEFGHIJKLMNOP")
"""
TOKEN = "s3cret-metrics-token-0123456789"
DEAD = """apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: dead
  user: {token: abc}
contexts:
- name: dead
  context: {cluster: dead, user: dead}
current-context: dead
"""


async def _serve(harness: Any, **http: Any) -> Any:
    harness.settings = replace(
        harness.settings, http={"listen": "127.0.0.1:0", "tls": "off", **http}
    )
    kernel = await harness.start()
    await kernel.http.start()
    kernel.readiness.frontend = lambda: None  # as `clustercord serve` registers itself
    return kernel


@pytest.fixture
async def served(clustercord_harness, make_plugin):
    clustercord_harness.add_plugin(
        make_plugin("probe", manifest=MANIFEST, modules={"commands": COMMANDS}), builtin=True
    )
    kernel = await _serve(clustercord_harness)
    async with aiohttp.ClientSession() as client:
        yield clustercord_harness, kernel, client
    await kernel.http.close()


async def _get(client: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str]:
    async with client.get(url, **kw) as response:
        return response.status, await response.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _commands(samples: dict, plugin: str, outcome: str) -> float:
    key = (
        "clustercord_commands_total",
        (("kind", "command"), ("outcome", outcome), ("plugin", plugin)),
    )
    return samples.get(key, 0.0)


async def test_health_and_readiness_answer_when_all_is_well(served):
    _, kernel, client = served
    assert await _get(client, kernel.http.url + "/healthz") == (200, "ok\n")
    assert await _get(client, kernel.http.url + "/readyz") == (200, "ready\n")


async def test_metrics_parse_and_count_commands_by_outcome_with_latency(served):
    harness, kernel, client = served
    url = kernel.http.url + "/metrics"
    status, before = await _get(client, url)
    assert status == 200
    for line in ("/probe fine", "/probe fine", "/probe broken"):
        await harness.run(line)
    status, text = await _get(client, url)
    samples = _samples(text)
    assert _commands(samples, "probe", "ok") - _commands(_samples(before), "probe", "ok") == 2
    assert _commands(samples, "probe", "error") == 1
    count = (
        "clustercord_command_duration_seconds_count",
        (("kind", "command"), ("plugin", "probe")),
    )
    assert samples[count] == 3
    # The audit head moved with the six rows (intent and result of each command).
    head = samples[("clustercord_audit_head_seq", ())]
    assert head == kernel.audit.head().seq and head >= 6
    assert samples[("clustercord_approvals_pending", ())] == 0
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"clustercord_commands", "clustercord_audit_head_seq"} <= families
    # Every name exported is one the dashboard may use (metrics.NAMES), and back.
    exported = {name for name, _ in samples}
    for name in exported:
        assert any(name == n or name.startswith(n.removesuffix("_total")) for n in NAMES), name


async def test_each_kernel_counts_in_its_own_registry(served, tmp_path, clustercord_signer):
    from clustercord_testing.harness import KernelHarness

    harness, kernel, _ = served
    other = KernelHarness(tmp_path / "other", clustercord_signer)
    other.settings = replace(other.settings, http={"listen": "127.0.0.1:0", "tls": "off"})
    try:
        second = await other.start()
        await harness.run("/probe fine")
        assert b'plugin="probe"' in kernel.metrics.exposition()
        assert b'plugin="probe"' not in second.metrics.exposition()
    finally:
        other.close()


async def test_metrics_behind_a_bearer_token_when_configured(clustercord_harness):
    kernel = await _serve(clustercord_harness, metrics_token=TOKEN)
    url = kernel.http.url + "/metrics"
    try:
        async with aiohttp.ClientSession() as client:
            status, text = await _get(client, url)
            assert status == 401 and "clustercord_" not in text
            status, _ = await _get(client, url, headers={"Authorization": "Bearer wrong"})
            assert status == 401
            status, text = await _get(client, url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200 and "clustercord_audit_head_seq" in text
            # Probes carry no credentials: health stays open.
            assert (await _get(client, kernel.http.url + "/healthz"))[0] == 200
        assert TOKEN not in repr(kernel.http.settings)
    finally:
        await kernel.http.close()


async def test_a_short_metrics_token_is_refused(clustercord_harness):
    from clustercord.http.settings import HttpSettings
    from clustercord_sdk.errors import UsageError

    with pytest.raises(UsageError, match="metrics_token"):
        HttpSettings.load({"listen": "127.0.0.1:0", "metrics_token": "short"})


async def test_readyz_names_a_read_only_database(served):
    _, kernel, client = served
    # The database refuses writes (as a read-only volume or a full disk would).
    kernel.database.conn.execute("PRAGMA query_only = ON")
    try:
        status, text = await _get(client, kernel.http.url + "/readyz")
    finally:
        kernel.database.conn.execute("PRAGMA query_only = OFF")
    assert status == 503
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert "attempt to write a readonly database" in lines["storage"], text
    assert await _get(client, kernel.http.url + "/readyz") == (200, "ready\n")


async def test_readyz_names_an_unreachable_cluster(served):
    _, kernel, client = served
    kernel.kubernetes.registry.add("dead", DEAD, by="test")
    status, text = await _get(client, kernel.http.url + "/readyz")
    assert status == 503
    assert [line.split(":")[0] for line in text.splitlines()] == ["cluster dead"], text
    # The failed calls are counted by cluster, verb and status.
    samples = _samples((await _get(client, kernel.http.url + "/metrics"))[1])
    calls = (
        "clustercord_kubernetes_calls_total",
        (("cluster", "dead"), ("status", "error"), ("verb", "GET")),
    )
    assert samples[calls] >= 1


async def test_readyz_names_a_reachable_cluster_as_fine(clustercord_harness, sandbox_cluster):
    sandbox_cluster("homelab")
    kernel = await _serve(clustercord_harness)
    try:
        async with aiohttp.ClientSession() as client:
            (cluster,) = [c.name for c in kernel.kubernetes.registry.list()]
            assert await _get(client, kernel.http.url + "/readyz") == (200, "ready\n")
            samples = _samples((await _get(client, kernel.http.url + "/metrics"))[1])
        key = (
            "clustercord_kubernetes_calls_total",
            (("cluster", cluster), ("status", "200"), ("verb", "GET")),
        )
        assert samples[key] >= 1
    finally:
        await kernel.http.close()


async def test_readyz_names_a_plugin_that_failed_and_a_missing_front_end(
    clustercord_harness, make_plugin
):
    clustercord_harness.add_plugin(make_plugin("sulky", manifest={}, init=FAILING), builtin=True)
    kernel = await _serve(clustercord_harness)
    kernel.readiness.frontend = None
    try:
        async with aiohttp.ClientSession() as client:
            status, text = await _get(client, kernel.http.url + "/readyz")
        assert status == 503
        lines = dict(line.split(": ", 1) for line in text.splitlines())
        assert set(lines) == {"frontend", "plugins"}
        assert "sulky" in lines["plugins"] and "cannot start" in lines["plugins"]
        # /readyz is unauthenticated: what a failure quotes is masked as in the audit log.
        assert "AKIAABCDEFGHIJKLMNOP" not in text
        kernel.readiness.stopping = True
        assert "shutdown" in await kernel.readiness.problems()
    finally:
        await kernel.http.close()


def test_discord_rate_limits_are_counted_from_hikari_warnings():
    from clustercord.metrics import Metrics, watch_discord_rate_limits

    metrics = Metrics()
    stop = watch_discord_rate_limits(metrics)
    rest = logging.getLogger("hikari.rest")
    try:
        rest.warning("rate limited on a %s sub bucket on bucket %s", "shared", "abc")
        rest.error("rate limited on the global bucket (reason: '%s').", "x")
        rest.warning("something else")
    finally:
        stop()
    rest.warning("rate limited on bucket %s", "after")  # no longer watched
    samples = _samples(metrics.exposition().decode())
    assert (
        sum(v for (n, _), v in samples.items() if n == "clustercord_discord_rate_limits_total") == 2
    )


async def test_a_kernel_without_the_http_service_counts_nothing(clustercord_harness, make_plugin):
    # Nobody could scrape it: a console command does not pay for the library's import.
    clustercord_harness.add_plugin(
        make_plugin("probe", manifest=MANIFEST, modules={"commands": COMMANDS}), builtin=True
    )
    kernel = await clustercord_harness.start()
    assert kernel.metrics is None and kernel.door.metrics is None
    assert (await clustercord_harness.run("/probe fine")).ok


CRASHY = {
    "commands": [
        {
            "name": "crashy",
            "description": "An isolated plugin that crashes",
            "subcommands": [
                {"name": "crash", "description": "Ends its process", "handler": "commands:crash"},
                {"name": "fine", "description": "Works", "handler": "commands:fine"},
            ],
        }
    ]
}
CRASHING = """
import os

def crash(ctx):
    os._exit(1)

def fine(ctx):
    return "fine"
"""


async def test_an_isolated_plugin_crash_and_restart_are_counted(clustercord_harness, make_plugin):
    clustercord_harness.add_plugin(
        make_plugin("crashy", manifest=CRASHY, modules={"commands": CRASHING}), isolated=True
    )
    clustercord_harness.settings = replace(
        clustercord_harness.settings, http={"listen": "127.0.0.1:0", "tls": "off"}
    )
    kernel = await clustercord_harness.start()
    assert (await clustercord_harness.run("/crashy fine")).ok
    assert (await clustercord_harness.run("/crashy crash")).status == "error"
    assert (await clustercord_harness.run("/crashy fine")).ok  # its process restarted
    samples = _samples(kernel.metrics.exposition().decode())
    plugin = (("plugin", "crashy"),)
    assert samples[("clustercord_plugin_crashes_total", plugin)] == 1
    assert samples[("clustercord_plugin_restarts_total", plugin)] == 1
    assert _commands(samples, "crashy", "ok") == 2 and _commands(samples, "crashy", "error") == 1


async def test_broken_watches_are_counted_as_reconnects(served):
    import asyncio

    from clustercord.kubernetes.watches import ClusterWatcher

    _, kernel, client = served
    kernel.kubernetes.registry.add("dead", DEAD, by="test")

    async def publish(event: Any) -> None:
        return None

    watcher = ClusterWatcher(kernel.kubernetes, "dead", publish, backoff=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(task, 10)
    samples = _samples((await _get(client, kernel.http.url + "/metrics"))[1])
    for resource in ("pods", "nodes"):
        key = (
            "clustercord_watch_reconnects_total",
            (("cluster", "dead"), ("resource", resource)),
        )
        assert samples[key] >= 2, resource
