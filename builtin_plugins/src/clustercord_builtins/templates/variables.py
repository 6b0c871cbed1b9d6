"""Typed template variables: parsing ``vars:``, checking values, generating secrets.

Values are converted by the SDK's own option parser (the same types and messages as
command options), then checked against the variable's ``validation``: that is
``check_value``, which lives beside :class:`Variable` in :mod:`.template` (loading a
template checks its defaults with it) and is importable from here too. A secret variable
left empty is generated with :mod:`secrets`; its value never appears in a message.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clustercord_builtins.templates.template import Template, Variable, check_value
from clustercord_sdk.reply import TextInput

REDACTED = "<secret>"
_ALPHABET = string.ascii_letters + string.digits
GENERATED_LENGTH = 24


class VariableError(ValueError):
    """A missing, mistyped or invalid variable; the message names the variable."""


@dataclass
class Values:
    """The resolved variables of one render."""

    values: dict[str, Any]
    secret: frozenset[str] = frozenset()
    generated: frozenset[str] = frozenset()
    given: frozenset[str] = field(default_factory=frozenset)

    def public(self) -> dict[str, Any]:
        """The values that may be shown and stored in clear (secrets left out)."""
        return {k: v for k, v in self.values.items() if k not in self.secret}

    def secrets(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.values.items() if k in self.secret}


def generate_secret(variable: Variable) -> str:
    """A random value within the variable's length rules (24 letters and digits)."""
    rules = variable.validation
    length = max(rules.get("min_length") or 0, GENERATED_LENGTH)
    if rules.get("max_length"):
        length = min(length, rules["max_length"])
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def parse_vars(text: str | None) -> dict[str, str]:
    """``vars:`` as a JSON object or ``name=value`` pairs separated by commas or new lines."""
    if not text or not text.strip():
        return {}
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise VariableError(
                f"vars: invalid JSON ({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(data, dict):
            raise VariableError("vars: a JSON object of name: value is expected")
        return data
    out: dict[str, str] = {}
    for part in re.split(r"[,\n]", text):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise VariableError(f"vars: {part.strip()!r} is not name=value")
        out[name.strip()] = value.strip()
    return out


def resolve(
    template: Template,
    given: Mapping[str, Any],
    *,
    previous: Mapping[str, Any] | None = None,
    redact_secrets: bool = False,
) -> Values:
    """Every variable's value: given, else the previous deploy's, else the default; secret
    variables left empty are generated (or shown as ``<secret>`` when ``redact_secrets``)."""
    unknown = sorted(set(given) - {v.name for v in template.variables})
    if unknown:
        known = ", ".join(v.name for v in template.variables) or "none"
        raise VariableError(
            f"template {template.name} has no variable {unknown[0]!r} (variables: {known})"
        )
    previous = previous or {}
    values: dict[str, Any] = {}
    generated = set()
    for variable in template.variables:
        where = f"variable {variable.name} ({variable.type})"
        if variable.name in given and given[variable.name] not in (None, ""):
            try:
                values[variable.name] = check_value(variable, given[variable.name])
            except ValueError as error:
                raise VariableError(f"{where}: {error}") from None
        elif variable.name in previous:
            # Checked again: a newer version of the template may have tightened the rules,
            # and an old value must not slip past them through an update.
            try:
                values[variable.name] = check_value(variable, previous[variable.name])
            except ValueError as error:
                raise VariableError(
                    f"{where}: the deployed value no longer passes this version's rules "
                    f"({error}); give a new one with vars:{variable.name}=…"
                ) from None
        elif variable.default is not None:
            values[variable.name] = check_value(variable, variable.default)
        elif variable.secret:
            if redact_secrets:
                values[variable.name] = REDACTED
            else:
                values[variable.name] = generate_secret(variable)
                generated.add(variable.name)
        elif variable.required:
            hint = f" — {variable.description}" if variable.description else ""
            raise VariableError(f"{where} is required{hint}; give it with vars:{variable.name}=…")
        else:
            values[variable.name] = None
    if redact_secrets:  # a render shown in chat never carries a secret, given or not
        values.update({v.name: REDACTED for v in template.variables if v.secret})
    return Values(
        values,
        secret=frozenset(v.name for v in template.variables if v.secret),
        generated=frozenset(generated),
        given=frozenset(given),
    )


# -- asking for variables in a form -------------------------------------------------------
FORM_INPUTS_MAX = 5
"""Discord's limit of text inputs per modal. One form per deploy, the same in every front
end: Discord cannot answer a submitted modal with another one, so rather than a chain of
"continue" buttons the form holds what must be asked and everything else keeps its
default (or its ``vars:`` value)."""
ASK = "ask"
"""``vars:ask`` asks for the template's variables in a form instead of taking them inline."""
_LABEL_MAX = 45


def missing_required(template: Template, given: Mapping[str, Any]) -> list[Variable]:
    """Required variables with no value given and no default (secrets are generated)."""
    return [
        v
        for v in template.variables
        if v.required and v.default is None and not v.secret and given.get(v.name) in (None, "")
    ]


def form_variables(
    template: Template, given: Mapping[str, Any], *, everything: bool
) -> list[Variable]:
    """What a deploy form asks for, most needed first: missing required variables, then
    (when the user asked for the form) secrets, then the rest; at most ``FORM_INPUTS_MAX``.

    Raises :class:`VariableError` when more required variables are missing than one form
    holds: the user gives the others with ``vars:``.
    """
    required = missing_required(template, given)
    if len(required) > FORM_INPUTS_MAX:
        names = ", ".join(v.name for v in required[FORM_INPUTS_MAX:])
        raise VariableError(
            f"template {template.name} needs {len(required)} variables, more than one form "
            f"holds ({FORM_INPUTS_MAX}): give {names} with vars:"
        )
    chosen = list(required)
    if everything:
        rest = [v for v in template.variables if v not in chosen]
        chosen += [v for v in rest if v.secret] + [v for v in rest if not v.secret]
    return chosen[:FORM_INPUTS_MAX]


def form_inputs(variables: list[Variable], given: Mapping[str, Any]) -> list[TextInput]:
    """One text input per variable, labelled within Discord's 45 characters; public values
    already known are filled in, secrets never are (a generated one is left blank)."""
    inputs = []
    for variable in variables:
        label = (
            variable.name
            if not variable.description
            else f"{variable.name}: {variable.description}"
        )
        if len(label) > _LABEL_MAX:
            label = label[: _LABEL_MAX - 1] + "…"
        known = given.get(variable.name, variable.default)
        placeholder = None
        if variable.secret:
            placeholder = "leave empty to generate one"
        elif variable.default is not None:
            placeholder = f"default: {variable.default}"[:100]
        inputs.append(
            TextInput(
                name=variable.name,
                label=label,
                required=variable.required and variable.default is None and not variable.secret,
                placeholder=placeholder,
                value=None if variable.secret or known is None else str(known),
                secret=variable.secret,
            )
        )
    return inputs
