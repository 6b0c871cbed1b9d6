"""The front-end neutral Reply model.

A command handler returns a :class:`Reply` (or yields several, for progress).
The Discord front end renders it within Discord's limits; the console front end
renders it with rich; ``clustercord run --json`` prints :meth:`Reply.to_dict`.
Nothing here knows about either front end.
"""

from __future__ import annotations

import base64
import re
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Literal

ButtonStyle = Literal["primary", "secondary", "success", "danger", "link"]


def code_block(text: str, language: str = "") -> str:
    """``text`` as a chat code block (Markdown fences) that nothing in it can close: any run
    of backticks inside (three, four, ten) would end the block early, so a zero-width space
    goes between every two of them; a trailing backtick is kept off the closing fence by the
    newline before it."""
    defused = _BACKTICK_PAIR.sub("`\u200b", text)
    return f"```{language}\n{defused}\n```"


_BACKTICK_PAIR = re.compile(r"`(?=`)")


@dataclass
class Field:
    """A name/value pair shown in a card."""

    name: str
    value: str
    inline: bool = False


@dataclass
class Card:
    """A titled block (a Discord embed, a rich panel)."""

    title: str | None = None
    description: str | None = None
    fields: list[Field] = field(default_factory=list)
    color: str | None = None
    footer: str | None = None
    url: str | None = None
    image: str | None = None
    """Name of a :class:`File` of the same reply to show inline (a PNG chart)."""


@dataclass
class Table:
    """Rows under column headings. Front ends page or attach it when it is too long."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    title: str | None = None


@dataclass
class Button:
    """A button. ``action`` names the plugin's component handler; ``value`` is its state."""

    label: str
    action: str | None = None
    value: Any = None
    style: ButtonStyle = "secondary"
    url: str | None = None
    disabled: bool = False
    emoji: str | None = None
    command: str | None = None
    """The command (``"approval approve"``) whose access policy decides who may press
    the button; ``None``: the command whose reply carries it. One of the plugin's own."""


@dataclass
class SelectOption:
    label: str
    value: str
    description: str | None = None
    default: bool = False


@dataclass
class Select:
    """A drop-down. The chosen values reach the plugin's component handler ``action``."""

    action: str
    options: list[SelectOption]
    placeholder: str | None = None
    min_values: int = 1
    max_values: int = 1


@dataclass
class TextInput:
    name: str
    label: str
    style: Literal["short", "paragraph"] = "short"
    required: bool = True
    placeholder: str | None = None
    value: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    secret: bool = False
    """A password or token: the console reads it without echo (Discord cannot mask it)."""


@dataclass
class Modal:
    """A form. Its submitted values reach the plugin's component handler ``action``.

    Discord shows it as a modal (at most 5 inputs); the console prompts for each input
    in turn (``secret`` ones without echo) and calls ``action`` the same way.
    """

    title: str
    action: str
    inputs: list[TextInput]


@dataclass
class File:
    """An attachment: rendered output, an export, a chart."""

    name: str
    data: bytes
    description: str | None = None
    content_type: str | None = None


@dataclass
class Progress:
    """Progress of long work; front ends edit one message or draw a bar."""

    current: float
    total: float | None = None
    label: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))


@dataclass
class Confirmation:
    """A yes/no question. ``action`` is called with the answer; ``danger`` styles it red."""

    prompt: str
    action: str | None = None
    value: Any = None
    confirm_label: str = "Confirm"
    cancel_label: str = "Cancel"
    danger: bool = True


@dataclass
class Reply:
    """What a command answers. Every part is optional; front ends render what is set."""

    text: str | None = None
    cards: list[Card] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    pages: list[Reply] = field(default_factory=list)
    """Each page is a Reply of its own; front ends show one at a time (◀ ▶)."""
    buttons: list[Button] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)
    modal: Modal | None = None
    files: list[File] = field(default_factory=list)
    ephemeral: bool = False
    """Only the invoking user sees it (secrets, personal data)."""
    progress: Progress | None = None
    confirmation: Confirmation | None = None
    error: bool = False
    data: Any = None
    """Machine-readable result for ``--json`` and scripts (a dict or list of plain values)."""

    @classmethod
    def fail(cls, text: str, **kwargs: Any) -> Reply:
        return cls(text=text, error=True, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; files carry base64 content and their size."""
        return _to_plain(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return _from_plain(cls, data)  # type: ignore[no-any-return]


def _to_plain(value: Any) -> Any:
    if isinstance(value, File):
        return {
            "name": value.name,
            "size": len(value.data),
            "content_type": value.content_type,
            "description": value.description,
            "data_base64": base64.b64encode(value.data).decode(),
        }
    if is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if (item is None or item == []) and _has_default(f, item):
                continue
            if item is False and f.name in ("ephemeral", "error"):
                continue
            out[f.name] = _to_plain(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _has_default(f: Any, item: Any) -> bool:
    """True when ``item`` is the field's default, so leaving it out loses nothing."""
    if f.default is not MISSING:
        return bool(f.default == item)
    if f.default_factory is not MISSING:
        return bool(f.default_factory() == item)
    return False


_NESTED: dict[str, type] = {
    "cards": Card,
    "fields": Field,
    "tables": Table,
    "buttons": Button,
    "selects": Select,
    "options": SelectOption,
    "inputs": TextInput,
    "files": File,
    "pages": Reply,
    "modal": Modal,
    "progress": Progress,
    "confirmation": Confirmation,
}


def _from_plain(cls: type, data: dict[str, Any]) -> Any:
    if cls is File:
        return File(
            name=data["name"],
            data=base64.b64decode(data.get("data_base64", "")),
            description=data.get("description"),
            content_type=data.get("content_type"),
        )
    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(cls)}
    for key, value in data.items():
        if key not in names:
            continue
        nested = _NESTED.get(key)
        if nested is not None and key != "data":
            if isinstance(value, list):
                value = [_from_plain(nested, v) for v in value]
            elif isinstance(value, dict):
                value = _from_plain(nested, value)
        kwargs[key] = value
    return cls(**kwargs)
