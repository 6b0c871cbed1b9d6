"""Control characters and mentions from outside render inert in both front ends.

A pod name, an option value or a Kubernetes API error holding ``ESC ] 0 ; … BEL`` (retitle
the terminal), ``ESC [ 2 J`` (clear it), a lone ``CR`` (overwrite the line) or ``@everyone``
must reach neither the operator's terminal nor Discord as such: asserted on the bytes the
console wrote and on the payloads the fake Discord received.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from rich.console import Console

from clustercord.frontends.console import ConsoleFrontend, ConsoleRenderer, reply_to_json
from clustercord.frontends.inert import inert, inert_reply
from clustercord_sdk.reply import Reply
from tests.discord.conftest import sandbox_bot, start_bot

EVIL = "web-\x1b]0;pwned\x07-\x1b[2J\x1b[31m-\rREADY @everyone @here <@&42> [bold red]x[/] \x9b1m"
"""Retitle, clear, recolour, overwrite the line, ping everyone, rich markup, an 8-bit CSI."""

VISIBLE = "web-\\x1b]0;pwned\\x07-\\x1b[2J\\x1b[31m-\\x0dREADY"
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours: the only escapes it may write

MANIFEST = {
    "commands": [
        {
            "name": "evil",
            "description": "Echoes what it is given",
            "subcommands": [
                {
                    "name": name,
                    "description": name,
                    "handler": f"commands:{name}",
                    "options": [{"name": "text", "type": "string", "description": "Text"}],
                }
                for name in ("echo", "fail", "slow", "notify")
            ],
        }
    ]
}

COMMANDS = """
import asyncio

from clustercord_sdk.errors import CommandError
from clustercord_sdk.reply import Button, Card, Confirmation, Field, Reply, Table


def echo(ctx):
    text = ctx.options["text"]
    return Reply(
        text=f"you said {text}",
        cards=[Card(title=text[:200], description=text, fields=[Field(text[:200], text)],
                    footer=text)],
        tables=[Table(columns=["NAME", "STATUS"], rows=[[text, "Running"]], title=text[:200])],
        buttons=[Button(text[:70])],
    )


def fail(ctx):
    raise CommandError(f'pods "{ctx.options["text"]}" not found')


async def slow(ctx):
    await asyncio.sleep(1.0)
    return f"late {ctx.options['text']}"


async def notify(ctx):
    await ctx.plugin.notifier.notify(Reply(text=f"alert {ctx.options['text']}"), user=ctx.user_id)
    return "queued"
