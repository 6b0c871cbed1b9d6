"""Handlers of ``/chaos``: faults, their safety checks, approvals, stop, status, history.

Every fault goes the same way: options parsed strictly; the target read (acting for the
user); policy checked (protected namespace, opt-in, one experiment per target, blast radius,
PodDisruptionBudgets); the user's own rights for every call the fault makes checked with
SubjectAccessReviews; then either a dry run (the plan, nothing stored or changed), an approval
request (production), or the injection through :mod:`~clustercord_builtins.chaos.runner`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import urllib.parse
from collections import Counter
from dataclasses import replace
from typing import Any

from clustercord_builtins.chaos import (
    chart,
    drain,
    export,
    faults,
    interop,
    network,
    node_restart,
    plan_file,
    plans,
    prometheus,
    runner,
    safety,
    stress,
)
from clustercord_builtins.chaos.durations import (
    format_duration,
    parse_duration,
    parse_latency,
    parse_percent,
)
from clustercord_builtins.chaos.experiments import (
    EVERY_NAMESPACE,
    LIVE,
    Experiment,
    Experiments,
    new_id,
)
from clustercord_sdk import Card, CommandContext, Field, File, Invocation, Reply, Table
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_sdk.kubernetes import default_container

RECONCILE_JOB = "chaos-reconcile"
COLORS = {
    "ended": "green",
    "active": "orange",
    "injecting": "orange",
    "failed": "red",
    "rollback-failed": "red",
    "awaiting-approval": "blue",
    "refused": "grey",
}


# -- faults -------------------------------------------------------------------------------
async def kill_pod(ctx: CommandContext) -> Reply:
    mode = ctx.options.get("mode") or "delete"
    if mode not in ("delete", "evict"):
        raise UsageError(f"mode: {mode!r} is not one of delete, evict")
    grace = ctx.options.get("grace")
    if grace is not None and int(grace) < 0:
        raise UsageError(f"grace: {grace} is negative; give seconds, 0 or more")
    cluster, namespace, pod = await _pod_target(ctx)
    change = {
        "kind": "pod-deleted" if mode == "delete" else "pod-evicted",
        "cluster": cluster,
        "namespace": namespace,
        "pod": pod["metadata"]["name"],
        "uid": pod["metadata"].get("uid"),
        "owner": faults.controller_of(pod),
    }
    if mode == "delete":
        await _check_budgets(ctx, pod, cluster)  # an eviction meets them at the API server
        checks = [("delete", "pods")]
    else:
        checks = [("create", "pods/eviction")]
    plan = {
        "changes": [
            f"{'delete' if mode == 'delete' else 'evict (PodDisruptionBudgets honoured)'} "
            f"pod {namespace}/{pod['metadata']['name']}"
            + (f" with a grace period of {grace} s" if grace is not None else "")
        ],
        "rollback": [
            "none needed: "
            + (
                f"its {change['owner']['kind']} {change['owner']['name']} replaces it"
                if change["owner"]
                else "the pod has no controller and will NOT come back"
            )
        ],
    }
    parameters = {"mode": mode, "grace": grace}
    return await _run(ctx, "kill-pod", cluster, namespace, pod, [change], parameters, checks, plan)


async def pod_failure(ctx: CommandContext) -> Reply:
    duration = parse_duration(
        ctx.options["duration"], option="duration", maximum=_max_duration(ctx)
    )
    cluster, namespace, pod = await _pod_target(ctx)
    await _check_budgets(ctx, pod, cluster)
    pause = str(ctx.config.get("pause_image") or runner.DEFAULT_PAUSE_IMAGE)
    change = faults.image_swap(pod, pause, cluster)
    originals = ", ".join(f"{n}={i}" for n, i in change["originals"].items())
    plan = {
        "changes": [
            f"set the image of every container of {namespace}/{pod['metadata']['name']} "
            f"to {pause} for {format_duration(duration)} (originals: {originals}), "
            "marked with the experiment and its expiry"
        ],
        "rollback": [f"restore {originals} at expiry, on /chaos stop, or at the bot's next start"],
    }
    parameters = {"duration": duration}
    checks = [("patch", "pods")]
    return await _run(
        ctx, "pod-failure", cluster, namespace, pod, [change], parameters, checks, plan
    )


async def network_delay(ctx: CommandContext) -> Reply:
    latency = parse_latency(ctx.options["latency"], option="latency")
    if latency <= 0:
        raise UsageError(f"latency: {ctx.options['latency']!r} adds no delay; give e.g. 100ms")
    jitter = parse_latency(ctx.options.get("jitter") or 0, option="jitter")
    correlation = ctx.options.get("correlation")
    if correlation is not None:
        correlation = parse_percent(correlation, option="correlation", allow_zero=True)
        if not jitter:
            raise UsageError("correlation: only with a jitter (it correlates the jitter)")
    params = {"latency_ms": latency, "jitter_ms": jitter, "correlation": correlation}
    return await _network(ctx, "network-delay", params)


async def network_loss(ctx: CommandContext) -> Reply:
    percent = parse_percent(ctx.options["percent"], option="percent")
    return await _network(ctx, "network-loss", {"percent": percent})


async def network_corruption(ctx: CommandContext) -> Reply:
    percent = parse_percent(ctx.options["percent"], option="percent")
    return await _network(ctx, "network-corruption", {"percent": percent})


async def network_duplicate(ctx: CommandContext) -> Reply:
    percent = parse_percent(ctx.options["percent"], option="percent")
    return await _network(ctx, "network-duplicate", {"percent": percent})


async def network_bandwidth(ctx: CommandContext) -> Reply:
    return await _network(
        ctx, "network-bandwidth", {"rate": network.parse_rate(ctx.options["rate"])}
    )


async def _network(ctx: CommandContext, kind: str, params: dict[str, Any]) -> Reply:
    duration = parse_duration(
        ctx.options.get("duration") or "5m", option="duration", maximum=_max_duration(ctx)
    )
    qdisc = network.qdisc_for(kind, params)
    cluster, namespace, pod = await _pod_target(ctx)
    ns = await ctx.plugin.kubernetes.get("namespaces", namespace, cluster=cluster)
    network.check_pod(pod, ns)  # hostNetwork, Pod Security: refused before anything is tried
    experiment_id = new_id()
    change = network.change_for(pod, cluster, experiment_id, qdisc)
    image = str(ctx.config.get("tc_image") or network.DEFAULT_IMAGE)
    name = f"{namespace}/{pod['metadata']['name']}"
    plan = {
        "changes": [
            f"add the ephemeral container {change['container']} ({image}, NET_ADMIN) to {name}; "
            f"its command removes the fault after {format_duration(duration)}",
            f"run `tc qdisc replace dev <the pod's interface> root {' '.join(qdisc)}` in it",
        ],
        "rollback": [
            "`tc qdisc del dev <interface> root` through exec at expiry, on /chaos stop "
            "or at the bot's next start; the container's own timer removes it too"
        ],
    }
    checks = [("patch", "pods/ephemeralcontainers"), ("create", "pods/exec"), ("patch", "pods")]
    parameters = {**params, "duration": duration}
    return await _run(
        ctx, kind, cluster, namespace, pod, [change], parameters, checks, plan, experiment_id
    )


async def cpu_stress(ctx: CommandContext) -> Reply:
    percent = parse_percent(ctx.options["percent"], option="percent")
    workers = ctx.options.get("workers")
    params = {"percent": percent, "workers": stress.parse_workers(workers) if workers else None}
    return await _stress(ctx, "cpu-stress", params)


async def memory_stress(ctx: CommandContext) -> Reply:
    size = stress.parse_size(ctx.options["size"])
    return await _stress(ctx, "memory-stress", {"size_bytes": size})


async def disk_stress(ctx: CommandContext) -> Reply:
    workers = stress.parse_workers(ctx.options["workers"])
    size = stress.parse_size(ctx.options.get("size") or "64Mi")
    return await _stress(ctx, "disk-stress", {"workers": workers, "size_mb": max(1, size >> 20)})


async def _stress(ctx: CommandContext, kind: str, params: dict[str, Any]) -> Reply:
    duration = parse_duration(
        ctx.options["duration"], option="duration", maximum=_max_duration(ctx)
    )
    cluster, namespace, pod = await _pod_target(ctx)
    chosen, others = default_container(pod)
    container = ctx.options.get("container") or chosen
    if container not in [chosen, *others]:
        raise CommandError(
            f"pod {namespace}/{pod['metadata']['name']} has no container {container!r} "
            f"(it has {', '.join(c for c in [chosen, *others] if c)})"
        )
    experiment_id = new_id()
    change = stress.change_for(pod, cluster, str(container), experiment_id)
    parameters = {**params, "duration": duration}
    command = stress.script(kind, experiment_id, duration, parameters)
    plan = {
        "changes": [
            f"run in container {container} of {namespace}/{pod['metadata']['name']} for "
            f"{format_duration(duration)}: sh -c {command!r}"
        ],
        "rollback": [
            "none needed: every worker runs under `timeout` and ends on time even without the "
            "bot; /chaos stop kills them at once through exec"
        ],
    }
    checks = [("create", "pods/exec")]
    return await _run(
        ctx, kind, cluster, namespace, pod, [change], parameters, checks, plan, experiment_id
    )


async def drain_node(ctx: CommandContext) -> Reply:
    limit = _max_duration(ctx)
    timeout = parse_duration(ctx.options.get("timeout") or "5m", option="timeout", maximum=limit)
    duration = parse_duration(
        ctx.options.get("duration") or "10m", option="duration", maximum=limit
    )
    if timeout > duration:
        raise UsageError(
            f"timeout: {format_duration(timeout)} is longer than the drain lasts "
            f"(duration: {format_duration(duration)})"
        )
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))
    node = await safety.find_node(ctx.kubernetes, ctx.options["node"], cluster)
    name = node["metadata"]["name"]
    experiments = Experiments(ctx.store)
    safety.check_target_free(experiments, cluster, "", name)
    protected = safety.protected_namespaces(ctx.config, experiments)
    on_node = await drain.pods_on(ctx.plugin.kubernetes, name, cluster)
    to_evict, skipped = [], []
    for pod in on_node:
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        reason = drain.skip_reason(pod, protected)
        (skipped if reason else to_evict).append(f"{where} ({reason})" if reason else where)
    for namespace, count in sorted(Counter(w.split("/")[0] for w in to_evict).items()):
        safety.check_blast_radius(
            ctx.config, experiments, cluster, namespace, count, doing=f"draining {name} evicts"
        )
    # The user's own rights: cordon the node, evict each pod (in its namespace).
    await ctx.kubernetes.check("patch", "nodes", name=name, cluster=cluster)
    for namespace in sorted({w.split("/")[0] for w in to_evict}):
        await ctx.kubernetes.check("create", "pods/eviction", namespace=namespace, cluster=cluster)
    production = cluster in safety._words(ctx.config.get("production_clusters")) or any(
        n in safety._words(ctx.config.get("production_namespaces"))
        for n in {w.split("/")[0] for w in to_evict}
    )
    plan = {
        "changes": [
            f"cordon node {name} for {format_duration(duration)}",
            *[f"evict {w}" for w in to_evict],
            *[f"skip {w}" for w in skipped],
        ],
        "rollback": [
            f"uncordon {name} at expiry, on /chaos stop, or at the bot's next start after expiry"
        ],
    }
    if ctx.options.get("dry_run"):
        return _dry_run_reply("drain-node", cluster, "", name, plan, production)
    experiment = Experiment(
        id=new_id(),
        kind="drain-node",
        cluster=cluster,
        namespace="",
        target=name,
        parameters={"timeout": timeout, "duration": duration, "protected": sorted(protected)},
        user=ctx.user_id,
        state="pending",
        started=time.time(),
        changes=[faults.cordon_change(node, cluster)],
    )
    if _needs_approval(ctx, "drain-node", production):
        return _ask_approval(ctx, experiments, experiment, plan)
    try:
        await runner.inject(ctx.kubernetes, experiments, experiment, ctx.config)
    except CommandError as error:
        raise CommandError(f"drain-node {name} failed and was rolled back: {error}") from None
    return report(experiments, experiment)


async def node_restart_command(ctx: CommandContext) -> Reply:
    """A privileged pod reboots the node. Always behind an admin's approval: a reboot stops
    every pod of the node at once, protected namespaces' too, and nothing rolls it back."""
    limit = _max_duration(ctx)
    timeout = parse_duration(ctx.options.get("timeout") or "10m", option="timeout", maximum=limit)
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))
    node = await safety.find_node(ctx.kubernetes, ctx.options["node"], cluster)
    name = node["metadata"]["name"]
    experiments = Experiments(ctx.store)
    safety.check_target_free(experiments, cluster, "", name)
    namespace = str(ctx.config.get("node_restart_namespace") or "default")
    image = str(ctx.config.get("node_restart_image") or node_restart.DEFAULT_IMAGE)
    # The user's own rights: what a reboot amounts to (patching the node) and the pod.
    await ctx.kubernetes.check("patch", "nodes", name=name, cluster=cluster)
    await ctx.kubernetes.check("create", "pods", namespace=namespace, cluster=cluster)
    on_node = await drain.pods_on(ctx.plugin.kubernetes, name, cluster)
    experiment_id = new_id()
    change = node_restart.restart_change(name, cluster, namespace, experiment_id)
    plan = {
        "changes": [
            f"create privileged pod {namespace}/{change['pod']} on {name} running "
            f"`{' '.join(node_restart.COMMAND + node_restart.REBOOT)}` ({image})",
            f"node {name} reboots: {len(on_node)} pod(s) on it restart",
        ],
        "rollback": [
            f"delete {namespace}/{change['pod']} once the node is back (or after "
            f"{format_duration(timeout)}); a reboot itself cannot be undone"
        ],
    }
    if ctx.options.get("dry_run"):
        # The server's own dry run: admission (Pod Security, quotas) judges the pod.
        await ctx.plugin.kubernetes.create(
            "pods",
            node_restart.manifest(change, experiment_id, time.time() + timeout, image),
            namespace=namespace,
            cluster=cluster,
            dry_run=True,
        )
        return _dry_run_reply("node-restart", cluster, "", name, plan, True)
    experiment = Experiment(
        id=experiment_id,
        kind="node-restart",
        cluster=cluster,
        namespace="",
        target=name,
        parameters={"timeout": timeout, "duration": timeout, "pod_namespace": namespace},
        user=ctx.user_id,
        state="pending",
        started=time.time(),
        changes=[change],
    )
    return _ask_approval(ctx, experiments, experiment, plan, why="a node restart")


