"""An isolated plugin that crashes, hangs, eats memory or forks without end is stopped with a
clear answer, marked failed with the reason, restarted on the next call; the kernel and the
other plugins keep serving."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from .conftest import commands

BAD = {
    "manifest": {
        **commands(
            "ok",
            "crash",
            "spin",
            "hog",
            "bomb",
            "boom",
            "stop",
            options=[],
        ),
        "hooks": [{"event": "pod:start"}],
    },
    "init": """
        @hookimpl
        def on_event(event, ctx):
            if event.name == "spin":
                while True:
                    pass
            ctx.store.set("last", event.name)
    """,
    "modules": {
        "commands": """
            import os, time

            def ok(ctx):
                return f"ok from {os.getpid()}"

            def crash(ctx):
                os._exit(1)

            def stop(ctx):
                import signal
                os.kill(os.getpid(), signal.SIGSTOP)

            def spin(ctx):
                while True:
                    pass

            def hog(ctx):
                data = bytearray(4 * 1024 ** 3)
                return f"allocated {len(data)}"

            def boom(ctx):
                return 1 / 0

            def bomb(ctx):
                children = []
                try:
                    while len(children) < 5000:
                        pid = os.fork()
                        if pid == 0:
                            time.sleep(60)
                            os._exit(0)
                        children.append(pid)
                except OSError as exc:
                    return f"stopped after {len(children)} processes: {exc.strerror}"
                return f"forked {len(children)} processes"
        """
    },
}

OTHER = {"modules": {"commands": "def run(ctx):\n    return 'other serves'\n"}}


@pytest.fixture
async def kernel(clustercord_harness, isolated_plugin, make_plugin):
    isolated_plugin("bad", **BAD)
    isolated_plugin("other", **OTHER)
    clustercord_harness.add_plugin(make_plugin("inproc"))
    clustercord_harness.settings = clustercord_harness.settings.__class__(
        **{**clustercord_harness.settings.__dict__, "isolation_timeout": 2.0, "hook_timeout": 1.0}
    )
    return await clustercord_harness.start()


async def serving(harness) -> None:
    """The kernel and the other plugins still answer."""
    assert (await harness.run("/other")).text == "other serves"
    assert (await harness.run("/inproc")).text == "inproc ran"


async def test_a_crash_is_answered_marked_and_restarted(clustercord_harness, kernel):
    before = kernel.isolation.process("bad").pid
    crashed = await clustercord_harness.run("/crash")
    assert crashed.status == "error"
    assert crashed.text == (
        "plugin bad failed: ProcessFailure: its process ended (exit status 1)"
    ), crashed.text
    plugin = clustercord_harness.plugin("bad")
    assert plugin.state == "enabled"  # a command's failure never disables a plugin
    assert plugin.reason == (
        "plugin bad: its process ended (exit status 1) (it restarts on the next call)"
    )
    await serving(clustercord_harness)
    again = await clustercord_harness.run("/ok")
    assert again.ok, again.text
    assert int(again.text.split()[-1]) != before  # a new process
    assert plugin.reason is None
    assert kernel.isolation.health["bad"].restarts == 1


async def test_an_exception_is_the_plugins_failure_not_the_process(clustercord_harness, kernel):
    pid = kernel.isolation.process("bad").pid
    boom = await clustercord_harness.run("/boom")
    assert boom.text == "plugin bad failed: ZeroDivisionError: division by zero"
    assert kernel.isolation.process("bad").pid == pid


async def test_a_spinning_handler_is_stopped_by_the_call_timeout(clustercord_harness, kernel):
    start = time.monotonic()
    spinning = asyncio.ensure_future(clustercord_harness.run("/spin"))
    await asyncio.sleep(0.2)
    assert (await clustercord_harness.run("/other")).text == "other serves"  # meanwhile
    assert time.monotonic() - start < 1.5 and not spinning.done()
    spun = await spinning
    assert time.monotonic() - start < 10
    assert spun.text == (
        "plugin bad failed: ProcessFailure: commands:spin did not answer within 2 s; "
        "its process was stopped"
    ), spun.text
    await serving(clustercord_harness)
    assert (await clustercord_harness.run("/ok")).ok


async def test_a_spinning_hook_is_stopped_by_the_hook_budget(clustercord_harness, kernel):
    from clustercord_sdk import Event

    pid = kernel.isolation.process("bad").pid
    await kernel.events.publish(Event("pod:start", name="spin"))
    assert kernel.isolation.process("bad") is None or kernel.isolation.process("bad").pid != pid
    assert kernel.guard.failures["bad"] == 1  # hooks count towards disabling, as in-process
    await kernel.events.publish(Event("pod:start", name="fine"))
    assert clustercord_harness.plugin("bad").context.store.get("last") == "fine"


async def test_a_4_gb_allocation_is_stopped_while_others_serve(clustercord_harness, kernel):
    hog, other = await asyncio.gather(
        clustercord_harness.run("/hog"), clustercord_harness.run("/other")
    )
    assert other.text == "other serves"
    assert hog.text == (
        "plugin bad failed: ProcessFailure: its process reached its memory limit (512 MB) "
        "and was stopped"
    ), hog.text
    assert "memory limit" in clustercord_harness.plugin("bad").reason
    await serving(clustercord_harness)
    assert (await clustercord_harness.run("/ok")).ok


async def test_a_fork_bomb_is_contained(clustercord_harness, kernel):
    if os.geteuid() == 0 and not kernel.isolation.dropping:
        pytest.skip(
            "running as root without an unprivileged user to drop to: RLIMIT_NPROC does not "
            "hold for root"
        )
    limit = kernel.isolation.limits.processes
    bombed = await clustercord_harness.run("/bomb")
    assert bombed.ok, bombed.text
    assert bombed.text.startswith("stopped after "), bombed.text
    assert int(bombed.text.split()[2]) < limit
    await serving(clustercord_harness)
    # Its forks go with its process group when the kernel stops it.
    pid = kernel.isolation.process("bad").pid
    kernel.isolation.stop("bad")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _members(pid):
        await asyncio.sleep(0.05)
    assert _members(pid) == []


def _members(group: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(int(entry))
    return found


async def test_restarts_back_off(clustercord_harness, kernel):
    assert (await clustercord_harness.run("/crash")).status == "error"
    assert (await clustercord_harness.run("/crash")).status == "error"  # restarted at once
    # A second failure in a row: the next start waits (0.5 s), answered at once meanwhile.
    waiting = await clustercord_harness.run("/ok")
    assert "it restarts in" in waiting.text, waiting.text
    await asyncio.sleep(0.6)
    assert (await clustercord_harness.run("/ok")).ok


async def test_a_stopped_process_cannot_hang_the_kernel(clustercord_harness, kernel):
    stopped = await clustercord_harness.run("/stop")
    assert "did not answer within 2 s; its process was stopped" in stopped.text, stopped.text
    await serving(clustercord_harness)
    assert (await clustercord_harness.run("/ok")).ok


ROGUE = {
    "manifest": commands("probe", "flood"),
    "modules": {
        "commands": """
            import gc, os, struct
            from clustercord_sdk import CommandError

            def channel():
                return next(
                    o for o in gc.get_objects() if type(o).__name__ == "Channel"
                    and hasattr(o, "request")
                )

            def probe(ctx):
                refused = []
                for method in ("store._database", "kube._client", "audit.__class__",
                               "plugins.enable", "os.system"):
                    try:
                        channel().request(method, "x")
                    except CommandError as exc:
                        refused.append(str(exc))
                return " | ".join(refused)

            def flood(ctx):
                os.write(channel().wfd, struct.pack(">I", 1 << 30))
                import time
                time.sleep(30)
        """
    },
}


async def test_the_pipe_serves_only_the_sdk_and_a_rogue_frame_ends_the_process(
    clustercord_harness, isolated_plugin
):
    isolated_plugin("rogue", **ROGUE)
    isolated_plugin("other", **OTHER)
    await clustercord_harness.start()
    probed = await clustercord_harness.run("/probe")
    assert probed.ok, probed.text
    refusals = probed.text.split(" | ")
    assert len(refusals) == 5, probed.text
    assert all("is not a service an isolated plugin can call" in r for r in refusals)

    flooded = await clustercord_harness.run("/flood")
    assert flooded.status == "error"
    assert "its process broke the protocol" in flooded.text, flooded.text
    assert "over the 67108864 byte limit" in flooded.text
    assert (await clustercord_harness.run("/other")).text == "other serves"
