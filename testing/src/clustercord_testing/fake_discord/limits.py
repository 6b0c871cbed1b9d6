"""Discord's payload rules, checked the way Discord checks them.

Written from Discord's API documentation and its observed error answers, independently
of ClusterCord's own Discord renderer on purpose: the fake Discord of the testing kit
uses these checks, the renderer has its own, and each catches the other's mistakes.

Every ``check_*`` function returns a list of :class:`LimitError` (empty when Discord
would accept the payload). :func:`error_body` turns them into the JSON Discord answers
with (``{"code": 50035, "errors": {...}, "message": "Invalid Form Body"}``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import regex

# -- the numbers ------------------------------------------------------------------------
CONTENT_MAX = 2_000
EMBEDS_MAX = 10
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4_096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1_024
EMBED_FOOTER_MAX = 2_048
EMBED_AUTHOR_NAME_MAX = 256
EMBED_TOTAL_MAX = 6_000
ATTACHMENTS_MAX = 10
ACTION_ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
SELECT_OPTIONS_MAX = 25
BUTTON_LABEL_MAX = 80
CUSTOM_ID_MAX = 100
URL_MAX = 512
SELECT_PLACEHOLDER_MAX = 150
SELECT_OPTION_TEXT_MAX = 100
MODAL_TITLE_MAX = 45
MODAL_ROWS_MAX = 5
TEXT_INPUT_LABEL_MAX = 45
TEXT_INPUT_VALUE_MAX = 4_000
TEXT_INPUT_PLACEHOLDER_MAX = 100
AUTOCOMPLETE_CHOICES_MAX = 25
COMMAND_NAME_MAX = 32
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
COMMAND_CHOICES_MAX = 25
CHOICE_TEXT_MAX = 100
COMMAND_TOTAL_MAX = 4_000
COMMANDS_MAX = 100  # chat-input commands, globally and per guild
CONTEXT_MENU_COMMANDS_MAX = 5  # of each of the user and message types
STRING_OPTION_LENGTH_MAX = 6_000
INTEGER_MAGNITUDE_MAX = 2**53
THREAD_NAME_MAX = 100
COMPONENTS_V2 = 1 << 15  # the message flag of layout components
V2_COMPONENTS_MAX = 40

#: Discord's own pattern for command and option names (they must also be lower case).
COMMAND_NAME = regex.compile(r"^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")

# Component types
ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
USER_SELECT, ROLE_SELECT, MENTIONABLE_SELECT, CHANNEL_SELECT = 5, 6, 7, 8
SELECTS = {STRING_SELECT, USER_SELECT, ROLE_SELECT, MENTIONABLE_SELECT, CHANNEL_SELECT}
LINK_STYLE, PREMIUM_STYLE = 5, 6

# Command and option types
CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
VALUE_OPTION_TYPES = set(range(3, 12))
CHOICE_TYPES = {STRING, INTEGER, NUMBER}

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class LimitError:
    """One rule a payload breaks: where (a JSON path), Discord's error code, and why."""

    path: Path
    code: str
    message: str

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.path) or "<body>"
        return f"{where}: {self.message} ({self.code})"


#: The code Discord answers an empty message with (it is not a form error).
EMPTY_MESSAGE = "EMPTY_MESSAGE"


def error_body(errors: Sequence[LimitError]) -> dict[str, Any]:
    """Discord's JSON answer to a payload that breaks ``errors`` (status 400)."""
    if any(error.code == EMPTY_MESSAGE for error in errors):
        return {"message": "Cannot send an empty message", "code": 50006}
    tree: dict[str, Any] = {}
    for error in errors:
        node = tree
        for part in error.path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return {"code": 50035, "errors": tree, "message": "Invalid Form Body"}


# -- small rules --------------------------------------------------------------------------
def _length(
    value: Any, path: Path, maximum: int, *, minimum: int = 0, required: bool = False
) -> Iterator[LimitError]:
    """A string field between ``minimum`` and ``maximum`` characters."""
    if value is None:
        if required:
            yield LimitError(path, "BASE_TYPE_REQUIRED", "This field is required")
        return
    if not isinstance(value, str):
        yield LimitError(path, "BASE_TYPE_STRING", "Must be a string.")
        return
    if minimum and len(value) < minimum:
        if minimum == 1 and required:
            yield LimitError(path, "BASE_TYPE_REQUIRED", "This field is required")
        else:
            yield LimitError(
                path,
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {minimum} and {maximum} in length.",
            )
    elif len(value) > maximum:
        if minimum:
            yield LimitError(
                path,
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {minimum} and {maximum} in length.",
            )
        else:
            yield LimitError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {maximum} or fewer in length.")


