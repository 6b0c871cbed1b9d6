"""Experiment files: YAML read strictly, every error with its place in the file.

::

    name: api-survives-a-lost-pod
    steady_state:                     # checked before, after every step and at the end
      - probe: healthy_replicas
        deployment: api
        namespace: prod
        expect: ">= 2"
    steps:
      - fault: pod-failure
        pod: api-7d9f-x2k
        namespace: prod
        duration: 30s
      - wait: 10s
      - assert: {probe: healthy_replicas, deployment: api, namespace: prod, expect: ">= 1"}

A fault step takes the options of the fault's command (``fault: pod-failure``: those of
``/chaos pod-failure``).
Probes: ``healthy_replicas`` (the ready replicas of a ``deployment`` or ``statefulset``),
``http`` (the status code of a GET of ``url``), ``field`` (a number in an object) and
``prometheus`` (the value of a PromQL ``query`` against the Prometheus set with ``/chaos config
prometheus`` or the probe's own ``url``; ``name: error_rate`` lets ``expect: "error_rate < 5%"``
say what it checks). ``expect`` is a condition over the probe's
value (``>= 2``, ``< 5%``, ``== 200``, ``value >= 200 and value < 300``), compiled with
RestrictedPython and refused at load if it reaches for anything but numbers, ``value``, the
probe's name and ``min``/``max``/``abs`` (``conditions``).
"""

from __future__ import annotations

import difflib
import ipaddress
import keyword
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import yaml

from clustercord_builtins.chaos import chaostoolkit
from clustercord_builtins.chaos.conditions import ConditionError, Expectation, compile_condition
from clustercord_builtins.chaos.durations import parse_duration
from clustercord_sdk.errors import UsageError

MAX_BYTES = 64 * 1024
MAX_DEPTH = 10
MAX_STEPS = 50
MAX_VALUES = 10_000
FAULTS: dict[str, set[str]] = {
    "kill-pod": {"pod", "namespace", "mode", "grace", "force", "cluster"},
    "pod-failure": {"pod", "namespace", "duration", "force", "cluster"},
    "network-delay": {
        "pod",
        "namespace",
        "latency",
        "jitter",
        "correlation",
        "duration",
        "cluster",
    },
    "network-loss": {"pod", "namespace", "percent", "duration", "cluster"},
    "network-corruption": {"pod", "namespace", "percent", "duration", "cluster"},
    "network-duplicate": {"pod", "namespace", "percent", "duration", "cluster"},
    "network-bandwidth": {"pod", "namespace", "rate", "duration", "cluster"},
    "cpu-stress": {"pod", "namespace", "percent", "workers", "duration", "container", "cluster"},
    "memory-stress": {"pod", "namespace", "size", "duration", "container", "cluster"},
    "disk-stress": {"pod", "namespace", "workers", "size", "duration", "container", "cluster"},
    "drain-node": {"node", "timeout", "duration", "cluster"},
    "node-restart": {"node", "timeout", "cluster"},
}
REQUIRED: dict[str, set[str]] = {
    "kill-pod": {"pod"},
    "pod-failure": {"pod", "duration"},
    "network-delay": {"pod", "latency"},
    "network-loss": {"pod", "percent"},
    "network-corruption": {"pod", "percent"},
    "network-duplicate": {"pod", "percent"},
    "network-bandwidth": {"pod", "rate"},
    "cpu-stress": {"pod", "percent", "duration"},
    "memory-stress": {"pod", "size", "duration"},
    "disk-stress": {"pod", "workers", "duration"},
    "drain-node": {"node"},
    "node-restart": {"node"},
}
PROBES: dict[str, tuple[set[str], set[str]]] = {
    # probe: (required keys, optional keys) besides `probe` and `expect`
    "healthy_replicas": (set(), {"deployment", "statefulset", "namespace", "cluster"}),
    "http": ({"url"}, {"timeout"}),
    "field": ({"resource", "name", "path"}, {"namespace", "cluster"}),
    "prometheus": ({"query"}, {"url", "name", "timeout"}),
}
FIELD_RESOURCES = (
    "pods", "nodes", "namespaces", "deployments.apps", "statefulsets.apps",
    "poddisruptionbudgets.policy",
)  # fmt: skip
"""What a field probe may read: what the plugin itself may read."""
MAX_QUERY = 2000
_VALUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])?)*$")


class PlanError(ValueError):
    """A file that is not a valid experiment; the message says where and why."""


