"""An interaction server (real hikari RESTBot + lightbulb) over a kernel, against the fake
Discord of the SDK's testing kit."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

DEMO_MANIFEST = {
    "name": "demo",
    "version": "1.0.0",
    "api": ">=1.0,<2",
    "description": "Commands that exercise the Discord front end",
    "commands": [
        {
            "name": "demo",
            "description": "Demo commands",
            "subcommands": [
                {
                    "name": "echo",
                    "description": "Say it again",
                    "handler": "commands:echo",
                    "options": [
                        {
                            "name": "text",
                            "type": "string",
                            "description": "What to say",
                            "required": True,
                            "max_length": 50,
                        },
                        {
                            "name": "count",
                            "type": "integer",
                            "description": "How often",
                            "min": 1,
                            "max": 3,
                        },
                    ],
                },
                {"name": "slow", "description": "Takes a while", "handler": "commands:slow"},
                {"name": "pages", "description": "Three pages", "handler": "commands:pages"},
                {
                    "name": "wipe",
                    "description": "Destroys things",
                    "handler": "commands:wipe",
                    "destructive": True,
                },
                {"name": "form", "description": "Asks for a name", "handler": "commands:form"},
                {"name": "dump", "description": "Too much output", "handler": "commands:dump"},
                {"name": "notify", "description": "DMs you", "handler": "commands:notify"},
                {"name": "button", "description": "A button", "handler": "commands:button"},
                {
                    "name": "progress",
                    "description": "Shows progress",
                    "handler": "commands:progress",
                },
                {
                    "name": "secret",
                    "description": "Private answer",
                    "handler": "commands:secret",
                    "ephemeral": True,
                },
                {
                    "name": "upload",
                    "description": "Reads a file",
                    "handler": "commands:upload",
                    "options": [
                        {
                            "name": "file",
                            "type": "attachment",
                            "description": "A file",
                            "required": True,
                        }
                    ],
                },
            ],
        }
    ],
}

DEMO_COMMANDS = """
import asyncio

from clustercord_sdk.reply import Button, Modal, Reply, TextInput


def echo(ctx):
    return " ".join([ctx.options["text"]] * (ctx.options["count"] or 1))


async def slow(ctx):
    await asyncio.sleep(SLOW)
    return "slow done"


def pages(ctx):
    return Reply(pages=[Reply(text=f"page {n}") for n in (1, 2, 3)])


def wipe(ctx):
    return "wiped"


def form(ctx):
    return Reply(modal=Modal(title="Tell me", action="actions:form_done",
                             inputs=[TextInput("name", "Your name")]))


def dump(ctx):
    return Reply(text="line of output\\n" * 1000)


async def notify(ctx):
    await ctx.plugin.notifier.notify(Reply(text="psst, only for you"), user=ctx.user_id)
    return "sent you a DM"


def button(ctx):
    return Reply(text="press it", buttons=[Button("Go", action="actions:go", value=42)])


async def progress(ctx):
    for step in range(1, 6):
        yield Reply(progress=__import__("clustercord_sdk.reply").reply.Progress(step, 5, "Copying"))
        await asyncio.sleep(0.05)
    yield Reply(text="copied 5 files")


def secret(ctx):
    return "the secret is 42"


def upload(ctx):
    file = ctx.options["file"]
    return f"{file.name}: {len(file.data)} bytes, starts {file.data[:5].decode()!r}"
"""

DEMO_ACTIONS = """
def go(ctx, value):
    return f"went {value} for <@{ctx.user_id}>"


def form_done(ctx, fields):
    return f"hello {fields['name']}"
"""


@dataclass
class Bot:
    """The running interaction server and what a test needs to talk to it."""

    discord: Any
    harness: Any
    server: Any
    url: str
    sandbox: Any = None
    """The sandbox cluster the kernel talks to, for a bot started over one."""

    @property
    def frontend(self) -> Any:
        return self.server.frontend


def demo_plugin(root: Path, slow: float = 0.9) -> Path:
    folder = root / "demo"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(DEMO_MANIFEST), "utf-8")
    (folder / "__init__.py").write_text("", "utf-8")
    (folder / "commands.py").write_text(f"SLOW = {slow}\n" + textwrap.dedent(DEMO_COMMANDS))
    (folder / "actions.py").write_text(textwrap.dedent(DEMO_ACTIONS))
    return folder


def discord_settings(discord: Any, **overrides: Any) -> Any:
    from clustercord.frontends.discord.settings import DiscordSettings

    values = {
        "token": discord.bot_token,
        "public_key": discord.public_key_hex,
        "api_url": discord.api_url,
        "guilds": (int(discord.guild_id),),
        "allowed_guilds": frozenset({discord.guild_id}),
        "defer_after": 0.6,
        "progress_interval": 0.1,
    }
    values.update(overrides)
    return DiscordSettings(**values)


async def start_bot(discord: Any, harness: Any, **settings: Any) -> Bot:
    from clustercord.frontends.discord.server import start_interaction_server

    kernel = await harness.start()
    server = await start_interaction_server(
        kernel, discord_settings(discord, **settings), host="127.0.0.1", port=0, background=False
    )
    return Bot(discord, harness, server, server.url)


@asynccontextmanager
async def sandbox_bot(
    discord: Any,
    harness: Any,
    sandbox_cluster: Callable[..., Any],
    builtins: list[str],
    identity: dict[str, str],
) -> AsyncIterator[Bot]:
    """A server with the ``builtins`` plugins over the ``homelab`` sandbox cluster, each
    Discord user of ``identity`` acting as the Kubernetes user it maps to; closed after."""
    sandbox = sandbox_cluster("homelab")
    harness.add_builtins(builtins)
    # Set, not ``harness.restart(identity=...)``: that starts a kernel, and start_bot would
    # start a second one over it, the first never closed.
    users = {discord_id: {"user": user} for discord_id, user in identity.items()}
    harness.settings = replace(harness.settings, identity={"users": users})
    running = await start_bot(discord, harness)
    running.sandbox = sandbox
    try:
        yield running
    finally:
        await running.server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_bot(tmp_path_factory, clustercord_signer):
    """One interaction server for a whole test module (tests that leave no lasting change)."""
    from clustercord_testing.fake_discord import FakeDiscord
    from clustercord_testing.harness import KernelHarness

    root = tmp_path_factory.mktemp("discord")
    async with FakeDiscord() as discord:
        harness = KernelHarness(root / "data", clustercord_signer)
        harness.add_builtins(["plugins"])
        harness.add_plugin(demo_plugin(root / "src"))
        running = await start_bot(discord, harness)
        yield running
        await running.server.close()
        harness.close()


@pytest_asyncio.fixture(loop_scope="module")
async def bot(shared_bot):
    """The shared server; the test fails if it sent anything Discord would reject."""
    before = len(shared_bot.discord.violations)
    yield shared_bot
    new = shared_bot.discord.violations[before:]
    if new:
        pytest.fail("payloads Discord would reject:\n  " + "\n  ".join(new), pytrace=False)


@pytest_asyncio.fixture
async def fresh_bot(fake_discord, clustercord_harness, tmp_path):
    """A server of its own, for a test that restarts it or changes its plugins."""
    clustercord_harness.add_builtins(["plugins"])
    clustercord_harness.add_plugin(demo_plugin(tmp_path / "src"))
    running = await start_bot(fake_discord, clustercord_harness)
    yield running
    await running.server.close()
