"""`/audit` end to end on the kernel harness: the audit builtin reads the kernel's log through
its `audit-read` capability. Admins only; `/audit list` shows the calls newest first, filtered,
paged as one view however the log grows; `/audit verify` names the commands killed midway
(an intent row with no result) and reports an edited row; `/audit show` keeps secrets masked."""

from __future__ import annotations

import json
import sqlite3

import pytest

from clustercord_sdk import Invocation

from .conftest import one_command

ALICE, ADMIN = "1001", "1003"
SECRET = "hunter2-Sup3rSecret"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"
ECHO = """
from clustercord_sdk import UsageError


def run(ctx):
    if ctx.options.get("fail"):
        raise UsageError("asked to fail")
    return "echo " + str(ctx.options.get("text"))
"""


@pytest.fixture
async def harness(clustercord_harness, add_plugin):
    from clustercord.config import AccessConfig

    clustercord_harness.add_builtins(["audit"])
    options = [
        {"name": "text", "type": "string", "description": "Text"},
        {"name": "token", "type": "string", "description": "A secret"},
        {"name": "fail", "type": "boolean", "description": "Fail"},
    ]
    add_plugin("echo", manifest=one_command("echo", options=options), modules={"commands": ECHO})
    await clustercord_harness.restart(access=AccessConfig(admins=frozenset({f"user:{ADMIN}"})))
    return clustercord_harness


async def run(harness, line, user=ADMIN):
    return await harness.run(line, user=user, frontend="discord")


async def listed(harness, line="/audit list", user=ADMIN):
    result = await run(harness, line, user)
    assert result.ok, result.text
    return result.reply


async def test_only_admins_read_the_audit_log(harness):
    assert harness.plugin("audit").state == "enabled"
    for line in ("/audit list", "/audit verify", "/audit show seq:1"):
        refused = await run(harness, line, user=ALICE)
        assert refused.status == "denied", (line, refused.text)
        assert "admins only" in refused.text
        assert not refused.reply.data
    # The refusals are audited, and an admin sees them.
    entries = (await listed(harness, "/audit list result:denied")).data["entries"]
    assert [e["action"] for e in entries] == ["audit show", "audit verify", "audit list"]
    assert {e["actor"] for e in entries} == {f"discord:{ALICE}"}


async def test_the_list_shows_the_calls_just_run_newest_first_and_filters(harness):
    assert (await run(harness, "/echo text:one", user=ALICE)).ok
    assert (await run(harness, "/echo text:two", user=ALICE)).ok
    assert not (await run(harness, "/echo fail:true")).ok

    reply = await listed(harness)
    entries = reply.data["entries"]
    # One entry per call (its result; the intents are folded), this /audit list not in it.
    assert [(e["action"], e["result"], e["actor"]) for e in entries] == [
        ("echo", "error", f"discord:{ADMIN}"),
        ("echo", "ok", f"discord:{ALICE}"),
        ("echo", "ok", f"discord:{ALICE}"),
    ]
    assert entries[1]["options"] == {"text": "two"} and entries[2]["options"] == {"text": "one"}
    assert [e["seq"] for e in entries] == sorted((e["seq"] for e in entries), reverse=True)
    assert all(e["intent_seq"] == e["seq"] - 1 for e in entries)
    assert entries[0]["message"] == "asked to fail" and entries[0]["duration_ms"] >= 0
    (table,) = reply.tables
    assert table.columns == ["Seq", "Time (UTC)", "Actor", "Action", "Plugin", "Result", "Duration"]
    assert table.rows[0][0] == entries[0]["seq"] and table.rows[0][3] == "/echo"
    assert table.rows[0][4:6] == ["echo", "error"] and table.rows[0][6].endswith("ms")
    assert reply.buttons == [] and reply.data["cursor"] is None and reply.ephemeral

    # Filters: the first /audit list is now an entry too.
    by_alice = (await listed(harness, f"/audit list user:<@{ALICE}>")).data["entries"]
    assert [e["options"]["text"] for e in by_alice] == ["two", "one"]
    assert (await listed(harness, f"/audit list user:discord:{ALICE}")).data["entries"] == by_alice
    errors = (await listed(harness, "/audit list result:error")).data["entries"]
    assert [e["action"] for e in errors] == ["echo"] and errors[0]["actor"] == f"discord:{ADMIN}"
    ours = (await listed(harness, "/audit list plugin:audit")).data["entries"]
    assert [e["action"] for e in ours] == ["audit list"] * 4  # the four listings before it
    assert len((await listed(harness, "/audit list since:1h plugin:echo")).data["entries"]) == 3
    assert (await listed(harness, "/audit list plugin:nobody")).data["entries"] == []


