"""Deploy variables asked for in a form: console prompts (the harness) and a Discord modal."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from clustercord_builtins.templates import catalog
from clustercord_builtins.templates.template import load_template
from clustercord_builtins.templates.variables import (
    FORM_INPUTS_MAX,
    VariableError,
    form_inputs,
    form_variables,
)

pytestmark = pytest.mark.usefixtures("server_side_apply")

POSTGRES = catalog.CATALOG / "postgres"
USER = "100000000000000001"
"""The fake Discord's default user."""


def needy_template_data(required: int) -> dict:
    """Postgres with ``required`` extra required variables that have no default."""
    data = json.loads((POSTGRES / "template.json").read_text("utf-8"))
    data["name"] = "needy"
    data["variables"] = [
        {**v, "required": True, "default": None} if v["name"] == "database" else v
        for v in data["variables"]
    ]
    data["variables"] = [
        {k: v for k, v in item.items() if v is not None} for item in data["variables"]
    ]
    for index in range(required - 1):
        data["variables"].append(
            {"name": f"extra_{index}", "type": "string", "required": True, "description": "x" * 60}
        )
    return data


def test_the_form_asks_what_is_missing_first_within_discord_limits():
    template = load_template(needy_template_data(3), folder=POSTGRES)
    asked = form_variables(template, {}, everything=True)
    assert len(asked) == FORM_INPUTS_MAX
    # Missing required first, then secrets, then the rest (the others keep their defaults).
    assert [v.name for v in asked][:4] == ["database", "extra_0", "extra_1", "password"]
    inputs = form_inputs(asked, {"size": "3Gi"})
    assert all(len(i.label) <= 45 for i in inputs)
    (password,) = [i for i in inputs if i.name == "password"]
    assert password.secret and password.value is None and not password.required
    assert [v.name for v in form_variables(template, {"database": "x"}, everything=False)] == [
        "extra_0",
        "extra_1",
    ]
    with pytest.raises(VariableError, match=r"more than one form holds.*extra_5"):
        form_variables(load_template(needy_template_data(7), folder=POSTGRES), {}, everything=False)


async def test_console_prompts_and_a_bad_value_deploys_nothing(templates, homelab):
    # Every curated template can render with defaults (the submit pipeline insists), so
    # the form comes from vars:ask here; a missing required variable takes the same path.
    bad = await templates.run(
        "/template deploy template:postgres namespace:asked-bad vars:ask",
        forms=[{"database": "Not Valid!"}],
    )
    (form,) = bad.forms
    assert "database" in [i.name for i in form.inputs]
    assert bad.status == "error"
    assert "variable database" in bad.text and "does not match the pattern" in bad.text
    assert "asked-bad" not in homelab.kubectl("get", "namespaces", "-o", "name")

    abandoned = await templates.run(
        "/template deploy template:postgres namespace:asked-bad vars:ask"
    )
    assert abandoned.text.startswith("Cancelled") and len(abandoned.forms) == 1
    assert "asked-bad" not in homelab.kubectl("get", "namespaces", "-o", "name")


async def test_vars_ask_prompts_secrets_too_and_the_chosen_one_is_used(templates, homelab):
    chosen = "a-chosen-password-0042"
    result = await templates.run(
        "/template deploy template:postgres namespace:asked wait:false vars:ask",
        forms=[{"password": chosen, "size": "2Gi"}],
    )
    assert result.ok, result.text
    (form,) = result.forms
    assert form.inputs[0].name == "password" and form.inputs[0].secret
    stored = json.loads(
        homelab.kubectl("get", "secret", "clustercord-values-postgres", "-n", "asked", "-o", "json")
    )
    assert base64.b64decode(stored["data"]["password"]).decode() == chosen
    assert chosen not in json.dumps(result.reply.to_dict())
    for path in Path(templates.data_dir).rglob("*"):
        if path.is_file():
            assert chosen.encode() not in path.read_bytes(), path


@pytest.fixture
async def discord_bot(fake_discord, clustercord_harness, homelab):
    """A real interaction server (hikari over HTTP) with the templates plugin, against the
    fake Discord and the module's sandbox."""
    from dataclasses import replace

    from clustercord.frontends.discord.server import start_interaction_server
    from tests.discord.conftest import discord_settings

    clustercord_harness.settings = replace(
        clustercord_harness.settings,
        # The Discord user acts as the homelab's cluster admin on Kubernetes.
        identity={"users": {USER: {"user": "admin"}}},
    )
    clustercord_harness.add_builtins(["templates", "cluster"])
    kernel = await clustercord_harness.start()
    server = await start_interaction_server(
        kernel, discord_settings(fake_discord), host="127.0.0.1", port=0, background=False
    )
    yield server
    await server.close()