"""


@pytest.fixture
def evil(make_plugin):
    return make_plugin("evil", manifest=MANIFEST, modules={"commands": COMMANDS})


# -- the function ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "console", "discord"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J", "\\x1b[2J"),
        ("rm -rf /\rls", "rm -rf /\\x0dls", "rm -rf /\\x0dls"),
        ("line\r\nnext\ttab", "line\nnext\ttab", "line\nnext\ttab"),
        ("\x9b2J \x00 \x7f", "\\x9b2J \\x00 \\x7f", "\\x9b2J \\x00 \\x7f"),
        ("admin\u202egnp.exe", "admin\\u202egnp.exe", "admin\\u202egnp.exe"),
        ("@everyone @here", "@everyone @here", "@\u200beveryone @\u200bhere"),
        ("<@1> <@&2> ok", "<@1> <@&2> ok", "<@1> <@&2> ok"),  # shown, never pinged
    ],
)
def test_inert(text, console, discord):
    assert inert(text) == console
    assert inert(text, mentions=True) == discord
    assert inert(inert(text, mentions=True), mentions=True) == discord  # idempotent


def test_only_what_is_displayed_changes():
    from clustercord_sdk.reply import Button, Modal, TextInput

    reply = Reply(
        text=EVIL,
        buttons=[Button("go", action="actions:go", value=EVIL, url=None)],
        modal=Modal(
            title=EVIL, action="actions:done", inputs=[TextInput("n\x1b", EVIL, value=EVIL)]
        ),
        data={"name": EVIL},
    )
    shown = inert_reply(reply, mentions=True)
    assert not RAW_CONTROLS.search(shown.text) and not RAW_CONTROLS.search(shown.modal.title)
    assert shown.buttons[0].value == EVIL and shown.data == {"name": EVIL}
    assert shown.modal.inputs[0].name == "n\x1b" and shown.modal.inputs[0].value == EVIL
    assert reply.text == EVIL  # a copy: the plugin's reply is left alone


# -- the console ---------------------------------------------------------------------------------
def terminal(tmp_path) -> tuple[ConsoleRenderer, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=400)
    return ConsoleRenderer(console, tmp_path / "files"), out


def assert_inert_on_a_terminal(written: str, *, live: bool = False) -> str:
    """``written`` holds none of the sequences of :data:`EVIL`; rich's own colours (SGR)
    aside, no control character at all (``live``: a progress bar, which rich draws with
    CR and cursor moves of its own)."""
    data = written.encode()
    for raw in (b"\x07", b"\x1b]", b"\x1b[2J", b"\x1b[31m-", "\x9b".encode()):
        assert raw not in data, (raw, written)
    plain = SGR.sub("", written)
    if not live:
        assert b"\r" not in data
        assert not RAW_CONTROLS.search(plain.replace("\n", "")), plain
    return plain


async def test_console_shows_option_values_replies_and_errors_inert(
    clustercord_harness, evil, tmp_path
):
    clustercord_harness.add_plugin(evil)
    kernel = await clustercord_harness.start()
    renderer, out = terminal(tmp_path)
    frontend = ConsoleFrontend(kernel, renderer)
    for command in ("echo", "fail"):
        outcome = await frontend.run(("evil", command), {"text": EVIL})
        frontend.show(outcome.reply)
    plain = assert_inert_on_a_terminal(out.getvalue())
    assert f"you said {VISIBLE}" in plain
    assert f'Error: pods "{VISIBLE}' in plain
    assert "[bold red]x[/]" in plain  # markup shown, not applied
    # The same reply as JSON for scripts: the same text for a parser, inert on a terminal.
    outcome = await frontend.run(("evil", "echo"), {"text": EVIL})
    dumped = reply_to_json(outcome.reply)
    assert not RAW_CONTROLS.search(dumped.replace("\n", ""))
    assert json.loads(dumped)["text"] == f"you said {EVIL}"


async def test_console_prompts_and_progress_are_inert(tmp_path):
    from clustercord_sdk.reply import Confirmation, Progress

    renderer, out = terminal(tmp_path)
    renderer.render(Reply(progress=Progress(1, 2, EVIL)))
    renderer.render(Reply(progress=Progress(2, 2, EVIL)))
    assert "\r\x1b[2K" in out.getvalue()  # rich drew the bar: it may use CR
    bar = assert_inert_on_a_terminal(out.getvalue(), live=True)
    assert VISIBLE in bar
    out.seek(0)
    out.truncate()
    assert await renderer.ask(Confirmation(prompt=f"Delete {EVIL}?"), assume_yes=True)
    assert f"Delete {VISIBLE}" in assert_inert_on_a_terminal(out.getvalue())


# -- Discord -------------------------------------------------------------------------------------
def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def assert_inert_in_discord(message: dict[str, Any]) -> str:
    shown = {k: v for k, v in message.items() if k in ("content", "embeds", "components")}
    for text in strings(shown):
        assert not RAW_CONTROLS.search(text), text
        assert not re.search(r"@(everyone|here)\b", text), text
    return "\n".join(strings(shown))


def allowed_mentions(discord, path_part: str) -> list[Any]:
    return [
        r.json.get("allowed_mentions")
        for r in discord.requests
        if path_part in r.path and isinstance(r.json, dict) and r.method in ("POST", "PATCH")
    ]


async def test_discord_messages_are_inert_and_never_ping(fake_discord, clustercord_harness, evil):
    clustercord_harness.add_plugin(evil)
    running = await start_bot(fake_discord, clustercord_harness)
    try:
        quick = await fake_discord.invoke(running.url, "evil echo", {"text": EVIL}, strict=False)
        text = assert_inert_in_discord(quick.message)
        assert f"you said {VISIBLE}" in text and "@\u200beveryone" in text
        assert json.loads(quick.body)["data"]["allowed_mentions"] == {"parse": []}

        failed = await fake_discord.invoke(running.url, "evil fail", {"text": EVIL}, strict=False)
        assert f'pods "{VISIBLE}' in assert_inert_in_discord(failed.message)

        slow = await fake_discord.invoke(running.url, "evil slow", {"text": EVIL}, strict=False)
        await fake_discord.wait_for(lambda: "late" in (slow.message or {}).get("content", ""))
        assert f"late {VISIBLE}" in assert_inert_in_discord(slow.message)
        edits = allowed_mentions(fake_discord, f"/webhooks/{fake_discord.application_id}/")
        assert edits and all(m == {"parse": []} for m in edits), edits

        await fake_discord.invoke(running.url, "evil notify", {"text": EVIL}, strict=False)
        assert await running.frontend.deliver_notifications() == 1
        (dm,) = fake_discord.dm_messages("100000000000000001")
        assert f"alert {VISIBLE}" in assert_inert_in_discord(dm)
        sent = allowed_mentions(fake_discord, "/channels/")
        assert sent and all(m == {"parse": []} for m in sent), sent
    finally:
        await running.server.close()


ADMIN = "100000000000000071"
POD = "web-\x1b]0;pwned\x07-\x1b[2J-\rREADY @everyone"


async def test_a_kubernetes_api_error_is_inert_in_both_front_ends(
    fake_discord, clustercord_harness, sandbox_cluster, tmp_path
):
    async with sandbox_bot(
        fake_discord, clustercord_harness, sandbox_cluster, ["cluster"], {ADMIN: "admin"}
    ) as running:
        options = {"name": POD, "namespace": "default"}
        result = await fake_discord.invoke(
            running.url, "pod logs", options, user_id=ADMIN, strict=False
        )
        text = assert_inert_in_discord(result.message)
        assert 'pods "web-\\x1b]0;pwned\\x07-\\x1b[2J-\\x0dREADY @\u200beveryone"' in text

        renderer, out = terminal(tmp_path)
        frontend = ConsoleFrontend(running.harness.kernel, renderer)
        outcome = await frontend.run(("pod", "logs"), options)
        assert outcome.reply.error and f'pods "{POD}"' in outcome.reply.text  # the API's words
        frontend.show(outcome.reply)
        plain = assert_inert_on_a_terminal(out.getvalue())
        assert 'pods "web-\\x1b]0;pwned\\x07-\\x1b[2J-\\x0dREADY @everyone"' in plain
