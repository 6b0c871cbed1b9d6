"""A bare hikari ``RESTBot`` with lightbulb 3 commands, served against a fake Discord.

It is the reference for the fake and for ClusterCord's Discord front end: the end-to-end
tests of the fake run it (a real bot answering through the fake proves the fake is
faithful), and the Discord benchmark measures it as the baseline.

::

    async with FakeDiscord() as discord, reference_bot(discord) as bot:  # or any Application
        result = await discord.invoke(bot.endpoint_url, "echo", {"text": "hi"})
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import hikari
import lightbulb


class Application(Protocol):
    """What a bot needs to know of its Discord application (a ``FakeDiscord`` has it)."""

    @property
    def bot_token(self) -> str: ...
    @property
    def public_key_hex(self) -> str: ...
    @property
    def api_url(self) -> str: ...
    @property
    def guild_id(self) -> str: ...


@dataclass(frozen=True)
class ApplicationSettings:
    """An :class:`Application` given by value (e.g. to a bot in another process)."""

    bot_token: str
    public_key_hex: str
    api_url: str
    guild_id: str


class Ping(lightbulb.SlashCommand, name="ping", description="Answers pong"):
    """Answers at once."""

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond("pong")


class Echo(lightbulb.SlashCommand, name="echo", description="Says the text back"):
    """Answers with an option's value."""

    text = lightbulb.string("text", "What to say")
    times = lightbulb.integer("times", "How many times", default=1, min_value=1, max_value=5)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond(" ".join([self.text] * self.times))


class Slow(lightbulb.SlashCommand, name="slow", description="Defers, then follows up"):
    """Acknowledges with a deferral, then answers through the interaction webhook."""

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.defer()
        await asyncio.sleep(0.05)
        await ctx.respond("done")


COMMANDS: tuple[type[lightbulb.SlashCommand], ...] = (Ping, Echo, Slow)


@dataclass
class ReferenceBot:
    """The running bot: where Discord delivers interactions, and the hikari objects."""

    endpoint_url: str
    bot: hikari.RESTBot
    client: lightbulb.RestEnabledClient


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@asynccontextmanager
async def reference_bot(
    discord: Application,
    *,
    register: Callable[[lightbulb.RestEnabledClient], None] | None = None,
    guild_commands: bool = True,
    fetch_public_key: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[ReferenceBot]:
    """Serve :data:`COMMANDS` (and whatever ``register`` adds) with hikari and lightbulb.

    The commands are synced into the fake's guild (``guild_commands``) or globally.
    With ``fetch_public_key`` hikari reads the public key from the application object
    (``verify_key``) instead of being given it.
    """
    bot = hikari.RESTBot(
        discord.bot_token,
        "Bot",
        public_key=None if fetch_public_key else discord.public_key_hex,
        rest_url=discord.api_url,
        banner=None,
        logs=None,
    )
    client = lightbulb.client_from_app(bot)
    guilds = [hikari.Snowflake(discord.guild_id)] if guild_commands else None
    for command in COMMANDS:
        client.register(command, guilds=guilds)
    if register is not None:
        register(client)
    bot.add_startup_callback(client.start)
    sock = _free_socket(host, port)
    port = sock.getsockname()[1]
    await bot.start(socket=sock, check_for_updates=False)
    try:
        yield ReferenceBot(f"http://{host}:{port}/", bot, client)
    finally:
        await bot.close()
        sock.close()