def files_containing(folder: Path, secret: str) -> list[Path]:
    """Every file under ``folder`` (SQLite database, WAL, audit log…) holding ``secret``."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]


async def test_discord_modal_deploys_and_credentials_arrive_only_by_dm(
    discord_bot, fake_discord, clustercord_harness, homelab
):
    asked = await fake_discord.invoke(
        discord_bot.url,
        "template deploy",
        {"template": "postgres", "namespace": "by-modal", "vars": "ask", "wait": False},
    )
    modal = asked.modal
    assert modal is not None, asked.initial
    assert modal["title"] == "Deploy PostgreSQL"
    inputs = [row["components"][0] for row in modal["components"]]
    assert len(inputs) == 5 and all(len(i["label"]) <= 45 for i in inputs)
    assert inputs[0]["label"].startswith("password")

    bad = await fake_discord.submit_modal(discord_bot.url, modal["custom_id"], {"size": "lots"})
    await fake_discord.wait_for(lambda: bad.message)
    assert bad.message["content"].startswith("❌") or "Error" in bad.message["content"]
    assert "variable size (quantity): 'lots' is not a quantity" in bad.message["content"]
    assert "failed" not in bad.message["content"]  # a clear refusal, not a plugin crash
    assert "by-modal" not in homelab.kubectl("get", "namespaces", "-o", "name")

    asked = await fake_discord.invoke(
        discord_bot.url,
        "template deploy",
        {"template": "postgres", "namespace": "by-modal", "vars": "ask", "wait": False},
    )
    done = await fake_discord.submit_modal(
        discord_bot.url, asked.modal["custom_id"], {"size": "2Gi", "password": ""}
    )
    await fake_discord.wait_for(lambda: done.message and done.message.get("embeds"), timeout=30)
    channel_reply = json.dumps(done.message, ensure_ascii=False)
    assert "📬 sent you a DM" in channel_reply
    stored = json.loads(
        homelab.kubectl(
            "get", "secret", "clustercord-values-postgres", "-n", "by-modal", "-o", "json"
        )
    )
    password = base64.b64decode(stored["data"]["password"]).decode()
    assert password not in channel_reply
    data_dir = Path(clustercord_harness.data_dir)
    # Queued but not delivered yet: sealed in the outbox, nowhere in clear on disk.
    assert len(clustercord_harness.kernel.notifier.pending()) == 1
    assert files_containing(data_dir, password) == []

    assert await discord_bot.frontend.deliver_notifications() == 1
    (dm,) = fake_discord.dm_messages(USER)
    assert f"password: ||{password}||" in dm["content"]
    assert "by-modal" in dm["content"]
    # Delivered: the row is gone, and the password never reached the data directory.
    assert clustercord_harness.kernel.notifier.pending() == []
    assert files_containing(data_dir, password) == []


FILL_SCRIPT = """
import asyncio, json
from pathlib import Path
from rich.console import Console
from clustercord.frontends.console import ConsoleRenderer
from clustercord_sdk.reply import Modal, TextInput

modal = Modal("Deploy", "commands:deploy_form", [
    TextInput("size", "size", value="10Gi"),
    TextInput("password", "password", required=False, secret=True),
])
renderer = ConsoleRenderer(Console(force_terminal=True), Path("."))
print("FIELDS", json.dumps(asyncio.run(renderer.fill(modal))), flush=True)
"""


def test_the_console_prompts_each_input_and_reads_secrets_without_echo():
    """A real terminal (a pty): a secret typed at the prompt is not echoed back."""
    import os
    import pty
    import select
    import sys
    import termios
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: a console with the pty as its controlling terminal
        os.execv(sys.executable, [sys.executable, "-c", FILL_SCRIPT])
    output = b""

    def read_until(marker: bytes, timeout: float = 20.0) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in output, output.decode(errors="replace")

    try:
        read_until(b"size")
        os.write(fd, b"3Gi\n")
        read_until(b"password")
        # Type only once getpass has switched echo off (it flushes what came earlier).
        deadline = time.monotonic() + 20
        while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.05)
        os.write(fd, b"typed-secret-777\n")
        read_until(b"FIELDS")
        read_until(b"}")
    finally:
        # A child stuck at a prompt must not hang the suite: end it (it is ours, by pid).
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            time.sleep(0.5)
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    fields = json.loads(text.split("FIELDS", 1)[1].strip().splitlines()[0])
    assert fields == {"size": "3Gi", "password": "typed-secret-777"}
    assert "3Gi" in text.split("FIELDS")[0]  # an ordinary answer is echoed
    assert "typed-secret-777" not in text.split("FIELDS")[0]  # the secret is not
