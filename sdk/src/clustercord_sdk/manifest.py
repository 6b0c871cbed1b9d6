"""Plugin manifests: the JSON Schema (``manifest.schema.json``) plus the checks a schema
cannot express. Every error names its path, e.g. ``commands[0].options[1].type``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from clustercord_sdk.errors import ManifestError, UsageError
from clustercord_sdk.events import EventFilter, parse_label_selector
from clustercord_sdk.http import RouteSpec
from clustercord_sdk.options import OptionSpec
from clustercord_sdk.permissions import Permission, PermissionError_, parse_permission

MANIFEST_FILE = "manifest.json"


@cache
def schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped with the SDK."""
    text = resources.files("clustercord_sdk").joinpath("manifest.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CommandSpec:
    """A runnable command (a leaf of the command tree) of a plugin."""

    path: tuple[str, ...]
    description: str
    handler: str
    options: tuple[OptionSpec, ...] = ()
    admin: bool = False
    destructive: bool = False
    ephemeral: bool = False
    aliases: tuple[tuple[str, ...], ...] = ()
    """Other paths that run this command when typed in the console or ``clustercord run``
    (``"aliases": ["chaos kill-pod"]``): a name the spec or older versions used, kept when
    Discord's limits force a command into a group. Discord registers only :attr:`path`. An
    alias stays under the command's own top-level name, and a real command always wins."""

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def policy_name(self) -> str:
        """The name access policies match, e.g. ``plugin:enable``."""
        return ":".join(self.path)


@dataclass(frozen=True)
class HookSpec:
    event: str
    filter: EventFilter
    priority: int = 0


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    api: str
    description: str
    permissions: tuple[Permission, ...] = ()
    capabilities: tuple[str, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    hooks: tuple[HookSpec, ...] = ()
    config: tuple[OptionSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    icon: str | None = None
    author: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def permission_strings(self) -> list[str]:
        return [str(p) for p in self.permissions]

    def config_defaults(self) -> dict[str, Any]:
        return {spec.name: spec.default for spec in self.config}

    def api_compatible(self, api_version: str) -> bool:
        return Version(api_version) in SpecifierSet(self.api)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_manifest(source: Path | str | Mapping[str, Any]) -> Manifest:
    """Load and validate a manifest from a file path, JSON text or a dict.

    Raises :class:`ManifestError` listing every problem found, each with its path.
    """
    label = "manifest"
    if isinstance(source, Path):
        label = str(source)
        try:
            text = source.read_text("utf-8")
        except OSError as exc:
            raise ManifestError([("", f"cannot read: {exc.strerror}")], label) from None
        source = text
    if isinstance(source, str):
        try:
            data = json.loads(source)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                [("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")], label
            ) from None
    else:
        data = dict(source)
    if not isinstance(data, dict):
        raise ManifestError([("", "a manifest must be a JSON object")], label)

    import jsonschema  # imported late: it is slow to import and only needed here

    validator = jsonschema.Draft202012Validator(schema())
    errors = [
        (_path(error.absolute_path), _schema_message(error))
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    ]
    if errors:
        raise ManifestError(errors, label)
    errors = []
    permissions = []
    for index, text in enumerate(data.get("permissions", [])):
        try:
            permissions.append(parse_permission(text))
        except PermissionError_ as exc:
            errors.append((f"permissions[{index}]", str(exc)))
    try:
        SpecifierSet(data["api"])
    except InvalidSpecifier:
        errors.append(("api", f"{data['api']!r} is not a version range such as '>=1.0,<2'"))
    commands = _commands(data.get("commands", []), (), "commands", errors)
    _check_aliases(commands, errors)
    hooks = []
    for index, hook in enumerate(data.get("hooks", [])):
        try:
            event_filter = EventFilter.from_manifest(hook.get("filter"))
            parse_label_selector((hook.get("filter") or {}).get("label", ""))
        except ValueError as exc:
            errors.append((f"hooks[{index}].filter.label", str(exc)))
            continue
        hooks.append(HookSpec(hook["event"], event_filter, hook.get("priority", 0)))
    routes = _routes(data.get("routes", []), errors)
    config = []
    for key, entry in data.get("config", {}).items():
        spec = OptionSpec.from_manifest(entry, name=key)
        if spec.default is not None:
            try:
                spec.parse(spec.default)
            except UsageError as exc:
                errors.append((f"config.{key}.default", str(exc).split(": ", 1)[-1]))
        config.append(spec)
    if errors:
        raise ManifestError(errors, label)
    return Manifest(
        name=data["name"],
        version=data["version"],
        api=data["api"],
        description=data["description"],
        permissions=tuple(permissions),
        capabilities=tuple(data.get("capabilities", [])),
        commands=tuple(commands),
        hooks=tuple(hooks),
        config=tuple(config),
        routes=tuple(routes),
        icon=data.get("icon"),
        author=data.get("author"),
        raw=data,
    )


def _routes(items: list[dict[str, Any]], errors: list[tuple[str, str]]) -> list[RouteSpec]:
    """The schema checks each route's shape; here: a real path, each route declared once."""
    out: list[RouteSpec] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        route = RouteSpec(
            item["method"],
            item["path"],
            item["handler"],
            item.get("description", ""),
            bool(item.get("safe_reads", False)),
        )
        segments = route.path.split("/")[1:]
        if not segments or segments == [""] or any(s in (".", "..") for s in segments):
            errors.append((f"routes[{index}].path", f"{route.path!r} is not a route path"))
            continue
        if (route.method, route.path) in seen:
            errors.append(
                (f"routes[{index}]", f"route {route.method} {route.path} is declared twice")
            )
            continue
        seen.add((route.method, route.path))
        out.append(route)
    return out


def _schema_message(error: Any) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field {', '.join(map(repr, extra))}"
    if error.validator == "required":
        return str(error.message).replace(" is a required property", " is required")
    return str(error.message)


def _commands(
    items: list[dict[str, Any]], parent: tuple[str, ...], where: str, errors: list[tuple[str, str]]
) -> list[CommandSpec]:
    out: list[CommandSpec] = []
    siblings: set[str] = set()
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        path = (*parent, item["name"])
        if item["name"] in siblings:
            errors.append((f"{here}.name", f"command {' '.join(path)!r} is declared twice"))
            continue
        siblings.add(item["name"])
        subcommands = item.get("subcommands")
        if subcommands:
            if len(path) >= 3:
                errors.append(
                    (here, "commands nest at most two levels (command → group → subcommand)")
                )
                continue
            for key in ("handler", "options"):
                if key in item:
                    errors.append((f"{here}.{key}", "a command with subcommands cannot have one"))
            out.extend(_commands(subcommands, path, f"{here}.subcommands", errors))
            continue
        if "handler" not in item:
            errors.append((f"{here}.handler", "a command without subcommands needs a handler"))
            continue
        options = []
        optional_seen = False
        names: set[str] = set()
        for position, option in enumerate(item.get("options", [])):
            spec = OptionSpec.from_manifest(option)
            if spec.name in names:
                errors.append(
                    (f"{here}.options[{position}].name", f"duplicate option {spec.name!r}")
                )
            names.add(spec.name)
            if spec.required and optional_seen:
                errors.append(
                    (
                        f"{here}.options[{position}]",
                        "required options must come before optional ones",
                    )
                )
            optional_seen = optional_seen or not spec.required
            if spec.default is not None:
                try:
                    spec.parse(spec.default)
                except UsageError as exc:
                    errors.append((f"{here}.options[{position}].default", str(exc)))
            options.append(spec)
        out.append(
            CommandSpec(
                path=path,
                description=item["description"],
                handler=item["handler"],
                options=tuple(options),
                admin=item.get("admin", False),
                destructive=item.get("destructive", False),
                ephemeral=item.get("ephemeral", False),
                aliases=tuple(tuple(alias.split()) for alias in item.get("aliases", [])),
            )
        )
    return out


def _check_aliases(commands: list[CommandSpec], errors: list[tuple[str, str]]) -> None:
    """An alias names no command or group of the manifest, is declared once, and stays
    under its command's top-level name (a plugin cannot answer for another's commands)."""
    taken = {c.path[:depth] for c in commands for depth in range(1, len(c.path) + 1)}
    seen: set[tuple[str, ...]] = set()
    for command in commands:
        for alias in command.aliases:
            where = f"command {command.name!r}, alias {' '.join(alias)!r}"
            if alias[0] != command.path[0] or len(alias) < 2:
                errors.append((where, f"an alias starts with /{command.path[0]} and a subcommand"))
            elif alias in taken:
                errors.append((where, "names a command or group of this manifest"))
            elif alias in seen:
                errors.append((where, "is declared twice"))
            seen.add(alias)
