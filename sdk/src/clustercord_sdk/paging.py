"""Answers that come a page at a time: the page shown, ◀ ▶ buttons, the console's next line.

A paged command shows one page and two ways on: on Discord the ◀ Previous / Next ▶
buttons, whose value names the page they ask for (the plugin's page handler runs the
command again for it), and in the console or a script the line to type for the next page::

    pager = Pager.over(total, PAGE_SIZE, ctx.options.get("page"))
    shown = entries[pager.slice(PAGE_SIZE)]
    line = command_line("/audit list", {"plugin": "echo", "user": "Ann Lee"})
    Reply(
        text=pager.hint(line),  # Page 1/3 · next: /audit list plugin:echo user:"Ann Lee" page:2
        buttons=pager.buttons("commands:page", {"options": state}, command="audit list"),
    )

The page a user asks for is taken leniently: missing or not a number is the first page, past
the end is the last one (the data shrank since the buttons were drawn), so a stale button
still answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clustercord_sdk.reply import Button

PREVIOUS = "◀ Previous"
NEXT = "Next ▶"

# A value the console would split or unquote is written in double quotes (see _quoted).
_NEEDS_QUOTES = re.compile(r"""[\s"'\\]""")


def page_count(total: int, size: int) -> int:
    """How many pages ``total`` items fill at ``size`` a page; never fewer than one (an
    empty answer is one empty page)."""
    if size < 1:
        raise ValueError(f"a page holds at least one item, not {size}")
    return max(1, -(-total // size))


def clamp(asked: Any, pages: int) -> int:
    """The page to show for ``page:`` as given: 1 when missing or not a whole number,
    else the nearest of 1..``pages``."""
    try:
        number = int(asked or 1)
    except (TypeError, ValueError):
        number = 1
    return max(1, min(number, pages))


@dataclass(frozen=True)
class Pager:
    """Page ``page`` of ``pages`` (1-based, ``1 <= page <= pages``)."""

    page: int
    pages: int

    def __post_init__(self) -> None:
        if not 1 <= self.page <= self.pages:
            raise ValueError(f"page {self.page} is not one of 1..{self.pages}")

    @classmethod
    def clamped(cls, asked: Any, pages: int) -> Pager:
        """The page asked for, brought within ``pages`` (see :func:`clamp`)."""
        pages = max(1, pages)
        return cls(clamp(asked, pages), pages)

    @classmethod
    def over(cls, total: int, size: int, asked: Any) -> Pager:
        """The page asked for among ``total`` items shown ``size`` a page."""
        return cls.clamped(asked, page_count(total, size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def offset(self, size: int) -> int:
        """How many items the pages before this one hold, at ``size`` a page."""
        return (self.page - 1) * size

    def slice(self, size: int) -> slice:
        """This page's items of a list shown ``size`` a page: ``items[pager.slice(20)]``."""
        start = self.offset(size)
        return slice(start, start + size)

    def buttons(
        self, action: str, state: Mapping[str, Any], *, command: str | None = None
    ) -> list[Button]:
        """◀ Previous and Next ▶, or none for a single page. Each button's value is
        ``state`` plus the ``page`` it asks for; the one that leads nowhere is disabled.
        ``command`` is the command whose access policy decides who may press them
        (``None``: the one whose reply carries them)."""
        if self.pages <= 1:
            return []
        return [
            Button(PREVIOUS, action=action, value={**state, "page": self.page - 1},
                   disabled=not self.has_previous, command=command),
            Button(NEXT, action=action, value={**state, "page": self.page + 1},
                   disabled=not self.has_next, command=command),
        ]  # fmt: skip

    def next_line(self, line: str) -> str | None:
        """``line`` with ``page:`` of the next page; None on the last page."""
        return f"{line} page:{self.page + 1}" if self.has_next else None

    def hint(self, line: str) -> str:
        """``Page 2/7 · next: <line> page:3`` (just ``Page 7/7`` on the last page): the
        console's and scripts' way on."""
        following = self.next_line(line)
        return f"Page {self.page}/{self.pages}" + (f" · next: {following}" if following else "")


def command_line(command: str, options: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """``/rbac who-can verb:list namespace:"my ns"``: the line that asks for the same
    answer again, for a next-page hint. Options left unset (None, empty, False) are not
    written; True is ``true``; a value with white space, a quote or a backslash is quoted
    so the console reads it back as it was."""
    skipped = set(exclude)
    parts = [command]
    for key, value in options.items():
        if key in skipped or value is None or value is False or value == "":
            continue
        text = "true" if value is True else str(value)
        parts.append(f"{key}:{_quoted(text)}")
    return " ".join(parts)


def _quoted(text: str) -> str:
    if not _NEEDS_QUOTES.search(text):
        return text
    # Inside double quotes the console (shell rules) unescapes \" and \\ only.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
