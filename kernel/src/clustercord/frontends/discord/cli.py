"""``clustercord serve`` and ``clustercord discord commands`` (wired into ``clustercord.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from clustercord_sdk.errors import UsageError


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the Discord bot (gateway or interaction server)")
    serve.add_argument(
        "--mode",
        choices=["gateway", "interactions"],
        default="gateway",
        help="gateway (needs DISCORD_TOKEN) or an HTTP interaction server "
        "(also DISCORD_PUBLIC_KEY); default gateway",
    )
    serve.add_argument("--host", default="0.0.0.0", help="interaction server address")
    serve.add_argument("--port", type=int, default=8080, help="interaction server port")

    discord = sub.add_parser("discord", help="the Discord front end's command registration")
    discord_sub = discord.add_subparsers(dest="action", required=True)
    commands = discord_sub.add_parser(
        "commands", help="the application commands that would be registered"
    )
    commands.add_argument("--json", action="store_true", help="the exact registration payload")
    commands.add_argument(
        "--guild", help="show the registration for this server id (default: global or [discord])"
    )


def run(args: argparse.Namespace, load_settings: Callable[[], Any]) -> int:
    from clustercord.frontends.discord.settings import DiscordSettings

    settings = load_settings()
    discord = DiscordSettings.load(settings.discord)
    if args.command == "serve":
        from clustercord import instance

        # One bot per data directory: a second serve would answer every interaction twice.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = instance.serving(settings.data_dir)
        try:
            return _serve(args, settings, discord)
        finally:
            lock.release()
    return asyncio.run(_commands(args, settings, discord))


def _serve(args: argparse.Namespace, settings: Any, discord: Any) -> int:
    from clustercord.frontends.discord import server
    from clustercord.kernel import Kernel

    if args.mode == "gateway":
        server.gateway_bot(discord)  # refuse a missing token before starting anything

        async def kernel() -> Any:
            return await Kernel(settings).start()

        server.serve_gateway(kernel, discord)
        return 0
    server.rest_bot(discord)

    async def main() -> None:
        kernel = await Kernel(settings).start()
        try:
            await server.serve_interactions(kernel, discord, args.host, args.port)
        finally:
            await kernel.aclose()

    asyncio.run(main())
    return 0


async def _commands(args: argparse.Namespace, settings: Any, discord: Any) -> int:
    from clustercord.frontends.discord.commands import (
        lightbulb_commands,
        plan_commands,
        registration_json,
    )
    from clustercord.kernel import Kernel

    if args.guild is not None and not str(args.guild).isdigit():
        raise UsageError(f"--guild {args.guild!r}: a server id is a number")
    kernel = await Kernel(settings).start()
    try:
        manifests = [
            p.manifest
            for p in kernel.manager.plugins.values()
            if p.state == "enabled" and p.manifest is not None
        ]
    finally:
        await kernel.aclose()
    plan = plan_commands(manifests)

    async def unused(*_: Any) -> None:  # the payload does not depend on the handlers
        return None

    payload = await registration_json(lightbulb_commands(plan.payloads, unused, unused))
    guilds = [args.guild] if args.guild else [str(g) for g in discord.guilds]
    for rejection in plan.rejected:
        print(f"clustercord: {rejection}", file=sys.stderr)
    if args.json:
        where = {"guilds": guilds} if guilds else {"global": True}
        print(json.dumps({**where, "commands": payload}, indent=2, ensure_ascii=False))
    else:
        place = f"servers {', '.join(guilds)}" if guilds else "global"
        print(f"{len(payload)} commands ({place}):")
        for command in plan.payloads:
            owner = plan.owners[command["name"]]
            print(f"  /{command['name']:<20} {command['description']}  [{owner}]")
    return 1 if plan.rejected else 0
