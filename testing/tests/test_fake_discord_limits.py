"""Discord's payload rules as the fake Discord checks them.

Each rule is caught, and payloads within the limits are accepted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from clustercord_testing.fake_discord import limits
from clustercord_testing.fake_discord.limits import (
    check_autocomplete,
    check_command,
    check_commands,
    check_message,
    check_modal,
    error_body,
)


def button(custom_id: str = "b", **extra: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": "Go", "custom_id": custom_id, **extra}


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def select(count: int = 3, **extra: Any) -> dict[str, Any]:
    options = [{"label": f"option {i}", "value": f"v{i}"} for i in range(count)]
    return {"type": 3, "custom_id": "pick", "options": options, **extra}


def text_input(custom_id: str = "name", **extra: Any) -> dict[str, Any]:
    return {"type": 4, "custom_id": custom_id, "style": 1, "label": "Name", **extra}


def modal(*rows: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"title": "Rename", "custom_id": "rename", "components": list(rows), **extra}


def option(name: str = "name", kind: int = 3, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, "description": f"The {name}", **extra}


def command(**extra: Any) -> dict[str, Any]:
    return {"type": 1, "name": "pod", "description": "Pods", **extra}


# A payload Discord accepts, using every feature near its limit.
FULL_MESSAGE = {
    "content": "x" * 2_000,
    "embeds": [
        {
            "title": "t" * 256,
            "description": "d" * 1_000,
            "fields": [{"name": "n" * 10, "value": "v" * 100, "inline": True}] * 25,
            "footer": {"text": "f" * 100},
            "author": {"name": "a" * 100},
        }
    ],
    "components": [row(*(button(f"b{r}{i}") for i in range(5))) for r in range(4)]
    + [row(select(25))],
}
FULL_COMMAND = command(
    options=[
        option(
            "logs",
            1,
            options=[
                option("name", required=True, autocomplete=True, max_length=253),
                option("lines", 4, min_value=1, max_value=10_000),
                option("level", choices=[{"name": f"l{i}", "value": f"l{i}"} for i in range(25)]),
            ],
        ),
        option("ops", 2, options=[option("restart", 1, options=[option("force", 5)])]),
    ]
)


@pytest.mark.parametrize(
    ("check", "payload"),
    [
        (check_message, FULL_MESSAGE),
        (check_message, {"content": "ok", "components": [row(button(url=None))]}),
        (
            check_message,
            {"components": [row({"type": 2, "style": 5, "label": "Docs", "url": "https://x"})]},
        ),
        (
            check_message,
            {
                "flags": 1 << 15,
                "components": [{"type": 17, "components": [{"type": 10, "content": "x"}]}],
            },
        ),
        (lambda p: check_message(p, file_count=10), {"attachments": []}),
        (check_modal, modal(*(row(text_input(f"f{i}")) for i in range(5)))),
        (check_autocomplete, {"choices": [{"name": "jellyfin", "value": "jellyfin"}] * 25}),
        (check_command, FULL_COMMAND),
        (check_command, command(name="pod-list_2", description="x" * 100)),
        (check_command, command(name="नमस्ते")),  # Devanagari: letters and combining marks
        (check_command, {"type": 2, "name": "Inspect User"}),  # a user command
        (check_commands, [command(name=f"c{i}") for i in range(100)]),
    ],
    ids=[
        "message-at-limits",
        "button",
        "link-button",
        "components-v2",
        "ten-files",
        "modal-five-inputs",
        "autocomplete-25",
        "command-groups",
        "command-name-chars",
        "command-name-devanagari",
        "user-command",
        "100-commands",
    ],
)
def test_valid_payloads_are_accepted(check: Callable[[Any], list[Any]], payload: Any) -> None:
    assert check(payload) == []


def embed_message(**embed: Any) -> dict[str, Any]:
    return {"embeds": [embed]}


def with_option(**extra: Any) -> dict[str, Any]:
    return command(options=[option(**extra)])


BROKEN: list[tuple[str, Callable[[Any], list[Any]], Any, str]] = [
    # messages
    ("content-2001", check_message, {"content": "x" * 2_001}, "BASE_TYPE_MAX_LENGTH"),
    ("empty-message", check_message, {"content": "  \n"}, limits.EMPTY_MESSAGE),
    ("eleven-embeds", check_message, {"embeds": [{"title": "t"}] * 11}, "BASE_TYPE_MAX_LENGTH"),
    ("embed-title-257", check_message, embed_message(title="t" * 257), "BASE_TYPE_MAX_LENGTH"),
    (
        "embed-description-4097",
        check_message,
        embed_message(description="d" * 4_097),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "embed-26-fields",
        check_message,
        embed_message(fields=[{"name": "n", "value": "v"}] * 26),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "field-name-257",
        check_message,
        embed_message(fields=[{"name": "n" * 257, "value": "v"}]),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "field-value-1025",
        check_message,
        embed_message(fields=[{"name": "n", "value": "v" * 1_025}]),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "field-value-empty",
        check_message,
        embed_message(fields=[{"name": "n", "value": ""}]),
        "BASE_TYPE_REQUIRED",
    ),
    (
        "footer-2049",
        check_message,
        embed_message(footer={"text": "f" * 2_049}),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "author-name-257",
        check_message,
        embed_message(author={"name": "a" * 257}),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "embeds-6001-total",
        check_message,
        {"embeds": [{"description": "d" * 4_000}, {"description": "d" * 2_001}]},
        "MAX_EMBED_SIZE_EXCEEDED",
    ),
    ("eleven-files", lambda p: check_message(p, file_count=11), {}, "BASE_TYPE_MAX_LENGTH"),
    # components
    (
        "six-rows",
        check_message,
        {"components": [row(button(f"b{i}")) for i in range(6)]},
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "six-buttons",
        check_message,
        {"components": [row(*(button(f"b{i}") for i in range(6)))]},
        "BASE_TYPE_BAD_LENGTH",
    ),
    ("empty-row", check_message, {"content": "x", "components": [row()]}, "BASE_TYPE_BAD_LENGTH"),
    (
        "select-not-alone",
        check_message,
        {"components": [row(select(), button())]},
        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
    ),
    ("select-26-options", check_message, {"components": [row(select(26))]}, "BASE_TYPE_BAD_LENGTH"),
    (
        "select-duplicate-values",
        check_message,
        {"components": [row({**select(1), "options": [{"label": "a", "value": "v"}] * 2})]},
        "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
    ),
    (
        "label-81",
        check_message,
        {"components": [row(button(label="l" * 81))]},
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "custom-id-101",
        check_message,
        {"components": [row(button("c" * 101))]},
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "custom-id-duplicate",
        check_message,
        {"components": [row(button("same"), button("same"))]},
        "COMPONENT_CUSTOM_ID_DUPLICATED",
    ),
    (
        "button-no-custom-id",
        check_message,
        {"components": [row({"type": 2, "style": 1, "label": "x"})]},
        "BASE_TYPE_REQUIRED",
    ),
    (
        "link-without-url",
        check_message,
        {"components": [row({"type": 2, "style": 5, "label": "x"})]},
        "BASE_TYPE_REQUIRED",
    ),
    (
        "link-with-custom-id",
        check_message,
        {
            "components": [
                row({"type": 2, "style": 5, "label": "x", "url": "https://x", "custom_id": "c"})
            ]
        },
        "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
    ),
    (
        "button-without-label",
        check_message,
        {"components": [row({"type": 2, "style": 1, "custom_id": "c"})]},
        "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
    ),
    (
        "v2-with-content",
        check_message,
        {"flags": 1 << 15, "content": "x", "components": [{"type": 10, "content": "x"}]},
        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
    ),
    (
        "v2-41-components",
        check_message,
        {"flags": 1 << 15, "components": [{"type": 10, "content": "x"}] * 41},
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "text-input-in-message",
        check_message,
        {"components": [row(text_input())]},
        "UNION_TYPE_CHOICES",
    ),
    # modals
    (
        "modal-title-46",
        check_modal,
        modal(row(text_input()), title="t" * 46),
        "BASE_TYPE_BAD_LENGTH",
    ),
    ("modal-no-rows", check_modal, modal(), "BASE_TYPE_BAD_LENGTH"),
    (
        "modal-six-rows",
        check_modal,
        modal(*(row(text_input(f"f{i}")) for i in range(6))),
        "BASE_TYPE_BAD_LENGTH",
    ),
    (
        "modal-two-inputs-a-row",
        check_modal,
        modal(row(text_input("a"), text_input("b"))),
        "MODAL_ROW_INVALID",
    ),
    ("modal-button", check_modal, modal(row(button())), "MODAL_ROW_INVALID"),
    (
        "text-input-label-46",
        check_modal,
        modal(row(text_input(label="l" * 46))),
        "BASE_TYPE_BAD_LENGTH",
    ),
    # autocomplete
    (
        "autocomplete-26",
        check_autocomplete,
        {"choices": [{"name": "n", "value": "v"}] * 26},
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "autocomplete-name-101",
        check_autocomplete,
        {"choices": [{"name": "n" * 101, "value": "v"}]},
        "BASE_TYPE_BAD_LENGTH",
    ),
    # commands
    ("name-upper-case", check_command, command(name="Pod"), "APPLICATION_COMMAND_INVALID_NAME"),
    ("name-space", check_command, command(name="pod list"), "APPLICATION_COMMAND_INVALID_NAME"),
    ("name-33", check_command, command(name="p" * 33), "APPLICATION_COMMAND_INVALID_NAME"),
    (
        "option-name-invalid",
        check_command,
        with_option(name="Bad.Name"),
        "APPLICATION_COMMAND_INVALID_NAME",
    ),
    ("description-empty", check_command, command(description=""), "BASE_TYPE_REQUIRED"),
    ("description-101", check_command, command(description="d" * 101), "BASE_TYPE_BAD_LENGTH"),
    (
        "26-options",
        check_command,
        command(options=[option(f"o{i}") for i in range(26)]),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "26-subcommands",
        check_command,
        command(options=[option(f"s{i}", 1) for i in range(26)]),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "26-choices",
        check_command,
        with_option(choices=[{"name": f"c{i}", "value": f"c{i}"} for i in range(26)]),
        "BASE_TYPE_MAX_LENGTH",
    ),
    (
        "required-after-optional",
        check_command,
        command(options=[option("a"), option("b", required=True)]),
        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
    ),
    (
        "over-4000-characters",
        check_command,
        command(
            options=[
                option(
                    f"o{i}",
                    description="d" * 100,
                    choices=[{"name": "n" * 100, "value": f"{j}" * 40} for j in range(10)],
                )
                for i in range(3)
            ]
        ),
        "APPLICATION_COMMAND_TOO_LARGE",
    ),
    (
        "101-commands",
        check_commands,
        [command(name=f"c{i}") for i in range(101)],
        "APPLICATION_COMMANDS_TOO_MANY",
    ),
    (
        "duplicate-command",
        check_commands,
        [command(), command()],
        "APPLICATION_COMMANDS_DUPLICATE_NAME",
    ),
    (
        "duplicate-option",
        check_command,
        command(options=[option("a"), option("a")]),
        "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
    ),
    ("option-type-12", check_command, with_option(kind=12), "BASE_TYPE_CHOICES"),
    (
        "group-in-subcommand",
        check_command,
        command(options=[option("s", 1, options=[option("g", 2, options=[option("x", 1)])])]),
        "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
    ),
    (
        "group-holds-value",
        check_command,
        command(options=[option("g", 2, options=[option("v")])]),
        "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
    ),
    (
        "subcommands-mixed-with-values",
        check_command,
        command(options=[option("s", 1), option("v")]),
        "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
    ),
    (
        "choices-on-boolean",
        check_command,
        with_option(kind=5, choices=[{"name": "y", "value": "y"}]),
        "APPLICATION_COMMAND_OPTION_CHOICES_NOT_ALLOWED",
    ),
    (
        "choices-and-autocomplete",
        check_command,
        with_option(autocomplete=True, choices=[{"name": "a", "value": "a"}]),
        "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_EXCLUSIVE",
    ),
    (
        "choice-type-mismatch",
        check_command,
        with_option(kind=4, choices=[{"name": "a", "value": "a"}]),
        "APPLICATION_COMMAND_OPTION_CHOICE_TYPE_INVALID",
    ),
    (
        "range-on-string",
        check_command,
        with_option(min_value=1),
        "APPLICATION_COMMAND_OPTION_RANGE_NOT_ALLOWED",
    ),
    (
        "min-above-max",
        check_command,
        with_option(kind=4, min_value=5, max_value=1),
        "APPLICATION_COMMAND_OPTION_RANGE_INVALID",
    ),
    (
        "context-menu-description",
        check_command,
        {"type": 3, "name": "Inspect", "description": "no"},
        "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
    ),
    (
        "permissions-not-a-string",
        check_command,
        command(default_member_permissions=8),
        "BASE_TYPE_STRING",
    ),
]


@pytest.mark.parametrize(
    ("check", "payload", "code"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_each_rule_is_caught(check: Callable[[Any], list[Any]], payload: Any, code: str) -> None:
    errors = check(payload)
    assert code in [error.code for error in errors], errors


def test_errors_name_where_and_why_like_discord() -> None:
    errors = check_message({"content": "x" * 2_001, "embeds": [{"title": "t" * 257}]})
    assert [str(e) for e in errors] == [
        "content: Must be 2000 or fewer in length. (BASE_TYPE_MAX_LENGTH)",
        "embeds.0.title: Must be 256 or fewer in length. (BASE_TYPE_MAX_LENGTH)",
    ]
    assert error_body(errors) == {
        "code": 50035,
        "message": "Invalid Form Body",
        "errors": {
            "content": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
                ]
            },
            "embeds": {
                "0": {
                    "title": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_MAX_LENGTH",
                                "message": "Must be 256 or fewer in length.",
                            }
                        ]
                    }
                }
            },
        },
    }
    assert error_body(check_message({})) == {
        "message": "Cannot send an empty message",
        "code": 50006,
    }


def test_command_size_counts_names_descriptions_and_choices() -> None:
    big = copy.deepcopy(FULL_COMMAND)
    size = limits.command_size(big)
    # pod(3) + Pods(4) + logs/The logs(4+8) + name(4+8) + lines(5+9) + level(5+9)
    # + 25 choices of "lN"+"lN" + ops/The ops(3+7) + restart(7+11) + force(5+9)
    choices = sum(2 * len(f"l{i}") for i in range(25))
    assert size == 3 + 4 + 12 + 12 + 14 + 14 + choices + 10 + 18 + 14


def test_an_edit_may_be_partial_but_not_oversized() -> None:
    assert check_message({"components": []}, require_content=False) == []
    assert [e.code for e in check_message({"content": "x" * 2_001}, require_content=False)] == [
        "BASE_TYPE_MAX_LENGTH"
    ]
