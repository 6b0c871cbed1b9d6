"""Stress faults through ``pods/exec`` in the target container (as Litmus' ``*-exec``
experiments): CPU (busy loops), memory (``dd`` with a buffer of the asked size) and disk
(``dd`` writes into the container's ``/tmp``).

Every worker runs under ``timeout``, so the stress ends on time in the pod even if the bot dies
(and on the sandbox, the exec's processes end with its connection). The workers' pids go to
``/tmp/chaos-<id>.pids``, so a stop (or a rollback after a crash) kills them through another
exec and removes what disk stress wrote. The command's own ``times`` reports the CPU the
workers used, for the report.
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import Any

from clustercord_builtins.chaos import faults
from clustercord_sdk.errors import CommandError, UsageError
from clustercord_sdk.kubernetes import Kubernetes

_SIZE = re.compile(r"^(\d+)(k|m|g|ki|mi|gi|kb|mb|gb)?$")
_FACTORS = {
    None: 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
}
MAX_WORKERS = 64


def parse_size(value: object, *, option: str = "size") -> int:
    """Bytes of ``256Mi``, ``1G``, ``512m``; a clear error for anything else."""
    raw = str(value).strip().lower()
    match = _SIZE.match(raw)
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"{option}: {value!r} is not a size (e.g. 256Mi, 1Gi, 500M)")
    return int(match.group(1)) * _FACTORS[match.group(2)]


def parse_workers(value: object) -> int:
    try:
        workers = int(str(value))
    except ValueError:
        raise UsageError(f"workers: {value!r} is not a whole number") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"workers: {workers} is not from 1 to {MAX_WORKERS}")
    return workers


def script(kind: str, experiment: str, seconds: float, params: dict[str, Any]) -> str:
    """The shell command the exec runs: workers under ``timeout``, their pids recorded, then
    the CPU they used (``times``)."""
    bound = max(1, math.ceil(seconds))
    pids = f"/tmp/chaos-{experiment}.pids"
    count: int | str
    if kind == "cpu-stress":
        worker = "while :; do :; done"
        # One busy loop per share of the container's CPUs (at least one), unless told.
        count = int(params.get("workers") or 0) or (
            f"$(( ({math.ceil(params['percent'])} * $(nproc 2>/dev/null || echo 1) + 99) / 100 ))"
        )
    elif kind == "memory-stress":
        worker = f"dd if=/dev/zero of=/dev/null bs={int(params['size_bytes'])} 2>/dev/null"
        count = 1
    elif kind == "disk-stress":
        worker = (
            f"while :; do dd if=/dev/zero of=/tmp/chaos-{experiment}-$0 bs=1M "
            f"count={int(params['size_mb'])} conv=fsync 2>/dev/null; "
            f"rm -f /tmp/chaos-{experiment}-$0; done"
        )
        count = int(params["workers"])
    else:
        raise UsageError(f"unknown stress {kind!r}")
    return (
        f": > {pids}; i=0; while [ $i -lt {count} ]; do "
        f"timeout {bound} sh -c {shlex.quote(worker)} $i & echo $! >> {pids}; i=$((i+1)); done; "
        f"wait; rm -f {pids} /tmp/chaos-{experiment}-*; times"
    )


def change_for(
    pod: dict[str, Any], cluster: str, container: str, experiment: str
) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "kind": "stress",
        "cluster": cluster,
        "namespace": meta["namespace"],
        "pod": meta["name"],
        "uid": meta.get("uid"),
        "container": container,
        "experiment": experiment,
    }


async def run(
    kube: Kubernetes,
    change: dict[str, Any],
    command: str,
    seconds: float,
    progress: Callable[[float, float], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run the stress for its duration; what it used and how the container fared."""
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    before = await kube.get("pods", change["pod"], **where)
    started = time.monotonic()
    session = await kube.exec(
        change["pod"], ["sh", "-c", command], container=change["container"], **where
    )
    out: list[bytes] = []

    async def collect() -> None:
        async with session:
            async for stream, data in session:
                if stream == "stdout":
                    out.append(data)

    task = asyncio.ensure_future(collect())
    try:
        while not task.done():
            await asyncio.wait([task], timeout=1.0)
            if progress is not None and not task.done():
                await progress(min(time.monotonic() - started, seconds), seconds)
            if time.monotonic() - started > seconds + 30:
                task.cancel()
                raise CommandError(f"the stress did not end {seconds:g} s after it started")
        task.result()
    finally:
        if not task.done():
            task.cancel()
    elapsed = time.monotonic() - started
    text = b"".join(out).decode(errors="replace")
    result: dict[str, Any] = {
        "ran_seconds": round(elapsed, 2),
        "exit_code": session.exit_code,
        "cpu_seconds": cpu_seconds(text),
    }
    result.update(await _fate(kube, change, before))
    return result


def cpu_seconds(times_output: str) -> float | None:
    """The children's user + system time from the shell's ``times`` (its second line)."""
    lines = [line for line in times_output.strip().splitlines() if "m" in line and "s" in line]
    if not lines:
        return None
    total = 0.0
    for minutes, seconds in re.findall(r"(\d+)m([\d.]+)s", lines[-1]):
        total += int(minutes) * 60 + float(seconds)
    return round(total, 2)


async def _fate(kube: Kubernetes, change: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Whether the container was OOMKilled or restarted, or the pod evicted, meanwhile."""
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    try:
        after = await kube.get("pods", change["pod"], **where)
    except CommandError as error:
        if faults.is_not_found(error):
            return {"pod_gone": True}
        raise
    if (after.get("status") or {}).get("reason") == "Evicted":
        return {"evicted": True}

    def status(pod: dict[str, Any]) -> dict[str, Any]:
        for item in (pod.get("status") or {}).get("containerStatuses") or []:
            if item.get("name") == change["container"]:
                return dict(item)
        return {}

    restarts = status(after).get("restartCount", 0) - status(before).get("restartCount", 0)
    last = ((status(after).get("lastState") or {}).get("terminated") or {}).get("reason")
    fate: dict[str, Any] = {"restarts": restarts}
    if restarts and last:
        fate["last_termination"] = last
    return fate


async def stop(kube: Kubernetes, change: dict[str, Any]) -> str:
    """Kill the workers (their pids were recorded) and remove what they wrote."""
    experiment = change["experiment"]
    where = {"namespace": change["namespace"], "cluster": change["cluster"]}
    name = f"{change['namespace']}/{change['pod']}"
    try:
        pod = await kube.get("pods", change["pod"], **where)
    except CommandError as error:
        if faults.is_not_found(error):
            return f"pod {name} is gone: so is the stress"
        raise
    if change.get("uid") and pod["metadata"].get("uid") != change["uid"]:
        return f"pod {name} was replaced: the stress went with the old one"
    pids = f"/tmp/chaos-{experiment}.pids"
    command = (
        f"n=0; if [ -f {pids} ]; then for p in $(cat {pids}); do "
        f"kill $p 2>/dev/null && n=$((n+1)); done; fi; rm -f {pids} /tmp/chaos-{experiment}-*; "
        "echo $n"
    )
    session = await kube.exec(
        change["pod"], ["sh", "-c", command], container=change["container"], **where
    )
    said: list[bytes] = []
    async with session:
        async for stream, data in session:
            if stream == "stdout":
                said.append(data)
    killed = b"".join(said).decode(errors="replace").strip() or "0"
    return f"pod {name}: {killed} stress workers stopped"
