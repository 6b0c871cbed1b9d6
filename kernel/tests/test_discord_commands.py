"""Manifests → Discord application commands, and Discord's rules checked before sending."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from clustercord.frontends.discord.commands import (
    ATTACHMENT,
    INTEGER,
    STRING,
    command_violations,
    lightbulb_commands,
    plan_commands,
    registration_json,
)
from clustercord_sdk.manifest import load_manifest

BUILTINS = Path(__file__).parents[2] / "builtin_plugins" / "src" / "clustercord_builtins"


def manifest(name: str = "demo", commands: list[dict[str, Any]] | None = None) -> Any:
    return load_manifest(
        {
            "name": name,
            "version": "1.0.0",
            "api": ">=1.0,<2",
            "description": "a test plugin",
            "commands": commands
            if commands is not None
            else [{"name": name, "description": "run it", "handler": "m:f"}],
        }
    )


def builtin_manifests() -> list[Any]:
    return [load_manifest(path) for path in sorted(BUILTINS.glob("*/manifest.json"))]


def test_every_builtin_command_meets_discords_rules():
    plan = plan_commands(builtin_manifests())
    assert plan.rejected == []
    names = {payload["name"] for payload in plan.payloads}
    assert {"plugin", "help", "cluster", "pod"} <= names
    assert all(command_violations(payload) == [] for payload in plan.payloads)


def test_options_carry_types_choices_bounds_and_autocomplete():
    plan = plan_commands(
        [
            manifest(
                commands=[
                    {
                        "name": "pod",
                        "description": "Pods",
                        "subcommands": [
                            {
                                "name": "logs",
                                "description": "Logs of a pod",
                                "handler": "m:f",
                                "options": [
                                    {
                                        "name": "name",
                                        "type": "string",
                                        "required": True,
                                        "description": "Pod",
                                        "autocomplete": True,
                                    },
                                    {
                                        "name": "lines",
                                        "type": "integer",
                                        "min": 1,
                                        "max": 500,
                                        "description": "How many",
                                    },
                                    {
                                        "name": "level",
                                        "type": "choice",
                                        "choices": ["info", "warn"],
                                        "description": "Level",
                                    },
                                    {
                                        "name": "since",
                                        "type": "duration",
                                        "description": "How far back",
                                        "max_length": 10,
                                    },
                                    {
                                        "name": "upload",
                                        "type": "attachment",
                                        "description": "A file",
                                    },
                                ],
                            }
                        ],
                    }
                ]
            )
        ]
    )
    (pod,) = plan.payloads
    (logs,) = pod["options"]
    name, lines, level, since, upload = logs["options"]
    assert name == {
        "type": STRING,
        "name": "name",
        "description": "Pod",
        "required": True,
        "autocomplete": True,
    }
    assert (lines["type"], lines["min_value"], lines["max_value"]) == (INTEGER, 1, 500)
    assert level["choices"] == [
        {"name": "info", "value": "info"},
        {"name": "warn", "value": "warn"},
    ]
    assert (since["type"], since["max_length"]) == (STRING, 10)
    assert upload["type"] == ATTACHMENT


def test_a_command_of_admin_commands_only_is_hidden_from_non_managers():
    plan = plan_commands(
        [
            manifest(
                commands=[
                    {"name": "admin", "description": "Admin only", "handler": "m:f", "admin": True},
                    {
                        "name": "mixed",
                        "description": "Both",
                        "subcommands": [
                            {"name": "a", "description": "admin", "handler": "m:f", "admin": True},
                            {"name": "b", "description": "anyone", "handler": "m:f"},
                        ],
                    },
                ]
            )
        ]
    )
    admin, mixed = plan.payloads
    assert admin["default_member_permissions"] == str(1 << 5)
    assert admin["contexts"] == [0]
    assert "default_member_permissions" not in mixed


@pytest.mark.parametrize(
    ("change", "path", "rule"),
    [
        (lambda c: c.update(name="Pods"), "Pods", "must be lower case"),
        (lambda c: c.update(name="pod list"), "pod list", "1-32 letters"),
        (lambda c: c.update(name="p" * 33), "p" * 33, "1-32 letters"),
        (lambda c: c.update(description="d" * 101), "pod", "description has 101"),
        (lambda c: c.update(description=""), "pod", "description has 0"),
        (
            lambda c: c["options"][0].update(
                options=[
                    {"type": 3, "name": f"o{i}", "description": "x", "required": False}
                    for i in range(26)
                ]
            ),
            "pod logs",
            "26 options",
        ),
        (
            lambda c: c["options"][0]["options"].append(
                {"type": 3, "name": "late", "description": "x", "required": True}
            ),
            "pod logs late",
            "required options must come before optional ones",
        ),
        (
            lambda c: c["options"][0]["options"][0].update(
                choices=[{"name": f"c{i}", "value": f"c{i}"} for i in range(26)]
            ),
            "pod logs name",
            "26 choices",
        ),
        (
            lambda c: c["options"][0]["options"][0].update(
                choices=[{"name": "a", "value": "a"}], autocomplete=True
            ),
            "pod logs name",
            "both choices and autocomplete",
        ),
        (
            lambda c: c["options"].extend(
                {
                    "type": 1,
                    "name": f"s{i}",
                    "description": "d" * 100,
                    "options": [
                        {"type": 3, "name": f"o{j}", "description": "d" * 100} for j in range(2)
                    ],
                }
                for i in range(24)
            ),
            "pod",
            "Discord allows 4000 per command",
        ),
        (
            lambda c: c["options"].append(copy.deepcopy(c["options"][0])),
            "pod logs",
            "the name is used twice",
        ),
    ],
)
def test_each_rule_names_the_command_path(change, path, rule):
    command = {
        "type": 1,
        "name": "pod",
        "description": "Pods",
        "options": [
            {
                "type": 1,
                "name": "logs",
                "description": "Logs",
                "options": [{"type": 3, "name": "name", "description": "Pod", "required": False}],
            }
        ],
    }
    assert command_violations(command) == []
    change(command)
    problems = command_violations(command)
    assert any(" ".join(p) == path and rule in r for p, r in problems), problems


def test_a_plugin_breaking_a_rule_is_left_out_and_reported(caplog):
    good = manifest("good")
    # The manifest schema cannot count characters across a whole command tree.
    long = "d" * 100
    bad = manifest(
        "bad",
        commands=[
            {
                "name": "bad",
                "description": "Bad",
                "subcommands": [
                    {
                        "name": f"s{i}",
                        "description": long,
                        "handler": "m:f",
                        "options": [
                            {"name": f"o{j}", "type": "string", "description": long}
                            for j in range(3)
                        ],
                    }
                    for i in range(12)
                ],
            }
        ],
    )
    plan = plan_commands([bad, good])
    assert [p["name"] for p in plan.payloads] == ["good"]
    (rejection,) = plan.rejected
    assert (rejection.plugin, rejection.path) == ("bad", "bad")
    assert str(rejection) == (
        "plugin bad: /bad: names, descriptions and choices add up to 4904 characters; "
        "Discord allows 4000 per command; its commands are not registered"
    )
    assert str(rejection) in caplog.text
    assert ("bad", "s0") not in plan.leaves and ("good",) in plan.leaves


def test_a_taken_name_and_the_101st_command_are_refused():
    first = manifest("aaa", commands=[{"name": "shared", "description": "x", "handler": "m:f"}])
    second = manifest("bbb", commands=[{"name": "shared", "description": "x", "handler": "m:f"}])
    plan = plan_commands([first, second])
    assert [r.rule for r in plan.rejected] == ["the command name is already taken by plugin aaa"]

    many = [manifest(f"p{i:03}") for i in range(101)]
    plan = plan_commands(many)
    assert len(plan.payloads) == 100
    (rejection,) = plan.rejected
    assert rejection.plugin == "p100" and "at most 100 commands" in rejection.rule


async def test_lightbulb_sends_what_was_checked():
    """The JSON lightbulb builds for registration carries every checked field unchanged."""
    plan = plan_commands(builtin_manifests())

    async def unused(*_: Any) -> None:
        return None

    sent = await registration_json(lightbulb_commands(plan.payloads, unused, unused))
    assert [c["name"] for c in sent] == [c["name"] for c in plan.payloads]
    for ours, theirs in zip(plan.payloads, sent, strict=True):
        assert _subset(ours, theirs), (ours, theirs)
        assert command_violations(theirs) == []


def _subset(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, dict):
        return all(
            _subset(v, theirs.get(k)) or (k == "default_member_permissions" and int(v) == theirs[k])
            for k, v in ours.items()
        )
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(map(_subset, ours, theirs))
    return bool(ours == theirs)