async def test_pages_hold_every_entry_once_while_the_log_grows(harness):
    for number in range(45):
        assert (await run(harness, f"/echo text:n{number}", user=ALICE)).ok
    first = await listed(harness, "/audit list plugin:echo")
    data = first.data
    upto = data["upto"]
    assert (data["page"], data["pages"], data["total"]) == (1, 3, 45)
    assert len(data["entries"]) == 20
    assert data["cursor"] == {
        "page": 2,
        "upto": upto,
        "command": f"/audit list plugin:echo upto:{upto} page:2",
    }
    assert first.text == f"Page 1/3 · next: /audit list plugin:echo upto:{upto} page:2"
    previous, following = first.buttons
    assert previous.disabled and not following.disabled
    assert following.action == "commands:page" and following.command == "audit list"
    assert following.value == {"options": {"plugin": "echo", "upto": upto}, "page": 2}

    # The log grows between pages: the pages stay the view of the first.
    for number in range(5):
        assert (await run(harness, f"/echo text:late{number}", user=ALICE)).ok

    # ▶ goes through the door as a button press would, checked as /audit list.
    async def send(reply):
        raise AssertionError("a page is one reply")

    async def ask(confirmation):
        return True

    invocation = Invocation(user_id=ADMIN, command=("audit", "list"), frontend="discord")
    pressed = await harness.kernel.door.action(
        invocation, plugin="audit", action=following.action, value=following.value,
        send=send, ask=ask,
    )  # fmt: skip
    assert pressed.status == "ok", pressed.message
    second = pressed.reply.data
    typed = (await listed(harness, data["cursor"]["command"])).data
    assert second == typed and second["page"] == 2
    third = (await listed(harness, f"/audit list plugin:echo upto:{upto} page:3")).data
    assert third["cursor"] is None and len(third["entries"]) == 5
    seqs = [e["seq"] for page in (data, second, third) for e in page["entries"]]
    assert len(seqs) == len(set(seqs)) == 45 and seqs == sorted(seqs, reverse=True)
    texts = [e["options"]["text"] for page in (data, second, third) for e in page["entries"]]
    assert texts == [f"n{number}" for number in reversed(range(45))]
    # since: counts back from the listing's newest entry, so its pages keep one window too.
    windowed = (await listed(harness, f"/audit list plugin:echo since:1h upto:{upto} page:2")).data
    assert windowed["entries"] == second["entries"] and windowed["cursor"]["command"] == (
        f"/audit list since:3600.0 plugin:echo upto:{upto} page:3"
    )
    # Past the end: the last page; a newer listing sees the late ones first.
    assert (await listed(harness, f"/audit list plugin:echo upto:{upto} page:9")).data == third
    newest = (await listed(harness, "/audit list plugin:echo")).data
    assert newest["total"] == 50 and newest["entries"][0]["options"]["text"] == "late4"

    # A non-admin pressing the same button is refused by the policy of /audit list.
    refused = await harness.kernel.door.action(
        Invocation(user_id=ALICE, command=("audit", "list"), frontend="discord"),
        plugin="audit", action=following.action, value=following.value, send=send, ask=ask,
    )  # fmt: skip
    assert refused.status == "denied"


