"""Typed option values: every type, limits, and parse_options."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clustercord_sdk.errors import UsageError
from clustercord_sdk.options import (
    Choice,
    OptionSpec,
    parse_duration,
    parse_options,
    parse_quantity,
)


def parse(kind: str, raw: Any, **spec: Any) -> Any:
    return OptionSpec(name="opt", type=kind, **spec).parse(raw)


def refuse(kind: str, raw: Any, fragment: str = "", **spec: Any) -> str:
    with pytest.raises(UsageError) as info:
        parse(kind, raw, **spec)
    message = str(info.value)
    assert message.startswith("option opt: "), message
    assert fragment in message
    return message


# -- string --------------------------------------------------------------------------


def test_string() -> None:
    assert parse("string", "hello world") == "hello world"
    assert parse("string", 42) == "42"


@pytest.mark.parametrize("raw", [{"a": 1}, [1, 2]])
def test_string_refuses_structures(raw: Any) -> None:
    refuse("string", raw, "expected text")


def test_string_length_limits() -> None:
    assert parse("string", "abc", min_length=3, max_length=3) == "abc"
    refuse("string", "ab", "at least 3 characters", min_length=3)
    refuse("string", "abcd", "at most 3 characters", max_length=3)


# -- integer -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("3", 3), (" 3 ", 3), (3, 3), (3.0, 3), ("-3", -3)])
def test_integer_accepts(raw: Any, expected: int) -> None:
    value = parse("integer", raw)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("3.5", "not a whole number"),
        (3.5, "not a whole number"),
        ("three", "'three' is not a whole number"),
        (True, "got a boolean"),
        ("", "not a whole number"),
    ],
)
def test_integer_refuses(raw: Any, fragment: str) -> None:
    refuse("integer", raw, fragment)


def test_integer_min_max() -> None:
    assert parse("integer", "0", min=0, max=5) == 0
    assert parse("integer", "5", min=0, max=5) == 5
    refuse("integer", "-1", "-1 is below the minimum 0", min=0, max=5)
    refuse("integer", "6", "6 is above the maximum 5", min=0, max=5)


# -- number --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("2.5", 2.5), (2, 2.0), ("-0.5", -0.5), ("1e3", 1000.0)]
)
def test_number(raw: Any, expected: float) -> None:
    value = parse("number", raw)
    assert value == expected
    assert isinstance(value, float)


@pytest.mark.parametrize(
    ("raw", "fragment"), [("abc", "'abc' is not a number"), (False, "boolean")]
)
def test_number_refuses(raw: Any, fragment: str) -> None:
    refuse("number", raw, fragment)


def test_number_min_max() -> None:
    assert parse("number", "0.5", min=0.5, max=1) == 0.5
    refuse("number", "0.4", "below the minimum 0.5", min=0.5)
    refuse("number", "1.01", "above the maximum 1", max=1)


# -- boolean -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["true", "True", "YES", "on", "1", "y", True])
def test_boolean_true(raw: Any) -> None:
    assert parse("boolean", raw) is True


@pytest.mark.parametrize("raw", ["false", "No", "OFF", "0", "n", False, 0])
def test_boolean_false(raw: Any) -> None:
    assert parse("boolean", raw) is False


@pytest.mark.parametrize("raw", ["maybe", "", "2"])
def test_boolean_refuses(raw: str) -> None:
    refuse("boolean", raw, "is not true or false")


# -- choice --------------------------------------------------------------------------

MODES = (Choice("Survival", "survival"), Choice("Creative", "creative"), Choice("Three", 3))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("survival", "survival"), ("Creative", "creative"), (3, 3), ("3", 3), ("Three", 3)],
)
def test_choice_by_value_or_name(raw: Any, expected: Any) -> None:
    assert parse("choice", raw, choices=MODES) == expected


def test_choice_refuses_others_and_lists_the_values() -> None:
    refuse(
        "choice",
        "hardcore",
        "'hardcore' is not one of the choices: survival, creative, 3",
        choices=MODES,
    )


def test_choices_from_manifest_plain_and_named() -> None:
    spec = OptionSpec.from_manifest(
        {"name": "size", "type": "choice", "choices": ["s", {"name": "Large", "value": "l"}]}
    )
    assert spec.choices == (Choice("s", "s"), Choice("Large", "l"))
    assert spec.parse("Large") == "l"
    assert spec.parse("s") == "s"


def test_choices_also_restrict_other_types() -> None:
    assert parse("integer", "2", choices=(Choice("1", 1), Choice("2", 2))) == 2
    refuse(
        "integer",
        "4",
        "4 is not one of the choices: 1, 2",
        choices=(Choice("1", 1), Choice("2", 2)),
    )


# -- user / role / channel -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("user", "123"),
        ("user", "<@123>"),
        ("user", "<@!123>"),
        ("user", 123),
        ("role", "123"),
        ("role", "<@&123>"),
        ("channel", "123"),
        ("channel", " <#123> "),
    ],
)
def test_discord_ids(kind: str, raw: Any) -> None:
    assert parse(kind, raw) == "123"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("user", "bob"),
        ("user", "@bob"),
        ("user", "<@bob>"),
        ("user", "<@123"),
        ("user", "123>"),
        ("user", "<#123>"),
        ("user", "<@&123>"),
        ("role", "<@123>"),
        ("role", "<#123>"),
        ("channel", "<@123>"),
        ("channel", "#general"),
        ("channel", ""),
    ],
)
def test_discord_ids_refused(kind: str, raw: str) -> None:
    refuse(kind, raw, f"is not a Discord {kind} mention or id")


# -- duration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        ("1w", 604800),
        ("1.5h", 5400),
        ("5M", 300),
        ("45", 45),
        ("0.5", 0.5),
        (" 10s ", 10),
        ("1m1s500ms", 61.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["5 minutes", "m5", "", "1h 30m", "5y", "abc", "5m garbage", "-5m", "-5", "inf", "nan"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_duration_option() -> None:
    assert parse("duration", "2m") == 120
    assert parse("duration", 30) == 30
    refuse("duration", "5 minutes", "'5 minutes' is not a duration")
    refuse("duration", "2h", "7200.0 is above the maximum 3600", max=3600)
    refuse("duration", "10s", "below the minimum 60", min=60)


# -- quantity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("2.5G", Decimal("2.5e9")),
        ("1k", Decimal(1000)),
        ("100n", Decimal("1e-7")),
        ("2", Decimal(2)),
        (".5", Decimal("0.5")),
        ("-1Ki", Decimal(-1024)),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1GB", "abc", "", "1 Gi", "Gi", "1K", "1e3", "1E3"])
def test_parse_quantity_refuses(text: str) -> None:
    # Exponent forms (1e3) are valid Kubernetes quantities but the SDK's grammar refuses them.
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


def test_quantity_option_keeps_the_text() -> None:
    assert parse("quantity", " 512Mi ") == "512Mi"
    refuse("quantity", "1GB", "'1GB' is not a quantity")


# -- misc ----------------------------------------------------------------------------


def test_attachment_is_text() -> None:
    assert parse("attachment", "https://cdn.example/a.png") == "https://cdn.example/a.png"


def test_unknown_type() -> None:
    refuse("colour", "red", "unknown option type 'colour'")


def test_from_manifest_reads_every_field() -> None:
    spec = OptionSpec.from_manifest(
        {
            "name": "n",
            "type": "integer",
            "description": "How many",
            "required": True,
            "default": 2,
            "min": 1,
            "max": 9,
            "autocomplete": True,
            "secret": True,
        }
    )
    assert spec == OptionSpec(
        name="n",
        type="integer",
        description="How many",
        required=True,
        default=2,
        min=1,
        max=9,
        autocomplete=True,
        secret=True,
    )
    assert OptionSpec.from_manifest({"type": "string"}, name="motd").name == "motd"
    assert OptionSpec.from_manifest({"name": "x"}).type == "string"


# -- parse_options -------------------------------------------------------------------

SPECS = [
    OptionSpec("server", "string", required=True),
    OptionSpec("replicas", "integer", default=1, min=0),
    OptionSpec("wait", "duration", default="5m"),
    OptionSpec("note", "string"),
]


def test_parse_options_converts_and_fills_defaults() -> None:
    assert parse_options(SPECS, {"server": "mc", "replicas": "3"}) == {
        "server": "mc",
        "replicas": 3,
        "wait": 300.0,
        "note": None,
    }


def test_parse_options_none_counts_as_absent() -> None:
    values = parse_options(SPECS, {"server": "mc", "replicas": None, "note": None})
    assert values["replicas"] == 1
    assert values["note"] is None


def test_parse_options_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        parse_options(SPECS, {"server": "mc", "zzz": 1, "colour": "red"})
    assert str(info.value) == (
        "unknown option 'colour' for this command (options: server, replicas, wait, note)"
    )


def test_parse_options_unknown_option_with_no_options_and_custom_what() -> None:
    with pytest.raises(UsageError, match=r"for this plugin x config \(options: none\)"):
        parse_options([], {"a": 1}, what="plugin x config")


def test_parse_options_missing_required() -> None:
    with pytest.raises(UsageError, match=r"^option server is required$"):
        parse_options(SPECS, {"replicas": 2})


def test_parse_options_bad_value_names_the_option() -> None:
    with pytest.raises(UsageError, match=r"^option replicas: -2 is below the minimum 0$"):
        parse_options(SPECS, {"server": "mc", "replicas": "-2"})


def test_parse_options_returns_every_declared_option_in_order() -> None:
    assert list(parse_options(SPECS, {"server": "mc"})) == ["server", "replicas", "wait", "note"]
