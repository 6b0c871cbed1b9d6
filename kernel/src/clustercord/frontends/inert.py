"""Text from outside made inert before any front end displays it.

Option values, plugin replies, pod names and Kubernetes API error messages are not ours:
a value holding ``ESC ] 0 ; … BEL`` retitles the operator's terminal, ``ESC [ 2 J`` clears
it, a lone ``CR`` overwrites what the line said, a right-to-left override reorders it, and
``@everyone`` in a Discord message is a ping to a whole server. :func:`inert` is the one
function both renderers (the console's and Discord's) pass such text through:

- C0 and C1 control characters other than newline and tab (``ESC``, ``CR``, ``BEL``,
  ``DEL``, ``CSI`` …) and the bidirectional overrides are shown as visible escapes
  (``\\x1b``, ``\\u202e``), never sent to a terminal; a CR LF line ending is a newline;
- with ``mentions`` (Discord), ``@everyone`` and ``@here`` get a zero-width space after the
  ``@``. Every message the bot sends also carries ``allowed_mentions`` with nothing to
  parse, so user and role mentions (``<@…>``, ``<@&…>``) are shown but never ping.

Rich markup needs no escaping here: the console renders plugin text as :class:`rich.text.Text`,
never as markup (see :mod:`clustercord.frontends.console`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from clustercord_sdk.reply import Card, Reply, Table

__all__ = ["inert", "inert_reply"]

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MASS_MENTIONS = re.compile(r"@(everyone|here)\b")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str, *, mentions: bool = False) -> str:
    """``text`` safe to display: control characters shown as escapes (``\\x1b``), and with
    ``mentions`` (Discord) ``@everyone``/``@here`` unable to ping. Idempotent."""
    if _CONTROLS.search(text):
        text = _CONTROLS.sub(_visible, text.replace("\r\n", "\n"))
    if mentions and "@" in text:
        text = _MASS_MENTIONS.sub("@\u200b\\1", text)
    return text


def inert_reply(reply: Reply, *, mentions: bool = False) -> Reply:
    """A copy of ``reply`` whose displayed text went through :func:`inert`.

    What is not displayed stays as the plugin made it: actions, values, urls, custom
    ids, input names and prefilled values, file names and contents, ``data``.
    """

    def text(value: str | None) -> str | None:
        return None if value is None else inert(value, mentions=mentions)

    def cell(value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        return inert(str(value), mentions=mentions)

    def card(item: Card) -> Card:
        return replace(
            item,
            title=text(item.title),
            description=text(item.description),
            fields=[
                replace(f, name=inert(f.name, mentions=mentions), value=cell(f.value))
                for f in item.fields
            ],
            footer=text(item.footer),
        )

    def table(item: Table) -> Table:
        return replace(
            item,
            title=text(item.title),
            columns=[inert(str(c), mentions=mentions) for c in item.columns],
            rows=[[cell(c) for c in row] for row in item.rows],
        )

    out = replace(
        reply,
        text=text(reply.text),
        cards=[card(c) for c in reply.cards],
        tables=[table(t) for t in reply.tables],
        pages=[inert_reply(p, mentions=mentions) for p in reply.pages],
        buttons=[replace(b, label=inert(b.label, mentions=mentions)) for b in reply.buttons],
        selects=[
            replace(
                s,
                placeholder=text(s.placeholder),
                options=[
                    replace(
                        o, label=inert(o.label, mentions=mentions), description=text(o.description)
                    )
                    for o in s.options
                ],
            )
            for s in reply.selects
        ],
        files=[replace(f, description=text(f.description)) for f in reply.files],
    )
    if reply.modal is not None:
        out.modal = replace(
            reply.modal,
            title=inert(reply.modal.title, mentions=mentions),
            inputs=[
                replace(i, label=inert(i.label, mentions=mentions), placeholder=text(i.placeholder))
                for i in reply.modal.inputs
            ],
        )
    if reply.progress is not None:
        out.progress = replace(reply.progress, label=text(reply.progress.label))
    if reply.confirmation is not None:
        c = reply.confirmation
        out.confirmation = replace(
            c,
            prompt=inert(c.prompt, mentions=mentions),
            confirm_label=inert(c.confirm_label, mentions=mentions),
            cancel_label=inert(c.cancel_label, mentions=mentions),
        )
    return out
