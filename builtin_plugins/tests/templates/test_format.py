"""The template format: schema errors name their path; variables are typed and validated."""

from __future__ import annotations

import json

import pytest

from clustercord_builtins.templates.template import (
    TemplateError,
    load_template,
    parse_template_json,
)
from clustercord_builtins.templates.variables import (
    REDACTED,
    VariableError,
    parse_vars,
    resolve,
)

MANIFEST = {"name": "app.yaml", "content": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}


def template(**changes):
    data = {
        "name": "demo",
        "version": "1.0.0",
        "category": "OTHER",
        "description": "a demo",
        "variables": [
            {
                "name": "players",
                "type": "integer",
                "default": 10,
                "validation": {"min": 1, "max": 50},
            },
            {
                "name": "mode",
                "type": "choice",
                "default": "normal",
                "validation": {"choices": ["easy", "normal", "hard"]},
            },
            {"name": "token", "type": "string", "required": True, "description": "from the vendor"},
            {
                "name": "password",
                "type": "string",
                "secret": True,
                "validation": {"min_length": 30},
            },
            {
                "name": "host",
                "type": "string",
                "default": "a.b",
                "validation": {"pattern": "^[a-z.]+$"},
            },
            {"name": "public", "type": "boolean", "default": False},
        ],
        "manifests": [MANIFEST],
    }
    data.update(changes)
    return load_template(data)


def test_invalid_json_names_line_and_column():
    with pytest.raises(TemplateError) as error:
        parse_template_json(b'{\n  "name": "x",\n  "version": }', "mine.json")
    assert str(error.value) == "mine.json: invalid JSON at line 3, column 14: Expecting value"


def test_schema_errors_name_their_path():
    data = json.loads(json.dumps(template().raw))
    data["variables"][1]["type"] = "strng"
    data["requirements"] = {"cpu": "two"}
    data["colour"] = "red"
    with pytest.raises(TemplateError) as error:
        load_template(data)
    message = str(error.value)
    assert message.startswith("template.json does not follow the template schema:")
    assert (
        "- (top level): Additional properties are not allowed ('colour' was unexpected)" in message
    )
    assert "- requirements.cpu: 'two' does not match" in message
    assert "- variables[1].type: 'strng' is not one of" in message


def test_a_default_that_breaks_its_own_rules_is_refused():
    data = template().raw
    data["variables"][0]["default"] = 99
    with pytest.raises(TemplateError, match=r"variables\[0\]\.default: 99 is above the maximum 50"):
        load_template(data)


def test_a_file_manifest_in_a_submitted_template_is_refused():
    with pytest.raises(TemplateError, match=r"manifests\[0\]: 'app.yaml' names a file"):
        template(manifests=["app.yaml"])


def test_values_are_typed_defaulted_and_secrets_generated():
    values = resolve(template(), {"token": "abc", "players": "12", "public": "yes"})
    assert values.values["players"] == 12 and values.values["public"] is True
    assert values.values["mode"] == "normal"
    password = values.values["password"]
    assert len(password) == 30 and password.isalnum()  # min_length honoured
    assert values.generated == {"password"}
    assert "password" not in values.public()


def test_a_missing_required_variable_is_named():
    with pytest.raises(VariableError) as error:
        resolve(template(), {})
    assert str(error.value) == (
        "variable token (string) is required — from the vendor; give it with vars:token=…"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"players": "many"}, "variable players (integer): 'many' is not a whole number"),
        ({"players": "0"}, "variable players (integer): 0 is below the minimum 1"),
        (
            {"mode": "insane"},
            "variable mode (choice): 'insane' is not one of the choices: easy, normal, hard",
        ),
        ({"host": "A_B"}, "variable host (string): 'A_B' does not match the pattern ^[a-z.]+$"),
        ({"public": "maybe"}, "variable public (boolean): 'maybe' is not true or false"),
        ({"colour": "red"}, "template demo has no variable 'colour'"),
    ],
)
def test_wrong_values_are_refused_with_the_variable_named(given, message):
    with pytest.raises(VariableError) as error:
        resolve(template(), {"token": "t", **given})
    assert str(error.value).startswith(message)


def test_a_bad_secret_value_is_never_repeated():
    with pytest.raises(VariableError) as error:
        resolve(template(), {"token": "t", "password": "hunter2"})
    assert "hunter2" not in str(error.value)
    assert "variable password (string)" in str(error.value)


def test_redacted_values_hide_given_and_generated_secrets():
    values = resolve(template(), {"token": "t", "password": "x" * 30}, redact_secrets=True)
    assert values.values["password"] == REDACTED


def test_vars_as_pairs_or_json():
    assert parse_vars("a=1, b = two words\nc=") == {"a": "1", "b": "two words", "c": ""}
    assert parse_vars('{"a": 1, "b": true}') == {"a": 1, "b": True}
    with pytest.raises(VariableError, match="'oops' is not name=value"):
        parse_vars("a=1,oops")
    with pytest.raises(VariableError, match="vars: invalid JSON"):
        parse_vars("{nope")


def test_previous_values_are_kept_and_checked_against_the_new_version():
    """An update keeps the deployed values, but a newer version's tighter rules apply to
    them too: an old value never slips past them (nor is a secret one repeated)."""
    previous = {"token": "t", "players": 40, "host": "old.host", "password": "s3cret-" * 5}
    kept = resolve(template(), {}, previous=previous)
    assert (kept.values["players"], kept.values["host"]) == (40, "old.host")
    assert kept.values["password"] == previous["password"] and not kept.generated

    variables = json.loads(json.dumps(template().raw["variables"]))
    variables[0]["validation"]["max"] = 20  # version 2 allows fewer players
    variables[3]["validation"] = {"pattern": "^[a-z]+$"}  # and plainer passwords
    tighter = template(variables=variables, version="2.0.0")
    with pytest.raises(VariableError) as error:
        resolve(tighter, {}, previous=previous)
    assert str(error.value).startswith(
        "variable players (integer): the deployed value no longer passes this version's rules "
        "(40 is above the maximum 20); give a new one with vars:players=…"
    )
    with pytest.raises(VariableError) as error:
        resolve(tighter, {"players": "12"}, previous=previous)
    assert "variable password (string): the deployed value no longer passes" in str(error.value)
    assert previous["password"] not in str(error.value)
    assert (
        resolve(tighter, {"players": "12", "password": "plain"}, previous=previous).values[
            "players"
        ]
        == 12
    )
