"""The chaos plugin's parsers and pure rules: what users type (durations, percentages,
latencies, rates, sizes), expectations in experiment files, label selectors of
PodDisruptionBudgets, the tc and stress commands it would run, and its refusals."""

from __future__ import annotations

import time

import pytest

from clustercord_builtins.chaos import network, stress
from clustercord_builtins.chaos.durations import (
    format_duration,
    parse_duration,
    parse_latency,
    parse_percent,
)
from clustercord_builtins.chaos.plan_file import PlanError, load, parse_expectation
from clustercord_builtins.chaos.safety import selects
from clustercord_sdk.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2h", 7200)]
)
def test_durations_as_users_type_them(text, seconds):
    assert parse_duration(text, option="duration", maximum=86400) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5m", "is negative"),
        ("0s", "no time at all"),
        ("999h", "longer than the maximum of 1h"),
        ("5x", "is not a duration"),
        ("", "is not a duration"),
        ("5m 3", "is not a duration"),
        ("1.5.5s", "is not a duration"),
    ],
)
def test_bad_durations_name_the_option_and_the_problem(text, message):
    with pytest.raises(UsageError, match="duration: ") as raised:
        parse_duration(text, option="duration", maximum=3600)
    assert message in str(raised.value)


def test_percentages_latencies_and_their_limits():
    assert parse_percent("30%", option="percent") == 30
    assert parse_percent(100, option="percent") == 100
    for bad in (0, 101, -1, "lots", "nan"):
        with pytest.raises(UsageError, match="percent: "):
            parse_percent(bad, option="percent")
    assert parse_percent(0, option="correlation", allow_zero=True) == 0
    assert parse_latency("100ms", option="latency") == 100
    assert parse_latency("1.5s", option="latency") == 1500
    assert parse_latency("20", option="latency") == 20
    with pytest.raises(UsageError, match="is negative"):
        parse_latency("-5ms", option="latency")
    assert format_duration(5400) == "1h30m" and format_duration(0.25) == "250ms"


def test_rates_and_sizes():
    assert network.parse_rate("1mbit") == "1mbit"
    for bad in ("fast", "0kbit", "1 mbit", "-1mbit"):
        with pytest.raises(UsageError, match="rate: "):
            network.parse_rate(bad)
    assert stress.parse_size("256Mi") == 256 * 2**20
    assert stress.parse_size("1G") == 10**9
    for bad in ("lots", "-1", "0", "1Ti"):
        with pytest.raises(UsageError, match="size: "):
            stress.parse_size(bad)
    with pytest.raises(UsageError, match="workers: 65"):
        stress.parse_workers(65)


def test_the_tc_arguments_of_each_network_fault():
    delay = {"latency_ms": 100.0, "jitter_ms": 20.0, "correlation": 25.0}
    assert network.qdisc_for("network-delay", delay) == ["netem", "delay", "100ms", "20ms", "25%"]
    assert network.qdisc_for("network-loss", {"percent": 30.0}) == ["netem", "loss", "30%"]
    assert network.qdisc_for("network-corruption", {"percent": 5.0})[1] == "corrupt"
    assert network.qdisc_for("network-duplicate", {"percent": 5.0})[1] == "duplicate"
    assert network.qdisc_for("network-bandwidth", {"rate": "1mbit"})[:3] == ["tbf", "rate", "1mbit"]
    guard = network.guard(60)
    assert "sleep 61" in guard and "trap" in guard and "tc qdisc del" in guard


def test_network_refusals_say_why():
    pod = {
        "metadata": {"namespace": "web", "name": "api"},
        "spec": {},
        "status": {"phase": "Running"},
    }
    open_ns = {"metadata": {"labels": {}}}
    assert network.refusal(pod, open_ns) is None
    host = {**pod, "spec": {"hostNetwork": True}}
    assert "hostNetwork" in (network.refusal(host, open_ns) or "")
    for level in ("baseline", "restricted"):
        strict = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}}
        assert f"Pod Security level {level!r}" in (network.refusal(pod, strict) or "")
    privileged = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    assert network.refusal(pod, privileged) is None
    explained = network.explain_tc(["tc", "qdisc", "replace", "dev", "eth0", "root", "netem"],
                                   "Error: Specified qdisc kind is unknown.")  # fmt: skip
    assert "sch_netem" in explained


