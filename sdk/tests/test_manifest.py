"""Manifest loading: a full valid manifest, and every error naming its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from clustercord_sdk import API_VERSION
from clustercord_sdk.errors import ManifestError
from clustercord_sdk.events import Event
from clustercord_sdk.manifest import CommandSpec, Manifest, load_manifest, schema
from clustercord_sdk.permissions import Permission

FULL: dict[str, Any] = {
    "name": "minecraft",
    "version": "1.2.3",
    "api": ">=1.0,<2",
    "description": "Run Minecraft servers on the cluster",
    "icon": "⛏",
    "author": "Steve",
    "permissions": ["pods:read", "deployments.apps:write", "pods/exec:create"],
    "capabilities": ["notify", "audit-read"],
    "commands": [
        {
            "name": "status",
            "description": "Show server status",
            "handler": "minecraft.commands:status",
            "ephemeral": True,
        },
        {
            "name": "server",
            "description": "Manage servers",
            "subcommands": [
                {
                    "name": "scale",
                    "description": "Scale a server",
                    "handler": "minecraft.commands:scale",
                    "destructive": True,
                    "options": [
                        {"name": "server", "type": "string", "required": True, "max_length": 20},
                        {"name": "replicas", "type": "integer", "min": 0, "max": 5, "default": 1},
                        {"name": "wait", "type": "duration", "default": "5m"},
                        {"name": "memory", "type": "quantity"},
                        {
                            "name": "mode",
                            "type": "choice",
                            "choices": [
                                {"name": "Survival", "value": "survival"},
                                {"name": "Creative", "value": "creative"},
                            ],
                            "default": "survival",
                        },
                    ],
                },
                {
                    "name": "world",
                    "description": "World management",
                    "subcommands": [
                        {
                            "name": "reset",
                            "description": "Reset a world",
                            "handler": "minecraft.world:reset",
                            "admin": True,
                            "options": [{"name": "force", "type": "boolean"}],
                        }
                    ],
                },
            ],
        },
    ],
    "hooks": [
        {
            "event": "pod:crash",
            "filter": {"label": "app=minecraft,tier in (game, proxy)", "namespaces": ["games"]},
            "priority": 10,
        },
        {"event": "schedule:tick"},
    ],
    "config": {
        "retries": {"type": "integer", "default": 3, "min": 0},
        "channel": {"type": "channel", "description": "Where alerts go"},
        "motd": {"type": "string", "default": "Welcome"},
    },
}


def manifest(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(FULL)
    data.update(changes)
    return data


def errors_of(source: Any) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifest(source)
    return info.value


def assert_error_at(error: ManifestError, path: str, fragment: str = "") -> str:
    """The message recorded for ``path``; the path also appears in the exception text."""
    messages = [message for where, message in error.errors if where == path]
    assert messages, f"no error at {path!r}: {error.errors}"
    assert f"{path}: " in str(error)
    assert any(fragment in message for message in messages), messages
    return messages[0]


def simple_command(**changes: Any) -> dict[str, Any]:
    return {"name": "go", "description": "Go", "handler": "pkg.mod:go", **changes}


# -- a valid manifest ----------------------------------------------------------------


def test_full_manifest_loads() -> None:
    loaded = load_manifest(FULL)
    assert isinstance(loaded, Manifest)
    assert (loaded.name, loaded.version, loaded.api) == ("minecraft", "1.2.3", ">=1.0,<2")
    assert loaded.icon == "⛏"
    assert loaded.author == "Steve"
    assert loaded.capabilities == ("notify", "audit-read")
    assert loaded.permissions[1] == Permission("deployments", "apps", None, "write")
    assert loaded.permission_strings == FULL["permissions"]
    assert loaded.raw == FULL


def test_command_tree_is_flattened_to_runnable_leaves() -> None:
    commands = {command.path: command for command in load_manifest(FULL).commands}
    assert list(commands) == [("status",), ("server", "scale"), ("server", "world", "reset")]
    assert commands[("status",)].handler == "minecraft.commands:status"
    assert commands[("status",)].ephemeral is True
    scale = commands[("server", "scale")]
    assert isinstance(scale, CommandSpec)
    assert scale.handler == "minecraft.commands:scale"
    assert scale.destructive is True and scale.admin is False
    assert scale.name == "server scale"
    reset = commands[("server", "world", "reset")]
    assert reset.handler == "minecraft.world:reset"
    assert reset.admin is True
    assert reset.policy_name == "server:world:reset"


def test_options_keep_their_types_and_limits() -> None:
    scale = load_manifest(FULL).commands[1]
    options = {option.name: option for option in scale.options}
    assert [option.name for option in scale.options] == [
        "server",
        "replicas",
        "wait",
        "memory",
        "mode",
    ]
    assert options["server"].required is True
    assert options["server"].max_length == 20
    assert (options["replicas"].type, options["replicas"].min, options["replicas"].max) == (
        "integer",
        0,
        5,
    )
    assert options["wait"].parse(options["wait"].default) == 300.0
    assert [(c.name, c.value) for c in options["mode"].choices] == [
        ("Survival", "survival"),
        ("Creative", "creative"),
    ]
    assert options["mode"].parse("Creative") == "creative"


def test_hooks_compile_filters_and_keep_priority() -> None:
    hooks = load_manifest(FULL).hooks
    assert [(hook.event, hook.priority) for hook in hooks] == [
        ("pod:crash", 10),
        ("schedule:tick", 0),
    ]
    crash = hooks[0].filter
    assert crash.namespaces == frozenset({"games"})
    labels = {"app": "minecraft", "tier": "proxy"}
    assert crash.matches(Event("pod:crash", namespace="games", labels=labels))
    assert not crash.matches(Event("pod:crash", namespace="default", labels=labels))
    assert not crash.matches(Event("pod:crash", namespace="games", labels={"app": "minecraft"}))
    assert hooks[1].filter.matches(Event("schedule:tick"))


def test_config_defaults() -> None:
    loaded = load_manifest(FULL)
    assert [spec.name for spec in loaded.config] == ["retries", "channel", "motd"]
    assert loaded.config_defaults() == {"retries": 3, "channel": None, "motd": "Welcome"}
    assert loaded.config[1].type == "channel"


def test_loads_from_json_text_and_from_a_file(tmp_path: Path) -> None:
    text = json.dumps(FULL)
    assert load_manifest(text) == load_manifest(FULL)
    path = tmp_path / "manifest.json"
    path.write_text(text, "utf-8")
    assert load_manifest(path) == load_manifest(FULL)


def test_minimal_manifest_has_empty_parts() -> None:
    loaded = load_manifest({"name": "tiny", "version": "0.1.0", "api": ">=1", "description": "t"})
    assert (loaded.commands, loaded.hooks, loaded.config, loaded.permissions) == ((), (), (), ())
    assert loaded.icon is None


@pytest.mark.parametrize(
    ("api", "version", "expected"),
    [
        (">=1.0,<2", "1.0", True),
        (">=1.0,<2", "1.9", True),
        (">=1.0,<2", "2.0", False),
        (">=1.1", "1.0", False),
        ("==1.*", "1.4", True),
    ],
)
def test_api_compatible(api: str, version: str, expected: bool) -> None:
    assert load_manifest(manifest(api=api)).api_compatible(version) is expected


def test_full_manifest_is_compatible_with_this_sdk() -> None:
    assert load_manifest(FULL).api_compatible(API_VERSION)


# -- errors --------------------------------------------------------------------------


def test_malformed_json_mentions_line_and_column() -> None:
    error = errors_of('{\n  "name": "x",\n  "version" "1.0.0"\n}')
    assert len(error.errors) == 1
    path, message = error.errors[0]
    assert path == ""
    assert "not valid JSON" in message
    assert "line 3 column 13" in message
    assert "<root>: not valid JSON" in str(error)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    error = errors_of(missing)
    assert error.source == str(missing)
    assert str(missing) in str(error)
    assert "cannot read" in str(error)


def test_json_array_is_not_a_manifest() -> None:
    error = errors_of("[1, 2]")
    assert error.errors == [("", "a manifest must be a JSON object")]


def test_unknown_top_level_field() -> None:
    error = errors_of(manifest(colour="red"))
    assert error.errors == [("", "unknown field 'colour'")]
    assert "<root>: unknown field 'colour'" in str(error)


def test_unknown_field_deep_inside_an_option() -> None:
    data = manifest()
    data["commands"][1]["subcommands"][0]["options"][1]["colour"] = "red"
    error = errors_of(data)
    assert_error_at(error, "commands[1].subcommands[0].options[1]", "unknown field 'colour'")
    assert len(error.errors) == 1


def test_missing_required_name() -> None:
    data = manifest()
    del data["name"]
    assert_error_at(errors_of(data), "", "'name' is required")


def test_missing_command_name() -> None:
    data = manifest()
    del data["commands"][0]["name"]
    assert_error_at(errors_of(data), "commands[0]", "'name' is required")


def test_bad_permission_string_is_named_by_index() -> None:
    error = errors_of(manifest(permissions=["pods:read", "pods:fly", "services:read"]))
    assert error.errors[0][0] == "permissions[1]"
    assert_error_at(error, "permissions[1]", "unknown verb 'fly'")
    assert len(error.errors) == 1


def test_bad_option_type() -> None:
    command = simple_command(
        options=[{"name": "a", "type": "string"}, {"name": "b", "type": "colour"}]
    )
    error = errors_of(manifest(commands=[command]))
    assert_error_at(error, "commands[0].options[1].type", "'colour'")


def test_required_option_after_optional() -> None:
    options = [{"name": "a", "type": "string"}, {"name": "b", "type": "string", "required": True}]
    error = errors_of(manifest(commands=[simple_command(options=options)]))
    assert_error_at(error, "commands[0].options[1]", "required options must come before optional")


def test_command_with_neither_handler_nor_subcommands() -> None:
    error = errors_of(manifest(commands=[{"name": "go", "description": "Go"}]))
    assert_error_at(error, "commands[0].handler", "needs a handler")


def test_group_with_a_handler() -> None:
    group = simple_command(subcommands=[simple_command(name="sub")])
    error = errors_of(manifest(commands=[group]))
    assert_error_at(error, "commands[0].handler", "subcommands cannot have")


def test_nesting_deeper_than_command_group_subcommand() -> None:
    too_deep = {
        "name": "a",
        "description": "A",
        "subcommands": [
            {
                "name": "b",
                "description": "B",
                "subcommands": [
                    {"name": "c", "description": "C", "subcommands": [simple_command(name="d")]}
                ],
            }
        ],
    }
    error = errors_of(manifest(commands=[too_deep]))
    assert_error_at(error, "commands[0].subcommands[0].subcommands[0]", "at most two levels")


def test_duplicate_option_names() -> None:
    options = [{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]
    error = errors_of(manifest(commands=[simple_command(options=options)]))
    assert_error_at(error, "commands[0].options[1].name", "duplicate option 'a'")


def test_duplicate_command_is_named_by_its_path() -> None:
    commands = [simple_command(), simple_command(name="stop"), simple_command()]
    error = errors_of(manifest(commands=commands))
    assert error.errors == [("commands[2].name", "command 'go' is declared twice")]


def test_duplicate_subcommand_in_a_group() -> None:
    group = {
        "name": "server",
        "description": "Servers",
        "subcommands": [simple_command(name="stop"), simple_command(name="stop")],
    }
    error = errors_of(manifest(commands=[group]))
    assert_error_at(error, "commands[0].subcommands[1].name", "'server stop' is declared twice")


def test_command_and_group_of_the_same_name_clash() -> None:
    group = {"name": "go", "description": "Go", "subcommands": [simple_command(name="fast")]}
    error = errors_of(manifest(commands=[simple_command(), group]))
    assert_error_at(error, "commands[1].name", "declared twice")


def test_config_default_of_the_wrong_type() -> None:
    error = errors_of(manifest(config={"retries": {"type": "integer", "default": "many"}}))
    message = assert_error_at(error, "config.retries.default", "not a whole number")
    assert not message.startswith("option retries")


def test_config_default_outside_min() -> None:
    error = errors_of(manifest(config={"retries": {"type": "integer", "default": -1, "min": 0}}))
    assert_error_at(error, "config.retries.default", "below the minimum")


def test_option_default_outside_its_choices() -> None:
    option = {"name": "mode", "type": "choice", "choices": ["fast", "slow"], "default": "medium"}
    error = errors_of(manifest(commands=[simple_command(options=[option])]))
    assert_error_at(error, "commands[0].options[0].default", "not one of the choices: fast, slow")


def test_invalid_api_range() -> None:
    error = errors_of(manifest(api="version one"))
    assert_error_at(error, "api", "is not a version range")


def test_bad_label_selector_in_a_hook_filter() -> None:
    hooks = [{"event": "pod:crash"}, {"event": "pod:crash", "filter": {"label": "env in a,b"}}]
    error = errors_of(manifest(hooks=hooks))
    assert_error_at(error, "hooks[1].filter.label", "parentheses")


def test_every_semantic_error_is_reported_at_once() -> None:
    error = errors_of(
        manifest(
            api="nope",
            permissions=["pods:fly"],
            config={"retries": {"type": "integer", "default": "x"}},
        )
    )
    assert {path for path, _ in error.errors} == {"api", "permissions[0]", "config.retries.default"}


# -- the shipped JSON schema ---------------------------------------------------------


def test_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_shipped_schema_alone_accepts_the_full_manifest() -> None:
    jsonschema.Draft202012Validator(schema()).validate(FULL)


def test_shipped_schema_alone_rejects_unknown_fields() -> None:
    validator = jsonschema.Draft202012Validator(schema())
    with pytest.raises(jsonschema.ValidationError) as info:
        validator.validate(manifest(colour="red"))
    assert info.value.validator == "additionalProperties"
    assert "colour" in info.value.message
    data = manifest()
    data["commands"][0]["colour"] = "red"
    assert [list(error.absolute_path) for error in validator.iter_errors(data)] == [["commands", 0]]


def _with_alias(*aliases, extra=()):
    return {
        "name": "demo", "version": "1.0.0", "api": ">=1.0,<2", "description": "d",
        "commands": [{"name": "demo", "description": "d", "subcommands": [
            {"name": "run", "description": "r", "handler": "m:f", "aliases": list(aliases)},
            *extra,
        ]}],
    }  # fmt: skip


def test_a_command_alias_is_loaded_as_a_path():
    manifest = load_manifest(_with_alias("demo start", "demo go now"))
    (command,) = manifest.commands
    assert command.aliases == (("demo", "start"), ("demo", "go", "now"))


@pytest.mark.parametrize(
    ("alias", "why"),
    [
        ("plugin install", "starts with /demo"),  # another plugin's command
        ("demo", "starts with /demo and a subcommand"),  # the top-level name alone
        ("demo run", "names a command or group"),
        ("demo stop", "names a command or group"),  # a sibling command
    ],
)
def test_an_alias_that_would_answer_for_another_command_is_refused(alias, why):
    sibling = {"name": "stop", "description": "s", "handler": "m:g"}
    with pytest.raises(ManifestError) as refused:
        load_manifest(_with_alias(alias, extra=[sibling]))
    assert why in str(refused.value)


def test_an_alias_declared_twice_or_malformed_is_refused():
    with pytest.raises(ManifestError, match="declared twice"):
        load_manifest(_with_alias("demo go", "demo go"))
    with pytest.raises(ManifestError):
        load_manifest(_with_alias("Demo Go!"))
