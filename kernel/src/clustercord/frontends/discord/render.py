"""Render a :class:`~clustercord_sdk.reply.Reply` as a Discord message, within every limit.

The result is plain Discord JSON (content, embeds, action rows, a modal) plus the
files to upload, so the limits can be checked on exactly what is sent. Nothing is
silently lost: whatever does not fit (long text, a big table, a 26th field, an
embed over the 6,000 characters of a message) is cut with a marker in the message
and the whole reply goes along as a text attachment (``reply.txt``).

Buttons, selects, modals and page arrows need custom ids whose state lives on the
server; the renderer asks a :class:`Minter` for them (see :mod:`.components`).

Every text shown passes :func:`~clustercord.frontends.inert.inert` first: control
characters become visible escapes and ``@everyone``/``@here`` cannot ping (the messages
also carry ``allowed_mentions`` with nothing to parse, see :mod:`.responder`).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any, Protocol

from clustercord.frontends.discord import limits
from clustercord.frontends.inert import inert, inert_reply
from clustercord.frontends.tables import fit
from clustercord_sdk.reply import (
    Button,
    Card,
    Confirmation,
    File,
    Modal,
    Progress,
    Reply,
    Table,
    code_block,
)

ELLIPSIS = "…"
TABLE_WIDTH = 72
"""Characters a table may take in a code block before columns are left out: what a
narrow desktop window or a tablet shows without wrapping (phones wrap at about 40)."""
REPLY_FILE = "reply.txt"
BUTTON_STYLES = {"primary": 1, "secondary": 2, "success": 3, "danger": 4, "link": 5}
COLORS = {
    "red": 0xE74C3C,
    "green": 0x2ECC71,
    "yellow": 0xF1C40F,
    "orange": 0xE67E22,
    "blue": 0x3498DB,
    "purple": 0x9B59B6,
    "grey": 0x95A5A6,
    "gray": 0x95A5A6,
}
ERROR_COLOR = COLORS["red"]


class Minter(Protocol):
    """Gives a component a custom id and keeps its state server-side."""

    def mint(
        self,
        kind: str,
        state: dict[str, Any],
        *,
        allowed: list[str] | None = None,
        command: tuple[str, ...] | None = None,
    ) -> str:
        """A custom id (≤ 100 characters) for a component of ``kind`` with ``state``.
        ``allowed``: the only users who may use it (``None``: anyone); ``command``: the
        command whose access policy applies to a click (``None``: the reply's command)."""
        ...


@dataclass
class DiscordMessage:
    """A message ready to send: JSON parts and the files to upload with it."""

    content: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    flags: int = 0
    modal: dict[str, Any] | None = None
    """Set when the reply is a form: the interaction answers with this modal instead."""

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & limits.EPHEMERAL)

    def json(self) -> dict[str, Any]:
        """The message body as Discord receives it (attachments listed by name)."""
        out: dict[str, Any] = {}
        if self.content:
            out["content"] = self.content
        if self.embeds:
            out["embeds"] = self.embeds
        if self.components:
            out["components"] = self.components
        if self.files:
            out["attachments"] = [
                {"id": index, "filename": f.name} for index, f in enumerate(self.files)
            ]
        if self.flags:
            out["flags"] = self.flags
        return out


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


class _Overflow:
    """Notes what had to be cut, so the full reply is attached once, not per part."""

    def __init__(self) -> None:
        self.cut = False

    def clip(self, text: str, limit: int) -> str:
        if len(text) > limit:
            self.cut = True
        return clip(text, limit)