def _count(
    items: Sequence[Any], path: Path, maximum: int, *, minimum: int = 0
) -> Iterator[LimitError]:
    """A list with between ``minimum`` and ``maximum`` items."""
    if len(items) > maximum or len(items) < minimum:
        if minimum:
            message = f"Must be between {minimum} and {maximum} in length."
            yield LimitError(path, "BASE_TYPE_BAD_LENGTH", message)
        else:
            yield LimitError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {maximum} or fewer in length.")


def _list(value: Any, path: Path) -> tuple[list[Any], list[LimitError]]:
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [LimitError(path, "BASE_TYPE_ARRAY", "Must be an array.")]
    return value, []


def _range(value: Any, path: Path, low: int, high: int) -> Iterator[LimitError]:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        yield LimitError(
            path,
            "NUMBER_TYPE_MAX" if isinstance(value, int) and value > high else "NUMBER_TYPE_MIN",
            f"Must be between {low} and {high}.",
        )


def _characters(node: Any, *keys: str) -> int:
    """How many characters the fields ``keys`` of ``node`` hold (0 unless a mapping):
    what Discord counts against a message's or a command's total size."""
    if not isinstance(node, Mapping):
        return 0
    return sum(len(str(node.get(key) or "")) for key in keys)


# -- messages -----------------------------------------------------------------------------
#: The texts of an embed field and their maximum lengths (both are required).
_EMBED_FIELD_TEXTS = (("name", EMBED_FIELD_NAME_MAX), ("value", EMBED_FIELD_VALUE_MAX))
#: An embed's objects that need a text once given: (object, key of the text, maximum length).
_EMBED_NESTED_TEXTS = (
    ("footer", "text", EMBED_FOOTER_MAX),
    ("author", "name", EMBED_AUTHOR_NAME_MAX),
)


def embed_size(embed: Mapping[str, Any]) -> int:
    """The characters Discord counts against the 6,000 per message."""
    size = _characters(embed, "title", "description")
    size += sum(_characters(field, "name", "value") for field in embed.get("fields") or [])
    return size + sum(_characters(embed.get(key), text) for key, text, _ in _EMBED_NESTED_TEXTS)


