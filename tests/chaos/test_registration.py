"""`/chaos` as Discord receives it: the spec's flat names (`/chaos kill-pod`, `/chaos
run-experiment`, ...) as its 24 subcommands and the `config` group, within Discord's limits (25
subcommands or groups per level, 4,000 characters per command) with characters to spare; the
grouped paths of the previous release (`/chaos pod kill`) still running their commands in the
console and `clustercord run`, checked against the access rules of the command they stand for."""

from __future__ import annotations

from importlib import resources

from clustercord.frontends.discord import limits
from clustercord.frontends.discord.commands import command_characters, plan_commands
from clustercord.services.audit import AuditReader
from clustercord_sdk.manifest import load_manifest

from .conftest import ALICE, run

ROOM = 250
"""Characters kept free under Discord's 4,000: two or three more options like the present."""

SPEC = [  # the spec's and the names, as Discord lists them
    "kill-pod", "pod-failure", "network-delay", "network-loss", "network-corruption",
    "network-duplicate", "network-bandwidth", "cpu-stress", "memory-stress", "disk-stress",
    "drain-node", "node-restart", "run-experiment", "list", "history", "status", "stop",
    "report", "export", "schedule", "mesh-install", "mesh-experiment", "litmus-install",
    "litmus-workflow",
]  # fmt: skip
CONFIG = ["protect", "unprotect", "show", "prometheus", "blast-radius", "schedules", "unschedule"]


def chaos_payload():
    path = resources.files("clustercord_builtins.chaos").joinpath("manifest.json")
    plan = plan_commands([load_manifest(path.read_text("utf-8"))])
    assert plan.rejected == []
    (payload,) = plan.payloads
    return payload


def test_discord_lists_the_specs_names_within_its_limits():
    payload = chaos_payload()
    top = {o["name"]: o for o in payload["options"]}
    assert list(top) == [*SPEC, "config"]
    assert all(top[name]["type"] == 1 for name in SPEC)  # subcommands, no nesting
    assert top["config"]["type"] == 2
    assert [s["name"] for s in top["config"]["options"]] == CONFIG
    assert len(payload["options"]) <= limits.OPTIONS_MAX
    assert command_characters(payload) <= limits.COMMAND_CHARS_MAX - ROOM


async def test_the_grouped_names_of_before_run_the_specs_commands(chaos):
    for typed, grouped in {
        "kill-pod pod:nope": "pod kill pod:nope",
        "network-delay pod:nope latency:1ms": "network delay pod:nope latency:1ms",
        "drain-node node:nope": "node drain node:nope",
        "status": "experiment status",
        "history": "experiment list",
        "config schedules": "schedules",
    }.items():
        flat, nested = await run(chaos, f"/chaos {typed}"), await run(chaos, f"/chaos {grouped}")
        assert "unknown command" not in nested.text, nested.text
        assert (flat.status, flat.text) == (nested.status, nested.text)
    actions = [row["action"] for row in AuditReader(chaos.kernel.audit).rows(limit=40)]
    assert not any("pod kill" in action for action in actions)  # audited as what it ran
    assert any("chaos kill-pod" in action for action in actions), actions
    needs = await run(chaos, "/chaos config")
    assert "needs a subcommand" in needs.text and "protect" in needs.text


def test_discord_registers_no_alias():
    names = [o["name"] for o in chaos_payload()["options"]]
    assert not {"pod", "network", "experiment", "mesh"} & set(names)
    assert "experiment run" not in str(chaos_payload())


async def test_an_alias_is_refused_where_its_command_is(chaos):
    from clustercord.config import AccessConfig

    await chaos.restart(
        access=AccessConfig(
            admins=frozenset({"user:1"}), users={ALICE: ("chaos:status", "chaos:list")},
            default="deny",
        )
    )  # fmt: skip
    assert (await run(chaos, "/chaos kill-pod pod:nope")).status == "denied"
    assert (await run(chaos, "/chaos pod kill pod:nope")).status == "denied"
    assert (await run(chaos, "/chaos status")).status == "ok"
    assert (await run(chaos, "/chaos experiment status")).status == "ok"
