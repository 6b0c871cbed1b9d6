"""PromQL probes against a real HTTP server (aiohttp) answering as Prometheus' HTTP API does
(https://prometheus.io/docs/prometheus/latest/querying/api/: ``/api/v1/query`` answers
``{"status", "data": {"resultType", "result"}}``, or ``{"status": "error", "errorType",
"error"}`` with 400/422/503): a good answer is one number, every bad one a clear ProbeError."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from aiohttp import web

from clustercord_builtins.chaos import prometheus
from clustercord_builtins.chaos.plan_file import PlanError, load

NOW = 1_765_000_000.123


def vector(*values: str) -> dict:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"job": "api", "instance": f"10.0.0.{i}:8080"}, "value": [NOW, v]}
                for i, v in enumerate(values)
            ],
        },
    }


@pytest.fixture
async def server():
    """A Prometheus stand-in: each test sets what ``/api/v1/query`` answers."""
    state: dict = {"status": 200, "json": vector("1.5"), "text": None, "delay": 0.0, "seen": []}

    async def query(request: web.Request) -> web.StreamResponse:
        state["seen"].append(request.query.get("query"))
        await asyncio.sleep(state["delay"])
        if state["text"] is not None:
            return web.Response(status=state["status"], text=state["text"],
                                content_type="text/html")  # fmt: skip
        return web.json_response(state["json"], status=state["status"])

    app = web.Application()
    app.router.add_get("/prom/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/prom"
    yield state
    await runner.cleanup()


async def test_an_instant_vector_of_one_series_is_its_value(server):
    rate = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
    assert await prometheus.query(server["url"], rate, 2) == 1.5
    assert server["seen"] == [rate]  # sent as the query parameter, unchanged
    server["json"] = {"status": "success", "data": {"resultType": "scalar", "result": [NOW, "4"]}}
    assert await prometheus.query(server["url"] + "/", "scalar(up)", 2) == 4.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"json": vector()}, "no series (an empty vector)"),
        ({"json": vector("NaN")}, "value is NaN"),
        ({"json": vector("+Inf")}, "value is +Inf"),
        ({"json": vector("1", "2")}, "returned 2 series; a probe needs one number"),
        ({"json": vector("many")}, "'many' is not a number"),
        ({"json": {"status": "success", "data": {"resultType": "matrix", "result": []}}},
         "returned a matrix; a probe needs an instant vector"),
        ({"status": 400, "json": {"status": "error", "errorType": "bad_data",
                                  "error": 'parse error: unexpected "}"'}},
         'answered 400: bad_data: parse error: unexpected "}"'),
        ({"status": 503, "json": {"status": "error", "errorType": "timeout",
                                  "error": "query timed out in expression evaluation"}},
         "answered 503: timeout: query timed out"),
        ({"status": 502, "text": "<html>Bad Gateway</html>"},
         "answered 502 with something that is not JSON (text/html, 24 bytes)"),
        ({"status": 200, "text": "<html>Grafana</html>"}, "not JSON"),
        ({"json": ["not", "the", "api"]}, "JSON that is not its API's shape"),
        ({"json": {"status": "success"}}, "has no data"),
    ],
)  # fmt: skip
async def test_every_bad_answer_is_a_clear_probe_error(server, answer, expected):
    server.update(answer)
    with pytest.raises(prometheus.ProbeError) as raised:
        await prometheus.query(server["url"], "up", 2)
    assert expected in str(raised.value)
    assert "<html>" not in str(raised.value)  # what another server says is not echoed


async def test_a_slow_or_absent_prometheus_is_a_probe_error_within_the_timeout(server):
    server["delay"] = 3
    started = asyncio.get_running_loop().time()
    with pytest.raises(prometheus.ProbeError, match=r"did not answer within 0\.5 s"):
        await prometheus.query(server["url"], "up", 0.5)
    assert asyncio.get_running_loop().time() - started < 2
    with pytest.raises(
        prometheus.ProbeError, match=re.escape("cannot reach Prometheus at http://127.0.0.1:9")
    ):
        await prometheus.query("http://127.0.0.1:9", "up", 2)  # the discard port: refused
    with pytest.raises(prometheus.ProbeError, match="link-local"):
        await prometheus.query("http://169.254.169.254", "up", 2)  # never the metadata service


def probe_file(probe: str) -> bytes:
    return f"name: p\nsteady_state:\n  - {probe}\nsteps:\n  - wait: 1s\n".encode()


def test_promql_probes_in_experiment_files():
    plan = load(
        probe_file(
            '{probe: prometheus, name: error_rate, query: "sum(x)", expect: "error_rate < 5%"}'
        ),
        max_duration=60,
    )
    (probe,) = plan.steady_state
    assert probe.describe() == "prometheus(error_rate) error_rate < 5%"
    assert probe.expect.holds(4.9) and not probe.expect.holds(5.0) and not probe.expect.holds(None)
    plain = load(probe_file('{probe: prometheus, query: "up", expect: ">= 1"}'), max_duration=60)
    assert plain.steady_state[0].describe() == "prometheus(up) >= 1"


@pytest.mark.parametrize(
    ("probe", "refusal"),
    [
        ('{probe: prometheus, expect: ">= 1"}', "query: required"),
        ('{probe: prometheus, query: "", expect: ">= 1"}', "query: a PromQL expression"),
        ('{probe: prometheus, query: up, url: "http://169.254.169.254", expect: ">= 1"}',
         "url: 169.254.169.254 is a link-local"),
        ('{probe: prometheus, query: up, url: "file:///etc/passwd", expect: ">= 1"}',
         "url: an http:// or https:// address"),
        ('{probe: prometheus, query: up, timeout: 600, expect: ">= 1"}', "timeout: seconds"),
        ('{probe: prometheus, query: up, name: __import__, expect: ">= 1"}', "name: '__import__'"),
        ('{probe: prometheus, query: up, name: min, expect: ">= 1"}', "name: 'min'"),
        ('{probe: prometheus, query: up, expect: "error_rate < 5"}', "unknown name 'error_rate'"),
        ('{probe: prometheus, query: up, step: 1m, expect: ">= 1"}', "step: unknown key"),
    ],
)  # fmt: skip
def test_bad_promql_probes_are_refused_at_load(probe, refusal):
    with pytest.raises(PlanError) as raised:
        load(probe_file(probe), max_duration=60)
    assert refusal in str(raised.value)


def chaos_toolkit(tolerance, configuration=None) -> bytes:
    document = {
        "title": "errors stay low",
        "steady-state-hypothesis": {"title": "few errors", "probes": [{
            "type": "probe", "name": "error-rate", "tolerance": tolerance,
            "provider": {"type": "python", "module": "chaosprometheus.probes", "func": "query",
                         "arguments": {"query": "sum(rate(errors_total[1m]))"}},
        }]},
        "method": [{"type": "action", "name": "kill", "provider": {
            "type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods",
            "arguments": {"label_selector": "app=api", "ns": "prod"}}}],
    }  # fmt: skip
    if configuration:
        document["configuration"] = configuration
    return json.dumps(document).encode()


async def test_chaos_toolkit_prometheus_probes_are_read_never_run(server):
    plan = load(
        chaos_toolkit({"type": "range", "range": [0, 5]}, {"prometheus_base_url": server["url"]}),
        max_duration=60,
    )
    (probe,) = plan.steady_state
    assert probe.kind == "prometheus" and probe.options["url"] == server["url"]
    assert probe.expect.holds(5) and not probe.expect.holds(5.1)
    value = await prometheus.query(probe.options["url"], probe.options["query"], 2)
    assert probe.expect.holds(value) and server["seen"] == ["sum(rate(errors_total[1m]))"]
    for bad in (200, {"type": "jsonpath", "path": "$.data"}, {"type": "range", "range": [0]}):
        with pytest.raises(PlanError, match="a range tolerance"):
            load(chaos_toolkit(bad), max_duration=60)
