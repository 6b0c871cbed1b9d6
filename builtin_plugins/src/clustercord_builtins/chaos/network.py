"""Network faults: a queueing discipline (``tc qdisc``: netem for delay, loss, corruption and
duplication; tbf for bandwidth) on the pod's own interface, set from an ephemeral container
that is granted ``NET_ADMIN`` and shares the pod's network namespace. No agent, no node access.

The ephemeral container's own command is a guard: it sleeps for the fault's duration and then
removes the pod's root qdiscs (at once on SIGTERM), so on a real cluster the fault ends on time
even if the bot is gone. The qdisc itself is set, and removed early, through ``pods/exec`` into
that container. Ephemeral containers cannot be removed; the guard ends on its own.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from clustercord_builtins.chaos import faults
from clustercord_sdk.errors import CommandError, PermissionDenied, UsageError
from clustercord_sdk.kubernetes import Kubernetes

QDISC = "chaos.clustercord.io/qdisc"
"""Pod annotation: the ephemeral container and interface of a network fault (JSON)."""
DEFAULT_IMAGE = "ghcr.io/nicolaka/netshoot:v0.13"
EXEC_TIMEOUT = 30.0
FORBIDDING_LEVELS = ("baseline", "restricted")
"""Pod Security levels that forbid adding NET_ADMIN (only ``privileged`` allows it)."""

_EVERY_ROOT_QDISC_REMOVED = (
    'for d in /sys/class/net/*; do tc qdisc del dev "${d##*/}" root 2>/dev/null; done'
)
FIND_INTERFACE = (
    # The interface of the default route, else the first that is not loopback.
    "i=$(ip -o route show default 2>/dev/null | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n1);"
    ' if [ -z "$i" ]; then for d in /sys/class/net/*; do n=${d##*/};'
    ' [ "$n" = lo ] || { i=$n; break; }; done; fi; echo "$i"'
)
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")


def guard(seconds: float) -> str:
    """The ephemeral container's command: remove the fault at the end, or when stopped."""
    cleanup = _EVERY_ROOT_QDISC_REMOVED
    return f"trap '{cleanup}; exit 0' TERM INT; sleep {int(seconds) + 1} & wait $!; {cleanup}; true"


def qdisc_for(kind: str, params: dict[str, Any]) -> list[str]:
    """The ``tc qdisc replace dev IF root ...`` arguments after ``root``."""
    if kind == "network-delay":
        args = ["netem", "delay", f"{params['latency_ms']:g}ms"]
        if params.get("jitter_ms"):
            args.append(f"{params['jitter_ms']:g}ms")
            if params.get("correlation"):
                args.append(f"{params['correlation']:g}%")
        return args
    if kind in ("network-loss", "network-corruption", "network-duplicate"):
        word = {"network-loss": "loss", "network-corruption": "corrupt"}.get(kind, "duplicate")
        return ["netem", word, f"{params['percent']:g}%"]
    if kind == "network-bandwidth":
        return ["tbf", "rate", params["rate"], "burst", "32kbit", "latency", "400ms"]
    raise UsageError(f"unknown network fault {kind!r}")


def parse_rate(value: object) -> str:
    raw = str(value).strip().lower()
    match = _RATE.match(raw)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"rate: {value!r} is not a rate (e.g. 1mbit, 500kbit, 10mbps)")
    return raw


def refusal(pod: dict[str, Any], namespace: dict[str, Any]) -> str | None:
    """Why a network fault cannot be put on this pod, before anything is tried."""
    name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    if (pod.get("spec") or {}).get("hostNetwork"):
        return (
            f"pod {name} uses its node's network (hostNetwork): shaping its traffic would "
            "shape the whole node's"
        )
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    level = labels.get("pod-security.kubernetes.io/enforce")
    if level in FORBIDDING_LEVELS:
        return (
            f"namespace {pod['metadata']['namespace']} enforces the Pod Security level "
            f"{level!r}, which forbids the NET_ADMIN capability the fault's ephemeral "
            "container needs"
        )
    if (pod.get("status") or {}).get("phase") != "Running":
        return f"pod {name} is not running"
    return None


def change_for(
    pod: dict[str, Any], cluster: str, experiment: str, qdisc: list[str]
) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "kind": "tc-qdisc",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "uid": meta.get("uid"),
        "container": f"chaos-{experiment}",
        "target_container": pod["spec"]["containers"][0]["name"],
        "interface": None,
        "qdisc": qdisc,
    }