def test_stress_commands_are_bounded_and_record_their_workers():
    cpu = stress.script("cpu-stress", "ex-1", 2.5, {"percent": 50, "workers": 2})
    assert "timeout 3 sh -c" in cpu and "/tmp/chaos-ex-1.pids" in cpu and cpu.endswith("times")
    by_share = stress.script("cpu-stress", "ex-1", 10, {"percent": 50, "workers": None})
    assert "nproc" in by_share
    memory = stress.script("memory-stress", "ex-2", 10, {"size_bytes": 1024})
    assert "bs=1024" in memory
    assert stress.cpu_seconds("0m0.01s 0m0.00s\n0m2.50s 0m0.40s\n") == 2.9
    assert stress.cpu_seconds("") is None


def test_expectations_compare_numbers_and_run_nothing():
    # The comparison form of the first version still reads the same.
    assert parse_expectation(">= 2", "x").holds(2)
    assert not parse_expectation("< 5%", "x").holds(5)
    assert not parse_expectation("== 200", "x").holds(None)
    with pytest.raises(PlanError, match="unknown name 'x' at character 4"):
        parse_expectation(">= x", "e")


def test_expectations_are_python_conditions_over_the_probe_value():
    names = ("value", "healthy_replicas")
    between = parse_expectation("value >= 200 and value < 300", "x", names)
    assert between.holds(204) and not between.holds(503)
    assert parse_expectation("healthy_replicas >= 2", "x", names).holds(3)
    assert not parse_expectation("healthy_replicas >= 2", "x", names).holds(1)
    assert parse_expectation("min(value, 10) > 3 or abs(value) == 1", "x").holds(-1)
    assert parse_expectation("value < 5% and value > 1%", "x").holds(2.5)
    assert parse_expectation("value % 2 == 0", "x").holds(4)  # '%' followed by a number: modulo
    assert not parse_expectation("value / 0 > 1", "x").holds(4)  # fails, never raises


@pytest.mark.parametrize(
    ("hostile", "refusal"),
    [
        ("__import__('os').system('id')", "a call at character 1; only min, max, abs"),
        (">= len([])", "a call at character 4"),
        ("value.__class__.__mro__ > 1", "attribute access (character 1)"),
        ("(1).__class__ > value", "attribute access (character 1)"),
        ("value > getattr(value, 'real')", "a call at character 9"),
        ("value ** 9999999999 > 1", "'**' (numbers without bound) (character 1)"),
        ("value > 10 ** 10 ** 10", "'**'"),
        ("value > 1e400", "larger than 1e+15"),
        ("value > 99999999999999999999", "larger than 1e+15"),
        ("[x for x in range(10**9)] > value", "not allowed in a condition"),
        ("value > 'a' * 9", "str literal at character 9"),
        ("(lambda: 1)() > value", "a call at character 1"),
        ("value[0] > 1", "subscripts (character 1)"),
        ("(y := 1) > value", "assignments"),
        ("> 1; import os", "not an expression (character 4"),
        ("__builtins__ > 1", "unknown name '__builtins__'"),
        ("value + 1", "not a condition"),
        ("max(*value) > 1", "'*' arguments"),
        ("value " + "+ 1 " * 60 + "> 0", "at most 200"),
    ],
)
def test_conditions_that_reach_for_code_are_refused_at_load_with_the_place(hostile, refusal):
    with pytest.raises(PlanError, match=r"steps\[0\]\.assert\.expect: .* is refused: ") as refused:
        parse_expectation(hostile, "steps[0].assert.expect")
    assert refusal in str(refused.value)


def test_the_worst_allowed_condition_runs_in_microseconds():
    # No loops, no '**', bounded literals, 200 characters: the time is bounded by the code's
    # size. The largest product of literals that fits is still a fast comparison.
    worst = "value >= " + "*".join(["999999999999999"] * 12)
    assert len(worst) <= 200
    condition = parse_expectation(worst, "x")
    started = time.perf_counter()
    for _ in range(1000):
        assert not condition.holds(3)
    assert (time.perf_counter() - started) / 1000 < 0.001


def test_a_yaml_bomb_is_refused_without_expanding_it():
    # Nine levels of nine aliases each: 9**9 values once expanded, within the depth limit.
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    bomb = ("name: x\nsteps: [{wait: 1s}]\n" + "\n".join(lines) + "\n").encode()
    with pytest.raises(PlanError, match="more than 10,000 values"):
        load(bomb, max_duration=3600)


