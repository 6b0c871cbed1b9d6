"""Every hook in ``clustercord_sdk.hookspecs`` is exercised here (``test_hook_<name>``),
and the guard around hook calls holds: exceptions, hangs, repeated failures."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from clustercord_sdk import Event, hookspecs

from .conftest import one_command

HOOKS = sorted(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "clustercord_spec")
)


def test_every_hook_has_a_test():
    source = Path(__file__).read_text()
    missing = [hook for hook in HOOKS if f"def test_hook_{hook}(" not in source]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


async def test_hook_on_enable(clustercord_harness, add_plugin):
    add_plugin(
        "pp",
        init="""
        @hookimpl
        def on_enable(ctx):
            ctx.scheduler.every("5m", "commands:run")
    """,
    )
    await clustercord_harness.start()
    jobs = clustercord_harness.plugin("pp").context.scheduler.jobs()
    assert [(j.handler, j.schedule) for j in jobs] == [("commands:run", "every 5m")]


async def test_hook_on_enable_failure_keeps_plugin_off(clustercord_harness, add_plugin):
    add_plugin(
        "pp",
        init="""
        @hookimpl
        def on_enable(ctx):
            raise RuntimeError("database unreachable")
    """,
    )
    await clustercord_harness.start()
    plugin = clustercord_harness.plugin("pp")
    assert plugin.state == "disabled"
    assert plugin.reason == "on_enable failed: RuntimeError: database unreachable"


async def test_hook_on_disable(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin(
        "pp",
        init="""
        @hookimpl
        def on_disable(ctx):
            ctx.store.set("bye", True)
    """,
    )
    await harness.start()
    await harness.run("/plugin disable name:pp")
    assert harness.plugin("pp").context.store.get("bye") is True


async def test_hook_on_event(clustercord_harness, add_plugin):
    harness = clustercord_harness
    log: list[str] = []
    for name, priority, label in (
        ("low", 1, "app=web"),
        ("high", 10, "app=web"),
        ("other", 50, "app=db"),
    ):
        add_plugin(
            name,
            manifest={
                "hooks": [
                    {
                        "event": "pod:crash",
                        "priority": priority,
                        "filter": {"label": label, "namespaces": ["prod"]},
                    }
                ]
            },
            init=f"""
            import builtins
            @hookimpl
            def on_event(event, ctx):
                builtins._cc_log.append(("{name}", event.name))
        """,
        )
    import builtins

    builtins._cc_log = log  # type: ignore[attr-defined]
    try:
        kernel = await harness.start()
        await kernel.events.publish(
            Event("pod:crash", namespace="prod", name="web-1", labels={"app": "web"})
        )
        await kernel.events.publish(
            Event("pod:crash", namespace="dev", name="web-2", labels={"app": "web"})
        )
        await kernel.events.publish(
            Event("pod:start", namespace="prod", name="web-3", labels={"app": "web"})
        )
    finally:
        del builtins._cc_log  # type: ignore[attr-defined]
    assert log == [("high", "web-1"), ("low", "web-1")]


async def test_hook_on_approval_decided(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["approvals"])
    add_plugin(
        "deployer",
        init="""
        @hookimpl
        def on_approval_decided(approval, ctx):
            ctx.store.set("decision", [approval.action, approval.status, approval.decided_by])
    """,
        modules={
            "commands": """
        def run(ctx):
            request = ctx.plugin.approvals.request("scale", "scale web to 0",
                                                   requested_by=ctx.user_id)
            return f"waiting for approval {request.id}"
    """
        },
    )
    await harness.start()
    asked = await harness.run("/deployer", user="5", frontend="discord")
    approval_id = asked.text.rsplit(" ", 1)[-1]
    pending = await harness.run("/approval list")
    assert pending.reply.data == {"pending": [approval_id]}

    decided = await harness.run(f"/approval approve id:{approval_id}")
    assert decided.ok and "approved" in decided.text
    store = harness.plugin("deployer").context.store
    assert store.get("decision") == ["scale", "approved", "console"]
    again = await harness.run(f"/approval deny id:{approval_id}")
    assert again.status == "error" and "already" in again.text


async def test_hook_on_config_changed(clustercord_harness, add_plugin):
    harness = clustercord_harness
    harness.add_builtins(["plugins"])
    add_plugin(
        "pp",
        manifest={"config": {"mode": {"type": "string"}}},
        init="""
        @hookimpl
        def on_config_changed(key, new, ctx):
            ctx.store.set("seen", f"{key}={new}")
    """,
    )
    await harness.start()
    await harness.run("/plugin config name:pp key:mode value:fast")
    assert harness.plugin("pp").context.store.get("seen") == "mode=fast"


async def test_hook_check_access(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "freeze",
        init="""
        @hookimpl
        def check_access(invocation, command):
            if command["destructive"] and invocation.user_id != "oncall":
                return False
            return None
    """,
    )
    add_plugin("wipe", manifest=one_command("wipe", destructive=True))
    await harness.start()
    denied = await harness.run("/wipe", user="intern", frontend="discord")
    assert denied.status == "denied"
    assert denied.text == "plugin freeze does not allow /wipe here"
    assert (await harness.run("/wipe", user="oncall", frontend="discord")).ok
    assert (await harness.run("/freeze", user="intern", frontend="discord")).ok


async def test_hook_on_command_complete(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "metrics",
        init="""
        @hookimpl
        def on_command_complete(invocation, outcome, ctx):
            seen = ctx.store.get("seen", [])
            ctx.store.set("seen", seen + [[invocation.path, outcome["status"]]])
    """,
    )
    await harness.start()
    await harness.run("/metrics")
    await harness.run("/nope")
    seen = harness.plugin("metrics").context.store.get("seen")
    assert seen == [["metrics", "ok"], ["nope", "usage"]]


async def test_hook_secret_patterns(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "vault",
        init="""
        @hookimpl
        def on_enable(ctx):
            pass

        @hookimpl
        def secret_patterns():
            return [r"hvs\\.[A-Za-z0-9]{8,}"]
    """,
        manifest=one_command("vault", options=[{"name": "note", "type": "string"}]),
    )
    kernel = await harness.start()
    await harness.run("/vault note:token=hvs.ABCDEFGH1234")
    rows = list(kernel.audit.iter_rows())
    assert "hvs.ABCDEFGH1234" not in str(rows)
    assert rows[-1]["action"] == "vault"


async def test_hook_autocomplete(clustercord_harness, add_plugin):
    from clustercord_sdk.context import Invocation

    harness = clustercord_harness
    add_plugin(
        "pods",
        manifest=one_command(
            "pods",
            options=[
                {"name": "pod", "type": "string", "autocomplete": True},
                {"name": "plain", "type": "string"},
            ],
        ),
        init="""
        @hookimpl
        def autocomplete(option, value):
            return [p for p in ["api-1", "api-2", "web-1"] if p.startswith(value)]
    """,
    )
    kernel = await harness.start()
    invocation = Invocation(user_id="1", command=("pods",))
    assert await kernel.dispatcher.autocomplete(invocation, "pod", "api") == ["api-1", "api-2"]
    assert await kernel.dispatcher.autocomplete(invocation, "plain", "a") == []


async def test_hook_storage_migrations(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "db",
        init="""
        def create(store):
            store.table("games").insert({"name": "chess"})

        def add_column(store):
            store.table("games").add_column("players", int)

        @hookimpl
        def storage_migrations():
            return [(2, add_column), (1, create)]
    """,
    )
    await harness.start()
    await harness.restart()  # already applied: not run twice
    store = harness.plugin("db").context.store
    assert store.query("select name, players from games") == [{"name": "chess", "players": None}]
    # Its SQL reads its own tables only: no other table's rows, names or even row counts.
    for sql in (
        "select * from _plugins",
        "select count(*) from _plugins",
        "select count(*) from _audit",
        "select name from sqlite_master",
    ):
        with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|prohibited"):
            store.query(sql)


# -- the guard -------------------------------------------------------------------------


def _crash_subscriber(body: str) -> dict:
    return {"manifest": {"hooks": [{"event": "pod:crash"}]}, "init": body}


async def test_a_hook_that_raises_is_isolated_then_disabled(clustercord_harness, add_plugin):
    harness = clustercord_harness
    add_plugin(
        "flaky",
        **_crash_subscriber("""
        @hookimpl
        def on_event(event):
            raise ValueError("boom")
    """),
    )
    add_plugin(
        "steady",
        **_crash_subscriber("""
        @hookimpl
        def on_event(event, ctx):
            ctx.store.set("count", ctx.store.get("count", 0) + 1)
    """),
    )
    kernel = await harness.start()
    for _ in range(4):
        await kernel.events.publish(Event("pod:crash", name="x"))

    assert harness.plugin("steady").context.store.get("count") == 4
    flaky = harness.plugin("flaky")
    assert flaky.state == "disabled"
    assert flaky.reason == "disabled after 3 consecutive failures; last: ValueError: boom"
    await harness.restart()
    assert harness.plugin("flaky").state == "disabled"


@pytest.mark.parametrize(
    "body",
    [
        "import time\n@hookimpl\ndef on_event(event):\n    time.sleep(60)\n",
        "@hookimpl\ndef on_event(event):\n    while True:\n        pass\n",
        "import asyncio\n@hookimpl\nasync def on_event(event):\n    await asyncio.sleep(60)\n",
    ],
    ids=["sleeping", "spinning", "async"],
)
async def test_a_hook_that_hangs_is_interrupted(clustercord_harness, add_plugin, body):
    harness = clustercord_harness
    add_plugin("stuck", **_crash_subscriber(body))
    add_plugin(
        "after",
        **_crash_subscriber("""
        @hookimpl
        def on_event(event, ctx):
            ctx.store.set("ran", True)
    """),
    )
    await harness.restart(hook_timeout=0.3)
    start = time.monotonic()
    await harness.kernel.events.publish(Event("pod:crash", name="x"))
    elapsed = time.monotonic() - start

    assert elapsed < 5, f"a hanging hook held the kernel for {elapsed:.1f} s"
    assert harness.plugin("after").context.store.get("ran") is True
    assert harness.kernel.guard.failures["stuck"] == 1
    assert (await harness.run("/after")).ok  # the kernel still serves commands


async def test_tracing_prints_each_hook_call(clustercord_harness, add_plugin, capsys):
    harness = clustercord_harness
    add_plugin(
        "pp",
        **_crash_subscriber("""
        @hookimpl
        def on_event(event):
            pass
    """),
    )
    await harness.restart(trace_plugins=True)
    await harness.kernel.events.publish(Event("pod:crash", name="x"))
    assert "trace: plugin=pp hook=on_event" in capsys.readouterr().err
