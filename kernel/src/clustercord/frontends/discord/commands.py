"""Plugin manifests → Discord application commands, checked against Discord's rules.

A manifest's command tree (command → group → subcommand, options with types,
choices, bounds and autocomplete) becomes one Discord ``CHAT_INPUT`` command per
top-level name. Before anything is sent, every payload is checked against the
rules Discord enforces (names, lengths, counts, ordering, the 4,000 characters of
a command); a plugin whose commands break one is left out and reported with the
command path and the rule, so one bad manifest cannot stop the registration of
the others (Discord rejects a bulk overwrite as a whole).

The same checked payloads are turned into lightbulb command classes
(:func:`lightbulb_commands`), and :func:`registration_json` serialises those
classes exactly as lightbulb sends them: that is what ``clustercord discord
commands --json`` prints.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import regex

from clustercord.frontends.discord import limits
from clustercord_sdk.manifest import CommandSpec, Manifest
from clustercord_sdk.options import OptionSpec

log = logging.getLogger("clustercord.discord.commands")

_NAME = regex.compile(limits.NAME_PATTERN)

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
USER = 6
CHANNEL = 7
ROLE = 8
NUMBER = 10
ATTACHMENT = 11

OPTION_TYPES = {
    "string": STRING,
    "choice": STRING,
    "duration": STRING,
    "quantity": STRING,
    "integer": INTEGER,
    "number": NUMBER,
    "boolean": BOOLEAN,
    "user": USER,
    "channel": CHANNEL,
    "role": ROLE,
    "attachment": ATTACHMENT,
}

MANAGE_GUILD = 1 << 5
"""Admin-only commands are shown by default to members who can manage the server; the
kernel's access policy still decides who may run them."""
GUILD_CONTEXT = 0


@dataclass(frozen=True)
class Rejection:
    """A plugin left out of the registration, and why (shown at start-up and by the CLI)."""

    plugin: str
    path: str
    rule: str

    def __str__(self) -> str:
        return f"plugin {self.plugin}: /{self.path}: {self.rule}; its commands are not registered"


@dataclass
class CommandPlan:
    """The commands to register, who owns each, and the plugins left out."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)
    """Top-level command name → plugin."""
    leaves: dict[tuple[str, ...], CommandSpec] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


# -- manifests → payloads -------------------------------------------------------------
def plan_commands(manifests: Iterable[Manifest]) -> CommandPlan:
    """Build and check the payloads of the given (enabled) plugins' manifests."""
    plan = CommandPlan()
    for manifest in sorted(manifests, key=lambda m: m.name):
        specs = {spec.path: spec for spec in manifest.commands}
        payloads = [_node_payload(node, (), specs) for node in manifest.raw.get("commands", [])]
        problems = [
            (path, rule) for payload in payloads for path, rule in command_violations(payload)
        ]
        for payload in payloads:
            owner = plan.owners.get(payload["name"])
            if owner is not None:
                problems.append(
                    ((payload["name"],), f"the command name is already taken by plugin {owner}")
                )
        if not problems and len(plan.payloads) + len(payloads) > limits.COMMANDS_MAX:
            problems.append(
                (
                    (payloads[0]["name"],),
                    f"Discord allows at most {limits.COMMANDS_MAX} commands per application "
                    "or server",
                )
            )
        if problems:
            for path, rule in problems:
                rejection = Rejection(manifest.name, " ".join(path), rule)
                log.warning("%s", rejection)
                plan.rejected.append(rejection)
            continue
        for payload in payloads:
            plan.payloads.append(payload)
            plan.owners[payload["name"]] = manifest.name
        plan.leaves.update(specs)
    return plan


