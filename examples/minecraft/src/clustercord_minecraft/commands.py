"""The /minecraft-* commands."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clustercord_sdk import CommandContext, Reply
from clustercord_sdk.errors import CommandError

from .rcon import Rcon, RconError


def address(
    config: Mapping[str, Any], server: str, namespace: str | None, port_key: str = "port"
) -> tuple[str, int]:
    """``host:port`` as given, or the configured address of StatefulSet ``server``."""
    host, colon, port = server.rpartition(":")
    if colon and port.isdigit():
        return host, int(port)
    namespace = namespace or config["namespace"]
    return config["host"].format(server=server, namespace=namespace), config[port_key]


async def status(ctx: CommandContext) -> Reply:
    from mcstatus import JavaServer  # the Server List Ping protocol

    host, port = address(ctx.config, ctx.options["server"], ctx.options.get("namespace"))
    try:
        answer = await JavaServer(host, port, timeout=5).async_status()
    except (OSError, TimeoutError) as exc:
        raise CommandError(f"{host}:{port} did not answer a status ping: {exc}") from None
    motd = answer.motd.to_plain()
    players = answer.players
    names = ", ".join(p.name for p in players.sample or [])
    text = (
        f"🟢 {ctx.options['server']}: {players.online}/{players.max} players"
        + (f" ({names})" if names else "")
        + f", {answer.version.name}, {answer.latency:.0f} ms\n{motd}"
    )
    return Reply(
        text=text,
        data={
            "online": players.online,
            "max": players.max,
            "players": [p.name for p in players.sample or []],
            "version": answer.version.name,
            "motd": motd,
            "latency_ms": round(answer.latency, 1),
        },
    )


async def _rcon(config: Mapping[str, Any], server: str, namespace: str | None = None) -> Rcon:
    password = config.get("rcon_password")
    if not password:
        raise CommandError(
            "set rcon_password first: /plugin config name:minecraft key:rcon_password"
        )
    host, port = address(config, server, namespace, "rcon_port")
    try:
        return await Rcon.connect(host, port, password)
    except (OSError, TimeoutError, RconError) as exc:
        raise CommandError(f"RCON at {host}:{port}: {exc}") from None


async def restart(ctx: CommandContext) -> Reply:
    server = ctx.options["server"]
    namespace = ctx.options.get("namespace") or ctx.config["namespace"]
    warned = ""
    if ctx.options.get("broadcast", True):
        client = await _rcon(ctx.config, server, ctx.options.get("namespace"))
        try:
            await client.command(f"say Server restarting now (asked by {ctx.user_id})")
        finally:
            client.close()
        warned = " Players were warned."
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # What `kubectl rollout restart` does: a new pod template annotation.
    await ctx.kubernetes.patch(
        "statefulsets.apps",
        server,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        },
        namespace=namespace,
    )
    return Reply(
        text=f"🔄 Restarting {namespace}/{server}.{warned}",
        data={"restarted_at": stamp, "warned": bool(warned)},
    )


async def backup(ctx: CommandContext) -> Reply:
    server = ctx.options["server"]
    said, backups = await save_world(
        ctx, server, by=ctx.user_id, namespace=ctx.options.get("namespace")
    )
    return Reply(
        text=f"💾 {server}: world saved ({said.strip() or 'ok'}); {len(backups)} backups listed.",
        data={"backups": backups},
    )


async def save_world(
    ctx: Any, server: str, *, by: str, namespace: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Flush ``server``'s world to disk over RCON and list the backup (``max_backups`` kept)."""
    client = await _rcon(ctx.config, server, namespace)
    try:
        # Autosave off while the world is flushed, so the files on disk are consistent.
        await client.command("save-off")
        said = await client.command("save-all flush")
        await client.command("save-on")
    finally:
        client.close()
    backups = ctx.store.get(f"backups:{server}", [])
    backups.append({"at": time.time(), "by": by, "server_said": said})
    backups = backups[-ctx.config["max_backups"] :]
    ctx.store.set(f"backups:{server}", backups)
    return said, backups


async def scheduled_backups(ctx: Any) -> None:
    """The ``backup_interval`` job: every server of ``backup_servers``; one that does not
    answer is logged and the others are still saved."""
    for server in servers_to_back_up(ctx.config):
        try:
            await save_world(ctx, server, by="schedule")
        except (CommandError, OSError) as exc:
            ctx.log.warning("scheduled backup of %s failed: %s", server, exc)


def servers_to_back_up(config: Mapping[str, Any]) -> list[str]:
    return [
        name.strip() for name in str(config.get("backup_servers") or "").split(",") if name.strip()
    ]