def check_embeds(embeds: Any, path: Path = ("embeds",)) -> list[LimitError]:
    """Up to 10 embeds within the per-field limits and 6,000 characters in total."""
    items, errors = _list(embeds, path)
    errors += _count(items, path, EMBEDS_MAX)
    total = 0
    for index, embed in enumerate(items):
        here = (*path, index)
        if not isinstance(embed, Mapping):
            errors.append(LimitError(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used"))
            continue
        total += embed_size(embed)
        errors += _length(embed.get("title"), (*here, "title"), EMBED_TITLE_MAX)
        errors += _length(embed.get("description"), (*here, "description"), EMBED_DESCRIPTION_MAX)
        errors += _length(embed.get("url"), (*here, "url"), 2_048)
        fields, field_errors = _list(embed.get("fields"), (*here, "fields"))
        errors += field_errors
        errors += _count(fields, (*here, "fields"), EMBED_FIELDS_MAX)
        for number, field in enumerate(fields):
            at = (*here, "fields", number)
            if not isinstance(field, Mapping):
                errors.append(LimitError(at, "MODEL_TYPE_CONVERT", "Only dictionaries may be used"))
                continue
            for key, maximum in _EMBED_FIELD_TEXTS:
                errors += _length(field.get(key), (*at, key), maximum, minimum=1, required=True)
        for key, text, maximum in _EMBED_NESTED_TEXTS:
            nested = embed.get(key)
            if isinstance(nested, Mapping):
                errors += _length(
                    nested.get(text), (*here, key, text), maximum, minimum=1, required=True
                )
        color = embed.get("color")
        if color is not None:
            errors += _range(color, (*here, "color"), 0, 0xFFFFFF)
    if total > EMBED_TOTAL_MAX:
        errors.append(
            LimitError(
                path,
                "MAX_EMBED_SIZE_EXCEEDED",
                f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}",
            )
        )
    return errors


def _custom_id(component: Mapping[str, Any], path: Path, seen: set[str]) -> Iterator[LimitError]:
    custom_id = component.get("custom_id")
    yield from _length(custom_id, (*path, "custom_id"), CUSTOM_ID_MAX, minimum=1, required=True)
    if isinstance(custom_id, str):
        if custom_id in seen:
            yield LimitError(
                (*path, "custom_id"),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        seen.add(custom_id)


def _check_button(button: Mapping[str, Any], path: Path, seen: set[str]) -> Iterator[LimitError]:
    style = button.get("style")
    if style not in (1, 2, 3, 4, LINK_STYLE, PREMIUM_STYLE):
        yield LimitError(
            (*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5, 6)."
        )
        return
    yield from _length(button.get("label"), (*path, "label"), BUTTON_LABEL_MAX)
    if style == LINK_STYLE:
        yield from _length(button.get("url"), (*path, "url"), URL_MAX, minimum=1, required=True)
        if button.get("custom_id") is not None:
            yield LimitError(
                (*path, "custom_id"),
                "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                "A custom id cannot be specified for link buttons",
            )
    elif style == PREMIUM_STYLE:
        if button.get("sku_id") is None:
            yield LimitError((*path, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required")
    else:
        if button.get("url") is not None:
            yield LimitError(
                (*path, "url"),
                "BUTTON_COMPONENT_URL_NOT_ALLOWED",
                "A url can only be specified for link buttons",
            )
        yield from _custom_id(button, path, seen)
    if style != PREMIUM_STYLE and not button.get("label") and not button.get("emoji"):
        yield LimitError(
            path,
            "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
            "A label or an emoji is required for buttons",
        )


def _check_select(select: Mapping[str, Any], path: Path, seen: set[str]) -> Iterator[LimitError]:
    yield from _custom_id(select, path, seen)
    yield from _length(select.get("placeholder"), (*path, "placeholder"), SELECT_PLACEHOLDER_MAX)
    yield from _range(select.get("min_values"), (*path, "min_values"), 0, SELECT_OPTIONS_MAX)
    yield from _range(select.get("max_values"), (*path, "max_values"), 1, SELECT_OPTIONS_MAX)
    low, high = select.get("min_values", 1), select.get("max_values", 1)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        yield LimitError(
            (*path, "min_values"),
            "SELECT_COMPONENT_MIN_VALUES_GREATER_THAN_MAX",
            "min_values must be less than or equal to max_values",
        )
    if select.get("type") != STRING_SELECT:
        return
    options, errors = _list(select.get("options"), (*path, "options"))
    yield from errors
    yield from _count(options, (*path, "options"), SELECT_OPTIONS_MAX, minimum=1)
    if isinstance(high, int) and options and high > len(options):
        yield LimitError(
            (*path, "max_values"),
            "SELECT_COMPONENT_MAX_VALUES_GREATER_THAN_OPTIONS",
            "max_values must be less than or equal to the number of options",
        )
    values: set[str] = set()
    for index, option in enumerate(options):
        at = (*path, "options", index)
        if not isinstance(option, Mapping):
            yield LimitError(at, "MODEL_TYPE_CONVERT", "Only dictionaries may be used")
            continue
        for key in ("label", "value"):
            yield from _length(
                option.get(key), (*at, key), SELECT_OPTION_TEXT_MAX, minimum=1, required=True
            )
        yield from _length(option.get("description"), (*at, "description"), SELECT_OPTION_TEXT_MAX)
        value = option.get("value")
        if isinstance(value, str):
            if value in values:
                yield LimitError(
                    (*at, "value"),
                    "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                    "Select component option value cannot be duplicated",
                )
            values.add(value)


def check_components(components: Any, path: Path = ("components",)) -> list[LimitError]:
    """Message components: up to 5 action rows of up to 5 buttons, or one select each."""
    rows, errors = _list(components, path)
    errors += _count(rows, path, ACTION_ROWS_MAX)
    seen: set[str] = set()
    for index, row in enumerate(rows):
        here = (*path, index)
        if not isinstance(row, Mapping) or row.get("type") != ACTION_ROW:
            errors.append(
                LimitError(
                    (*here, "type"),
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
            )
            continue
        children, child_errors = _list(row.get("components"), (*here, "components"))
        errors += child_errors
        errors += _count(children, (*here, "components"), ROW_BUTTONS_MAX, minimum=1)
        kinds = [child.get("type") for child in children if isinstance(child, Mapping)]
        if any(kind in SELECTS for kind in kinds) and len(children) > 1:
            errors.append(
                LimitError(
                    (*here, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            )
        for number, child in enumerate(children):
            at = (*here, "components", number)
            kind = child.get("type") if isinstance(child, Mapping) else None
            if not isinstance(child, Mapping):
                errors.append(LimitError(at, "MODEL_TYPE_CONVERT", "Only dictionaries may be used"))
            elif kind == BUTTON:
                errors += _check_button(child, at, seen)
            elif kind in SELECTS:
                errors += _check_select(child, at, seen)
            else:
                errors.append(
                    LimitError(
                        (*at, "type"),
                        "UNION_TYPE_CHOICES",
                        'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
                    )
                )
    return errors


def _count_components(components: Any) -> int:
    total = 0
    for component in components if isinstance(components, list) else []:
        if isinstance(component, Mapping):
            total += 1 + _count_components(component.get("components"))
            if isinstance(component.get("accessory"), Mapping):
                total += 1
    return total


def _check_components_v2(message: Mapping[str, Any]) -> list[LimitError]:
    """The layout components (``IS_COMPONENTS_V2``): no content or embeds, at most 40
    components in all. Only these rules are checked for them."""
    errors = [
        LimitError(
            (key,),
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "content and embeds cannot be used with the IS_COMPONENTS_V2 flag",
        )
        for key in ("content", "embeds")
        if message.get(key)
    ]
    if _count_components(message.get("components")) > V2_COMPONENTS_MAX:
        errors.append(
            LimitError(
                ("components",),
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {V2_COMPONENTS_MAX} or fewer in length.",
            )
        )
    return errors


def is_empty(message: Mapping[str, Any], file_count: int = 0) -> bool:
    """Whether Discord would refuse ``message`` as empty (whitespace counts as nothing)."""
    content = message.get("content")
    return not (
        (isinstance(content, str) and content.strip())
        or message.get("embeds")
        or message.get("components")
        or message.get("attachments")
        or message.get("sticker_ids")
        or message.get("poll")
        or file_count
    )


def check_message(
    message: Any, *, file_count: int = 0, require_content: bool = True
) -> list[LimitError]:
    """A message to create (or, with ``require_content=False``, a partial edit)."""
    if not isinstance(message, Mapping):
        return [LimitError((), "MODEL_TYPE_CONVERT", "Only dictionaries may be used")]
    errors = list(_length(message.get("content"), ("content",), CONTENT_MAX))
    if "embeds" in message:
        errors += check_embeds(message["embeds"])
    flags = message.get("flags")
    if isinstance(flags, int) and flags & COMPONENTS_V2:
        errors += _check_components_v2(message)
    elif "components" in message:
        errors += check_components(message["components"])
    attachments, attachment_errors = _list(message.get("attachments"), ("attachments",))
    errors += attachment_errors
    if max(len(attachments), file_count) > ATTACHMENTS_MAX:
        errors.append(
            LimitError(
                ("attachments",),
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {ATTACHMENTS_MAX} or fewer in length.",
            )
        )
    if require_content and is_empty(message, file_count):
        errors.append(LimitError((), EMPTY_MESSAGE, "Cannot send an empty message"))
    return errors


# -- modals and autocomplete --------------------------------------------------------------
def check_modal(modal: Any) -> list[LimitError]:
    """A modal: a title of up to 45 characters and 1 to 5 rows of one text input each."""
    if not isinstance(modal, Mapping):
        return [LimitError((), "MODEL_TYPE_CONVERT", "Only dictionaries may be used")]
    errors = list(
        _length(modal.get("title"), ("title",), MODAL_TITLE_MAX, minimum=1, required=True)
    )
    seen: set[str] = set()
    errors += _custom_id(modal, (), seen)
    rows, row_errors = _list(modal.get("components"), ("components",))
    errors += row_errors
    errors += _count(rows, ("components",), MODAL_ROWS_MAX, minimum=1)
    for index, row in enumerate(rows):
        here = ("components", index)
        children = row.get("components") if isinstance(row, Mapping) else None
        if (
            not isinstance(row, Mapping)
            or row.get("type") != ACTION_ROW
            or not isinstance(children, list)
            or len(children) != 1
            or not isinstance(children[0], Mapping)
            or children[0].get("type") != TEXT_INPUT
        ):
            errors.append(
                LimitError(
                    here,
                    "MODAL_ROW_INVALID",
                    "Each modal row must be an action row holding exactly one text input",
                )
            )
            continue
        text_input, at = children[0], (*here, "components", 0)
        errors += _custom_id(text_input, at, seen)
        if text_input.get("style") not in (1, 2):
            errors.append(
                LimitError((*at, "style"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2).")
            )
        errors += _length(
            text_input.get("label"), (*at, "label"), TEXT_INPUT_LABEL_MAX, minimum=1, required=True
        )
        errors += _length(text_input.get("value"), (*at, "value"), TEXT_INPUT_VALUE_MAX)
        errors += _length(
            text_input.get("placeholder"), (*at, "placeholder"), TEXT_INPUT_PLACEHOLDER_MAX
        )
        errors += _range(text_input.get("min_length"), (*at, "min_length"), 0, TEXT_INPUT_VALUE_MAX)
        errors += _range(text_input.get("max_length"), (*at, "max_length"), 1, TEXT_INPUT_VALUE_MAX)
    return errors


def check_autocomplete(result: Any) -> list[LimitError]:
    """An autocomplete answer: up to 25 choices, names of 1–100 characters."""
    if not isinstance(result, Mapping):
        return [LimitError((), "MODEL_TYPE_CONVERT", "Only dictionaries may be used")]
    choices, errors = _list(result.get("choices"), ("choices",))
    if result.get("choices") is None:
        errors.append(LimitError(("choices",), "BASE_TYPE_REQUIRED", "This field is required"))
    errors += _count(choices, ("choices",), AUTOCOMPLETE_CHOICES_MAX)
    for index, choice in enumerate(choices):
        errors += _check_choice(choice, ("choices", index), None)
    return errors


# -- commands -----------------------------------------------------------------------------
def _check_name(name: Any, path: Path, *, chat_input: bool = True) -> Iterator[LimitError]:
    if not isinstance(name, str):
        yield LimitError(path, "BASE_TYPE_REQUIRED", "This field is required")
    elif not chat_input:
        yield from _length(name, path, COMMAND_NAME_MAX, minimum=1, required=True)
    elif not COMMAND_NAME.match(name) or name != name.lower():
        yield LimitError(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _check_choice(choice: Any, path: Path, option_type: int | None) -> Iterator[LimitError]:
    if not isinstance(choice, Mapping):
        yield LimitError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used")
        return
    yield from _length(
        choice.get("name"), (*path, "name"), CHOICE_TEXT_MAX, minimum=1, required=True
    )
    value = choice.get("value")
    if isinstance(value, str) and option_type in (None, STRING):
        yield from _length(value, (*path, "value"), CHOICE_TEXT_MAX)
    elif isinstance(value, bool) or value is None:
        yield LimitError((*path, "value"), "BASE_TYPE_REQUIRED", "This field is required")
    elif isinstance(value, int) and option_type in (None, INTEGER, NUMBER):
        yield from _range(value, (*path, "value"), -INTEGER_MAGNITUDE_MAX, INTEGER_MAGNITUDE_MAX)
    elif isinstance(value, float) and option_type in (None, NUMBER):
        return
    else:
        yield LimitError(
            (*path, "value"),
            "APPLICATION_COMMAND_OPTION_CHOICE_TYPE_INVALID",
            "Choice value does not match the option type",
        )


def _check_option(option: Any, path: Path, depth: int) -> Iterator[LimitError]:
    if not isinstance(option, Mapping):
        yield LimitError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used")
        return
    kind = option.get("type")
    if kind not in (SUB_COMMAND, SUB_COMMAND_GROUP, *VALUE_OPTION_TYPES):
        yield LimitError((*path, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, ..., 11).")
        return
    yield from _check_name(option.get("name"), (*path, "name"))
    yield from _length(
        option.get("description"),
        (*path, "description"),
        COMMAND_DESCRIPTION_MAX,
        minimum=1,
        required=True,
    )
    if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
        # A group sits at the top level and holds subcommands; a subcommand sits at the
        # top level or in a group and holds value options.
        allowed_depth = 0 if kind == SUB_COMMAND_GROUP else 1
        if depth > allowed_depth:
            yield LimitError(
                (*path, "type"),
                "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                "Subcommand groups hold subcommands, and subcommands hold no subcommands",
            )
        if option.get("required"):
            yield LimitError(
                (*path, "required"),
                "APPLICATION_COMMAND_SUBCOMMAND_REQUIRED",
                "Subcommands and groups cannot be required",
            )
        yield from _check_options(
            option.get("options"),
            (*path, "options"),
            depth + 1,
            expect="subcommands" if kind == SUB_COMMAND_GROUP else "values",
        )
        return
    if option.get("options"):
        yield LimitError(
            (*path, "options"),
            "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
            "Only subcommands and groups can hold options",
        )
    choices, errors = _list(option.get("choices"), (*path, "choices"))
    yield from errors
    if choices:
        if kind not in CHOICE_TYPES:
            yield LimitError(
                (*path, "choices"),
                "APPLICATION_COMMAND_OPTION_CHOICES_NOT_ALLOWED",
                "Only string, integer and number options can have choices",
            )
        if option.get("autocomplete"):
            yield LimitError(
                (*path, "autocomplete"),
                "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_EXCLUSIVE",
                "Autocomplete and choices cannot be used together",
            )
    yield from _count(choices, (*path, "choices"), COMMAND_CHOICES_MAX)
    for index, choice in enumerate(choices):
        yield from _check_choice(choice, (*path, "choices", index), kind)
    if option.get("autocomplete") and kind not in CHOICE_TYPES:
        yield LimitError(
            (*path, "autocomplete"),
            "APPLICATION_COMMAND_AUTOCOMPLETE_NOT_ALLOWED",
            "Only string, integer and number options can autocomplete",
        )
    for key in ("min_value", "max_value"):
        value = option.get(key)
        if value is None:
            continue
        if kind not in (INTEGER, NUMBER):
            yield LimitError(
                (*path, key),
                "APPLICATION_COMMAND_OPTION_RANGE_NOT_ALLOWED",
                "Only integer and number options have a range",
            )
        elif isinstance(value, bool) or not isinstance(value, int | float):
            yield LimitError((*path, key), "NUMBER_TYPE_COERCE", "Value is not a number.")
        elif abs(value) > INTEGER_MAGNITUDE_MAX:
            yield LimitError(
                (*path, key), "NUMBER_TYPE_MAX", f"Must be between -{2**53} and {2**53}."
            )
    low, high = option.get("min_value"), option.get("max_value")
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        yield LimitError(
            (*path, "min_value"),
            "APPLICATION_COMMAND_OPTION_RANGE_INVALID",
            "min_value must be less than or equal to max_value",
        )
    for key, low_bound in (("min_length", 0), ("max_length", 1)):
        if option.get(key) is None:
            continue
        if kind != STRING:
            yield LimitError(
                (*path, key),
                "APPLICATION_COMMAND_OPTION_LENGTH_NOT_ALLOWED",
                "Only string options have a length",
            )
        else:
            yield from _range(option.get(key), (*path, key), low_bound, STRING_OPTION_LENGTH_MAX)
    if option.get("channel_types") and kind != CHANNEL:
        yield LimitError(
            (*path, "channel_types"),
            "APPLICATION_COMMAND_OPTION_CHANNEL_TYPES_NOT_ALLOWED",
            "Only channel options have channel types",
        )


def _check_options(
    options: Any, path: Path, depth: int, expect: str = "any"
) -> Iterator[LimitError]:
    items, errors = _list(options, path)
    yield from errors
    yield from _count(items, path, COMMAND_OPTIONS_MAX)
    kinds = {option.get("type") for option in items if isinstance(option, Mapping)}
    nested = kinds & {SUB_COMMAND, SUB_COMMAND_GROUP}
    values = kinds & VALUE_OPTION_TYPES
    if nested and values:
        yield LimitError(
            path,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Subcommands and groups cannot be mixed with other options",
        )
    if expect == "subcommands" and (values or SUB_COMMAND_GROUP in kinds):
        yield LimitError(
            path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "A group holds only subcommands"
        )
    if expect == "values" and nested:
        yield LimitError(
            path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "A subcommand holds no subcommands"
        )
    names: set[str] = set()
    optional_seen = False
    for index, option in enumerate(items):
        yield from _check_option(option, (*path, index), depth)
        if not isinstance(option, Mapping):
            continue
        name = option.get("name")
        if isinstance(name, str):
            if name in names:
                yield LimitError(
                    (*path, index, "name"),
                    "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
        if option.get("type") in VALUE_OPTION_TYPES:
            if option.get("required"):
                if optional_seen:
                    yield LimitError(
                        (*path, index, "required"),
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                optional_seen = True


def command_size(command: Mapping[str, Any]) -> int:
    """Characters Discord counts against 4,000: names, descriptions, choice names and values."""

    def walk(node: Mapping[str, Any]) -> int:
        size = _characters(node, "name", "description")
        size += sum(_characters(choice, "name", "value") for choice in node.get("choices") or [])
        for option in node.get("options") or []:
            if isinstance(option, Mapping):
                size += walk(option)
        return size

    return walk(command)


def check_command(command: Any) -> list[LimitError]:
    """One command as registered (the ``PUT`` body's items, or a ``POST`` body)."""
    if not isinstance(command, Mapping):
        return [LimitError((), "MODEL_TYPE_CONVERT", "Only dictionaries may be used")]
    kind = command.get("type", CHAT_INPUT)
    if kind not in (CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND, 4):
        return [LimitError(("type",), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4).")]
    errors = list(_check_name(command.get("name"), ("name",), chat_input=kind == CHAT_INPUT))
    if kind == CHAT_INPUT:
        errors += _length(
            command.get("description"),
            ("description",),
            COMMAND_DESCRIPTION_MAX,
            minimum=1,
            required=True,
        )
        errors += _check_options(command.get("options"), ("options",), 0)
    else:
        if command.get("description"):
            errors.append(
                LimitError(
                    ("description",),
                    "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                    "Context menu commands cannot have a description",
                )
            )
        if command.get("options"):
            errors.append(
                LimitError(
                    ("options",),
                    "APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS",
                    "Context menu commands cannot have options",
                )
            )
    permissions = command.get("default_member_permissions")
    if permissions is not None and not (isinstance(permissions, str) and permissions.isdigit()):
        errors.append(
            LimitError(
                ("default_member_permissions",),
                "BASE_TYPE_STRING",
                "Must be a string of a permission bit set, or null.",
            )
        )
    size = command_size(command)
    if size > COMMAND_TOTAL_MAX:
        errors.append(
            LimitError(
                (),
                "APPLICATION_COMMAND_TOO_LARGE",
                f"Command exceeds maximum size ({COMMAND_TOTAL_MAX}): {size} characters",
            )
        )
    return errors


def check_commands(commands: Any) -> list[LimitError]:
    """A bulk overwrite (``PUT``) of an application's global or guild commands."""
    items, errors = _list(commands, ())
    if commands is None:
        return [LimitError((), "BASE_TYPE_ARRAY", "Must be an array.")]
    by_type: dict[Any, list[str]] = {}
    for index, command in enumerate(items):
        errors += [
            LimitError((index, *error.path), error.code, error.message)
            for error in check_command(command)
        ]
        if isinstance(command, Mapping):
            names = by_type.setdefault(command.get("type", CHAT_INPUT), [])
            if command.get("name") in names:
                errors.append(
                    LimitError(
                        (index, "name"),
                        "APPLICATION_COMMANDS_DUPLICATE_NAME",
                        f"Application command names must be unique: {command.get('name')}",
                    )
                )
            names.append(str(command.get("name")))
    for kind, maximum in (
        (CHAT_INPUT, COMMANDS_MAX),
        (USER_COMMAND, CONTEXT_MENU_COMMANDS_MAX),
        (MESSAGE_COMMAND, CONTEXT_MENU_COMMANDS_MAX),
    ):
        if len(by_type.get(kind, [])) > maximum:
            errors.append(
                LimitError(
                    (),
                    "APPLICATION_COMMANDS_TOO_MANY",
                    f"Maximum number of application commands of type {kind} reached ({maximum})",
                )
            )
    return errors
