"""`/chaos` as Discord receives it: subcommand groups within Discord's limits (25 subcommands or
groups per level, 4,000 characters per command), with room for the next few subcommands, and
the spec's flat names (`/chaos kill-pod`) pointing the console user to the grouped ones."""

from __future__ import annotations

from importlib import resources

from clustercord.frontends.discord import limits
from clustercord.frontends.discord.commands import command_characters, plan_commands
from clustercord_sdk.manifest import load_manifest

from .conftest import run

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


async def test_the_specs_flat_names_lead_to_the_grouped_commands(chaos):
    for typed, grouped in {
        "kill-pod pod:x": "/chaos pod kill",
        "network-delay pod:x latency:1ms": "/chaos network delay",
        "run-experiment": "/chaos experiment run",
        "drain-node node:x": "/chaos node drain",
        "mesh-install": "/chaos mesh install",
    }.items():
        result = await run(chaos, f"/chaos {typed}")
        assert result.status == "usage", result.text
        assert f"did you mean {grouped}" in result.text, result.text
    needs = await run(chaos, "/chaos network")
    assert "needs a subcommand" in needs.text and "delay" in needs.text