def test_pod_disruption_budget_selectors():
    labels = {"app": "api", "tier": "web"}
    assert selects({"matchLabels": {"app": "api"}}, labels)
    assert not selects({"matchLabels": {"app": "db"}}, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, labels
    )
    assert not selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert selects({}, labels)  # policy/v1: an empty selector selects every pod
    assert not selects(None, labels)


def test_field_probes_read_numbers_and_conditions():
    from clustercord_builtins.chaos.plans import field_value

    deployment = {"status": {"readyReplicas": 2, "conditions": [{"status": "True"}]}}
    assert field_value(deployment, "status.readyReplicas") == 2
    assert field_value(deployment, "status.conditions[0].status") == 1
    assert field_value(deployment, "status.conditions[3].status") is None
    assert field_value(deployment, "spec.replicas") is None
    assert field_value({"status": {"phase": "Running"}}, "status.phase") is None


def test_failure_thresholds_and_field_probes_are_checked_at_load():
    with pytest.raises(PlanError, match="failure_threshold: a whole number from 1 to 100"):
        load(b"name: x\nfailure_threshold: true\nsteps: [{wait: 1s}]", max_duration=60)
    with pytest.raises(PlanError, match="'secrets' is not one of"):
        load(
            b"name: x\nsteps: [{assert: {probe: field, resource: secrets, name: a, "
            b"path: data.password, expect: '> 0'}}]",
            max_duration=60,
        )
    plan = load(b"name: x\nfailure_threshold: 3\nsteps: [{wait: 1s}]", max_duration=60)
    assert plan.failure_threshold == 3


def test_the_run_chart_is_a_png_with_the_fault_window_shaded():
    import struct
    import zlib

    from clustercord_builtins.chaos import chart

    observations = [
        {"at": 100.0 + t, "probe": "healthy_replicas(api) >= 2", "value": v, "ok": v >= 2}
        for t, v in [(0, 3), (1, 3), (2, 1), (3, 2), (4, 3)]
    ]
    png = chart.run_chart(observations, (101.0, 103.0))
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    bottom = chart.MARGIN + chart.PLOT_HEIGHT
    assert (width, height) == (chart.WIDTH, bottom + 24 + chart.LEGEND_ROW)  # one probe's legend
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4 : idat])[0]
    rows = zlib.decompress(png[idat + 4 : idat + 4 + length])
    stride = 1 + width * 3

    def pixel(x: int, y: int) -> tuple[int, ...]:
        at = y * stride + 1 + x * 3
        return tuple(rows[at : at + 3])

    inside = chart.LEFT + round(1.5 / 4 * (width - chart.LEFT - chart.MARGIN))
    assert pixel(inside, chart.MARGIN + 2) == chart.WINDOW  # the fault window
    assert pixel(width - chart.MARGIN - 2, chart.MARGIN + 2) == chart.WHITE  # after it
    assert chart.FAILED in {pixel(x, y) for x in range(width) for y in range(height)}
    # Axis labels: tick labels at both ends of the x axis and its title under them, min/max
    # beside the y axis, and the legend row (the probe's color swatch, then its name).
    ticks = {x for x in range(width) for y in range(bottom + 4, bottom + 11)
             if pixel(x, y) == chart.LABEL}  # fmt: skip
    assert min(ticks) < chart.LEFT + 4 and max(ticks) > width - chart.MARGIN - 8
    title = {x for x in range(width) for y in range(bottom + 12, bottom + 19)
             if pixel(x, y) == chart.LABEL}  # fmt: skip
    assert (
        title and abs((min(title) + max(title)) / 2 - (chart.LEFT + width - chart.MARGIN) / 2) < 4
    )
    assert any(pixel(x, chart.MARGIN + 1) == chart.LABEL for x in range(chart.LEFT))  # "max"
    legend = bottom + 24
    assert pixel(chart.LEFT + 4, legend + 2) == chart.LINES[0]
    assert any(pixel(x, legend + 2) == chart.LABEL for x in range(chart.LEFT + 12, width))
    assert chart.run_chart([], None) is None