async def _run(
    ctx: CommandContext,
    kind: str,
    cluster: str,
    namespace: str,
    pod: dict[str, Any],
    changes: list[dict[str, Any]],
    parameters: dict[str, Any],
    checks: list[tuple[str, str]],
    plan: dict[str, list[str]],
    experiment_id: str | None = None,
) -> Reply:
    name = pod["metadata"]["name"]
    experiments = Experiments(ctx.store)
    production = await safety.check_namespace(
        ctx.plugin.kubernetes, ctx.config, experiments, cluster, namespace
    )
    safety.check_target_free(experiments, cluster, namespace, name)
    safety.check_blast_radius(ctx.config, experiments, cluster, namespace, adding=1)
    for verb, resource in checks:  # the user's own rights, before anything is stored
        await ctx.kubernetes.check(verb, resource, name=name, namespace=namespace, cluster=cluster)
    if ctx.options.get("dry_run"):
        return _dry_run_reply(kind, cluster, namespace, name, plan, production)
    experiment = Experiment(
        id=experiment_id or new_id(),
        kind=kind,
        cluster=cluster,
        namespace=namespace,
        target=name,
        parameters=parameters,
        user=ctx.user_id,
        state="pending",
        started=time.time(),
        changes=changes,
    )
    if _needs_approval(ctx, kind, production):
        return _ask_approval(ctx, experiments, experiment, plan)

    async def progress(done: float, total: float) -> None:
        label = f"{kind} on {namespace}/{name}: {format_duration(done)} of {format_duration(total)}"
        await ctx.progress(done, total, label)

    try:
        await runner.inject(ctx.kubernetes, experiments, experiment, ctx.config, progress=progress)
    except CommandError as error:
        raise CommandError(
            f"{kind} on {namespace}/{name} failed and was rolled back: {error}"
        ) from None
    return report(experiments, experiment)