def _node_payload(
    node: Mapping[str, Any], parent: tuple[str, ...], specs: Mapping[tuple[str, ...], CommandSpec]
) -> dict[str, Any]:
    path = (*parent, node["name"])
    payload: dict[str, Any] = {"name": node["name"], "description": node["description"]}
    if parent:
        payload["type"] = SUB_COMMAND_GROUP if node.get("subcommands") else SUB_COMMAND
    else:
        payload["type"] = 1  # CHAT_INPUT
    if node.get("subcommands"):
        payload["options"] = [_node_payload(sub, path, specs) for sub in node["subcommands"]]
    else:
        spec = specs.get(path)
        payload["options"] = [option_payload(o) for o in spec.options] if spec else []
    if not parent:
        leaves = [spec for p, spec in specs.items() if p[0] == node["name"]]
        if leaves and all(spec.admin for spec in leaves):
            payload["default_member_permissions"] = str(MANAGE_GUILD)
            payload["contexts"] = [GUILD_CONTEXT]
    return payload


def option_payload(spec: OptionSpec) -> dict[str, Any]:
    """One typed option as Discord describes it."""
    kind = OPTION_TYPES.get(spec.type, STRING)
    out: dict[str, Any] = {
        "type": kind,
        "name": spec.name,
        # Discord needs a description; an option without one shows its name.
        "description": spec.description or spec.name,
        "required": spec.required,
    }
    if spec.choices:
        out["choices"] = [
            {"name": c.name, "value": c.value if kind in (INTEGER, NUMBER) else str(c.value)}
            for c in spec.choices
        ]
    if spec.autocomplete and not spec.choices:
        out["autocomplete"] = True
    if kind in (INTEGER, NUMBER):
        convert = int if kind == INTEGER else float
        if spec.min is not None:
            out["min_value"] = convert(spec.min)
        if spec.max is not None:
            out["max_value"] = convert(spec.max)
    if kind == STRING:
        if spec.min_length is not None:
            out["min_length"] = spec.min_length
        if spec.max_length is not None:
            out["max_length"] = spec.max_length
    return out


# -- Discord's rules ------------------------------------------------------------------
def command_violations(payload: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Every rule of Discord's that ``payload`` (one top-level command) breaks.

    Each problem is ``(path, rule)``, the path naming the command, group, subcommand
    or option at fault.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    _check_node(payload, (), problems)
    total = command_characters(payload)
    if total > limits.COMMAND_CHARS_MAX:
        problems.append(
            (
                (str(payload.get("name")),),
                f"names, descriptions and choices add up to {total} characters; Discord allows "
                f"{limits.COMMAND_CHARS_MAX} per command",
            )
        )
    return problems


def command_characters(payload: Mapping[str, Any]) -> int:
    """The characters Discord counts against a command's 4,000: names, descriptions and
    choice names and values, at every level."""
    total = len(str(payload.get("name", ""))) + len(str(payload.get("description", "")))
    for choice in payload.get("choices", ()):
        total += len(str(choice.get("name", ""))) + len(str(choice.get("value", "")))
    for option in payload.get("options", ()):
        total += command_characters(option)
    return total


def name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"name {name!r} must be 1-32 letters, digits, '-', '_' or apostrophes "
            "(Discord's pattern ^[-_'\\p{L}\\p{N}]{1,32}$)"
        )
    if name != name.lower():
        return f"name {name!r} must be lower case"
    return None


