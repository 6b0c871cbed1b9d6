from __future__ import annotations

from clustercord_sdk import Card, CommandContext, Field, Reply, Table


def show_help(ctx: CommandContext) -> Reply:
    commands = ctx.plugin.require("plugins").commands()
    wanted = (ctx.options.get("command") or "").strip().lstrip("/")
    if wanted:
        matching = [
            c for c in commands if c["path"] == wanted or c["path"].startswith(wanted + " ")
        ]
        if not matching:
            return Reply.fail(f"no command /{wanted}; /help lists them all")
        cards = []
        for command in matching:
            fields = [
                Field(
                    f"{o['name']}:" + ("" if o["required"] else " (optional)"),
                    (o["description"] or o["type"])
                    + (f" — one of {', '.join(map(str, o['choices']))}" if o["choices"] else ""),
                )
                for o in command["options"]
            ]
            flags = [f for f in ("admin", "destructive") if command[f]]
            cards.append(
                Card(
                    title=f"/{command['path']}",
                    description=command["description"],
                    fields=fields,
                    footer=", ".join(flags) or None,
                )
            )
        return Reply(cards=cards, data={"commands": matching})
    rows = [
        [
            "/" + c["path"],
            " ".join(f"{o['name']}:" if o["required"] else f"[{o['name']}:]" for o in c["options"]),
            c["description"],
            c["plugin"],
        ]
        for c in commands
    ]
    table = Table(
        columns=["Command", "Options", "Description", "Plugin"],
        rows=rows,
        title=f"{len(rows)} commands",
    )
    return Reply(tables=[table], data={"commands": commands})