def _needs_approval(ctx: CommandContext, kind: str, production: bool) -> bool:
    """Production targets need an admin's approval unless the fault type is exempted
    (``no_approval_for``); the fault types of ``approval_for`` need it everywhere."""
    if kind in safety._words(ctx.config.get("approval_for")):
        return True
    return production and kind not in safety._words(ctx.config.get("no_approval_for"))


def _ask_approval(
    ctx: CommandContext,
    experiments: Experiments,
    experiment: Experiment,
    plan: dict[str, list[str]],
    why: str = "production",
) -> Reply:
    where = (
        f"{experiment.namespace}/{experiment.target}" if experiment.namespace else experiment.target
    )
    approval = ctx.plugin.approvals.request(
        f"chaos {experiment.kind}",
        f"{experiment.kind} on {where} ({why})",
        requested_by=ctx.user_id,
        details={"experiment": experiment.id, "changes": plan["changes"]},
        expires_in=float(ctx.config.get("approval_timeout", 3600)),
    )
    experiment.state = "awaiting-approval"
    experiment.approval = approval.id
    experiments.add(experiment)
    experiments.note(experiment.id, f"approval {approval.id} requested by {ctx.user_id}")
    return Reply(
        text=(
            f"⏳ {where + ' is in production' if why == 'production' else why + ' on ' + where}: "
            f"{experiment.kind} waits for an admin's approval "
            f"({approval.id}, /approval approve id:{approval.id}). Experiment `{experiment.id}`."
        ),
        data={"experiment": {**experiment.summary(), "approval": approval.id}},
    )


async def approval_decided(approval: Any, ctx: Any) -> None:
    """An admin's decision on a production experiment: run it as the plugin (the user's own
    rights were checked when it was asked for), or mark it refused. A GameDay's approved run
    starts here too. Either runs in the background: a fault may watch a recovery or last
    minutes, longer than a hook may take."""
    experiments = Experiments(ctx.store)
    schedule_id = (approval.details or {}).get("schedule")
    if schedule_id:
        found = experiments.schedule(schedule_id)
        if found is not None and approval.status == "approved":
            background(run_scheduled(found, approval, ctx), ctx)
        return
    experiment_id = (approval.details or {}).get("experiment")
    experiment = experiments.get(experiment_id) if experiment_id else None
    if experiment is None or experiment.state != "awaiting-approval":
        return
    if approval.status != "approved":
        experiment.state = "refused"
        experiment.ended = time.time()
        experiment.error = f"approval {approval.status}"
        experiments.save(experiment)
        experiments.note(experiment.id, f"approval {approval.id} {approval.status}")
        return
    experiments.note(experiment.id, f"approved by {approval.decided_by}")

    async def inject() -> None:
        try:
            await runner.inject(ctx.kubernetes, experiments, experiment, ctx.config)
        except CommandError as error:
            ctx.log.warning("chaos experiment %s failed after approval: %s", experiment.id, error)
            return
        await ctx.notifier.notify(report(experiments, experiment), user=experiment.user)

    background(inject(), ctx)


