"""The deployment lock knows a dead holder: a Lease left by a process killed with SIGKILL on
this machine is taken over at once; a live holder, or one on another machine, still blocks
until its Lease expires. End to end with a real deploy killed midway:
tests/templates/test_hostile.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from clustercord_builtins.templates import lock
from clustercord_sdk.errors import CommandError


class Leases:
    """Just enough of ``ctx.kubernetes`` for Leases: create (conflict when taken), list, delete."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    async def create(self, resource, body, *, namespace, cluster):
        name = body["metadata"]["name"]
        if name in self.items:
            raise CommandError(f"conflict: lease {name} exists")
        self.items[name] = json.loads(json.dumps(body))

    async def list(self, resource, *, namespace, field_selector, cluster):
        name = field_selector.split("=", 1)[1]
        return [self.items[name]] if name in self.items else []

    async def delete(self, resource, name, *, namespace, cluster):
        if self.items.pop(name, None) is None:
            raise CommandError(f"not found: lease {name}")


def left_by(process: dict[str, str]) -> dict:
    """A Lease as a holder left it a second ago (far from expiring)."""
    now = lock._stamp(lock._now())
    return {
        "metadata": {
            "name": lock.lock_name("app"),
            "annotations": {lock.HOLDER: json.dumps(process)},
        },
        "spec": {"holderIdentity": "someone", "acquireTime": now, "renewTime": now},
    }


def process_of(pid: int) -> dict[str, str]:
    return {**lock.this_process(), "pid": str(pid), "start": lock.start_time(pid) or ""}


async def take(leases: Leases) -> None:
    async with lock.held(leases, "c", "ns", "app", "me"):
        assert json.loads(
            leases.items[lock.lock_name("app")]["metadata"]["annotations"][lock.HOLDER]
        )["pid"] == str(os.getpid())


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_lease_of_a_process_killed_with_sigkill_is_taken_over_at_once():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = process_of(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    leases = Leases()
    leases.items[lock.lock_name("app")] = left_by(holder)
    assert lock.holder_dead(leases.items[lock.lock_name("app")]) == (
        f"process {child.pid} that held it is gone"
    )
    asyncio.run(take(leases))
    assert leases.items == {}  # released after the block


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_live_holder_blocks_and_so_does_one_on_another_machine():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for holder in (
            process_of(child.pid),
            {**process_of(999999), "host": "another-replica"},
        ):
            leases = Leases()
            leases.items[lock.lock_name("app")] = left_by(holder)
            with pytest.raises(CommandError, match="another /template operation on app"):
                asyncio.run(take(leases))
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_or_a_reboot_counts_as_dead():
    mine = lock.this_process()
    assert lock.holder_dead(left_by({**mine, "start": "1"})) == (
        f"process {os.getpid()} that held it is gone (the pid is another process's now)"
    )
    if mine["boot"]:
        assert lock.holder_dead(left_by({**mine, "boot": "another-boot"})) == (
            "the machine was restarted since it took the lock"
        )
    assert lock.holder_dead(left_by(mine)) is None
    assert lock.holder_dead({"metadata": {}}) is None  # an old Lease without the annotation