class Renderer:
    """Turns replies into :class:`DiscordMessage` objects; one per interaction or message."""

    def __init__(self, minter: Minter, *, user_id: str | None = None) -> None:
        self.minter = minter
        self.user_id = user_id

    def render(self, reply: Reply) -> DiscordMessage:
        reply = inert_reply(reply, mentions=True)
        if reply.pages:
            return self._render_page(reply, 0)
        return self._render(reply)

    def render_page(self, reply: Reply, index: int, pages_ref: str | None = None) -> DiscordMessage:
        """Page ``index`` of a paged reply, with ◀ ▶ buttons (the pages are kept server-side)."""
        return self._render_page(inert_reply(reply, mentions=True), index, pages_ref)

    def _render_page(
        self, reply: Reply, index: int, pages_ref: str | None = None
    ) -> DiscordMessage:
        pages = reply.pages
        index = max(0, min(index, len(pages) - 1))
        page = pages[index]
        merged = Reply(
            text=page.text if page.text is not None else reply.text,
            cards=page.cards or reply.cards,
            tables=page.tables,
            buttons=page.buttons or reply.buttons,
            selects=page.selects,
            files=page.files if index == 0 else [],
            ephemeral=reply.ephemeral or page.ephemeral,
            error=reply.error or page.error,
        )
        if index == 0:
            merged.files = [*reply.files, *page.files]
        if pages_ref is None:
            pages_ref = self.minter.mint("pages", {"reply": reply.to_dict()})
        nav = {
            "type": 1,
            "components": [
                self._nav_button("◀", pages_ref, index - 1, disabled=index == 0),
                {
                    "type": 2,
                    "style": 2,
                    "label": f"{index + 1}/{len(pages)}",
                    "custom_id": f"cc:_:page-{index}",  # disabled: never clicked
                    "disabled": True,
                },
                self._nav_button("▶", pages_ref, index + 1, disabled=index >= len(pages) - 1),
            ],
        }
        return self._render(merged, reserved_rows=[nav])

    def _nav_button(self, label: str, ref: str, index: int, *, disabled: bool) -> dict[str, Any]:
        return {
            "type": 2,
            "style": 1,
            "label": label,
            "custom_id": self.minter.mint("page", {"ref": ref, "index": index}),
            "disabled": disabled,
        }

    # -- one message -------------------------------------------------------------------
    def _render(
        self, reply: Reply, reserved_rows: list[dict[str, Any]] | None = None
    ) -> DiscordMessage:
        overflow = _Overflow()
        message = DiscordMessage(flags=limits.EPHEMERAL if reply.ephemeral else 0)
        parts: list[str] = []
        if reply.text:
            parts.append(("❌ " if reply.error else "") + reply.text)
        if reply.progress is not None:
            parts.append(progress_line(reply.progress))
        if reply.confirmation is not None:
            parts.append(("⚠️ " if reply.confirmation.danger else "") + reply.confirmation.prompt)
        embeds = [self._embed(card, reply, overflow) for card in reply.cards]
        if reply.error and not embeds and reply.text and len(parts[0]) > limits.CONTENT_MAX:
            embeds = [{"description": overflow.clip(reply.text, limits.EMBED_DESCRIPTION_MAX)}]
            parts = parts[1:]
        for table in reply.tables:
            fitted = fit(table, TABLE_WIDTH)
            text = fitted.text()
            block = code_block(text)
            overflow.cut |= fitted.lossy  # the attached full reply has every column and word
            note = fitted.hidden_note(TABLE_WIDTH)
            if note is not None:
                block += f"\n-# {note}"
            title = f"**{table.title}**\n" if table.title else ""
            if len("\n".join([*parts, title + block])) <= limits.CONTENT_MAX:
                parts.append(title + block)
            else:
                embeds.append(self._table_embed(table, text, overflow))
        if not parts and not embeds and reply.data is not None and not reply.files:
            parts.append(code_block(json.dumps(reply.data, indent=2, default=str), "json"))
        content = "\n".join(parts)
        if len(content) > limits.CONTENT_MAX:
            overflow.cut = True
        message.embeds = _fit_embeds(embeds, overflow)
        message.components = self._components(reply, reserved_rows or [], overflow)
        if reply.modal is not None:
            message.modal = self._modal(reply.modal, overflow)
        message.files = list(reply.files)
        if overflow.cut:
            message.files.append(File(REPLY_FILE, plain_text(reply).encode(), "the full reply"))
            note = f"(cut to fit Discord; the full reply is attached as {REPLY_FILE})"
            body = clip(content, limits.CONTENT_MAX - len(note) - 1)
            content = f"{body}\n{note}" if body else note
        message.content = content or None
        message.files = _fit_files(message.files, message)
        if not (message.content or message.embeds or message.components or message.files):
            message.content = "✅ Done."  # Discord refuses an empty message
        return message

    def _embed(self, card: Card, reply: Reply, overflow: _Overflow) -> dict[str, Any]:
        embed: dict[str, Any] = {}
        if card.title:
            embed["title"] = overflow.clip(card.title, limits.EMBED_TITLE_MAX)
        if card.description:
            embed["description"] = overflow.clip(card.description, limits.EMBED_DESCRIPTION_MAX)
        if card.fields:
            if len(card.fields) > limits.EMBED_FIELDS_MAX:
                overflow.cut = True
            embed["fields"] = [
                {
                    "name": overflow.clip(f.name or "\u200b", limits.EMBED_FIELD_NAME_MAX),
                    "value": overflow.clip(f.value or "\u200b", limits.EMBED_FIELD_VALUE_MAX),
                    "inline": f.inline,
                }
                for f in card.fields[: limits.EMBED_FIELDS_MAX]
            ]
        if card.footer:
            embed["footer"] = {"text": overflow.clip(card.footer, limits.EMBED_FOOTER_MAX)}
        color = parse_color(card.color)
        if reply.error and color is None:
            color = ERROR_COLOR
        if color is not None:
            embed["color"] = color
        if card.url and card.url.startswith(("http://", "https://")):
            embed["url"] = card.url
        if card.image and any(f.name == card.image for f in reply.files):
            embed["image"] = {"url": f"attachment://{card.image}"}
        if not any(k in embed for k in ("title", "description", "fields", "footer", "image")):
            embed["description"] = "\u200b"
        return embed

    def _table_embed(self, table: Table, text: str, overflow: _Overflow) -> dict[str, Any]:
        embed: dict[str, Any] = {
            "description": _fitting_block(text, limits.EMBED_DESCRIPTION_MAX, overflow)
        }
        if table.title:
            embed["title"] = overflow.clip(table.title, limits.EMBED_TITLE_MAX)
        embed["footer"] = {"text": f"{len(table.rows)} rows"}
        return embed

    def _components(
        self, reply: Reply, reserved: list[dict[str, Any]], overflow: _Overflow
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        room = limits.ACTION_ROWS_MAX - len(reserved)
        if reply.confirmation is not None and room > 0:
            rows.append(self._confirmation_row(reply.confirmation))
            room -= 1
        for select in reply.selects:
            if room <= 0:
                overflow.cut = True
                break
            options = select.options[: limits.SELECT_OPTIONS_MAX]
            if len(select.options) > limits.SELECT_OPTIONS_MAX:
                overflow.cut = True
            state = {"action": select.action, "values": [o.value for o in options]}
            menu: dict[str, Any] = {
                "type": 3,
                "custom_id": self.minter.mint("select", state),
                # Values are positions; the real values (any length) stay server-side.
                "options": [
                    {
                        "label": overflow.clip(o.label or o.value or "-", limits.SELECT_LABEL_MAX),
                        "value": str(position),
                        **(
                            {"description": clip(o.description, limits.SELECT_DESCRIPTION_MAX)}
                            if o.description
                            else {}
                        ),
                        **({"default": True} if o.default else {}),
                    }
                    for position, o in enumerate(options)
                ],
                "min_values": max(0, min(select.min_values, len(options))),
                "max_values": max(1, min(select.max_values, len(options))),
            }
            if select.placeholder:
                menu["placeholder"] = clip(select.placeholder, limits.SELECT_PLACEHOLDER_MAX)
            rows.append({"type": 1, "components": [menu]})
            room -= 1
        buttons = [self._button(b) for b in reply.buttons]
        while buttons:
            if room <= 0:
                overflow.cut = True
                break
            rows.append({"type": 1, "components": buttons[: limits.BUTTONS_PER_ROW]})
            buttons = buttons[limits.BUTTONS_PER_ROW :]
            room -= 1
        return rows + reserved

    def _button(self, button: Button) -> dict[str, Any]:
        label = clip(button.label or "\u200b", limits.BUTTON_LABEL_MAX)
        out: dict[str, Any] = {"type": 2, "label": label}
        if button.url:
            out.update(style=5, url=button.url)
        else:
            out["style"] = BUTTON_STYLES.get(button.style, 2)
            if button.style == "link":
                out["style"] = 2
            state = {"action": button.action, "value": button.value}
            # Passed only when named: minters written before Button.command keep working.
            named = {"command": tuple(button.command.split())} if button.command else {}
            out["custom_id"] = self.minter.mint("button", state, **named)
            if button.action is None:
                out["disabled"] = True
        if button.disabled:
            out["disabled"] = True
        if button.emoji:
            out["emoji"] = {"name": button.emoji}
        return out

    def _confirmation_row(self, confirmation: Confirmation) -> dict[str, Any]:
        allowed = [self.user_id] if self.user_id else None
        state = {"action": confirmation.action, "value": confirmation.value}
        return {
            "type": 1,
            "components": [
                {
                    "type": 2,
                    "style": 4 if confirmation.danger else 1,
                    "label": clip(confirmation.confirm_label, limits.BUTTON_LABEL_MAX),
                    "custom_id": self.minter.mint(
                        "confirm", {**state, "answer": True}, allowed=allowed
                    ),
                },
                {
                    "type": 2,
                    "style": 2,
                    "label": clip(confirmation.cancel_label, limits.BUTTON_LABEL_MAX),
                    "custom_id": self.minter.mint(
                        "confirm", {**state, "answer": False}, allowed=allowed
                    ),
                },
            ],
        }

    def _modal(self, modal: Modal, overflow: _Overflow) -> dict[str, Any]:
        if len(modal.inputs) > limits.MODAL_INPUTS_MAX:
            overflow.cut = True
        rows = []
        for item in modal.inputs[: limits.MODAL_INPUTS_MAX]:
            text_input: dict[str, Any] = {
                "type": 4,
                "custom_id": clip(item.name, limits.CUSTOM_ID_MAX),
                "label": clip(item.label, limits.TEXT_INPUT_LABEL_MAX),
                "style": 2 if item.style == "paragraph" else 1,
                "required": item.required,
            }
            if item.placeholder:
                text_input["placeholder"] = clip(
                    item.placeholder, limits.TEXT_INPUT_PLACEHOLDER_MAX
                )
            if item.value:
                text_input["value"] = clip(item.value, limits.TEXT_INPUT_VALUE_MAX)
            if item.min_length is not None:
                text_input["min_length"] = max(0, min(item.min_length, limits.TEXT_INPUT_VALUE_MAX))
            if item.max_length is not None:
                text_input["max_length"] = max(1, min(item.max_length, limits.TEXT_INPUT_VALUE_MAX))
            rows.append({"type": 1, "components": [text_input]})
        return {
            "title": clip(modal.title, limits.MODAL_TITLE_MAX),
            "custom_id": self.minter.mint(
                "modal",
                {"action": modal.action, "names": [i.name for i in modal.inputs]},
                allowed=[self.user_id] if self.user_id else None,
            ),
            "components": rows,
        }


# -- helpers ------------------------------------------------------------------------------
def embed_characters(embed: dict[str, Any]) -> int:
    """The characters Discord counts against a message's 6,000 for one embed."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += len(embed.get("footer", {}).get("text", ""))
    total += len(embed.get("author", {}).get("name", ""))
    for item in embed.get("fields", ()):
        total += len(item.get("name", "")) + len(item.get("value", ""))
    return total


def _fit_embeds(embeds: list[dict[str, Any]], overflow: _Overflow) -> list[dict[str, Any]]:
    """At most 10 embeds and 6,000 characters in all; the rest goes to the attachment."""
    kept: list[dict[str, Any]] = []
    total = 0
    for embed in embeds:
        size = embed_characters(embed)
        if len(kept) >= limits.EMBEDS_MAX or total + size > limits.EMBED_TOTAL_MAX:
            overflow.cut = True
            room = limits.EMBED_TOTAL_MAX - total
            if len(kept) < limits.EMBEDS_MAX and room > 200 and "description" in embed:
                # A shortened first part is better than nothing at all.
                short = {k: v for k, v in embed.items() if k in ("title", "color")}
                title = len(short.get("title", ""))
                short["description"] = clip(embed["description"], room - title - 1)
                kept.append(short)
            break
        kept.append(embed)
        total += size
    return kept


def _fit_files(files: list[File], message: DiscordMessage) -> list[File]:
    """At most 10 attachments, each small enough to upload; the rest are zipped or named."""
    notes = []
    fitting = []
    for file in files:
        if len(file.data) > limits.ATTACHMENT_BYTES_MAX:
            name = inert(file.name, mentions=True)
            notes.append(f"{name} ({len(file.data) // 1024} KiB) is too large to attach")
        else:
            fitting.append(file)
    if len(fitting) > limits.ATTACHMENTS_MAX:
        keep = fitting[: limits.ATTACHMENTS_MAX - 1]
        bundle = io.BytesIO()
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in fitting[limits.ATTACHMENTS_MAX - 1 :]:
                archive.writestr(file.name, file.data)
        fitting = [*keep, File("more-files.zip", bundle.getvalue(), "the other files")]
    if notes:
        text = "\n".join(notes)
        message.content = clip(
            (message.content + "\n" if message.content else "") + text, limits.CONTENT_MAX
        )
    return fitting


def parse_color(color: str | None) -> int | None:
    if not color:
        return None
    text = color.strip().lower()
    if text in COLORS:
        return COLORS[text]
    try:
        return int(text.lstrip("#"), 16) & 0xFFFFFF
    except ValueError:
        return None


def table_text(table: Table, width: int | None = None) -> str:
    """A monospace table: padded columns under a heading line, fitted to ``width``
    (see :mod:`clustercord.frontends.tables`; ``None``: every column, nothing cut)."""
    return fit(table, width).text()


def progress_line(progress: Progress) -> str:
    label = progress.label or "Working"
    fraction = progress.fraction
    if fraction is None:
        return f"⏳ {label}: {progress.current:g}"
    filled = round(fraction * 12)
    return f"⏳ {label} {'▰' * filled}{'▱' * (12 - filled)} {fraction:.0%}"


def plain_text(reply: Reply) -> str:
    """The whole reply as plain text, for the attachment that carries what did not fit.

    Plain string work on purpose: this runs on the event loop for every reply that
    overflows, and a rich console render of a long table costs a hundred times more.
    """
    parts: list[str] = []
    if reply.text:
        parts.append(("Error: " if reply.error else "") + reply.text)
    for card in reply.cards:
        lines = [card.title or ""]
        if card.description:
            lines.append(card.description)
        lines += [f"{item.name}: {item.value}" for item in card.fields]
        if card.footer:
            lines.append(card.footer)
        parts.append("\n".join(line for line in lines if line))
    for table in reply.tables:
        parts.append((f"{table.title}\n" if table.title else "") + table_text(table))
    for index, page in enumerate(reply.pages, start=1):
        parts.append(f"--- page {index}/{len(reply.pages)} ---\n{plain_text(page)}")
    if reply.confirmation is not None:
        parts.append(reply.confirmation.prompt)
    actions = [b.label for b in reply.buttons] + [
        o.label for select in reply.selects for o in select.options
    ]
    if actions:
        parts.append("Actions: " + ", ".join(actions))
    if not parts and reply.data is not None:
        parts.append(json.dumps(reply.data, indent=2, default=str))
    return "\n\n".join(parts) + "\n"


def _fitting_block(text: str, limit: int, overflow: _Overflow) -> str:
    """``text`` as a code block of at most ``limit`` characters, cut at a line end with an
    ellipsis. Measured after defusing: the zero-width spaces that keep a run of backticks
    from closing the block count too, so clipping afterwards would cut the closing fence."""
    block = code_block(text)
    kept = text
    while len(block) > limit:
        overflow.cut = True
        room = max(len(kept) - (len(block) - limit) - len(ELLIPSIS) - 1, 0)
        newline = kept.rfind("\n", 0, room)
        kept = kept[: newline if newline > 0 else room]
        block = code_block(f"{kept}\n{ELLIPSIS}")
    return block
