"""Handlers of the ``/plugin`` commands. The kernel's plugin service does the work."""

from __future__ import annotations

import dataclasses
from typing import Any

from clustercord_sdk import Card, CommandContext, Field, Reply, Table
from clustercord_sdk.errors import UsageError
from clustercord_sdk.paging import Pager, command_line
from clustercord_sdk.services import MarketEntry, PluginInfo

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


# -- the marketplace ---------------------------------------------------------------------------
def _stars(count: int | None) -> str:
    return f"⭐ {count}" if count is not None else ""


def _status(entry: MarketEntry) -> str:
    if entry.installed is None:
        return ""
    if entry.updatable:
        return f"installed {entry.installed}, ⬆ {entry.version}"
    return f"installed {entry.installed}"


BROWSE_FILTERS = ("category", "query")
BROWSE_PAGE = "commands:browse_page"


async def browse(ctx: CommandContext) -> Reply:
    """One page of the marketplace: only that page's entries are built, and ◀ ▶ (Discord)
    or the ``next:`` line (console) ask for the one before or after with the same filters."""
    filters = {k: ctx.options[k] for k in BROWSE_FILTERS if ctx.options.get(k)}
    page = await _admin(ctx).browse(**filters, page=_page_number(ctx.options.get("page")))
    rows = [
        [
            "✅" if e.verified_by else "",
            f"{e.icon or '🧩'} {e.name}",
            e.version,
            _stars(e.stars),
            e.category,
            e.description,
            _status(e),
        ]
        for e in page.entries
    ]
    table = Table(
        columns=["", "Plugin", "Version", "Stars", "Category", "Description", "Here"],
        rows=rows,
        title=f"Marketplace: {page.total} plugins, page {page.page}/{page.pages}",
    )
    notes = [f"⚠ {p}" for p in page.problems]
    pager = Pager.clamped(page.page, page.pages)  # the service has clamped it already
    if page.pages > 1:
        notes.append(pager.hint(command_line("/plugin browse", filters)))
    notes.append("✅ verified by the source · /plugin install name:… to install")
    return Reply(
        text="\n".join(notes),
        tables=[table],
        buttons=pager.buttons(BROWSE_PAGE, {"options": filters}, command="plugin browse"),
        data={
            "page": page.page,
            "pages": page.pages,
            "total": page.total,
            "problems": page.problems,
            "entries": [
                {
                    "name": e.name,
                    "version": e.version,
                    "category": e.category,
                    "stars": e.stars,
                    "verified_by": e.verified_by,
                    "installed": e.installed,
                    "updatable": e.updatable,
                    "source": e.source,
                }
                for e in page.entries
            ],
        },
    )


async def browse_page(ctx: CommandContext, value: Any) -> Reply:
    """◀ ▶ of ``/plugin browse``: the page asked for, from the catalog as it is now (an
    index fetched since adds or drops entries; the page number is clamped)."""
    if not isinstance(value, dict) or not isinstance(value.get("options"), dict):
        raise UsageError("this button is not one the plugins plugin made")
    options: dict[str, Any] = {
        k: str(v) for k, v in value["options"].items() if k in BROWSE_FILTERS and v
    }
    options["page"] = _page_number(value.get("page"))
    return await browse(dataclasses.replace(ctx, options=options))


def _page_number(raw: Any) -> int:
    try:
        return max(1, int(raw or 1))
    except (TypeError, ValueError):
        raise UsageError(f"page must be a whole number, not {raw!r}") from None


def _steps(ctx: CommandContext):
    done: list[str] = []

    async def progress(step: str) -> None:
        done.append(step)
        await ctx.progress(len(done), 6, label=step.capitalize() + "…")

    return progress, done


def _asks(entry: MarketEntry) -> str:
    wanted = grouped_permissions(entry.permissions) + [
        f"capability:{c}" for c in entry.capabilities
    ]
    return "\n".join(f"• {w}" for w in wanted) or "• nothing (no Kubernetes access)"


def _installed_text(verb: str, info: PluginInfo, added: list[str]) -> str:
    lines = [f"✅ {verb} {info.name} {info.version}."]
    if info.state == "awaiting-approval":
        ask = ", ".join(added) or info.reason or ""
        lines.append(
            f"🟡 Disabled until an admin approves: {ask} "
            f"(/plugin permissions name:{info.name} approve:true)"
        )
    elif info.state == "enabled" and info.commands:
        lines.append("New commands: " + " ".join(info.commands))
    return "\n".join(lines)


async def install(ctx: CommandContext) -> Reply:
    admin = _admin(ctx)
    name, version = ctx.options["name"], ctx.options.get("version")
    entry = await admin.market_entry(name, version)
    verified = f"verified by {entry.verified_by}" if entry.verified_by else "not verified"
    prompt = (
        f"Install {entry.icon or '🧩'} {entry.name} {entry.version} from {entry.source} "
        f"({verified})?\nIt asks for:\n{_asks(entry)}"
    )
    if not await ctx.confirm(prompt, danger=bool(entry.permissions or entry.capabilities)):
        return Reply(text=f"Not installed: nothing of {name} was downloaded.")
    progress, _ = _steps(ctx)
    info = await admin.install(name, version=version, by=ctx.user_id, progress=progress)
    added = [p for p in info.permissions if p not in info.granted]
    return Reply(text=_installed_text("Installed", info, added), data=_as_data(info))


async def update(ctx: CommandContext) -> Reply:
    admin = _admin(ctx)
    name = ctx.options.get("name")
    if name:
        names = [name]
    else:
        page = await admin.browse(per_page=25, page=1)
        names = []
        for number in range(1, page.pages + 1):
            if number > 1:
                page = await admin.browse(per_page=25, page=number)
            names += [e.name for e in page.entries if e.updatable]
        if not names:
            return Reply(text="Every marketplace plugin is up to date.")
    texts, data = [], []
    for each in names:
        entry = await admin.market_entry(each)
        current = admin.info(each)
        added = [p for p in entry.permissions if p not in current.granted]
        removed = [p for p in current.permissions if p not in entry.permissions]
        diff = "\n".join([f"+ {p}" for p in added] + [f"- {p}" for p in removed])
        prompt = f"Update {each} {current.version} → {entry.version}?" + (
            f"\nPermissions:\n{diff}" if diff else "\nSame permissions."
        )
        if not await ctx.confirm(prompt, danger=bool(added)):
            texts.append(f"{each}: not updated.")
            continue
        progress, _ = _steps(ctx)
        info = await admin.update(each, by=ctx.user_id, progress=progress)
        text = _installed_text(
            "Updated", info, [p for p in info.permissions if p not in info.granted]
        )
        if removed:
            text += "\nNo longer granted (role narrowed): " + ", ".join(removed)
        texts.append(text)
        data.append(_as_data(info))
    return Reply(text="\n".join(texts), data={"updated": data})


async def remove(ctx: CommandContext) -> Reply:
    admin = _admin(ctx)
    name, purge = ctx.options["name"], bool(ctx.options.get("purge_data"))
    what = "its commands, ServiceAccount and roles" + (", and all its data" if purge else "")
    if not await ctx.confirm(f"Remove {name}: {what}?", danger=True):
        return Reply(text=f"{name} kept.")
    version = await admin.remove(name, by=ctx.user_id, purge_data=purge)
    kept = "" if purge else " Its data is kept (purge_data:true deletes it)."
    return Reply(
        text=f"🗑 Removed {name} {version}: {what} are gone.{kept}",
        data={"removed": name, "version": version, "purged": purge},
    )