@dataclass(frozen=True)
class Probe:
    kind: str
    options: dict[str, Any]
    expect: Expectation

    def describe(self) -> str:
        if self.kind == "prometheus":
            label = self.options.get("name") or str(self.options["query"])[:60]
            return f"prometheus({label}) {self.expect.text}"
        target = (
            self.options.get("deployment")
            or self.options.get("statefulset")
            or self.options.get("url")
        )
        return f"{self.kind}({target}) {self.expect.text}"


@dataclass(frozen=True)
class Step:
    kind: str
    """``fault``, ``wait`` or ``assert``."""
    fault: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    probe: Probe | None = None


@dataclass(frozen=True)
class Plan:
    name: str
    steady_state: list[Probe]
    steps: list[Step]
    failure_threshold: int = 1
    """Consecutive failed steady-state checks that end the run (auto-rollback)."""


def load(data: bytes, *, max_duration: float) -> Plan:
    if len(data) > MAX_BYTES:
        raise PlanError(
            f"the file has {len(data):,} bytes; an experiment file has at most {MAX_BYTES:,}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PlanError(f"the file is not UTF-8 text (byte {error.start})") from None
    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise PlanError(f"the file nests deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PlanError(f"the file is not YAML{where}: {problem}") from None
    _depth(document, "", 0)
    if chaostoolkit.is_chaostoolkit(document):
        try:
            document = chaostoolkit.convert(document)
        except chaostoolkit.ChaosToolkitError as error:
            raise PlanError(f"Chaos Toolkit experiment: {error}") from None
    if not isinstance(document, dict):
        raise PlanError("an experiment file is a mapping with name and steps")
    _keys(document, {"name", "steps"}, {"description", "steady_state", "failure_threshold"}, "")
    threshold = document.get("failure_threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 1 <= threshold <= 100:
        raise PlanError("failure_threshold: a whole number from 1 to 100")
    name = document["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}", name):
        raise PlanError("name: letters, digits, spaces, '.', '_' and '-', at most 63 characters")
    probes = document.get("steady_state") or []
    if not isinstance(probes, list):
        raise PlanError("steady_state: a list of probes")
    steady = [_probe(p, f"steady_state[{i}]") for i, p in enumerate(probes)]
    steps = document["steps"]
    if not isinstance(steps, list) or not steps:
        raise PlanError("steps: a list of at least one step")
    if len(steps) > MAX_STEPS:
        raise PlanError(f"steps: {len(steps)} steps; at most {MAX_STEPS}")
    parsed = [_step(s, f"steps[{i}]", max_duration) for i, s in enumerate(steps)]
    return Plan(name, steady, parsed, threshold)


def _step(raw: Any, where: str, max_duration: float) -> Step:
    if not isinstance(raw, dict) or not raw:
        raise PlanError(f"{where}: a step is a mapping with fault:, wait: or assert:")
    kinds = [k for k in ("fault", "wait", "assert") if k in raw]
    if len(kinds) != 1:
        unknown = [k for k in raw if k not in ("fault", "wait", "assert")]
        hint = _hint(unknown[0], ("fault", "wait", "assert")) if unknown and not kinds else ""
        raise PlanError(f"{where}: a step has exactly one of fault:, wait: or assert:{hint}")
    kind = kinds[0]
    if kind == "wait":
        _keys(raw, {"wait"}, set(), where)
        return Step("wait", seconds=_duration(raw["wait"], f"{where}.wait", max_duration))
    if kind == "assert":
        _keys(raw, {"assert"}, set(), where)
        return Step("assert", probe=_probe(raw["assert"], f"{where}.assert"))
    fault = raw["fault"]
    if fault not in FAULTS:
        raise PlanError(f"{where}.fault: unknown fault {fault!r}{_hint(str(fault), FAULTS)}")
    options = {k: v for k, v in raw.items() if k != "fault"}
    required, optional = REQUIRED[fault], FAULTS[fault] - REQUIRED[fault]
    if "pod" in required and "selector" in options:
        # A label selector instead of a name: the pod is picked when the step runs (pod
        # names change; a file run every week still finds its target).
        if "pod" in options:
            raise PlanError(f"{where}: pod: or selector:, not both")
        required, optional = required - {"pod"}, optional | {"selector"}
    _keys(options, required, optional, where)
    for key, value in options.items():
        if isinstance(value, (dict, list)) or value is None:
            raise PlanError(f"{where}.{key}: a single value, not {type(value).__name__}")
        if key in ("duration", "timeout"):
            _duration(value, f"{where}.{key}", max_duration)
    return Step("fault", fault=fault, options={k: _plain(v) for k, v in options.items()})


def _probe(raw: Any, where: str) -> Probe:
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: a probe is a mapping with probe: and expect:")
    kind = raw.get("probe")
    if kind not in PROBES:
        raise PlanError(
            f"{where}.probe: unknown probe {kind!r}{_hint(str(kind), PROBES)} "
            f"(probes: {', '.join(PROBES)})"
        )
    required, optional = PROBES[kind]
    _keys(raw, {"probe", "expect", *required}, optional, where)
    if kind == "healthy_replicas" and ("deployment" in raw) == ("statefulset" in raw):
        raise PlanError(f"{where}: healthy_replicas needs deployment: or statefulset: (one)")
    if kind == "field":
        if raw["resource"] not in FIELD_RESOURCES:
            raise PlanError(
                f"{where}.resource: {raw['resource']!r} is not one of {', '.join(FIELD_RESOURCES)}"
            )
        if not _PATH.match(str(raw["path"])):
            raise PlanError(f"{where}.path: a field path such as status.readyReplicas")
    if kind in ("http", "prometheus") and "url" in raw:
        problem = url_problem(str(raw["url"]))
        if problem:
            raise PlanError(f"{where}.url: {problem}")
    names: tuple[str, ...] = ("value", kind)
    if kind == "prometheus":
        names = (*names, *_prometheus(raw, where))
    return Probe(kind, {k: _plain(v) for k, v in raw.items() if k not in ("probe", "expect")},
                 parse_expectation(raw["expect"], f"{where}.expect", names))  # fmt: skip


def _prometheus(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    """A PromQL probe's checks; its ``name`` (``error_rate``), if any, for ``expect:``."""
    query = raw["query"]
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY:
        raise PlanError(f"{where}.query: a PromQL expression of 1 to {MAX_QUERY} characters")
    timeout = raw.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise PlanError(f"{where}.timeout: seconds, more than 0 and at most 60")
    if "name" not in raw:
        return ()
    name = raw["name"]
    if (
        not isinstance(name, str)
        or not _VALUE_NAME.match(name)
        or keyword.iskeyword(name)
        or (name in ("value", "min", "max", "abs"))
    ):
        raise PlanError(
            f"{where}.name: {str(name)[:40]!r} is not a name for expect: (a lower-case "
            "letter, then letters, digits and '_', e.g. error_rate; not value, min, max, abs "
            "or a Python keyword)"
        )
    return (name,)


def parse_expectation(raw: Any, where: str, names: tuple[str, ...] = ("value",)) -> Expectation:
    """``>= 2``, ``< 5%``, ``value >= 2 and value < 500``: compiled with RestrictedPython over
    the probe's value alone (``conditions``); anything else is refused with its position."""
    try:
        return compile_condition(raw, names)
    except ConditionError as error:
        raise PlanError(f"{where}: {str(raw)[:80]!r} is refused: {error}") from None


def _duration(raw: Any, where: str, max_duration: float) -> float:
    try:
        return parse_duration(raw, option=where, maximum=max_duration)
    except UsageError as error:
        raise PlanError(str(error)) from None


def _keys(raw: dict[str, Any], required: set[str], optional: set[str], where: str) -> None:
    prefix = f"{where}." if where else ""
    for key in raw:
        if not isinstance(key, str) or key not in required | optional:
            known = sorted(required | optional)
            raise PlanError(
                f"{prefix}{key}: unknown key{_hint(str(key), known)} (known: {', '.join(known)})"
            )
    for key in sorted(required):
        if key not in raw:
            raise PlanError(f"{prefix}{key}: required")


def _hint(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _depth(value: Any, where: str, depth: int, seen: list[int] | None = None) -> None:
    """Refuses deep nesting, and documents whose aliases expand to more than ``MAX_VALUES``
    values (a "billion laughs" file is small until something walks it)."""
    seen = [0] if seen is None else seen
    seen[0] += 1
    if seen[0] > MAX_VALUES:
        raise PlanError(f"the file holds more than {MAX_VALUES:,} values (aliases counted)")
    if depth > MAX_DEPTH:
        raise PlanError(f"{where or 'the file'}: nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _depth(item, f"{where}.{key}" if where else str(key), depth + 1, seen)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _depth(item, f"{where}[{index}]", depth + 1, seen)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) else str(value)


METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def url_problem(url: str) -> str | None:
    """Why an http probe may not fetch ``url``: only http(s), and never a cloud metadata
    endpoint or another link-local address (credentials live there; the probe is a GET the
    bot makes from its own network)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "an http:// or https:// address"
    return host_problem(parsed.hostname)


def host_problem(host: str) -> str | None:
    if host.lower().rstrip(".") in METADATA_HOSTS:
        return f"{host} is a cloud metadata endpoint"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.is_link_local or address.is_unspecified or address.is_multicast:
        return f"{host} is a link-local, unspecified or multicast address (metadata lives there)"
    return None