def test_chart_labels_have_a_glyph_for_every_character_they_use():
    from clustercord_builtins.chaos import font

    dots: set[tuple[int, int]] = set()
    font.draw(lambda x, y: dots.add((x, y)), 0, 0, "1")
    assert dots == {(1, 0), (0, 1), (1, 1), (1, 2), (1, 3), (0, 4), (1, 4), (2, 4)}
    used = "healthy_replicas(api) >= 2 http(http://a:80/x) == 200 time (s) min max [0 .. 3.5]"
    assert all(c.lower() in font._GLYPHS for c in used)
    shapes = {c: font._GLYPHS[c] for c in "0123456789abcdefghijklmnopqrstuvwxyz"}
    assert len(set(shapes.values())) == len(shapes)  # every glyph tells its character apart


def test_chaos_toolkit_experiments_map_onto_the_plugins_faults_or_are_refused():
    import json

    base = {
        "title": "drain: fine?",
        "method": [
            {"type": "action", "name": "drain", "pauses": {"before": 2},
             "provider": {"type": "python", "module": "chaosk8s.node.actions",
                          "func": "drain_nodes", "arguments": {"name": "pi-1", "timeout": 60}}},
            {"type": "probe", "name": "up", "tolerance": 204,
             "provider": {"type": "http", "url": "http://example.test/healthz"}},
        ],
    }  # fmt: skip
    plan = load(json.dumps(base).encode(), max_duration=3600)
    assert plan.name == "drain- fine"
    assert [s.kind for s in plan.steps] == ["wait", "fault", "assert"]
    assert plan.steps[1].options == {"node": "pi-1", "timeout": "60s"}
    assert plan.steps[2].probe is not None and plan.steps[2].probe.expect.text == "== 204"
    for change, message in [
        ({"rollbacks": [{"type": "action"}]}, "rollbacks: not run"),
        ({"method": [{"type": "action", "provider": {"type": "process", "path": "rm"}}]},
         "'process' provider is not run"),
        ({"method": [{"type": "probe", "tolerance": [200, 299],
                      "provider": {"type": "http", "url": "http://x.test"}}]},
         "tolerance: an HTTP status code"),
    ]:  # fmt: skip
        with pytest.raises(PlanError, match=message):
            load(json.dumps({**base, **change}).encode(), max_duration=3600)


def test_exports_of_network_stress_and_drain_experiments():
    from clustercord_builtins.chaos import export
    from clustercord_builtins.chaos.experiments import Experiment
    from clustercord_sdk.errors import CommandError

    def experiment(kind: str, **parameters) -> Experiment:
        namespace = "" if kind == "drain-node" else "web"
        return Experiment("ex-1", kind, "c", namespace, "api-1", parameters, "u", "ended", 0.0)

    delay = experiment("network-delay", latency_ms=100.0, jitter_ms=10.0, correlation=None,
                       duration=60.0)  # fmt: skip
    (chaos,) = export.to_chaos_mesh(delay)
    assert chaos["kind"] == "NetworkChaos" and chaos["spec"]["action"] == "delay"
    assert chaos["spec"]["delay"] == {"latency": "100ms", "jitter": "10ms"}
    assert chaos["spec"]["duration"] == "60s"
    (loss,) = export.to_chaos_mesh(experiment("network-loss", percent=30.0, duration=5.0))
    assert loss["spec"]["loss"] == {"loss": "30"}
    (cpu,) = export.to_chaos_mesh(experiment("cpu-stress", percent=80.0, workers=2, duration=9))
    assert cpu["spec"]["stressors"] == {"cpu": {"workers": 2, "load": 80}}
    with pytest.raises(CommandError, match="Chaos Mesh has no counterpart of drain-node"):
        export.to_chaos_mesh(experiment("drain-node", timeout=60, duration=600))
    (engine,) = export.to_litmus(experiment("drain-node", timeout=60, duration=600))
    env = engine["spec"]["experiments"][0]["spec"]["components"]["env"]
    assert {"name": "TARGET_NODE", "value": "api-1"} in env
    (latency,) = export.to_litmus(delay)
    env = {
        e["name"]: e["value"]
        for e in latency["spec"]["experiments"][0]["spec"]["components"]["env"]
    }
    assert env["NETWORK_LATENCY"] == "100" and env["TOTAL_CHAOS_DURATION"] == "60"
