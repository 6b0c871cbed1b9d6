"""The template format: a ``template.json`` checked against ``template.schema.json``.

Every error names the path of what is wrong (``variables[2].type``), so the author of a
community template can fix it without reading this code.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clustercord_builtins.templates.charts import ChartError, check_entry
from clustercord_sdk.errors import UsageError
from clustercord_sdk.options import Choice, OptionSpec

SCHEMA_FILE = Path(__file__).with_name("template.schema.json")
ELEVATED_FEATURES = frozenset({"hostNetwork", "hostPath", "hostPort", "runAsRoot", "clusterWide"})


class TemplateError(ValueError):
    """A template that cannot be used; the message names the path of the problem."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    required: bool = False
    default: Any = None
    description: str = ""
    secret: bool = False
    validation: dict[str, Any] = field(default_factory=dict)


def _spec(variable: Variable) -> OptionSpec:
    rules = variable.validation
    return OptionSpec(
        name=variable.name,
        type=variable.type,
        choices=tuple(Choice(str(c), c) for c in rules.get("choices", ())),
        min=rules.get("min"),
        max=rules.get("max"),
        min_length=rules.get("min_length"),
        max_length=rules.get("max_length"),
    )


def check_value(variable: Variable, raw: Any) -> Any:
    """``raw`` converted to the variable's type and validated; ``ValueError`` otherwise.
    The message never repeats a secret variable's value."""
    try:
        value = _spec(variable).parse(raw)
    except UsageError as error:
        message = str(error).removeprefix(f"option {variable.name}: ")
        if variable.secret:
            message = "the value is not valid for its type and rules"
        raise ValueError(message) from None
    pattern = variable.validation.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, str(value)):
        shown = "the value" if variable.secret else repr(value)
        raise ValueError(f"{shown} does not match the pattern {pattern}")
    return value


@dataclass(frozen=True)
class Manifest:
    """One Jinja2 source of Kubernetes YAML."""

    name: str
    source: str


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    category: str
    description: str
    manifests: tuple[Manifest, ...]
    variables: tuple[Variable, ...] = ()
    requirements: dict[str, Any] = field(default_factory=dict)
    helm_charts: tuple[dict[str, Any], ...] = ()
    post_install: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    folder: Path | None = field(default=None, compare=False)

    @property
    def title(self) -> str:
        return str(self.raw.get("title") or self.name)

    @property
    def icon(self) -> str:
        return str(self.raw.get("icon") or "📦")

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.requirements.get("features", ()))

    @property
    def elevated(self) -> tuple[str, ...]:
        """The elevated rights the template declares (host access, root)."""
        return tuple(f for f in self.features if f in ELEVATED_FEATURES)

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)


@functools.cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def json_path(parts: Any) -> str:
    """``variables[2].type`` from a jsonschema path deque."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_template_json(text: str | bytes, source: str = "template.json") -> dict[str, Any]:
    """The JSON object in ``text``, or a :class:`TemplateError` with line and column."""
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise TemplateError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"{source}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: the top level must be a JSON object")
    return data


def check_schema(data: dict[str, Any], source: str = "template.json") -> None:
    """Raise a :class:`TemplateError` listing every schema error, each with its path."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [f"{json_path(e.absolute_path)}: {_message(e)}" for e in errors[:10]]
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise TemplateError(
            f"{source} does not follow the template schema{more}:\n- " + "\n- ".join(lines)
        )


MESSAGE_MAX = 300


def bounded(message: str, limit: int = MESSAGE_MAX) -> str:
    """``message`` cut to ``limit`` characters: a schema error quotes the value it is about,
    and a value may be large."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _message(error: Any) -> str:
    if error.validator == "oneOf" and error.path and "manifests" in error.path:
        return "must be a file name ending .yaml/.yml(.j2) or {name, content}"
    return bounded(str(error.message))


def load_template(
    data: dict[str, Any], *, folder: Path | None = None, source: str = "template.json"
) -> Template:
    """Check ``data`` and build a :class:`Template`. Manifests given as file names are
    read from ``folder`` (curated templates only: a submitted file carries its content)."""
    check_schema(data, source)
    variables = []
    seen: set[str] = set()
    for index, item in enumerate(data.get("variables", [])):
        where = f"{source}: variables[{index}]"
        variable = Variable(
            name=item["name"],
            type=item["type"],
            required=item.get("required", False),
            default=item.get("default"),
            description=item.get("description", ""),
            secret=item.get("secret", False),
            validation=dict(item.get("validation", {})),
        )
        if variable.name in seen:
            raise TemplateError(f"{where}.name: variable {variable.name!r} is declared twice")
        seen.add(variable.name)
        if variable.type == "choice" and not variable.validation.get("choices"):
            raise TemplateError(f"{where}.validation.choices: a choice variable needs choices")
        if variable.default is not None:
            try:
                check_value(variable, variable.default)
            except ValueError as error:
                raise TemplateError(f"{where}.default: {error}") from None
        variables.append(variable)
    for index, chart in enumerate(data.get("helm_charts", ())):
        try:
            check_entry(chart, f"helm_charts[{index}].")
        except ChartError as error:
            raise TemplateError(f"{source}: {error}") from None
    manifests = []
    for index, item in enumerate(data["manifests"]):
        if isinstance(item, str):
            if folder is None:
                raise TemplateError(
                    f"{source}: manifests[{index}]: {item!r} names a file, but a submitted "
                    "template must carry its manifests inline as {name, content}"
                )
            path = folder / item
            if not path.is_file():
                raise TemplateError(f"{source}: manifests[{index}]: no file {item} beside it")
            manifests.append(Manifest(item, path.read_text("utf-8")))
        else:
            manifests.append(Manifest(item["name"], item["content"]))
    return Template(
        name=data["name"],
        version=data["version"],
        category=data["category"],
        description=data["description"],
        manifests=tuple(manifests),
        variables=tuple(variables),
        requirements=dict(data.get("requirements", {})),
        helm_charts=tuple(data.get("helm_charts", ())),
        post_install=tuple(data.get("post_install", ())),
        raw=data,
        folder=folder,
    )


def load_template_file(path: Path) -> Template:
    """A curated template: ``path`` is its ``template.json``."""
    data = parse_template_json(path.read_bytes(), f"{path.parent.name}/{path.name}")
    return load_template(data, folder=path.parent, source=f"{path.parent.name}/{path.name}")
