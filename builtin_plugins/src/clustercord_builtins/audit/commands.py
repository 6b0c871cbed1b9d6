from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Any

from clustercord_sdk import Card, CommandContext, Field, Reply, Table, UsageError
from clustercord_sdk.paging import Pager, command_line
from clustercord_sdk.reply import code_block

PAGE_SIZE = 20
"""Entries a page of ``/audit list``."""
SHOWN_PROBLEMS = 20
"""Problems and warnings written out by ``/audit verify`` (all of them are in its data)."""
SHOWN_STARTED = 50
"""Calls started with no result that ``/audit verify`` lists (newest first; all are counted)."""
PAGE_ACTION = "commands:page"
RESULTS = ("ok", "error", "denied", "cancelled", "started")
FILTERS = ("since", "plugin", "user", "result")
_MENTION = re.compile(r"^<@!?(\d{1,20})>$")


def _reader(ctx: CommandContext) -> Any:
    return ctx.plugin.require("audit-read")


# -- /audit list -------------------------------------------------------------------------
def list_entries(ctx: CommandContext) -> Reply:
    """One page of calls, newest first, as the log was when the listing began (``upto``):
    the ◀ ▶ buttons and ``page:``/``upto:`` see the same entries, however the log grows."""
    reader = _reader(ctx)
    options = ctx.options
    result = options.get("result")
    if result is not None and result not in RESULTS:
        raise UsageError(f"result: one of {', '.join(RESULTS)}")
    upto = options.get("upto")
    if upto is None:
        # This very call's intent is in the log already: the listing stops before it.
        own = _own_intent(ctx, reader)
        upto = own - 1 if own is not None else reader.head_seq()
    upto = int(upto)
    since = options.get("since")
    filters: dict[str, Any] = {
        "upto_seq": upto,
        "since_ts": _anchor_ts(reader, upto) - float(since) if since is not None else None,
        "plugin": options.get("plugin") or None,
        "actor": _actor(options.get("user")),
        "result": result,
    }
    total = reader.count(**filters)
    pager = Pager.over(total, PAGE_SIZE, options.get("page"))
    number, pages = pager.page, pager.pages
    entries = reader.rows(**filters, limit=PAGE_SIZE, offset=pager.offset(PAGE_SIZE))
    state = {k: options[k] for k in FILTERS if options.get(k) is not None} | {"upto": upto}
    command = command_line("/audit list", state)
    following = pager.next_line(command)
    cursor = {"page": number + 1, "upto": upto, "command": following} if following else None
    data = {
        "entries": [_plain(entry) for entry in entries],
        "total": total,
        "page": number,
        "pages": pages,
        "upto": upto,
        "cursor": cursor,
    }
    if not entries:
        return Reply(
            text=f"No audit entries{_described(state)} (up to seq {upto}).",
            data=data,
            ephemeral=True,
        )
    first = pager.offset(PAGE_SIZE) + 1
    title = f"{total} audit entr{'y' if total == 1 else 'ies'}{_described(state)}, newest first"
    if pages > 1:
        title += f" ({number}/{pages}: {first}–{first + len(entries) - 1})"
    return Reply(
        text=pager.hint(command),
        tables=[
            Table(
                columns=["Seq", "Time (UTC)", "Actor", "Action", "Plugin", "Result", "Duration"],
                rows=[_line(entry) for entry in entries],
                title=title,
            )
        ],
        buttons=pager.buttons(PAGE_ACTION, {"options": state}, command="audit list"),
        data=data,
        ephemeral=True,
    )


def page(ctx: CommandContext, value: Any) -> Reply:
    """◀ ▶ of ``/audit list``: the page asked for, of the same view (its ``upto``)."""
    if not isinstance(value, dict) or not isinstance(value.get("options"), dict):
        raise UsageError("this button is not one the audit plugin made")
    options = {k: v for k, v in value["options"].items() if k in (*FILTERS, "upto")}
    try:
        options["upto"] = int(options["upto"])
        options["page"] = int(value.get("page") or 1)
    except (KeyError, TypeError, ValueError):
        raise UsageError("this button is not one the audit plugin made") from None
    return list_entries(dataclasses.replace(ctx, options=options))


def _described(state: dict[str, Any]) -> str:
    said = []
    if "since" in state:
        said.append(f"in the last {_duration(float(state['since']) * 1000)}")
    if "plugin" in state:
        said.append(f"of plugin {state['plugin']}")
    if "user" in state:
        said.append(f"by {state['user']}")
    if "result" in state:
        said.append("started with no result" if state["result"] == "started" else state["result"])
    return f" ({', '.join(said)})" if said else ""


def _anchor_ts(reader: Any, upto: int) -> float:
    """The time ``since:`` counts back from: that of the listing's newest row (``upto``), so
    every page of one listing has the same window."""
    entry = reader.entry(upto) if upto > 0 else None
    return float(entry["ts"]) if entry is not None else time.time()


def _actor(user: Any) -> str | None:
    """``<@123>`` → ``123``; ``discord:123``, ``console`` and ``scheduler`` as they are."""
    if user is None or not str(user).strip():
        return None
    text = str(user).strip()
    match = _MENTION.match(text)
    return match.group(1) if match else text


