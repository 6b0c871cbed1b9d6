"""One door for plugin code: a command, a component action clicked in (fake) Discord, a form
filled in place on the console and a scheduled job all pass the kernel's one door: the same
guard (one timeout mechanism, traced alike) and the same kind of audit row."""

from __future__ import annotations

import time
from dataclasses import replace

from clustercord.frontends.console import ConsoleFrontend
from clustercord_sdk.services import Job
from tests.discord.conftest import start_bot
from tests.discord.test_interactions import button

USER = "100000000000000001"

MANIFEST = {
    "commands": [
        {
            "name": "gate",
            "description": "Calls of every kind",
            "subcommands": [
                {"name": "buttons", "description": "Buttons", "handler": "commands:buttons"},
                {"name": "form", "description": "A form", "handler": "commands:form"},
                {"name": "slowform", "description": "A slow form", "handler": "commands:slowform"},
                {"name": "slow", "description": "A slow command", "handler": "commands:slow"},
            ],
        }
    ]
}

COMMANDS = """
import time

from clustercord_sdk.reply import Button, Modal, Reply, TextInput


def spin():
    # Blocking, in short steps: the guard's watchdog interrupts it between two.
    for _ in range(3000):
        time.sleep(0.01)
    return "never"


def buttons(ctx):
    return Reply(text="press one", buttons=[
        Button("Go", action="actions:go", value=7),
        Button("Slow", action="actions:slow", value=1),
        Button("Boom", action="actions:boom"),
    ])


def form(ctx):
    return Reply(modal=Modal(title="Who?", action="actions:named",
                             inputs=[TextInput("name", "Your name")]))


def slowform(ctx):
    return Reply(modal=Modal(title="Who?", action="actions:slow_named",
                             inputs=[TextInput("name", "Your name")]))


def slow(ctx):
    return spin()
"""

ACTIONS = """
from .commands import spin


def go(ctx, value):
    return f"went {value} for <@{ctx.user_id}>"


def slow(value):
    return spin()


def boom(ctx):
    raise ValueError("boom")


def named(ctx, fields):
    ctx.store.set("named", fields["name"])
    return f"hello {fields['name']}"


def slow_named(fields):
    return spin()
"""

JOBS = """
from .commands import spin


def tick(ctx, job):
    ctx.store.set("ticked", job.id)


def slow(job):
    spin()
"""

AUDIT_COLUMNS = {"actor", "action", "plugin", "result", "duration_ms", "ts", "options"}


def gate(make_plugin):
    return make_plugin(
        "gate", manifest=MANIFEST, modules={"commands": COMMANDS, "actions": ACTIONS, "jobs": JOBS}
    )


def job(handler: str) -> Job:
    return Job(id=f"job-{handler}", plugin="gate", handler=handler, schedule="every 1h", next_run=0)


def rows_by_action(kernel, since: int = 0) -> dict[str, dict]:
    return {row["action"]: row for row in kernel.audit.iter_rows(since)}


async def click_and_wait(discord, url, label: str, content: str, **kwargs):
    """Run ``/gate buttons`` in Discord, press ``label``, wait for an answer containing
    ``content`` (the bot defers a slow one, then edits it in)."""
    shown = await discord.invoke(url, "gate buttons", **kwargs)
    clicked = await discord.click(
        url, shown.message, button(shown.message, label)["custom_id"], **kwargs
    )
    return await discord.wait_for(
        lambda: (
            clicked.message
            if clicked.message and content in (clicked.message.get("content") or "")
            else None
        ),
        timeout=10,
    )


async def test_a_slow_handler_of_every_kind_is_stopped_by_the_same_guard(
    fake_discord, clustercord_harness, make_plugin, capsys
):
    harness = clustercord_harness
    harness.add_plugin(gate(make_plugin))
    harness.settings = replace(
        harness.settings, hook_timeout=0.5, trace_plugins=True, max_hook_failures=10
    )
    running = await start_bot(fake_discord, harness)
    kernel = harness.kernel
    kernel.door.command_timeout = 0.5  # commands, actions and forms: no limit by default
    try:
        start = time.monotonic()
        command = await harness.run("/gate slow")
        form = await harness.run("/gate slowform", forms=[{"name": "Ada"}])
        await click_and_wait(fake_discord, running.url, "Slow", "did not return within")
        await kernel.run_job(job("jobs:slow"))
        elapsed = time.monotonic() - start
    finally:
        await running.server.close()

    assert elapsed < 15, f"four interrupted calls took {elapsed:.1f} s"
    assert command.status == "error" and "did not return within 0.5 s" in command.text
    assert form.status == "error" and "did not return within 0.5 s" in form.text
    rows = rows_by_action(kernel)
    calls = ["gate slow", "form actions:slow_named", "component actions:slow", "job jobs:slow"]
    for action in calls:
        row = rows[action]
        assert row["plugin"] == "gate" and row["result"] == "error", row
        assert "did not return within 0.5 s" in row["message"], row
        assert 400 <= row["duration_ms"] < 5000, row
    # The same guard traced each call...
    traced = capsys.readouterr().err
    for action in calls:
        assert f"trace: plugin=gate hook={action} " in traced
    # ...and counted the failures of all but the command (a command never disables a plugin).
    assert kernel.guard.failures["gate"] == 3


