"""The Grafana dashboard beside the manifests plots only what the kernel exports: every
expression names at least one ClusterCord metric, each of them one that a kernel's registry
really has, and every metric the kernel exports is on the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clustercord.metrics import NAMES, Metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "clustercord-dashboard.json"
METRIC = re.compile(r"\bclustercord_[a-z0-9_]+\b")


def _exported() -> set[str]:
    """Sample names a kernel's registry exports (counters ``_total``, histograms' series)."""
    metrics = Metrics()
    metrics.read_from(approvals=lambda: 0, audit_head=lambda: 0)
    names: set[str] = set()
    for family in metrics.registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_every_dashboard_expression_names_an_exported_metric():
    exported = _exported()
    expressions = _expressions()
    assert len(expressions) >= 10
    for expr in expressions:
        named = set(METRIC.findall(expr))
        assert named, f"names no ClusterCord metric: {expr}"
        assert named <= exported, f"not exported by the kernel: {named - exported} in {expr}"


def test_the_dashboard_shows_every_metric_family_the_kernel_exports():
    used = {name for expr in _expressions() for name in METRIC.findall(expr)}
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families >= NAMES
    assert {n for n in _exported() if not n.endswith(("_bucket", "_sum", "_count"))} | {
        "clustercord_command_duration_seconds"
    } == set(NAMES)


def test_a_misnamed_metric_would_be_caught():
    exported = _exported()
    assert not set(METRIC.findall("rate(clustercord_command_total[5m])")) <= exported
