"""Handlers of the ``/plugin`` commands. The kernel's plugin service does the work."""

from __future__ import annotations

from clustercord_sdk import Card, CommandContext, Field, Reply, Table
from clustercord_sdk.services import PluginInfo

STATE_ICONS = {"enabled": "🟢", "disabled": "⚪", "awaiting-approval": "🟡", "refused": "🔴"}


def grouped_permissions(texts: list[str]) -> list[str]:
    """Permissions as people read them: one ``verbs: resources`` line per set of verbs, in
    declaration order (``list, create, delete: secrets, configmaps``). Fifty-two
    ``resource:verb`` strings in a row hide what a plugin may actually do."""
    verbs_of: dict[str, list[str]] = {}
    others = []
    for text in texts:
        resource, colon, verb = text.rpartition(":")
        if not colon or not resource or text.startswith("capability:"):
            others.append(text)
        else:
            verbs_of.setdefault(resource, []).append(verb)
    resources_of: dict[tuple[str, ...], list[str]] = {}
    for resource, verbs in verbs_of.items():
        resources_of.setdefault(tuple(verbs), []).append(resource)
    lines = [f"{', '.join(v)}: {', '.join(r)}" for v, r in resources_of.items()]
    return lines + others


def _admin(ctx: CommandContext):
    return ctx.plugin.require("plugins")


def _as_data(info: PluginInfo) -> dict:
    return {
        "name": info.name,
        "version": info.version,
        "state": info.state,
        "reason": info.reason,
        "signature": info.signature,
        "signer": info.signer,
        "permissions": info.permissions,
        "granted": info.granted,
        "capabilities": info.capabilities,
        "commands": info.commands,
        "source": info.source,
    }


def list_plugins(ctx: CommandContext) -> Reply:
    infos = _admin(ctx).list()
    table = Table(
        columns=["", "Plugin", "Version", "State", "Signature", "Permissions"],
        rows=[
            [
                STATE_ICONS.get(i.state, "?"),
                i.name,
                i.version,
                i.state + (f" ({i.reason})" if i.reason else ""),
                i.signature,
                "; ".join(grouped_permissions(i.permissions)) or "none",
            ]
            for i in infos
        ],
        title=f"{len(infos)} plugins",
    )
    return Reply(tables=[table], data={"plugins": [_as_data(i) for i in infos]})


def _card(info: PluginInfo) -> Card:
    fields = [
        Field("State", f"{STATE_ICONS.get(info.state, '')} {info.state}", inline=True),
        Field("Version", info.version, inline=True),
        Field(
            "Signature",
            info.signature + (f" by {info.signer[-16:]}" if info.signer else ""),
            inline=True,
        ),
    ]
    if info.reason:
        fields.append(Field("Reason", info.reason))
    fields.append(Field("Permissions", "\n".join(grouped_permissions(info.permissions)) or "none"))
    if info.capabilities:
        fields.append(Field("Capabilities", ", ".join(info.capabilities)))
    if info.commands:
        fields.append(Field("Commands", " ".join(info.commands)))
    if info.config:
        fields.append(Field("Config", "\n".join(f"{k} = {v}" for k, v in info.config.items())))
    return Card(
        title=f"{info.icon or '🧩'} {info.name}",
        description=info.description,
        fields=fields,
        footer=info.source,
    )


def info(ctx: CommandContext) -> Reply:
    details = _admin(ctx).info(ctx.options["name"])
    return Reply(cards=[_card(details)], data=_as_data(details))


async def enable(ctx: CommandContext) -> Reply:
    details = await _admin(ctx).enable(ctx.options["name"], by=ctx.user_id)
    if details.state != "enabled":
        return Reply.fail(
            f"{details.name} could not be enabled: {details.reason}", data=_as_data(details)
        )
    return Reply(text=f"🟢 {details.name} is enabled.", data=_as_data(details))


async def disable(ctx: CommandContext) -> Reply:
    details = await _admin(ctx).disable(
        ctx.options["name"], by=ctx.user_id, reason=ctx.options.get("reason")
    )
    return Reply(text=f"⚪ {details.name} is disabled.", data=_as_data(details))


async def config(ctx: CommandContext) -> Reply:
    admin = _admin(ctx)
    name, key, value = ctx.options["name"], ctx.options.get("key"), ctx.options.get("value")
    if key is None:
        current = admin.info(name).config
        schema = admin.config_schema(name)
        table = Table(
            columns=["Key", "Value", "Type", "Description"],
            rows=[
                [k, current.get(k), spec.get("type"), spec.get("description", "")]
                for k, spec in schema.items()
            ],
            title=f"{name} config",
        )
        return Reply(tables=[table], data={"config": current})
    if value is None:
        return Reply.fail("give value: together with key: to change a setting")
    updated = await admin.set_config(name, key, value, by=ctx.user_id)
    return Reply(text=f"{name}: {key} = {updated[key]}", data={"config": updated})


async def permissions(ctx: CommandContext) -> Reply:
    admin = _admin(ctx)
    name = ctx.options["name"]
    if ctx.options.get("approve"):
        details = await admin.approve(name, by=ctx.user_id)
        granted = ", ".join(details.granted) or "nothing"
        text = f"✅ Granted to {name}: {granted} — now {details.state}."
        return Reply(text=text, data=_as_data(details))
    details = admin.info(name)
    wanted = details.permissions + [f"capability:{c}" for c in details.capabilities]
    rows = [[w, "✓" if w in details.granted else "✗ not granted"] for w in wanted]
    return Reply(
        tables=[Table(columns=["Declared", "Granted"], rows=rows, title=f"{name} permissions")],
        data={"declared": wanted, "granted": details.granted},
    )