_BACKGROUND: set[asyncio.Task[Any]] = set()
"""Work started by approvals, kept referenced until done (the loop holds tasks weakly)."""


def background(work: Any, ctx: Any) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        _BACKGROUND.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            ctx.log.warning("chaos: background work failed: %s", finished.exception())

    task.add_done_callback(done)


# -- experiment files --------------------------------------------------------------------
async def run_experiment(ctx: CommandContext) -> Reply:
    upload = ctx.options["file"]
    try:
        plan = plan_file.load(upload.data, max_duration=_max_duration(ctx))
    except plan_file.PlanError as error:
        raise UsageError(f"{upload.name}: {error}") from None
    if ctx.options.get("dry_run"):
        return await _plan_dry_run(ctx, plan)
    run = await plans.run_plan(ctx, plan, HANDLERS, "run-" + secrets.token_hex(4))
    return run_report(run)


async def _plan_dry_run(ctx: CommandContext, plan: plan_file.Plan) -> Reply:
    """Each fault step's own dry run (targets, rights and safety checked), nothing changed."""
    plans.check_blast_radius(ctx, plan)  # the faults together, as the run would
    steps: list[dict[str, Any]] = []
    lines = []
    for index, step in enumerate(plan.steps, 1):
        if step.kind == "fault":
            assert step.fault is not None
            options = await plans.resolve_selector(ctx, step.options)
            sub = replace(ctx, options={**options, "dry_run": True})
            planned = (await HANDLERS[step.fault](sub)).data["experiment"]
            steps.append({"step": index, **planned})
            lines.append(f"{index}. {step.fault}: " + "; ".join(planned["changes"]))
        elif step.kind == "wait":
            steps.append({"step": index, "kind": "wait", "seconds": step.seconds})
            lines.append(f"{index}. wait {format_duration(step.seconds)}")
        else:
            assert step.probe is not None
            steps.append({"step": index, "kind": "assert", "probe": step.probe.describe()})
            lines.append(f"{index}. assert {step.probe.describe()}")
    steady = [p.describe() for p in plan.steady_state]
    card = Card(
        title=f"🧪 Dry run: {plan.name} (nothing was changed)",
        fields=[
            Field("Steady state", "\n".join(steady) or "(none)"),
            Field("Steps", "\n".join(lines)[:1000]),
        ],
        color="blue",
    )
    data = {"experiment": {"id": None, "status": "dry-run", "name": plan.name, "dry_run": True,
                           "targets": [t for s in steps for t in s.get("targets", [])],
                           "faults": [s["kind"] for s in steps if s.get("faults")],
                           "steps": steps, "steady_state": steady}}  # fmt: skip
    return Reply(cards=[card], data=data)


def run_report(run: dict[str, Any]) -> Reply:
    icon = {"pass": "✅", "fail": "❌"}.get(run["verdict"], "⏸️")
    steps = []
    for step in run["steps"]:
        text = step.get("fault") or step["kind"]
        if step.get("experiment"):
            text += f" → {step['experiment']} ({step.get('status')})"
        if step.get("probe"):
            text += f" {step['probe']}: {'ok' if step.get('ok') else 'FAILED'}"
        if step.get("error"):
            text += f": {step['error']}"
        steps.append(f"{step['step']}. {text}")
    seen = [
        f"{o['when']}: {o['probe']} = "
        + (f"error: {o['error']}" if o.get("error") else str(o["value"]))
        + f" {'✓' if o['ok'] else '✗'}"
        for o in run["observations"]
    ]
    fields = [
        Field("Verdict", run["verdict"], inline=True),
        Field("Why", run.get("reason") or ""),
        Field("Steps", "\n".join(steps) or "(none run)"),
        Field("Rolled back", ", ".join(run.get("rolled_back", [])) or "nothing was left"),
    ]
    if seen:
        fields.append(Field("Observations", "\n".join(seen)[-1000:]))
    faults_at = [s["at"] for s in run["steps"] if s.get("fault") and s.get("at")]
    window = (min(faults_at), run.get("rolled_back_at") or run["ended"]) if faults_at else None
    png = chart.run_chart(run["observations"], window)
    files = [File(f"{run['id']}.png", png, "probes over time", "image/png")] if png else []
    card = Card(
        title=f"{icon} Experiment {run['name']} ({run['id']})",
        fields=fields,
        color="green" if run["verdict"] == "pass" else "red",
        image=files[0].name if files else None,
    )
    summary = {
        "id": run["id"],
        "status": run["verdict"],
        "name": run["name"],
        "targets": [],
        "faults": [s["fault"] for s in run["steps"] if s.get("fault")],
        "experiments": run["experiments"],
        "dry_run": False,
        "run": run,
    }
    return Reply(cards=[card], files=files, data={"experiment": summary})


# -- GameDays: experiment files on a schedule, each run approved by an admin ---------------
def schedule(ctx: CommandContext) -> Reply:
    upload = ctx.options["file"]
    try:
        plan = plan_file.load(upload.data, max_duration=_max_duration(ctx))
    except plan_file.PlanError as error:
        raise UsageError(f"{upload.name}: {error}") from None
    schedule_id = "gd-" + secrets.token_hex(4)
    try:
        job = ctx.plugin.scheduler.cron(
            ctx.options["cron"], "commands:scheduled_run", job_id=f"chaos-{schedule_id}",
            payload={"schedule": schedule_id}, missed="skip",
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(f"cron: {error}") from None
    Experiments(ctx.store).add_schedule(
        {"id": schedule_id, "name": plan.name, "user": ctx.user_id, "cron": job.schedule,
         "file": upload.data.decode("utf-8"), "created": time.time()}
    )  # fmt: skip
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(job.next_run))
    return Reply(
        text=(
            f"📅 {plan.name} is scheduled ({job.schedule}) as `{schedule_id}`; next run {when}. "
            "Each run waits for an admin's approval, then runs with your rights."
        ),
        data={"schedule": {"id": schedule_id, "name": plan.name, "cron": job.schedule,
                           "next_run": job.next_run}},
    )  # fmt: skip