async def test_every_kind_of_call_leaves_the_same_audit_row(
    fake_discord, clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(gate(make_plugin))
    running = await start_bot(fake_discord, harness)
    kernel = harness.kernel
    try:
        before = max((r["seq"] for r in kernel.audit.iter_rows()), default=0)
        clicked = await click_and_wait(fake_discord, running.url, "Go", "went 7")
        form = await harness.run("/gate form", forms=[{"name": "Ada"}])
        await kernel.run_job(job("jobs:tick"))
    finally:
        await running.server.close()

    assert clicked["content"] == f"went 7 for <@{USER}>"
    assert form.ok and form.text == "hello Ada"
    assert harness.plugin("gate").context.store.get("ticked") == "job-jobs:tick"
    rows = rows_by_action(kernel, before)
    command, action = rows["gate buttons"], rows["component actions:go"]
    filled, ran = rows["form actions:named"], rows["job jobs:tick"]
    for row in (command, action, filled, ran):
        assert {k for k, v in row.items() if v is not None} >= AUDIT_COLUMNS, row
        assert row["plugin"] == "gate" and row["result"] == "ok", row
        assert row["duration_ms"] >= 0
    assert command["actor"] == action["actor"] == f"discord:{USER}"
    assert filled["actor"] == "console:console"
    assert ran["actor"] == "kernel:scheduler" and ran["options"] == {"job": "job-jobs:tick"}
    assert action["options"] == {}  # a button's value is the plugin's state, not a choice
    # A form's values may be secrets: only the names of its fields are kept.
    assert filled["options"] == {"fields": ["name"]} and "Ada" not in str(rows)


async def test_a_console_form_is_refused_by_the_access_policy_and_audited(
    clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(gate(make_plugin))
    kernel = await harness.start()
    sent = []

    class LockedWhileTyping:
        """A console on which an admin locks /gate down while the user fills the form."""

        def render(self, reply):
            sent.append(reply)

        async def ask(self, confirmation, assume_yes):
            return True

        async def fill(self, modal):
            # Once a rule names /gate, only those it names may run it.
            kernel.policy.config = replace(kernel.policy.config, users={"7": ("gate:*",)})
            return {"name": "Ada"}

    console = ConsoleFrontend(kernel, LockedWhileTyping(), user_id="42")
    outcome = await console.run_line("/gate form")

    assert outcome.status == "denied"
    assert "your roles do not allow /gate form" in outcome.reply.text
    assert harness.plugin("gate").context.store.get("named") is None  # the handler never ran
    rows = rows_by_action(kernel)
    refused = rows["form actions:named"]
    assert refused["result"] == "denied" and refused["actor"] == "console:42"
    assert refused["plugin"] == "gate" and refused["duration_ms"] is not None
    assert rows["gate form"]["result"] == "denied"


async def test_a_plugin_exception_in_an_action_is_an_error_reply_and_an_audit_row(
    fake_discord, clustercord_harness, make_plugin
):
    harness = clustercord_harness
    harness.add_plugin(gate(make_plugin))
    running = await start_bot(fake_discord, harness)
    try:
        answer = await click_and_wait(fake_discord, running.url, "Boom", "boom")
    finally:
        await running.server.close()

    assert answer["content"] == "❌ plugin gate failed: ValueError: boom"
    assert answer["flags"] & 64  # only the person who clicked sees it
    row = rows_by_action(harness.kernel)["component actions:boom"]
    assert row["result"] == "error" and row["plugin"] == "gate"
    assert row["message"] == "plugin gate failed: ValueError: boom"
    assert row["actor"] == f"discord:{USER}" and row["duration_ms"] is not None
    assert harness.kernel.guard.failures["gate"] == 1  # a plugin bug counts, as for a hook
