"""Running an experiment file: the steady state checked before anything is injected, each step
in turn (faults through the very handlers of the ``/chaos`` commands, so every safety check,
rights check and record applies), the steady state after each step, and every fault the run
made rolled back at the end, or at once when the steady state breaks (auto-rollback)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from clustercord_builtins.chaos import prometheus, runner, safety
from clustercord_builtins.chaos.experiments import LIVE, Experiments
from clustercord_builtins.chaos.plan_file import FAULTS, Plan, Probe, host_problem
from clustercord_builtins.chaos.shared_reads import SharedReader, SharedReads
from clustercord_sdk import CommandContext, Reply
from clustercord_sdk.errors import CommandError
from clustercord_sdk.kubernetes import Kubernetes

Handler = Callable[[CommandContext], Awaitable[Reply]]


Targets = dict[int, tuple[str, str]]
"""A run's probes' (cluster, namespace), by ``id`` of the probe: resolved at its first check
(the user's default cluster is a database read) and kept, so a run reads where it started."""


def _target(ctx: CommandContext, probe: Probe, targets: Targets | None) -> tuple[str, str]:
    found = targets.get(id(probe)) if targets is not None else None
    if found is None:
        options = probe.options
        found = ctx.kubernetes.target(options.get("cluster"), options.get("namespace"))
        if targets is not None:
            targets[id(probe)] = found
    return found


async def observe(
    ctx: CommandContext,
    probe: Probe,
    reader: Kubernetes | SharedReader | None = None,
    targets: Targets | None = None,
) -> float | None:
    """The probe's value now (``None`` when it cannot be had: that fails any expectation).
    ``reader``: who reads the cluster (default: acting for the user, rights reviewed)."""
    options = probe.options
    kube = reader or ctx.kubernetes
    if probe.kind == "healthy_replicas":
        resource, name = (
            ("deployments.apps", options["deployment"]) if "deployment" in options
            else ("statefulsets.apps", options["statefulset"])
        )  # fmt: skip
        cluster, namespace = _target(ctx, probe, targets)
        try:
            workload = await kube.get(resource, str(name), namespace=namespace, cluster=cluster)
        except CommandError:
            return None
        return float((workload.get("status") or {}).get("readyReplicas") or 0)
    if probe.kind == "field":
        cluster, namespace = _target(ctx, probe, targets)
        try:
            found = await kube.get(
                str(options["resource"]), str(options["name"]), namespace=namespace, cluster=cluster
            )
        except CommandError:
            return None
        return field_value(found, str(options["path"]))
    if probe.kind == "http":
        timeout = float(options.get("timeout") or 5)

        def fetch() -> float | None:
            # The name may resolve to a metadata address now, whatever it was at load.
            host = urllib.parse.urlsplit(str(options["url"])).hostname or ""
            try:
                resolved = {i[4][0] for i in socket.getaddrinfo(host, None)}
            except OSError:
                return None
            if any(host_problem(address) for address in resolved):
                return None
            try:
                # http(s) only: the scheme was checked when the file was read.
                with urllib.request.urlopen(str(options["url"]), timeout=timeout) as answer:
                    return float(answer.status)
            except urllib.error.HTTPError as error:
                return float(error.code)
            except (OSError, ValueError):
                return None

        return await asyncio.to_thread(fetch)
    if probe.kind == "prometheus":
        base = str(options.get("url") or prometheus_url(ctx) or "")
        if not base:
            raise prometheus.ProbeError(
                "no Prometheus is set: an admin sets one with /chaos config prometheus url:, "
                "or give the probe url:"
            )
        return await prometheus.query(
            base, str(options["query"]), float(options.get("timeout") or 5)
        )
    raise CommandError(f"unknown probe {probe.kind!r}")


PROMETHEUS_SETTING = "prometheus_url"


def prometheus_url(ctx: CommandContext) -> str | None:
    """The Prometheus PromQL probes query: set from chat, else the plugin's configuration."""
    return Experiments(ctx.store).setting(PROMETHEUS_SETTING) or (
        str(ctx.config.get(PROMETHEUS_SETTING) or "") or None
    )


async def check(
    ctx: CommandContext,
    probes: list[Probe],
    when: str,
    observations: list[dict[str, Any]],
    reader: Kubernetes | SharedReader | None = None,
    targets: Targets | None = None,
) -> list[str]:
    """The probes that fail now; every observation is kept for the report."""
    failed = []
    for probe in probes:
        problem = None
        try:
            value = await observe(ctx, probe, reader, targets)
        except prometheus.ProbeError as error:
            # A probe that cannot observe fails its check and says why; the run goes on
            # as for any failed check (stopped, rolled back), never crashes.
            value, problem = None, str(error)
        ok = probe.expect.holds(value)
        observation = {"at": time.time(), "when": when, "probe": probe.describe(),
                       "value": value, "ok": ok}  # fmt: skip
        if problem:
            observation["error"] = problem
        observations.append(observation)
        if not ok:
            seen = f"probe error: {problem}" if problem else f"observed {value}"
            failed.append(f"{probe.describe()} ({seen})")
    return failed


class SteadyState:
    """The steady state's checks during a run: broken once ``plan.failure_threshold``
    consecutive checks failed (a single slow answer does not end a run unless asked)."""

    def __init__(
        self, plan: Plan, observations: list[dict[str, Any]], reads: SharedReads | None = None
    ) -> None:
        self.plan = plan
        self.observations = observations
        self.failures = 0
        self.targets: Targets = {}
        self.reads = reads

    async def broken(self, ctx: CommandContext, when: str) -> list[str]:
        # The checks during the run read as the plugin: the "before" check read every
        # steady-state target acting for the user (their rights reviewed; a target they may
        # not read fails it and nothing runs). Reviewing the same read every second would
        # double the API calls of every probe (the probe-overhead benchmark).
        reader = ctx.plugin.kubernetes
        if self.reads is not None:  # runs watching the same objects share their reads
            reader = self.reads.reader(reader)
        failed = await check(
            ctx, self.plan.steady_state, when, self.observations, reader, self.targets
        )
        self.failures = self.failures + 1 if failed else 0
        return failed if self.failures >= self.plan.failure_threshold else []


def check_blast_radius(ctx: CommandContext, plan: Plan) -> None:
    """Refuses the whole run, before its steady state is read or anything injected, when its
    pod faults would put more pods of a namespace under experiments than its limit: a run's
    faults stay until it ends, so they add up. A pod named twice counts once; each
    ``selector:`` step counts as one more pod (which one is picked only when it runs). Node
    faults are checked when they run (the pods on the node are known then)."""
    pods: dict[tuple[str, str], set[str]] = {}
    for index, step in enumerate(plan.steps):
        if step.kind != "fault" or "pod" not in FAULTS.get(str(step.fault), ()):
            continue
        where = ctx.kubernetes.target(step.options.get("cluster"), step.options.get("namespace"))
        pod = step.options.get("pod")
        pods.setdefault(where, set()).add(str(pod) if pod else f"selector of step {index + 1}")
    experiments = Experiments(ctx.store)
    for (cluster, namespace), names in sorted(pods.items()):
        safety.check_blast_radius(
            ctx.config, experiments, cluster, namespace, len(names),
            doing=f"experiment {plan.name} hits",
        )  # fmt: skip


SHARED_READS = SharedReads()
"""The reads the runs of this process share (they share its event loop too)."""


async def run_plan(
    ctx: CommandContext,
    plan: Plan,
    handlers: dict[str, Handler],
    run_id: str,
    reads: SharedReads | None = SHARED_READS,
) -> dict[str, Any]:
    experiments = Experiments(ctx.store)
    run: dict[str, Any] = {
        "id": run_id, "name": plan.name, "user": ctx.user_id, "started": time.time(),
        "ended": None, "verdict": None, "steps": [], "observations": [], "experiments": [],
    }  # fmt: skip
    check_blast_radius(ctx, plan)  # refused: nothing read, stored or changed
    observations = run["observations"]
    steady = SteadyState(plan, observations, reads)
    failed = await check(ctx, plan.steady_state, "before", observations, targets=steady.targets)
    if failed:
        run.update(
            verdict="not run",
            reason="the steady state does not hold before the experiment: " + "; ".join(failed),
        )
        return _finish(experiments, run)
    stop_reason = None
    for index, step in enumerate(plan.steps):
        await ctx.progress(
            index, len(plan.steps), f"{plan.name}: step {index + 1} of {len(plan.steps)}"
        )
        entry: dict[str, Any] = {"step": index + 1, "kind": step.kind, "at": time.time()}
        run["steps"].append(entry)
        if step.kind == "wait":
            entry["seconds"] = step.seconds
            failed = await _wait(ctx, steady, step.seconds)
        elif step.kind == "assert":
            assert step.probe is not None
            failed = await check(ctx, [step.probe], f"step {index + 1}", observations)
            entry.update(probe=step.probe.describe(), ok=not failed)
            if failed:
                stop_reason = f"step {index + 1}: assertion failed: {failed[0]}"
                break
        else:
            assert step.fault is not None
            entry["fault"] = step.fault
            try:
                options = await resolve_selector(ctx, step.options)
                entry["pod"] = options.get("pod")
                sub = replace(ctx, options={**options, "dry_run": False})
                reply = await handlers[step.fault](sub)
            except CommandError as error:
                entry["error"] = str(error)
                stop_reason = f"step {index + 1} ({step.fault}) failed: {error}"
                break
            experiment = (reply.data or {}).get("experiment") or {}
            entry.update(experiment=experiment.get("id"), status=experiment.get("status"))
            if experiment.get("id"):
                run["experiments"].append(experiment["id"])
            if experiment.get("status") == "awaiting-approval":
                stop_reason = (
                    f"step {index + 1} ({step.fault}) needs an admin's approval: run it on its own"
                )
                break
            failed = await steady.broken(ctx, f"after step {index + 1}")
        if failed:
            stop_reason = f"the steady state broke after step {index + 1}: " + "; ".join(failed)
            run["auto_rollback"] = True
            break
    # Every fault of the run still in place is removed, whatever happened.
    rolled = []
    for experiment_id in run["experiments"]:
        experiment = experiments.get(experiment_id)
        if experiment is not None and experiment.state in (*LIVE, "awaiting-approval"):
            if experiment.state == "awaiting-approval":
                experiment.state, experiment.ended, experiment.error = (
                    "refused",
                    time.time(),
                    f"run {run_id} ended",
                )
                experiments.save(experiment)
            else:
                await runner.rollback(
                    ctx.plugin.kubernetes, experiments, experiment, f"run {run_id} ended"
                )
            rolled.append(experiment_id)
    run["rolled_back"] = rolled
    run["rolled_back_at"] = time.time()
    after = await check(ctx, plan.steady_state, "after", observations, targets=steady.targets)
    if stop_reason:
        run.update(verdict="fail", reason=stop_reason)
    elif after:
        run.update(
            verdict="fail",
            reason="the steady state does not hold after the experiment: " + "; ".join(after),
        )
    else:
        run.update(verdict="pass", reason="the steady state held throughout")
    return _finish(experiments, run)


async def _wait(ctx: CommandContext, steady: SteadyState, seconds: float) -> list[str]:
    """Wait, checking the steady state every second: a break cuts the wait short."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return []
        await asyncio.sleep(min(1.0, left))
        if steady.plan.steady_state:
            failed = await steady.broken(ctx, "during wait")
            if failed:
                return failed


def _finish(experiments: Experiments, run: dict[str, Any]) -> dict[str, Any]:
    run["ended"] = time.time()
    experiments.save_run(run)
    return run


def field_value(obj: Any, path: str) -> float | None:
    """The number at ``path`` (``status.readyReplicas``, ``status.conditions[0].status``):
    numbers as they are, booleans and ``"True"``/``"False"`` as 1 and 0; else ``None``."""
    value = obj
    for part in path.split("."):
        name, _, index = part.partition("[")
        value = value.get(name) if isinstance(value, dict) else None
        if index:
            position = int(index.rstrip("]"))
            value = value[position] if isinstance(value, list) and position < len(value) else None
        if value is None:
            return None
    if isinstance(value, bool) or value in ("True", "False"):
        return 1.0 if value in (True, "True") else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


async def resolve_selector(ctx: CommandContext, options: dict[str, Any]) -> dict[str, Any]:
    """A step's options with ``selector:`` replaced by one Running, ready pod it selects
    (picked at random, as Chaos Mesh's ``mode: one``); a clear error when none is."""
    if "selector" not in options:
        return dict(options)
    cluster, namespace = ctx.kubernetes.target(options.get("cluster"), options.get("namespace"))
    found = await ctx.kubernetes.list(
        "pods", namespace=namespace, cluster=cluster, label_selector=str(options["selector"])
    )
    ready = [
        p["metadata"]["name"]
        for p in found
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]
    if not ready:
        raise CommandError(
            f"no running pod in {namespace} matches selector {options['selector']!r}"
        )
    chosen = {k: v for k, v in options.items() if k != "selector"}
    chosen["pod"] = random.choice(ready)
    return chosen
