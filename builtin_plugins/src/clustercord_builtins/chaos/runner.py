"""Running an experiment's faults and rolling them back: shared by commands, approval
decisions and the reconciling job.

The order is the point: the record (with every change it is about to make and how to undo
it) is committed as ``injecting`` first, then the change is made, then the record says
``active``. A kill at any instant leaves a record the reconciler can act on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from clustercord_builtins.chaos import drain, faults, network, node_restart, stress
from clustercord_builtins.chaos.experiments import LIVE, Experiment, Experiments
from clustercord_sdk.errors import CommandError
from clustercord_sdk.kubernetes import Kubernetes

DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
STRESS = ("cpu-stress", "memory-stress", "disk-stress")
Progress = Callable[[float, float], Awaitable[None]]


async def inject(
    kube: Kubernetes,
    experiments: Experiments,
    experiment: Experiment,
    config: Mapping[str, Any],
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
) -> Experiment:
    """Make the experiment's recorded changes; on failure undo what was done and raise.
    ``progress(done, total)`` hears of long faults (stress) as they run."""
    experiment.state = "injecting"
    experiment.started = clock()
    duration = experiment.parameters.get("duration")
    experiment.expires = experiment.started + float(duration) if duration else None
    experiments.save(experiment)  # committed before the cluster is touched
    experiments.note(
        experiment.id, f"{experiment.kind} on {_where(experiment)} by {experiment.user}"
    )
    try:
        await _apply(kube, experiments, experiment, config, progress)
    except Exception as error:
        await rollback(kube, experiments, experiment, f"injection failed: {error}", clock=clock)
        experiment.state = "failed" if experiment.state == "ended" else experiment.state
        experiment.error = str(error)
        experiments.save(experiment)
        raise
    return experiment


async def _apply(
    kube: Kubernetes,
    experiments: Experiments,
    experiment: Experiment,
    config: Mapping[str, Any],
    progress: Progress | None,
) -> None:
    params = experiment.parameters
    if experiment.kind == "pod-failure":
        (change,) = experiment.changes
        assert experiment.expires is not None
        await faults.swap_images(kube, change, experiment.id, experiment.expires)
        experiment.state = "active"
        experiments.save(experiment)
        experiments.note(
            experiment.id,
            f"images of {_where(experiment)} swapped for {change['pause_image']} "
            f"until {faults.iso(experiment.expires)}",
        )
        return
    if experiment.kind == "kill-pod":
        (change,) = experiment.changes
        started = time.monotonic()
        await faults.kill(kube, change, params.get("grace"))
        change["kill_seconds"] = round(time.monotonic() - started, 3)
        verb = "deleted" if change["kind"] == "pod-deleted" else "evicted"
        experiments.note(experiment.id, f"pod {_where(experiment)} {verb}")
        experiment.state = "active"
        experiments.save(experiment)
        timeout = float(config.get("recovery_timeout", 120))
        recovery = await faults.wait_replacement(kube, change, timeout)
        experiment.result.update(recovery)
        if recovery.get("replacement"):
            experiments.note(
                experiment.id,
                f"replacement {recovery['replacement']} Ready after "
                f"{recovery['recovery_seconds']} s",
            )
        else:
            experiments.note(experiment.id, recovery.get("note", "no replacement"))
        experiment.state = "ended"
        experiment.ended = time.time()
        experiments.save(experiment)
        return
    if experiment.kind.startswith("network-"):
        (change,) = experiment.changes
        assert experiment.expires is not None
        image = str(config.get("tc_image") or network.DEFAULT_IMAGE)
        await network.inject(
            kube, change, experiment.id, experiment.expires, float(params["duration"]), image,
            lambda: experiments.save(experiment),
        )  # fmt: skip
        experiment.state = "active"
        experiments.save(experiment)
        experiments.note(
            experiment.id,
            f"`tc qdisc replace dev {change['interface']} root {' '.join(change['qdisc'])}` in "
            f"{_where(experiment)} (container {change['container']}) until "
            f"{faults.iso(experiment.expires)}",
        )
        return
    if experiment.kind in STRESS:
        (change,) = experiment.changes
        seconds = float(params["duration"])
        command = stress.script(experiment.kind, experiment.id, seconds, params)
        experiment.state = "active"
        experiments.save(experiment)
        experiments.note(experiment.id, f"stress started in {_where(experiment)}: {command}")
        outcome = await stress.run(kube, change, command, seconds, progress)
        current = experiments.get(experiment.id)
        experiment.result.update(outcome)
        if current is not None and current.state != "active":  # stopped meanwhile
            experiment.state, experiment.ended = current.state, current.ended
            experiment.result = {**current.result, **outcome}
        else:
            experiment.state, experiment.ended = "ended", time.time()
        experiments.save(experiment)
        experiments.note(
            experiment.id,
            f"stress ended after {outcome['ran_seconds']} s: "
            + ", ".join(f"{k}={v}" for k, v in outcome.items() if k != "ran_seconds"),
        )
        return
    if experiment.kind == "drain-node":
        change = experiment.changes[0]
        assert experiment.expires is not None
        await faults.cordon(kube, change, experiment.id, experiment.expires)
        experiments.note(experiment.id, f"node {experiment.target} cordoned")
        # Still `injecting` while pods are evicted: a drain cut short by a crash is undone.
        await drain.drain(kube, experiments, experiment, set(params.get("protected", [])))
        if experiment.state != "injecting":  # stopped while draining (drain kept its outcome)
            return
        experiment.state = "active"
        experiments.save(experiment)
        result = experiment.result
        experiments.note(
            experiment.id,
            f"drained: {len(result['evicted'])} evicted, {len(result['blocked'])} blocked, "
            f"{len(result['skipped'])} skipped; uncordoned at {faults.iso(experiment.expires)}",
        )
        return
    if experiment.kind == "node-restart":
        (change,) = experiment.changes
        assert experiment.expires is not None
        image = str(config.get("node_restart_image") or node_restart.DEFAULT_IMAGE)
        experiment.state = "active"
        experiments.save(experiment)
        outcome = await node_restart.restart(
            kube, change, experiment.id, experiment.expires, image, float(params["timeout"])
        )
        experiment.result.update(outcome)
        experiments.note(
            experiment.id,
            f"node {experiment.target} NotReady for {outcome['not_ready_seconds']} s, back after "
            f"{outcome['back_after_seconds']} s; {outcome['restarted_containers']} container "
            "restart(s)",
        )
        # The reboot is over: its pod goes now (the reconciler would at expiry).
        await rollback(kube, experiments, experiment, "the node is back")
        return
    raise CommandError(f"unknown fault {experiment.kind!r}")


async def undo(kube: Kubernetes, change: dict[str, Any]) -> str:
    """Reverse one recorded change (see ``faults.undo``; network changes are ``network``'s)."""
    if change.get("kind") == "tc-qdisc":
        return await network.remove(kube, change)
    if change.get("kind") == "stress":
        return await stress.stop(kube, change)
    if change.get("kind") == "restart-pod":
        return await node_restart.remove(kube, change)
    return await faults.undo(kube, change)


async def rollback(
    kube: Kubernetes,
    experiments: Experiments,
    experiment: Experiment,
    reason: str,
    clock: Callable[[], float] = time.time,
) -> Experiment:
    """Undo every recorded change, newest first. A change that cannot be undone now leaves
    the experiment ``rollback-failed``, which the reconciler retries."""
    notes: list[str] = []
    problems: list[str] = []
    for change in reversed(experiment.changes):
        try:
            notes.append(await undo(kube, change))
        except CommandError as error:
            problems.append(f"{change.get('kind')}: {error}")
    experiment.ended = clock()
    experiment.result["rollback"] = notes
    experiment.result["stopped_because"] = reason
    if problems:
        experiment.state = "rollback-failed"
        experiment.error = "; ".join(problems)
    else:
        experiment.state = "ended"
    experiments.save(experiment)
    experiments.note(
        experiment.id, f"rolled back ({reason}): " + ("; ".join(notes) or "nothing to undo")
    )
    for problem in problems:
        experiments.note(experiment.id, f"rollback failed, will retry: {problem}")
    return experiment


async def reconcile(
    kube: Kubernetes,
    experiments: Experiments,
    *,
    at_start: bool,
    clock: Callable[[], float] = time.time,
    stale_after: float = 120.0,
) -> list[Experiment]:
    """Roll back every expired or orphaned fault: records past their expiry, injections that
    never finished (at start: all of them; later: those older than ``stale_after`` seconds,
    since one may be in flight in this process), failed rollbacks, and faults marked in the
    cluster whose record is gone or no longer live."""
    now = clock()
    done: list[Experiment] = []
    for experiment in experiments.in_states(LIVE):
        reason = None
        if experiment.state == "rollback-failed":
            reason = "retrying a failed rollback"
        elif experiment.state == "injecting" and (
            at_start
            or now - experiment.started
            > stale_after + float(experiment.parameters.get("timeout", 0))
        ):
            reason = "the bot stopped during the injection"
        elif experiment.expires is not None and experiment.expires <= now:
            reason = "expired"
        elif experiment.state == "active" and experiment.kind == "kill-pod" and at_start:
            reason = "the bot stopped while watching the recovery"
        elif experiment.state == "active" and experiment.kind == "node-restart" and at_start:
            reason = "the bot stopped while the node restarted"
        elif experiment.state == "active" and experiment.kind in STRESS and at_start:
            reason = "the bot stopped during the stress"
        if reason:
            done.append(await rollback(kube, experiments, experiment, reason, clock=clock))
    for cluster in [c.name for c in kube.clusters()]:
        await _sweep_marks(kube, experiments, cluster, now)
    return done


async def _sweep_marks(
    kube: Kubernetes, experiments: Experiments, cluster: str, now: float
) -> None:
    """Faults in the cluster that no live record covers (the database was lost or restored,
    or the record ended while the change was being made)."""
    for pod in await faults.marked_pods(kube, cluster):
        if _covered(experiments, pod, now):
            continue
        change = (
            faults.change_from_marked_pod(pod, cluster)
            or network.change_from_marked(pod, cluster)
            or node_restart.change_from_marked(pod, cluster)
        )
        if change is not None:
            text = await undo(kube, change)
            _note_orphan(experiments, pod, text)
    for node in await faults.marked_nodes(kube, cluster):
        if _covered(experiments, node, now):
            continue
        change = {"kind": "node-cordon", "cluster": cluster, "node": node["metadata"]["name"]}
        text = await undo(kube, change)
        _note_orphan(experiments, node, text)


def _covered(experiments: Experiments, obj: dict[str, Any], now: float) -> bool:
    owner = (obj["metadata"].get("labels") or {}).get(faults.LABEL, "")
    record = experiments.get(owner)
    if record is None or record.state not in LIVE:
        return False
    expires = faults.marked_expiry(obj)
    return expires is None or expires > now


def _note_orphan(experiments: Experiments, obj: dict[str, Any], text: str) -> None:
    owner = (obj["metadata"].get("labels") or {}).get(faults.LABEL, "")
    if experiments.get(owner) is not None:
        experiments.note(owner, f"orphaned fault removed: {text}")


def _where(experiment: Experiment) -> str:
    return (
        f"{experiment.namespace}/{experiment.target}" if experiment.namespace else experiment.target
    )