async def test_a_command_killed_midway_is_started_with_no_result(harness):
    assert (await run(harness, "/echo text:fine", user=ALICE)).ok
    # What a kill -9 during the call leaves: the intent row, committed before the plugin
    # ran, and no result row.
    killed = await harness.kernel.door.intent(
        "command",
        "echo",
        plugin="echo",
        invocation=Invocation(user_id=ALICE, command=("echo",), frontend="discord"),
        options={"text": "killed"},
    )
    assert (await run(harness, "/echo text:after", user=ALICE)).ok

    checked = await run(harness, "/audit verify")
    assert checked.ok, checked.text
    data = checked.reply.data
    assert data["ok"] is True and data["problems"] == []
    # Only the killed call: not this /audit verify, whose own result is not written yet.
    assert [e["seq"] for e in data["started"]] == [killed] and data["started_count"] == 1
    assert data["started"][0]["options"] == {"text": "killed"}
    assert len(data["warnings"]) == 1 and data["warnings"][0].startswith(f"seq {killed}: /echo")
    assert "Audit log intact" in checked.text
    assert "1 call(s) started with no result recorded" in checked.text
    (table,) = checked.reply.tables
    assert table.title == "Started, no result" and table.rows[0][0] == killed
    assert table.rows[0][2:5] == [f"discord:{ALICE}", "/echo", "echo"]

    started = (await listed(harness, "/audit list result:started")).data["entries"]
    assert [e["seq"] for e in started] == [killed]
    everything = (await listed(harness, "/audit list plugin:echo")).data["entries"]
    assert [(e["options"]["text"], e["result"]) for e in everything] == [
        ("after", "ok"),
        ("killed", "started"),
        ("fine", "ok"),
    ]
    assert everything[1]["duration_ms"] is None
    shown = (await listed(harness, f"/audit show seq:{killed}")).data["entry"]
    assert shown["result"] == "started" and shown["intent_seq"] is None


async def test_verify_reports_a_row_edited_in_the_database(harness):
    assert (await run(harness, "/echo text:honest", user=ALICE)).ok
    target = (await listed(harness, "/audit list plugin:echo")).data["entries"][0]["seq"]
    before = await listed(harness, "/audit verify")
    assert before.data["ok"] is True and before.data["problems"] == []

    # Someone with the database file, triggers dropped, rewrites who ran it.
    conn = sqlite3.connect(harness.settings.database_path)
    conn.execute("DROP TRIGGER IF EXISTS _audit_no_update")
    conn.execute("UPDATE _audit SET actor = 'discord:666' WHERE seq = ?", (target,))
    conn.commit()
    conn.close()

    after = await listed(harness, "/audit verify")
    assert after.data["ok"] is False
    assert any(p.startswith(f"seq {target}: MAC mismatch") for p in after.data["problems"])
    assert "Audit log tampered" in after.text
    (card,) = after.cards
    assert card.title == "Problems" and f"seq {target}" in card.description
    # The list shows the row as it now reads; verify is what tells it was edited.
    edited = (await listed(harness, f"/audit show seq:{target}")).data["entry"]
    assert edited["actor"] == "discord:666"


async def test_secrets_in_options_stay_masked_in_show(harness):
    result = await run(harness, f'/echo text:"Bearer {JWT}" token:{SECRET}', user=ALICE)
    assert result.ok, result.text
    entry = (await listed(harness, "/audit list plugin:echo")).data["entries"][0]
    shown = await listed(harness, f"/audit show seq:{entry['seq']}")
    assert shown.data["entry"]["options"] == {"text": "Bearer ••••••", "token": "••••••"}
    everything = json.dumps(shown.to_dict(), ensure_ascii=False)
    assert SECRET not in everything and JWT not in everything
    (card,) = shown.cards
    assert card.title == f"Audit seq {entry['seq']}: /echo"
    options = next(f for f in card.fields if f.name.startswith("Options"))
    assert "••••••" in options.value and SECRET not in options.value
    assert {f.name: f.value for f in card.fields}["Actor"] == f"discord:{ALICE}"
    missing = await run(harness, "/audit show seq:99999")
    assert missing.status == "usage" and "no audit entry seq 99999" in missing.text