async def inject(
    kube: Kubernetes,
    change: dict[str, Any],
    experiment: str,
    expires: float,
    seconds: float,
    image: str,
    save: Any,
) -> None:
    """Add the guard container, mark the pod, find its interface, set the qdisc. ``save``
    commits the change's record (the interface, once known) before the qdisc is set."""
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    pod = await kube.get("pods", change["pod"], **where)
    container = {
        "name": change["container"],
        "image": image,
        "command": ["sh", "-c", guard(seconds)],
        "targetContainerName": change["target_container"],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
    }
    if (pod.get("spec") or {}).get("ephemeralContainers"):
        ops = [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": container}]
    else:
        ops = [{"op": "add", "path": "/spec/ephemeralContainers", "value": [container]}]
    await kube.patch("pods/ephemeralcontainers", change["pod"], ops, patch_type="json", **where)
    await _mark(kube, change, experiment, expires)
    await _wait_running(kube, change)
    code, out, err = await run_in(kube, change, ["sh", "-c", FIND_INTERFACE])
    interface = out.strip().splitlines()[-1] if out.strip() else ""
    if code != 0 or not interface:
        raise CommandError(f"could not find the pod's network interface: {err.strip() or out}")
    change["interface"] = interface
    save()
    await _mark(kube, change, experiment, expires)
    argv = ["tc", "qdisc", "replace", "dev", interface, "root", *change["qdisc"]]
    code, out, err = await run_in(kube, change, argv)
    if code != 0:
        raise CommandError(explain_tc(argv, err or out))


def explain_tc(argv: list[str], said: str) -> str:
    said = said.strip()
    if "netem" in argv and ("unknown" in said.lower() or "no such file" in said.lower()):
        return (
            "the node's kernel has no netem queueing discipline (module sch_netem), so "
            f"`{' '.join(argv)}` cannot run (tc said: {said})"
        )
    return f"`{' '.join(argv)}` failed: {said}"


async def remove(kube: Kubernetes, change: dict[str, Any]) -> str:
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    name = f"{change['namespace']}/{change['pod']}"
    try:
        pod = await kube.get("pods", change["pod"], **where)
    except CommandError as error:
        if faults.is_not_found(error):
            return f"pod {name} is gone: its qdisc went with it"
        raise
    if change.get("uid") and pod["metadata"].get("uid") != change["uid"]:
        return f"pod {name} was replaced: its qdisc went with the old one"
    done = f"pod {name}: no qdisc was set"
    names = [c.get("name") for c in (pod.get("spec") or {}).get("ephemeralContainers") or []]
    if change.get("interface") and change["container"] in names:
        argv = ["tc", "qdisc", "del", "dev", change["interface"], "root"]
        try:
            code, out, err = await run_in(kube, change, argv)
        except CommandError as error:
            if "not running" not in str(error) and "terminated" not in str(error):
                raise
            code, err = 0, ""  # the guard container has ended: it removed the qdisc itself
        said = (err or out).lower()
        if code != 0 and not (
            "no such file" in said or "handle of zero" in said or "invalid handle" in said
        ):
            raise CommandError(f"`{' '.join(argv)}` failed: {(err or out).strip()}")
        done = f"pod {name}: qdisc removed from {change['interface']}"
    meta = pod["metadata"]
    if faults.LABEL in (meta.get("labels") or {}) or QDISC in (meta.get("annotations") or {}):
        body = {
            "metadata": {
                "labels": {faults.LABEL: None},
                "annotations": {faults.EXPIRES: None, QDISC: None},
            }
        }
        await kube.patch("pods", change["pod"], body, **where)
    return done


def change_from_marked(pod: dict[str, Any], cluster: str) -> dict[str, Any] | None:
    raw = (pod["metadata"].get("annotations") or {}).get(QDISC)
    try:
        mark = json.loads(raw) if raw else None
    except ValueError:
        mark = None
    if not isinstance(mark, dict):
        return None
    meta = pod["metadata"]
    return {
        "kind": "tc-qdisc",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "uid": meta.get("uid"),
        "container": str(mark.get("container")),
        "interface": mark.get("interface"),
        "qdisc": [],
    }


async def _mark(kube: Kubernetes, change: dict[str, Any], experiment: str, expires: float) -> None:
    mark = json.dumps({"container": change["container"], "interface": change["interface"]})
    annotations = {faults.EXPIRES: faults.iso(expires), QDISC: mark}
    body = {"metadata": {"labels": {faults.LABEL: experiment}, "annotations": annotations}}
    await kube.patch(
        "pods", change["pod"], body, namespace=change["namespace"], cluster=change["cluster"]
    )


async def _wait_running(kube: Kubernetes, change: dict[str, Any], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pod = await kube.get(
            "pods", change["pod"], namespace=change["namespace"], cluster=change["cluster"]
        )
        for status in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
            if status.get("name") == change["container"]:
                state = status.get("state") or {}
                if "running" in state:
                    return
                if "terminated" in state:
                    raise CommandError(
                        f"the fault's container {change['container']} ended: {state}"
                    )
        if loop.time() > deadline:
            raise CommandError(
                f"the fault's container {change['container']} did not start in {timeout:g} s"
            )
        await asyncio.sleep(0.2)


async def run_in(
    kube: Kubernetes, change: dict[str, Any], argv: list[str]
) -> tuple[int | None, str, str]:
    """Run ``argv`` in the fault's container; its exit code, stdout and stderr."""

    async def run() -> tuple[int | None, str, str]:
        session = await kube.exec(
            change["pod"],
            argv,
            namespace=change["namespace"],
            cluster=change["cluster"],
            container=change["container"],
        )
        out: list[bytes] = []
        err: list[bytes] = []
        async with session:
            async for stream, data in session:
                (out if stream == "stdout" else err).append(data)
        return (
            session.exit_code,
            b"".join(out).decode(errors="replace"),
            b"".join(err).decode(errors="replace"),
        )

    try:
        return await asyncio.wait_for(run(), EXEC_TIMEOUT)
    except TimeoutError:
        raise CommandError(f"`{' '.join(argv)}` did not finish in {EXEC_TIMEOUT:g} s") from None


def check_pod(pod: dict[str, Any], namespace: dict[str, Any]) -> None:
    reason = refusal(pod, namespace)
    if reason:
        raise PermissionDenied(reason)