def schedules(ctx: CommandContext) -> Reply:
    rows = [
        [s["id"], s["name"], s["cron"], f"<@{s['user']}>"]
        for s in Experiments(ctx.store).schedules()
    ]
    table = Table(["ID", "EXPERIMENT", "CRON", "BY"], rows, title="Scheduled experiments")
    return Reply(tables=[table], data={"schedules": [r[0] for r in rows]})


def unschedule(ctx: CommandContext) -> Reply:
    experiments = Experiments(ctx.store)
    found = experiments.schedule(ctx.options["id"])
    if found is None:
        raise CommandError(
            f"no scheduled experiment {ctx.options['id']!r} (see /chaos config schedules)"
        )
    if found["user"] != ctx.user_id and not ctx.invocation.admin:
        raise PermissionDenied(
            f"{found['id']} is {found['user']}'s; only they or an admin remove it"
        )
    ctx.plugin.scheduler.cancel(f"chaos-{found['id']}")
    experiments.remove_schedule(found["id"])
    return Reply(text=f"{found['name']} ({found['id']}) is no longer scheduled.")


def scheduled_run(job: Any, ctx: Any) -> None:
    """The cron job of a GameDay: ask an admin to approve this run."""
    found = Experiments(ctx.store).schedule(job.payload.get("schedule", ""))
    if found is None:
        return
    ctx.approvals.request(
        "chaos scheduled experiment",
        f"scheduled experiment {found['name']} ({found['id']}) of {found['user']}",
        requested_by=found["user"],
        details={"schedule": found["id"]},
        expires_in=float(ctx.config.get("approval_timeout", 3600)),
    )


async def run_scheduled(found: dict[str, Any], approval: Any, ctx: Any) -> dict[str, Any]:
    """An approved GameDay run, with the rights of the user who scheduled it (each call is
    checked against that identity, as when they run it themselves)."""
    invocation = Invocation(
        user_id=found["user"], command=("chaos", "experiment", "run"), frontend="scheduler"
    )
    command = CommandContext(invocation=invocation, options={}, plugin=ctx)
    plan = plan_file.load(
        found["file"].encode(), max_duration=float(ctx.config.get("max_duration", 3600))
    )
    try:
        run = await plans.run_plan(command, plan, HANDLERS, "run-" + secrets.token_hex(4))
    except CommandError as error:  # refused before anything ran (blast radius)
        text = f"Scheduled experiment {found['name']} ({found['id']}) did not run: {error}"
        await ctx.notifier.notify(Reply(text=text), user=found["user"])
        return {"id": None, "name": found["name"], "verdict": "not run", "reason": str(error)}
    await ctx.notifier.notify(run_report(run), user=found["user"])
    return run


# -- managing experiments ------------------------------------------------------------------
async def stop(ctx: CommandContext) -> Reply:
    experiments = Experiments(ctx.store)
    wanted = ctx.options.get("experiment")
    if bool(wanted) == bool(ctx.options.get("all")):
        raise UsageError("give experiment: (an id) or all:true")
    if wanted:
        experiment = experiments.get(wanted)
        if experiment is None:
            raise CommandError(f"no experiment {wanted!r} (see /chaos list)")
        _owned(ctx, experiment)
        if experiment.state not in (*LIVE, "awaiting-approval"):
            raise CommandError(f"experiment {wanted} is {experiment.state}: nothing to stop")
        targets = [experiment]
    else:
        targets = [
            e
            for e in experiments.in_states((*LIVE, "awaiting-approval"))
            if ctx.invocation.admin or e.user == ctx.user_id
        ]
    stopped = []
    for experiment in targets:
        if experiment.state == "awaiting-approval":
            experiment.state, experiment.ended = "refused", time.time()
            experiment.error = f"stopped by {ctx.user_id} before approval"
            experiments.save(experiment)
            experiments.note(experiment.id, experiment.error)
        else:
            await runner.rollback(
                ctx.plugin.kubernetes, experiments, experiment, f"stopped by {ctx.user_id}"
            )
        stopped.append(experiment)
    if not stopped:
        return Reply(text="No running experiments to stop.", data={"stopped": []})
    rows = [
        [
            e.id,
            e.kind,
            f"{e.namespace}/{e.target}",
            e.state,
            "; ".join(e.result.get("rollback", [])),
        ]
        for e in stopped
    ]
    return Reply(
        text=f"🛑 Stopped {len(stopped)} experiment(s).",
        tables=[Table(["ID", "FAULT", "TARGET", "STATE", "ROLLBACK"], rows)],
        data={
            "stopped": [e.summary() for e in stopped],
            "experiment": stopped[0].summary() if len(stopped) == 1 else None,
        },
    )


def status(ctx: CommandContext) -> Reply:
    experiments = Experiments(ctx.store)
    wanted = ctx.options.get("experiment")
    if wanted and wanted.startswith("run-"):
        run = experiments.run(wanted)
        if run is None:
            raise CommandError(f"no experiment run {wanted!r}")
        return run_report(run)
    if wanted:
        experiment = experiments.get(wanted)
        if experiment is None:
            raise CommandError(f"no experiment {wanted!r} (see /chaos list)")
        return report(experiments, experiment)
    live = experiments.in_states((*LIVE, "awaiting-approval"))
    if not live:
        return Reply(text="No experiments running.", data={"experiments": []})
    now = time.time()
    rows = [
        [
            e.id,
            e.kind,
            f"{e.namespace}/{e.target}",
            e.state,
            f"<@{e.user}>",
            format_duration(max(0.0, e.expires - now)) if e.expires else "",
        ]
        for e in live
    ]
    return Reply(
        tables=[
            Table(
                ["ID", "FAULT", "TARGET", "STATE", "BY", "LEFT"], rows, title="Running experiments"
            )
        ],
        data={"experiments": [e.summary() for e in live]},
    )


