"""Chaos Toolkit experiments (``title``, ``steady-state-hypothesis``, ``method``), read into
the plugin's own experiment format. Only what maps onto the plugin's faults and probes is
accepted; a Python or process provider is never run (the file names the function; nothing of
the file is code), and anything else is refused with its place and the supported list.

- ``chaosk8s.pod.actions.terminate_pods`` (``label_selector``, ``ns``, ``grace_period``) →
  ``kill-pod`` with a selector; ``chaosk8s.node.actions.drain_nodes`` (``name``,
  ``timeout``) → ``drain-node``;
- ``http`` providers (``url``, ``timeout``) with an integer ``tolerance`` → ``http`` probes
  expecting that status, in the steady-state hypothesis or as method probes (asserts);
- ``chaosprometheus.probes.query`` (``query``) with a ``range`` tolerance (``[low, high]``) →
  ``prometheus`` probes expecting ``low <= value <= high``, against the experiment's
  ``configuration.prometheus_base_url`` (as chaosprometheus reads it) or the Prometheus set with
  ``/chaos config prometheus``;
- ``pauses: {before, after}`` → waits.
"""

from __future__ import annotations

import re
from typing import Any

SUPPORTED = (
    "chaosk8s.pod.actions.terminate_pods, chaosk8s.node.actions.drain_nodes, http probes, "
    "chaosprometheus.probes.query"
)
PROMQL = "chaosprometheus.probes.query"


class ChaosToolkitError(ValueError):
    pass


def is_chaostoolkit(document: Any) -> bool:
    return isinstance(document, dict) and "method" in document and "title" in document


def convert(document: dict[str, Any]) -> dict[str, Any]:
    """The plugin's format for a Chaos Toolkit experiment."""
    unknown = set(document) - {
        "version", "title", "description", "tags", "contributions", "configuration",
        "steady-state-hypothesis", "method", "rollbacks", "extensions", "secrets", "runtime",
    }  # fmt: skip
    if unknown:
        raise ChaosToolkitError(f"{sorted(unknown)[0]}: not a Chaos Toolkit key")
    if document.get("rollbacks"):
        # The plugin rolls back every fault it made itself; a rollback action would be code.
        raise ChaosToolkitError(
            "rollbacks: not run (every fault the plugin makes is rolled back by the plugin)"
        )
    title = re.sub(r"[^A-Za-z0-9 ._-]", "-", str(document["title"])).strip(" ._-")[:63] or "chaos"
    hypothesis = document.get("steady-state-hypothesis") or {}
    if not isinstance(hypothesis, dict):
        raise ChaosToolkitError("steady-state-hypothesis: a mapping with probes")
    configuration = document.get("configuration") or {}
    base = configuration.get("prometheus_base_url") if isinstance(configuration, dict) else None
    steady = [
        _probe(p, f"steady-state-hypothesis.probes[{i}]", base)
        for i, p in enumerate(hypothesis.get("probes") or [])
    ]
    method = document["method"]
    if not isinstance(method, list) or not method:
        raise ChaosToolkitError("method: a list of activities")
    steps: list[dict[str, Any]] = []
    for index, activity in enumerate(method):
        where = f"method[{index}]"
        if not isinstance(activity, dict):
            raise ChaosToolkitError(f"{where}: an activity is a mapping")
        pauses = activity.get("pauses") or {}
        if pauses.get("before"):
            steps.append({"wait": f"{_seconds(pauses['before'], where)}s"})
        if activity.get("type") == "probe":
            steps.append({"assert": _probe(activity, where, base)})
        elif activity.get("type") == "action":
            steps.append(_action(activity, where))
        else:
            raise ChaosToolkitError(f"{where}.type: action or probe")
        if pauses.get("after"):
            steps.append({"wait": f"{_seconds(pauses['after'], where)}s"})
    return {"name": title, "steady_state": steady, "steps": steps}


def _action(activity: dict[str, Any], where: str) -> dict[str, Any]:
    provider = activity.get("provider") or {}
    function = f"{provider.get('module')}.{provider.get('func')}"
    arguments = provider.get("arguments") or {}
    if provider.get("type") != "python":
        raise ChaosToolkitError(
            f"{where}.provider: a {provider.get('type')!r} provider is not run "
            f"(supported: {SUPPORTED})"
        )
    if function == "chaosk8s.pod.actions.terminate_pods":
        if not arguments.get("label_selector"):
            raise ChaosToolkitError(f"{where}: terminate_pods needs label_selector")
        step = {"fault": "kill-pod", "selector": arguments["label_selector"],
                "namespace": arguments.get("ns", "default")}  # fmt: skip
        grace = arguments.get("grace_period", -1)
        if isinstance(grace, int) and grace >= 0:
            step["grace"] = grace
        return step
    if function == "chaosk8s.node.actions.drain_nodes":
        if not arguments.get("name"):
            raise ChaosToolkitError(f"{where}: drain_nodes needs name (one node)")
        step = {"fault": "drain-node", "node": arguments["name"]}
        if arguments.get("timeout"):
            step["timeout"] = f"{_seconds(arguments['timeout'], where)}s"
        return step
    raise ChaosToolkitError(f"{where}: {function} is not supported (supported: {SUPPORTED})")


def _probe(activity: Any, where: str, base: Any = None) -> dict[str, Any]:
    if not isinstance(activity, dict):
        raise ChaosToolkitError(f"{where}: a probe is a mapping")
    provider = activity.get("provider") or {}
    if f"{provider.get('module')}.{provider.get('func')}" == PROMQL:
        return _promql(activity, provider, where, base)
    if provider.get("type") != "http":
        raise ChaosToolkitError(
            f"{where}.provider: only http probes are read (supported: {SUPPORTED})"
        )
    tolerance = activity.get("tolerance", 200)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool):
        raise ChaosToolkitError(f"{where}.tolerance: an HTTP status code (a whole number)")
    probe = {"probe": "http", "url": provider.get("url"), "expect": f"== {tolerance}"}
    if provider.get("timeout"):
        probe["timeout"] = provider["timeout"]
    return probe


def _promql(
    activity: dict[str, Any], provider: dict[str, Any], where: str, base: Any
) -> dict[str, Any]:
    """A chaosprometheus query (never run as Python: its query is read) with a range
    tolerance, as the plugin's ``prometheus`` probe."""
    query = (provider.get("arguments") or {}).get("query")
    if not isinstance(query, str) or not query.strip():
        raise ChaosToolkitError(f"{where}.provider.arguments.query: a PromQL expression")
    tolerance = activity.get("tolerance")
    bounds = tolerance.get("range") if isinstance(tolerance, dict) else None
    if (
        not isinstance(tolerance, dict)
        or tolerance.get("type") != "range"
        or not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    ):
        raise ChaosToolkitError(
            f"{where}.tolerance: a range tolerance ({{type: range, range: [low, high]}}) "
            "over the query's one value"
        )
    probe = {"probe": "prometheus", "query": query,
             "expect": f"value >= {bounds[0]} and value <= {bounds[1]}"}  # fmt: skip
    if base:
        probe["url"] = str(base)
    return probe


def _seconds(value: Any, where: str) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ChaosToolkitError(f"{where}: a pause or timeout is a number of seconds")
    return max(1, round(value))
