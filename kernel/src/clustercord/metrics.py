"""The kernel's Prometheus metrics: one :class:`Metrics` (and its own registry) per kernel.

Nothing here touches ``prometheus_client``'s global default registry: two kernels in one
process (the tests run many) each count their own, and a plugin importing the library
cannot add to or read ours. Counters are moved by the parts that see the events (the door,
the Kubernetes service, the watchers, the isolation host, the Discord front end); gauges
that a query answers (approvals pending, the audit head) are read at scrape time only, so
a command pays for none of them.

The names (``NAMES``) are what the Grafana dashboard in ``deploy/grafana`` plots; a test
checks that every expression there names one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
"""Seconds: most commands answer in milliseconds, a deploy waiting for pods in minutes."""

NAMES = frozenset(
    {
        "clustercord_commands_total",
        "clustercord_command_duration_seconds",
        "clustercord_discord_rate_limits_total",
        "clustercord_kubernetes_calls_total",
        "clustercord_watch_reconnects_total",
        "clustercord_plugin_crashes_total",
        "clustercord_plugin_restarts_total",
        "clustercord_approvals_pending",
        "clustercord_audit_head_seq",
    }
)
"""Every metric family the kernel exports (histograms add ``_bucket``, ``_sum``, ``_count``)."""


class _Readings(Collector):
    """Gauges read at scrape time from the kernel's own state."""

    def __init__(self, approvals: Callable[[], int], audit_head: Callable[[], int]) -> None:
        self._approvals = approvals
        self._audit_head = audit_head

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "clustercord_approvals_pending",
            "Approval requests waiting for a decision",
            value=self._approvals(),
        )
        yield GaugeMetricFamily(
            "clustercord_audit_head_seq",
            "Sequence number of the newest audit row (it only grows)",
            value=self._audit_head(),
        )


class Metrics:
    """The counters and histograms of one kernel, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.commands = Counter(
            "clustercord_commands",
            "Calls through the door (commands, components, forms, jobs, routes) by outcome",
            ["plugin", "kind", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "clustercord_command_duration_seconds",
            "Seconds a call through the door took, policy check to audit row",
            ["plugin", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.discord_rate_limits = Counter(
            "clustercord_discord_rate_limits",
            "Answers 429 (rate limited) from Discord's API",
            ["scope"],
            registry=registry,
        )
        self.kubernetes_calls = Counter(
            "clustercord_kubernetes_calls",
            "Kubernetes API requests by HTTP verb and status (error: no answer)",
            ["cluster", "verb", "status"],
            registry=registry,
        )
        self.watch_reconnects = Counter(
            "clustercord_watch_reconnects",
            "Cluster watches that broke and were started again",
            ["cluster", "resource"],
            registry=registry,
        )
        self.plugin_crashes = Counter(
            "clustercord_plugin_crashes",
            "Isolated plugins' processes that ended or failed a call",
            ["plugin"],
            registry=registry,
        )
        self.plugin_restarts = Counter(
            "clustercord_plugin_restarts",
            "Isolated plugins' processes started again after a crash",
            ["plugin"],
            registry=registry,
        )

    def read_from(self, *, approvals: Callable[[], int], audit_head: Callable[[], int]) -> None:
        """The gauges the kernel answers at scrape time (once, at start)."""
        self.registry.register(_Readings(approvals, audit_head))

    # -- what the parts report ------------------------------------------------------------
    def call_done(self, plugin: str | None, kind: str, outcome: str, seconds: float) -> None:
        plugin = plugin or "-"
        self.commands.labels(plugin, kind, outcome).inc()
        self.latency.labels(plugin, kind).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _RateLimitWatch(logging.Filter):
    """Counts hikari's rate-limit warnings. hikari retries a 429 itself and tells only its
    log (``hikari.rest``: "rate limited on ..."), so the log is where we can see them."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self._counter = counter

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("rate limited"):
            scope = "global" if "global bucket" in record.msg else "route"
            self._counter.labels(scope).inc()
        return True  # counted, never hidden


def watch_discord_rate_limits(metrics: Metrics) -> Callable[[], None]:
    """Count Discord's 429s in ``metrics`` while a Discord front end runs; returns the
    function that stops counting."""
    logger = logging.getLogger("hikari.rest")
    watch = _RateLimitWatch(metrics.discord_rate_limits)
    logger.addFilter(watch)
    if not logger.isEnabledFor(logging.WARNING):
        logger.setLevel(logging.WARNING)  # a filter only sees records the logger lets through
    return lambda: logger.removeFilter(watch)