def export_report(ctx: CommandContext) -> Reply:
    """An experiment's (or a run's) report as a file: JSON for tools, Markdown for people."""
    wanted = ctx.options["experiment"]
    shown = status(replace(ctx, options={"experiment": wanted}))
    experiment = shown.data["experiment"]
    fmt = ctx.options.get("format") or "markdown"
    if fmt == "json":
        body = json.dumps(experiment, indent=2, sort_keys=True, default=str)
        file = File(f"{wanted}.json", body.encode(), f"chaos report {wanted}", "application/json")
    elif fmt == "markdown":
        card = shown.cards[0]
        lines = [f"# {card.title}", ""]
        for item in card.fields:
            value = item.value.replace("`", "")
            lines += [f"## {item.name}", "", value if item.inline else _bullets(value), ""]
        body = "\n".join(lines)
        file = File(f"{wanted}.md", body.encode(), f"chaos report {wanted}", "text/markdown")
    else:
        raise UsageError(f"format: {fmt!r} is not one of json, markdown")
    return Reply(text=f"Report of {wanted} ({fmt}).", files=[file], data={"experiment": experiment})


def export_experiment(ctx: CommandContext) -> Reply:
    """A native experiment as Chaos Mesh or Litmus objects (YAML), to apply with kubectl."""
    wanted = ctx.options["experiment"]
    experiment = Experiments(ctx.store).get(wanted)
    if experiment is None:
        raise CommandError(f"no experiment {wanted!r} (see /chaos list)")
    fmt = ctx.options["format"]
    if fmt == "chaos-mesh":
        objects = export.to_chaos_mesh(experiment)
    elif fmt == "litmus":
        objects = export.to_litmus(experiment)
    else:
        raise UsageError(f"format: {fmt!r} is not one of chaos-mesh, litmus")
    project = "chaos-mesh" if fmt == "chaos-mesh" else "litmus"
    for obj in objects:  # what we hand out passes their own schemas
        try:
            interop.validate(project, obj)
        except interop.InteropError as error:
            raise CommandError(f"the export does not fit {fmt}'s schema: {error}") from None
    text = export.as_yaml(objects)
    file = File(f"{wanted}-{fmt}.yaml", text.encode(), f"{experiment.kind} as {fmt}", "text/yaml")
    kinds = ", ".join(o["kind"] for o in objects)
    return Reply(
        text=(
            f"{experiment.kind} `{wanted}` as {fmt} ({kinds}), valid against the {fmt} "
            f"{interop.VERSIONS[project]} CRDs; apply it with kubectl apply -f, or "
            f"/chaos {'mesh experiment' if project == 'chaos-mesh' else 'litmus workflow'} file:."
        ),
        files=[file],
        data={"objects": objects},
    )


async def mesh_experiment(ctx: CommandContext) -> Reply:
    return await _interop_apply(ctx, "chaos-mesh")


async def litmus_workflow(ctx: CommandContext) -> Reply:
    return await _interop_apply(ctx, "litmus")


async def _interop_apply(ctx: CommandContext, project: str) -> Reply:
    """Validate the file's objects against the vendored CRDs; apply them (server-side, with
    the user's rights) where the cluster has those CRDs, or say how to install them."""
    upload = ctx.options["file"]
    try:
        objects = interop.read_objects(upload.data)
        for index, obj in enumerate(objects):
            if project == "litmus" and obj.get("kind") == "Workflow":
                interop.validate_litmus_workflow(obj)
            else:
                interop.validate(project, obj, f"document {index + 1}" if len(objects) > 1 else "")
    except interop.InteropError as error:
        raise UsageError(f"{upload.name}: {error}") from None
    version = interop.VERSIONS[project]
    cluster, _ = ctx.kubernetes.target(ctx.options.get("cluster"))
    names = [f"{o['kind']}/{(o.get('metadata') or {}).get('name', '?')}" for o in objects]
    missing = []
    for obj in objects:
        resource, crd = interop.resource_of(project, obj)
        try:
            await ctx.plugin.kubernetes.get(interop.CRD_RESOURCE, crd, cluster=cluster)
        except CommandError as error:
            if not faults.is_not_found(error):
                raise
            missing.append(crd)
    summary = {"project": project, "version": version, "objects": names, "cluster": cluster}
    if missing:
        return Reply(
            text=(
                f"✅ {', '.join(names)}: valid against the {project} {version} CRDs. Not "
                f"applied: cluster {cluster} has no {', '.join(sorted(set(missing)))} "
                f"({project} is not installed there; an admin installs it)."
            ),
            data={"interop": {**summary, "valid": True, "applied": False, "missing": missing}},
        )
    dry_run = bool(ctx.options.get("dry_run"))
    applied = []
    for obj in objects:
        resource, _ = interop.resource_of(project, obj)
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        body = {**obj, "metadata": {**(obj.get("metadata") or {}), "namespace": namespace}}
        await ctx.kubernetes.apply(
            resource, body, field_manager="clustercord-chaos", namespace=namespace,
            cluster=cluster, dry_run=dry_run,
        )  # fmt: skip
        applied.append(f"{namespace}/{body['kind']}/{body['metadata'].get('name')}")
    verb = "would be applied (server dry run)" if dry_run else "applied"
    return Reply(
        text=f"✅ valid against the {project} {version} CRDs and {verb}: {', '.join(applied)}",
        data={"interop": {**summary, "valid": True, "applied": not dry_run, "dry_run": dry_run}},
    )


def _bullets(text: str) -> str:
    return "\n".join(f"- {line}" for line in text.splitlines() if line.strip()) or "-"


def history(ctx: CommandContext) -> Reply:
    found = Experiments(ctx.store).recent(
        int(ctx.options.get("limit") or 25), ctx.options.get("namespace")
    )
    rows = [
        [
            e.id,
            e.kind,
            f"{e.namespace}/{e.target}",
            e.state,
            f"<@{e.user}>",
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.started)),
        ]
        for e in found
    ]
    return Reply(
        tables=[
            Table(
                ["ID", "FAULT", "TARGET", "STATE", "BY", "STARTED (UTC)"],
                rows,
                title=f"{len(rows)} experiments",
            )
        ],
        data={"experiments": [e.summary() for e in found]},
    )


def protect(ctx: CommandContext) -> Reply:
    namespace = ctx.options["namespace"]
    Experiments(ctx.store).protect(namespace, ctx.user_id)
    return Reply(
        text=f"🛡️ Namespace {namespace} is protected from chaos experiments.",
        data={"protected": sorted(safety.protected_namespaces(ctx.config, Experiments(ctx.store)))},
    )


