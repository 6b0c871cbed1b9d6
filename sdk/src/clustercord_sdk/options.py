"""Typed option values: one parser for command options and plugin config.

Types: ``string``, ``integer``, ``number``, ``boolean``, ``choice``, ``user``,
``role``, ``channel``, ``attachment``, ``duration`` (``90s``, ``5m``, ``1h30m``,
``2d``) and ``quantity`` (Kubernetes quantities such as ``500m``, ``1Gi``, ``2.5G``).
Every error says which option and why, and is raised as :class:`UsageError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from clustercord_sdk.errors import UsageError

OPTION_TYPES = (
    "string",
    "integer",
    "number",
    "boolean",
    "choice",
    "user",
    "role",
    "channel",
    "attachment",
    "duration",
    "quantity",
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_QUANTITY = re.compile(r"^([+-]?\d+(?:\.\d+)?|[+-]?\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_QUANTITY_FACTORS = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_SNOWFLAKE = {
    "user": re.compile(r"^(?:(\d{1,20})|<@!?(\d{1,20})>)$"),
    "role": re.compile(r"^(?:(\d{1,20})|<@&(\d{1,20})>)$"),
    "channel": re.compile(r"^(?:(\d{1,20})|<#(\d{1,20})>)$"),
}
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``5m``, ``1h30m`` or ``250ms``; a bare number is seconds."""
    text = str(text).strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{text!r} is not a duration (examples: 30s, 5m, 1h30m, 2d)")
        return seconds
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 5m, 1h30m, 2d)")
    return total


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity: ``500m`` → 0.5, ``1Gi`` → 1073741824."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity (examples: 500m, 2, 1Gi, 512Mi)")
    try:
        return Decimal(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"{text!r} is not a quantity") from exc


@dataclass(frozen=True)
class Choice:
    name: str
    value: Any


@dataclass(frozen=True)
class OptionSpec:
    """One typed option, from a manifest's command options or config schema."""

    name: str
    type: str = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[Choice, ...] = ()
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    autocomplete: str | bool = False
    secret: bool = False

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any], name: str | None = None) -> OptionSpec:
        choices = []
        for choice in spec.get("choices", ()):
            if isinstance(choice, Mapping):
                choices.append(Choice(str(choice["name"]), choice["value"]))
            else:
                choices.append(Choice(str(choice), choice))
        return cls(
            name=name or spec["name"],
            type=spec.get("type", "string"),
            description=spec.get("description", ""),
            required=bool(spec.get("required", False)),
            default=spec.get("default"),
            choices=tuple(choices),
            min=spec.get("min"),
            max=spec.get("max"),
            min_length=spec.get("min_length"),
            max_length=spec.get("max_length"),
            autocomplete=spec.get("autocomplete", False),
            secret=bool(spec.get("secret", False)),
        )

    def parse(self, raw: Any) -> Any:
        """Convert ``raw`` (text from a command line, or a typed value) to this option's type."""
        try:
            value = self._convert(raw)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"option {self.name}: {exc}") from None
        self._check(value)
        return value

    def _convert(self, raw: Any) -> Any:
        kind = self.type
        if kind in ("string", "choice", "attachment"):
            if isinstance(raw, (dict, list)):
                raise TypeError(f"expected text, got {type(raw).__name__}")
            return str(raw) if kind != "choice" or not self.choices else self._choice(raw)
        if kind == "integer":
            if isinstance(raw, bool):
                raise TypeError("expected a whole number, got a boolean")
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(f"{raw!r} is not a whole number")
            try:
                return int(str(raw).strip()) if not isinstance(raw, (int, float)) else int(raw)
            except ValueError:
                raise ValueError(f"{raw!r} is not a whole number") from None
        if kind == "number":
            if isinstance(raw, bool):
                raise TypeError("expected a number, got a boolean")
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{raw!r} is not a number") from None
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"{raw!r} is not true or false")
        if kind in ("user", "role", "channel"):
            match = _SNOWFLAKE[kind].match(str(raw).strip())
            if not match:
                raise ValueError(f"{raw!r} is not a Discord {kind} mention or id")
            return match.group(1) or match.group(2)
        if kind == "duration":
            return parse_duration(raw)
        if kind == "quantity":
            parse_quantity(raw)
            return str(raw).strip()
        raise ValueError(f"unknown option type {kind!r}")

    def _choice(self, raw: Any) -> Any:
        for choice in self.choices:
            if raw == choice.value or str(raw) == str(choice.value) or str(raw) == choice.name:
                return choice.value
        names = ", ".join(str(c.value) for c in self.choices)
        raise ValueError(f"{raw!r} is not one of the choices: {names}")

    def _check(self, value: Any) -> None:
        if self.choices and self.type != "choice" and value not in [c.value for c in self.choices]:
            names = ", ".join(str(c.value) for c in self.choices)
            raise UsageError(f"option {self.name}: {value!r} is not one of the choices: {names}")
        if self.type in ("integer", "number", "duration"):
            if self.min is not None and value < self.min:
                raise UsageError(f"option {self.name}: {value} is below the minimum {self.min}")
            if self.max is not None and value > self.max:
                raise UsageError(f"option {self.name}: {value} is above the maximum {self.max}")
        if isinstance(value, str):
            if self.min_length is not None and len(value) < self.min_length:
                raise UsageError(
                    f"option {self.name}: at least {self.min_length} characters are needed"
                )
            if self.max_length is not None and len(value) > self.max_length:
                raise UsageError(f"option {self.name}: at most {self.max_length} characters")


def parse_options(
    specs: list[OptionSpec], raw: Mapping[str, Any], *, what: str = "command"
) -> dict[str, Any]:
    """Validate ``raw`` against ``specs``: unknown names, missing required values, types.

    Returns every declared option, defaults filled in (``None`` where there is none).
    """
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(raw) - set(by_name))
    if unknown:
        known = ", ".join(by_name) or "none"
        raise UsageError(f"unknown option {unknown[0]!r} for this {what} (options: {known})")
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in raw and raw[spec.name] is not None:
            values[spec.name] = spec.parse(raw[spec.name])
        elif spec.required:
            raise UsageError(f"option {spec.name} is required")
        else:
            values[spec.name] = spec.parse(spec.default) if spec.default is not None else None
    return values
