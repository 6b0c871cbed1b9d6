"""PromQL probes end to end: an admin sets the Prometheus (`/chaos config prometheus url:`), an
experiment file's `error_rate < 5%` reads it before, during and after the fault, and a
Prometheus that answers NaN mid-run is a failed check with its reason: the run stops and every
fault is rolled back. Prometheus is a stand-in (no Prometheus binary here) answering the
documented shape of /api/v1/query
(https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries)."""

from __future__ import annotations

import pytest
from aiohttp import web

from .conftest import ADMIN, cluster_marks, first_pod, images, pod_named, run
from .test_experiment_files import write

PROMETHEUS = "Prometheus (PromQL probes)"


def settings(result) -> dict[str, str]:
    return dict(result.reply.tables[0].rows)


def answer(value: str) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"job": "jellyfin"}, "value": [1765000000.5, value]}]}}  # fmt: skip


@pytest.fixture
async def prom():
    """Answers the queued values in turn (the last one from then on)."""
    state: dict = {"values": ["1.2"], "seen": []}

    async def query(request: web.Request) -> web.Response:
        state["seen"].append(request.query["query"])
        value = state["values"].pop(0) if len(state["values"]) > 1 else state["values"][0]
        return web.json_response(answer(value))

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield state
    await runner.cleanup()


def experiment(pod: str) -> str:
    return f"""
name: jellyfin errors stay low
steady_state:
  - probe: prometheus
    name: error_rate
    query: 100 * sum(rate(http_errors_total[1m])) / sum(rate(http_requests_total[1m]))
    expect: error_rate < 5%
steps:
  - {{fault: pod-failure, pod: {pod}, namespace: media, duration: 5m}}
  - wait: 2s
  - assert: {{probe: prometheus, query: "sum(up)", expect: ">= 1"}}
"""


async def test_an_admin_sets_prometheus_and_experiments_assert_on_promql(
    chaos, homelab, prom, tmp_path
):
    refused = await run(chaos, f"/chaos config prometheus url:{prom['url']}")  # not an admin
    assert refused.status == "denied"
    for bad, why in {
        "http://169.254.169.254": "link-local",
        "http://admin:hunter2@prometheus:9090": "no user or password",
        "ftp://prometheus": "an http:// or https:// address",
    }.items():
        result = await run(chaos, f"/chaos config prometheus url:{bad}", user=ADMIN)
        assert result.status == "usage" and why in result.text and "hunter2" not in result.text
    assert settings(await run(chaos, "/chaos config show"))[PROMETHEUS] == "(none)"
    made = await run(chaos, f"/chaos config prometheus url:{prom['url']}/", user=ADMIN)
    assert made.ok and made.reply.data["prometheus"] == {"url": prom["url"], "answers": True}
    assert settings(await run(chaos, "/chaos config show"))[PROMETHEUS] == prom["url"]

    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, experiment(name))}")
    assert result.ok, result.text
    report = result.reply.data["experiment"]
    assert report["status"] == "pass", report["run"]
    values = [o["value"] for o in report["run"]["observations"]]
    assert set(values) == {1.2} and len(values) >= 4  # before, during the wait, step 3, after
    assert prom["seen"][0] == "vector(1)"  # the config command checked it answers
    assert "sum(up)" in prom["seen"] and prom["seen"][1].startswith("100 * sum(rate(")
    assert images(pod_named(homelab, name)) == images(victim)


async def test_a_prometheus_answering_nan_mid_run_stops_it_and_rolls_back(
    chaos, homelab, prom, tmp_path
):
    assert (await run(chaos, f"/chaos config prometheus url:{prom['url']}", user=ADMIN)).ok
    prom["values"] = ["1.2", "1.2", "NaN"]  # "before", "after step 1", then NaN in the wait
    victim = first_pod(homelab)
    name = victim["metadata"]["name"]
    result = await run(chaos, f"/chaos run-experiment file:{write(tmp_path, experiment(name))}")
    assert result.ok, result.text
    report = result.reply.data["experiment"]
    assert report["status"] == "fail"
    assert "the steady state broke after step 2" in report["run"]["reason"]
    assert "probe error: the series's value is NaN" in report["run"]["reason"]
    broken = [o for o in report["run"]["observations"] if o.get("error")]
    assert broken and broken[0]["value"] is None and not broken[0]["ok"]
    assert report["run"]["rolled_back"] == report["experiments"]
    assert images(pod_named(homelab, name)) == images(victim)
    assert cluster_marks(homelab) == ""