def unprotect(ctx: CommandContext) -> Reply:
    namespace = ctx.options["namespace"]
    if namespace in safety.DEFAULT_PROTECTED or namespace in safety._words(
        ctx.config.get("protected_namespaces")
    ):
        raise CommandError(
            f"namespace {namespace} is protected by the plugin's configuration "
            "(protected_namespaces, or one of kube-system and clustercord-system), not by "
            "/chaos config protect"
        )
    if not Experiments(ctx.store).unprotect(namespace):
        raise CommandError(f"namespace {namespace} was not protected with /chaos config protect")
    return Reply(text=f"Namespace {namespace} is no longer protected.")


NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
MAX_PODS_CEILING = 1000
"""As the plugin's ``max_pods`` setting: beyond it a limit would only hide a typo."""


def blast_radius(ctx: CommandContext) -> Reply:
    """``/chaos config blast-radius max_pods: [namespace:]``: the most pods of a namespace
    (without ``namespace:``, of every namespace without its own) under experiments at once;
    ``clear:true`` drops the limit set here, so the default applies again. ``max_pods:0`` is
    refused: keeping experiments out of a namespace is ``/chaos config protect``."""
    namespace = str(ctx.options.get("namespace") or "").strip()
    if namespace and not NAMESPACE_NAME.fullmatch(namespace):
        raise UsageError(
            f"namespace: {namespace!r} is not a namespace name (lower-case letters, digits "
            "and '-', at most 63)"
        )
    key = namespace or EVERY_NAMESPACE
    where = f"namespace {namespace}" if namespace else "every namespace"
    experiments = Experiments(ctx.store)
    wanted = ctx.options.get("max_pods")
    if ctx.options.get("clear"):
        if wanted is not None:
            raise UsageError("give max_pods: or clear:true, not both")
        dropped = experiments.clear_max_pods(key)
        if dropped is None:
            raise CommandError(
                f"no blast radius was set for {where} with /chaos config blast-radius"
            )
        limit, source = safety.blast_limit(ctx.config, experiments, namespace)
        return Reply(
            text=f"Blast radius of {where}: {dropped} dropped; the limit is {limit} ({source}).",
            data={"blast_radius": {"namespace": namespace or None, "max_pods": None,
                                   "was": dropped, "effective": limit}},
        )  # fmt: skip
    if wanted is None:
        raise UsageError("give max_pods: (a whole number, 1 or more) or clear:true")
    limit = _whole_number(wanted)
    if not 0 < limit <= MAX_PODS_CEILING:
        raise UsageError(
            f"max_pods: {wanted} is not between 1 and {MAX_PODS_CEILING:,} (to keep experiments "
            "out of a namespace: /chaos config protect; to drop a limit: clear:true)"
        )
    before = experiments.set_max_pods(key, limit, ctx.user_id)
    was = f" (was {before})" if before is not None else ""
    return Reply(
        text=(
            f"🎯 Blast radius of {where}: at most {limit} pod(s) under experiments at once{was}."
        ),
        data={"blast_radius": {"namespace": namespace or None, "max_pods": limit, "was": before}},
    )