def _check_node(
    node: Mapping[str, Any], parent: tuple[str, ...], problems: list[tuple[tuple[str, ...], str]]
) -> None:
    name = node.get("name")
    path = (*parent, str(name))
    problem = name_problem(name)
    if problem:
        problems.append((path, problem))
    description = node.get("description") or ""
    if not 1 <= len(description) <= limits.DESCRIPTION_MAX:
        problems.append(
            (
                path,
                f"description has {len(description)} characters; Discord needs 1-"
                f"{limits.DESCRIPTION_MAX}",
            )
        )
    options = list(node.get("options") or ())
    is_command = node.get("type") in (1, SUB_COMMAND, SUB_COMMAND_GROUP, None)
    if is_command:
        what = "subcommands" if any(_is_sub(o) for o in options) else "options"
        if len(options) > limits.OPTIONS_MAX:
            problems.append(
                (path, f"{len(options)} {what}; Discord allows at most {limits.OPTIONS_MAX}")
            )
        subs = [o for o in options if _is_sub(o)]
        if subs and len(subs) != len(options):
            problems.append((path, "a command cannot have both subcommands and options"))
        if node.get("type") == SUB_COMMAND_GROUP and any(
            o.get("type") != SUB_COMMAND for o in options
        ):
            problems.append((path, "a subcommand group may only contain subcommands"))
        seen: set[str] = set()
        optional_seen = False
        for option in options:
            if option.get("name") in seen:
                problems.append(((*path, str(option.get("name"))), "the name is used twice"))
            seen.add(str(option.get("name")))
            if not _is_sub(option):
                if option.get("required") and optional_seen:
                    problems.append(
                        (
                            (*path, str(option.get("name"))),
                            "required options must come before optional ones",
                        )
                    )
                optional_seen = optional_seen or not option.get("required")
            _check_node(option, path, problems)
        return
    _check_option(node, path, problems)


def _is_sub(option: Mapping[str, Any]) -> bool:
    return option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)


def _check_option(
    option: Mapping[str, Any], path: tuple[str, ...], problems: list[tuple[tuple[str, ...], str]]
) -> None:
    choices = list(option.get("choices") or ())
    if len(choices) > limits.CHOICES_MAX:
        problems.append(
            (path, f"{len(choices)} choices; Discord allows at most {limits.CHOICES_MAX}")
        )
    if choices and option.get("autocomplete"):
        problems.append((path, "an option cannot have both choices and autocomplete"))
    for choice in choices:
        label = str(choice.get("name", ""))
        if not 1 <= len(label) <= limits.CHOICE_NAME_MAX:
            problems.append(
                (path, f"choice {label[:20]!r} must be 1-{limits.CHOICE_NAME_MAX} characters")
            )
        value = choice.get("value")
        if isinstance(value, str) and len(value) > limits.CHOICE_STRING_VALUE_MAX:
            problems.append(
                (
                    path,
                    f"choice value {value[:20]!r}... is longer than "
                    f"{limits.CHOICE_STRING_VALUE_MAX} characters",
                )
            )
    for key in ("min_length", "max_length"):
        value = option.get(key)
        if value is not None and not 0 <= value <= limits.OPTION_LENGTH_MAX:
            problems.append((path, f"{key} must be between 0 and {limits.OPTION_LENGTH_MAX}"))
    low, high = option.get("min_value"), option.get("max_value")
    if low is not None and high is not None and low > high:
        problems.append((path, f"min_value {low} is above max_value {high}"))


# -- lightbulb -----------------------------------------------------------------------
Invoke = Callable[[Any, tuple[str, ...]], Awaitable[None]]
"""``(lightbulb context, command path)``: runs a command."""
Complete = Callable[[Any, tuple[str, ...]], Awaitable[None]]
"""``(lightbulb autocomplete context, command path)``: answers an autocomplete."""


def client_started(client: Any) -> bool:
    """Whether a lightbulb client has started (and so syncs commands only when asked).

    Lightbulb 3 keeps this private; this module is the one place its internals are read."""
    return bool(client._started)