# -- /audit verify -----------------------------------------------------------------------
def verify(ctx: CommandContext) -> Reply:
    """The chain checked; the calls that started with no result (killed midway) listed,
    except this very one, which is running."""
    reader = _reader(ctx)
    own = _own_intent(ctx, reader)
    check = reader.verify()
    warnings = [w for w in check.warnings if own is None or not w.startswith(f"seq {own}:")]
    started = [
        entry
        for entry in reader.rows(result="started", limit=SHOWN_STARTED + 1)
        if entry["seq"] != own and entry["seq"] <= check.last_seq
    ][:SHOWN_STARTED]
    unanswered = reader.count(result="started", upto_seq=check.last_seq) - (own is not None)
    data = {
        "ok": check.ok,
        "count": check.count,
        "head": check.head,
        "last_seq": check.last_seq,
        "problems": check.problems,
        "warnings": warnings,
        "started": [_plain(entry) for entry in started],
        "started_count": unanswered,
    }
    cards = []
    if check.ok:
        text = (
            f"✅ Audit log intact: {check.count} rows, chain verified up to seq {check.last_seq}."
        )
    else:
        text = f"⛔ Audit log tampered: {len(check.problems)} problem(s) in {check.count} rows."
        cards.append(
            Card(
                title="Problems",
                description="\n".join(f"• {p}" for p in check.problems[:SHOWN_PROBLEMS])
                + _more(check.problems),
                color="red",
            )
        )
    tables = []
    if started:
        text += (
            f"\n⚠ {unanswered} call(s) started with no result recorded "
            "(killed midway, or still running)"
            + (f", the {len(started)} newest:" if unanswered > len(started) else ":")
        )
        tables.append(
            Table(
                columns=["Seq", "Started (UTC)", "Actor", "Action", "Plugin"],
                rows=[_line(entry)[:5] for entry in started],
                title="Started, no result",
            )
        )
    elif warnings:
        text += "\n" + "\n".join(f"⚠ {w}" for w in warnings[:SHOWN_PROBLEMS]) + _more(warnings)
    return Reply(text=text, cards=cards, tables=tables, data=data, ephemeral=True)


def _more(items: list[str]) -> str:
    return f"\n… and {len(items) - SHOWN_PROBLEMS} more" if len(items) > SHOWN_PROBLEMS else ""


# -- /audit show -------------------------------------------------------------------------
def show(ctx: CommandContext) -> Reply:
    seq = int(ctx.options["seq"])
    entry = _reader(ctx).entry(seq)
    if entry is None:
        raise UsageError(f"no audit entry seq {seq}")
    fields = [
        Field("Time (UTC)", _time(entry["ts"]), inline=True),
        Field("Actor", entry["actor"], inline=True),
        Field("Result", entry["result"], inline=True),
        Field("Plugin", entry.get("plugin") or "—", inline=True),
        Field("Duration", _duration(entry.get("duration_ms")), inline=True),
    ]
    if entry.get("cluster") or entry.get("namespace"):
        where = f"{entry.get('cluster') or '—'}/{entry.get('namespace') or '—'}"
        fields.append(Field("Cluster/namespace", where, inline=True))
    if entry.get("intent_seq") is not None:
        fields.append(Field("Intent", f"seq {entry['intent_seq']}", inline=True))
    if entry.get("message"):
        fields.append(Field("Message", _cut(str(entry["message"]), 1000)))
    options = entry.get("options")
    shown = json.dumps(options, indent=2, ensure_ascii=False, default=str)
    fields.append(Field("Options (secrets masked)", code_block(_cut(shown, 900), "json")))
    return Reply(
        cards=[Card(title=f"Audit seq {seq}: {_action(entry['action'])}", fields=fields)],
        data={"entry": _plain(entry)},
        ephemeral=True,
    )


# -- shared ------------------------------------------------------------------------------
def _own_intent(ctx: CommandContext, reader: Any) -> int | None:
    """The seq of this call's own intent row (written just before the handler ran): the
    newest unanswered one of this user for this command, or for this plugin's button."""
    invocation = ctx.invocation
    actor = f"{invocation.frontend}:{invocation.user_id}"
    actions = {invocation.path, f"component {PAGE_ACTION}"}
    for entry in reader.rows(actor=actor, result="started", limit=10):
        if entry["actor"] == actor and entry["action"] in actions:
            return int(entry["seq"])
    return None


def _line(entry: dict[str, Any]) -> list[Any]:
    return [
        entry["seq"],
        _time(entry["ts"]),
        entry["actor"],
        _action(entry["action"]),
        entry.get("plugin") or "—",
        entry["result"],
        _duration(entry.get("duration_ms")),
    ]


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry for the data (``--json``): its columns, without the chain's hashes."""
    return {k: v for k, v in entry.items() if k not in ("prev_hash", "hash", "chain")}


def _action(action: str) -> str:
    """``/template deploy`` for a command; ``component x:y``, ``job x:y`` as they are."""
    first = action.split(" ", 1)[0]
    if first in ("component", "form", "job") or ":" in first:
        return action
    return f"/{action}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts or 0)))


def _duration(ms: Any) -> str:
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    if ms < 7_200_000:
        return f"{ms / 60_000:.0f} min"
    if ms < 172_800_000:
        return f"{ms / 3_600_000:.0f} h"
    return f"{ms / 86_400_000:.0f} d"