def _whole_number(value: Any) -> int:
    """``max_pods:`` as typed (the kernel checks the manifest's type; a hand-made call or an
    isolated plugin's caller might not have)."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise UsageError(f"max_pods: {value!r} is not a whole number")
    try:
        return int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
    except ValueError:
        raise UsageError(f"max_pods: {value!r} is not a whole number") from None


def _limits_shown(ctx: CommandContext, experiments: Experiments) -> str:
    chosen = experiments.max_pods()
    if EVERY_NAMESPACE in chosen:
        shown = f"{chosen[EVERY_NAMESPACE]} (set from chat)"
    else:
        shown = f"{ctx.config.get('max_pods', safety.DEFAULT_MAX_PODS)} (max_pods setting)"
    own = [f"{n}: {v}" for n, v in chosen.items() if n != EVERY_NAMESPACE]
    return shown + (f"; {', '.join(own)}" if own else "")


async def set_prometheus(ctx: CommandContext) -> Reply:
    """The Prometheus that PromQL probes query. Checked as an address (http(s), no metadata
    endpoint, no credentials in it: they would be shown by /chaos config show), then asked
    ``vector(1)``: an unreachable one is kept, with a warning (it may not be up yet)."""
    url = str(ctx.options["url"]).strip().rstrip("/")
    problem = plan_file.url_problem(url)
    parsed = urllib.parse.urlsplit(url)
    if problem is None and (parsed.username or parsed.password):
        problem = "no user or password in the address (it is shown to everyone)"
    if problem is None and (parsed.query or parsed.fragment):
        problem = "Prometheus' own address, without ?... or #..."
    if problem:
        raise UsageError(f"url: {problem}")
    Experiments(ctx.store).set_setting(plans.PROMETHEUS_SETTING, url, ctx.user_id)
    try:
        await prometheus.query(url, "vector(1)", 5.0)
        state = "it answers"
    except prometheus.ProbeError as error:
        state = f"⚠️ it does not answer yet: {error}"
    return Reply(
        text=f"PromQL probes query {url} ({state}).",
        data={"prometheus": {"url": url, "answers": state == "it answers"}},
    )


def show_config(ctx: CommandContext) -> Reply:
    experiments = Experiments(ctx.store)
    rows = [
        [
            "protected namespaces",
            ", ".join(sorted(safety.protected_namespaces(ctx.config, experiments))),
        ],
        ["opt-in mode", "on" if ctx.config.get("opt_in") else "off"],
        ["max pods under experiments per namespace", _limits_shown(ctx, experiments)],
        ["max duration", format_duration(_max_duration(ctx))],
        ["pause image", str(ctx.config.get("pause_image") or runner.DEFAULT_PAUSE_IMAGE)],
        ["Prometheus (PromQL probes)", plans.prometheus_url(ctx) or "(none)"],
    ]
    return Reply(tables=[Table(["SETTING", "VALUE"], rows, title="Chaos safety")])


async def reconcile_job(ctx: Any) -> None:
    """Every few seconds: roll back what expired or was orphaned."""
    done = await runner.reconcile(ctx.kubernetes, Experiments(ctx.store), at_start=False)
    for experiment in done:
        ctx.log.info(
            "chaos: rolled back %s (%s)", experiment.id, experiment.result.get("stopped_because")
        )


# -- reports -----------------------------------------------------------------------------
def report(experiments: Experiments, experiment: Experiment) -> Reply:
    timeline = experiments.timeline(experiment.id)
    start = timeline[0][0] if timeline else experiment.started
    lines = [f"`+{at - start:6.2f}s` {text}" for at, text in timeline]
    fields = [
        Field("Fault", experiment.kind, inline=True),
        Field(
            "Target",
            f"{experiment.namespace}/{experiment.target} ({experiment.cluster})",
            inline=True,
        ),
        Field("State", experiment.state, inline=True),
        Field("What changed", "\n".join(_describe(c) for c in experiment.changes) or "nothing"),
    ]
    if experiment.expires:
        fields.append(Field("Expires", faults.iso(experiment.expires), inline=True))
    if experiment.result.get("recovery_seconds") is not None:
        fields.append(
            Field(
                "Recovery time",
                f"{experiment.result['recovery_seconds']} s "
                f"(replacement {experiment.result['replacement']} Ready)",
                inline=True,
            )
        )
    elif experiment.result.get("note"):
        fields.append(Field("Recovery", experiment.result["note"], inline=True))
    for key, label in (("evicted", "Evicted"), ("blocked", "Blocked"), ("skipped", "Skipped")):
        if experiment.result.get(key):
            fields.append(Field(label, "\n".join(experiment.result[key])[:1000]))
    if experiment.result.get("cpu_seconds") is not None:
        fields.append(
            Field(
                "CPU used",
                f"{experiment.result['cpu_seconds']} s in {experiment.result.get('ran_seconds')} s",
                inline=True,
            )
        )
    if experiment.result.get("restarts") or experiment.result.get("evicted"):
        fate = experiment.result.get("last_termination") or (
            "evicted" if experiment.result.get("evicted") else "restarted"
        )
        fields.append(Field("Impact", f"the container {fate} during the stress", inline=True))
    if experiment.result.get("rollback"):
        fields.append(Field("Rollback", "\n".join(experiment.result["rollback"])))
    if experiment.error:
        fields.append(Field("Problem", experiment.error))
    fields.append(Field("Timeline", "\n".join(lines)[-1000:] or "(empty)"))
    card = Card(
        title=f"💥 Chaos experiment {experiment.id}",
        fields=fields,
        color=COLORS.get(experiment.state),
        footer=f"by {experiment.user} · /chaos stop experiment:{experiment.id}"
        if experiment.state in LIVE
        else f"by {experiment.user}",
    )
    summary = experiment.summary()
    summary["timeline"] = [{"at": at, "text": text} for at, text in timeline]
    return Reply(cards=[card], data={"experiment": summary})


def _describe(change: dict[str, Any]) -> str:
    kind = change.get("kind")
    if kind == "pod-image":
        return "images " + ", ".join(
            f"{n}: {i} → {change['pause_image']}" for n, i in change["originals"].items()
        )
    if kind == "pod-deleted":
        return f"pod {change['namespace']}/{change['pod']} deleted"
    if kind == "pod-evicted":
        return f"pod {change['namespace']}/{change['pod']} evicted"
    if kind == "node-cordon":
        return f"node {change['node']} cordoned"
    if kind == "stress":
        return f"stress workers in {change['namespace']}/{change['pod']} ({change['container']})"
    if kind == "tc-qdisc":
        return (
            f"`tc qdisc replace dev {change.get('interface') or '?'} root "
            f"{' '.join(change['qdisc'])}` in {change['namespace']}/{change['pod']} "
            f"(ephemeral container {change['container']})"
        )
    return str(kind)


def _dry_run_reply(
    kind: str, cluster: str, namespace: str, name: str, plan: dict[str, list[str]], production: bool
) -> Reply:
    target = f"{namespace}/{name}" if namespace else name
    fields = [
        Field("Target", f"{target} ({cluster})"),
        Field("Would change", "\n".join(plan["changes"])[:1000]),
        Field("Rollback", "\n".join(plan["rollback"])),
    ]
    if production:
        fields.append(Field("Approval", "production: an admin's approval would be asked first"))
    data = {
        "experiment": {
            "id": None,
            "status": "dry-run",
            "kind": kind,
            "targets": [target],
            "faults": [kind],
            "dry_run": True,
            "changes": plan["changes"],
            "rollback": plan["rollback"],
            "approval_needed": production,
        }
    }
    return Reply(
        cards=[
            Card(title=f"🧪 Dry run: {kind} (nothing was changed)", fields=fields, color="blue")
        ],
        data=data,
    )


# -- helpers ---------------------------------------------------------------------------
async def _pod_target(ctx: CommandContext) -> tuple[str, str, dict[str, Any]]:
    cluster, namespace = ctx.kubernetes.target(
        ctx.options.get("cluster"), ctx.options.get("namespace")
    )
    pod = await safety.find_pod(ctx.kubernetes, ctx.options["pod"], namespace, cluster)
    if pod["metadata"].get("deletionTimestamp"):
        raise CommandError(f"pod {namespace}/{ctx.options['pod']} is already being deleted")
    return cluster, namespace, pod


async def _check_budgets(ctx: CommandContext, pod: dict[str, Any], cluster: str) -> None:
    if ctx.options.get("force"):
        if not ctx.invocation.admin:
            raise PermissionDenied("force: only admins may override a PodDisruptionBudget")
        return
    await safety.check_budgets(ctx.plugin.kubernetes, pod, cluster)


def _max_duration(ctx: CommandContext) -> float:
    return float(ctx.config.get("max_duration", 3600))


def _owned(ctx: CommandContext, experiment: Experiment) -> None:
    if experiment.user != ctx.user_id and not ctx.invocation.admin:
        raise PermissionDenied(
            f"experiment {experiment.id} is {experiment.user}'s; only they or an admin may stop it"
        )


HANDLERS = {
    "kill-pod": kill_pod,
    "pod-failure": pod_failure,
    "network-delay": network_delay,
    "network-loss": network_loss,
    "network-corruption": network_corruption,
    "network-duplicate": network_duplicate,
    "network-bandwidth": network_bandwidth,
    "cpu-stress": cpu_stress,
    "memory-stress": memory_stress,
    "disk-stress": disk_stress,
    "drain-node": drain_node,
    "node-restart": node_restart_command,
}
"""The fault commands by name, as experiment files name them."""
