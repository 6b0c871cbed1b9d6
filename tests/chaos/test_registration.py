"""`/chaos` as Discord receives it: subcommand groups within Discord's limits (25 subcommands or
groups per level, 4,000 characters per command), with room for the next few subcommands, and
the spec's flat names (`/chaos kill-pod`) still running the grouped commands in the console and
`clustercord run`, checked against the access rules of the command they stand for."""

from __future__ import annotations

from importlib import resources

from clustercord.frontends.discord import limits
from clustercord.frontends.discord.commands import command_characters, plan_commands
from clustercord.services.audit import AuditReader
from clustercord_sdk.manifest import load_manifest

from .conftest import ALICE, run

ROOM = 250
"""Characters kept free under Discord's 4,000: two or three more subcommands like the present."""

TREE = {
    "pod": ["kill", "failure"],
    "network": ["delay", "loss", "corruption", "duplicate", "bandwidth"],
    "stress": ["cpu", "memory", "disk"],
    "node": ["drain", "restart"],
    "experiment": [
        "run", "list", "status", "stop", "report", "export", "schedule", "schedules", "unschedule",
    ],
    "config": ["protect", "unprotect", "show", "prometheus", "blast-radius"],
    "mesh": ["install", "experiment"],
    "litmus": ["install", "workflow"],
}  # fmt: skip


def chaos_payload():
    path = resources.files("clustercord_builtins.chaos").joinpath("manifest.json")
    plan = plan_commands([load_manifest(path.read_text("utf-8"))])
    assert plan.rejected == []
    (payload,) = plan.payloads
    return payload


def test_the_chaos_command_fits_discord_with_room_to_grow():
    payload = chaos_payload()
    groups = {g["name"]: [s["name"] for s in g["options"]] for g in payload["options"]}
    assert groups == TREE
    assert all(g["type"] == 2 for g in payload["options"])  # every one a subcommand group
    assert len(payload["options"]) <= limits.OPTIONS_MAX
    assert all(len(leaves) <= limits.OPTIONS_MAX for leaves in groups.values())
    assert command_characters(payload) <= limits.COMMAND_CHARS_MAX - ROOM


async def test_the_specs_flat_names_run_the_grouped_commands(chaos):
    for typed, grouped in {
        "kill-pod pod:nope": "pod kill pod:nope",
        "network-delay pod:nope latency:1ms": "network delay pod:nope latency:1ms",
        "drain-node node:nope": "node drain node:nope",
        "status": "experiment status",
        "history": "experiment list",
    }.items():
        flat, nested = await run(chaos, f"/chaos {typed}"), await run(chaos, f"/chaos {grouped}")
        assert "unknown command" not in flat.text, flat.text
        assert (flat.status, flat.text) == (nested.status, nested.text)
    actions = [row["action"] for row in AuditReader(chaos.kernel.audit).rows(limit=40)]
    assert not any("kill-pod" in action for action in actions)  # audited as what it ran
    assert any("chaos pod kill" in action for action in actions), actions
    needs = await run(chaos, "/chaos network")
    assert "needs a subcommand" in needs.text and "delay" in needs.text


def test_discord_registers_no_alias():
    payload = str(chaos_payload())
    assert "kill-pod" not in payload and "run-experiment" not in payload


async def test_an_alias_is_refused_where_its_command_is(chaos):
    from clustercord.config import AccessConfig

    await chaos.restart(
        access=AccessConfig(
            admins=frozenset({"user:1"}), users={ALICE: ("chaos:experiment:*",)}, default="deny"
        )
    )
    assert (await run(chaos, "/chaos kill-pod pod:nope")).status == "denied"
    assert (await run(chaos, "/chaos pod kill pod:nope")).status == "denied"
    assert (await run(chaos, "/chaos status")).status == "ok"