def lightbulb_commands(
    payloads: Iterable[Mapping[str, Any]], invoke: Invoke, complete: Complete
) -> list[Any]:
    """Lightbulb command classes and groups for checked payloads; every one runs ``invoke``."""
    import hikari
    import lightbulb

    out: list[Any] = []
    for payload in payloads:
        extra: dict[str, Any] = {}
        if "default_member_permissions" in payload:
            # Discord wants a string of the bit set: hikari would send a Permissions as a
            # JSON number, so the string is handed on as is (lightbulb only passes it on).
            extra["default_member_permissions"] = str(payload["default_member_permissions"])
        if "contexts" in payload:
            extra["contexts"] = [hikari.ApplicationContextType(c) for c in payload["contexts"]]
        options = payload.get("options") or []
        if options and all(_is_sub(o) for o in options):
            group = lightbulb.Group(payload["name"], payload["description"], **extra)
            for sub in options:
                if sub["type"] == SUB_COMMAND_GROUP:
                    subgroup = group.subgroup(sub["name"], sub["description"])
                    for leaf in sub.get("options") or []:
                        path = (payload["name"], sub["name"], leaf["name"])
                        subgroup.register(_command_class(leaf, path, invoke, complete, {}))
                else:
                    path = (payload["name"], sub["name"])
                    group.register(_command_class(sub, path, invoke, complete, {}))
            out.append(group)
        else:
            out.append(_command_class(payload, (payload["name"],), invoke, complete, extra))
    return out


def _command_class(
    payload: Mapping[str, Any],
    path: tuple[str, ...],
    invoke: Invoke,
    complete: Complete,
    extra: Mapping[str, Any],
) -> type:
    import lightbulb
    from lightbulb.internal.constants import COMMAND_INVOKE_METHOD_MARKER

    async def run(self: Any, ctx: Any) -> None:
        await invoke(ctx, path)

    async def autocomplete(ctx: Any) -> None:
        await complete(ctx, path)

    # Marked as lightbulb's invoke method without lightbulb.invoke's dependency injection:
    # ``run`` needs only the context, and linkd (0.6) regenerates and execs the resolver of
    # a DI method on every call, a fifth of the CPU a command costs under load.
    setattr(run, COMMAND_INVOKE_METHOD_MARKER, "_")
    attrs: dict[str, Any] = {"invoke": run}
    for index, option in enumerate(payload.get("options") or []):
        attrs[f"option_{index}"] = _lightbulb_option(option, autocomplete)
    meta = type(lightbulb.SlashCommand)
    return meta(
        "Command_" + "_".join(path).replace("-", "_"),
        (lightbulb.SlashCommand,),
        attrs,
        name=payload["name"],
        description=payload["description"],
        **extra,
    )


def _lightbulb_option(option: Mapping[str, Any], autocomplete: Callable[..., Any]) -> Any:
    import lightbulb

    kind = option["type"]
    kwargs: dict[str, Any] = {}
    if not option.get("required"):
        kwargs["default"] = None
    if option.get("choices"):
        kwargs["choices"] = [lightbulb.Choice(c["name"], c["value"]) for c in option["choices"]]
    if option.get("autocomplete"):
        kwargs["autocomplete"] = autocomplete
    for ours, theirs in (
        ("min_value", "min_value"),
        ("max_value", "max_value"),
        ("min_length", "min_length"),
        ("max_length", "max_length"),
    ):
        if ours in option:
            kwargs[theirs] = option[ours]
    factory = {
        STRING: lightbulb.string,
        INTEGER: lightbulb.integer,
        NUMBER: lightbulb.number,
        BOOLEAN: lightbulb.boolean,
        USER: lightbulb.user,
        CHANNEL: lightbulb.channel,
        ROLE: lightbulb.role,
        ATTACHMENT: lightbulb.attachment,
    }[kind]
    if kind in (BOOLEAN, USER, CHANNEL, ROLE, ATTACHMENT):
        kwargs = {k: v for k, v in kwargs.items() if k == "default"}
    return factory(option["name"], option["description"], **kwargs)


async def registration_json(commands: Iterable[Any]) -> list[dict[str, Any]]:
    """The JSON lightbulb sends for these commands (its ``PUT .../commands`` body)."""
    import hikari
    import lightbulb
    from hikari.impl.entity_factory import EntityFactoryImpl

    factory = EntityFactoryImpl(app=None)  # type: ignore[arg-type]  # building needs no app
    out = []
    for command in commands:
        builder = await command.as_command_builder(
            hikari.Locale.EN_US, lightbulb.localization.localization_unsupported
        )
        out.append(dict(builder.build(factory)))
    return out
