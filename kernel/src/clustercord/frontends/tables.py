"""Tables that keep names whole, for every front end.

A pod name broken over two lines cannot be copied, and a table wider than the screen wraps
every row into a mess. So, as ``kubectl get`` does, a table is fitted to a width before it
is drawn:

- a column of names (pods, bindings, statuses, ages: cells of a few words at most) is never
  broken nor cut;
- a column of free text (a cell of :data:`FREE_TEXT_WORDS` words or more) gives way first:
  it shrinks down to :data:`FREE_TEXT_MIN` characters and its long cells end with an
  ellipsis;
- when the identifiers alone do not fit, columns are left out from the right (the first
  columns are the ones a plugin puts first because they matter most), never the first one,
  and the caller says which were left out;
- no width (output piped to a file or another program) means nothing is cut at all.

Widths are terminal cells, not characters: an emoji or a CJK name takes two.

The console draws the result with rich, Discord as monospace text in a code block; both
ask :func:`fit` with their own cost of borders and gaps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

from clustercord_sdk.reply import Table

ELLIPSIS = "…"
FREE_TEXT_MIN = 12
"""Free text is not shrunk below this (or its heading's length)."""
FREE_TEXT_WORDS = 4
"""A cell of this many words is prose (a message, a list of permissions), not a name:
``RoleBinding 'home/ci-edit'`` or ``5 minutes`` stay whole."""

Overhead = Callable[[int], int]
"""Characters a front end adds around ``n`` columns (padding, separators, edges)."""


def text_gaps(columns: int) -> int:
    """Two spaces between columns: the monospace form used in chat code blocks."""
    return 2 * max(columns - 1, 0)


@dataclass(frozen=True)
class Fitted:
    """A table cut to a width: the columns kept, their widths, the cells as shown."""

    columns: list[str]
    widths: list[int]
    rows: list[list[str]]
    hidden: list[str]
    """Names of the columns left out, in the table's order."""
    shortened: bool = False
    """Whether a cell of free text was cut (with an ellipsis)."""

    @property
    def lossy(self) -> bool:
        """Whether something of the table is not shown: the caller offers it all elsewhere."""
        return self.shortened or bool(self.hidden)

    def text(self) -> str:
        """Monospace: padded columns under a heading and a rule."""
        lines = [self._line(self.columns), "  ".join("-" * w for w in self.widths)]
        lines += [self._line(row) for row in self.rows]
        return "\n".join(lines)

    def _line(self, cells: list[str]) -> str:
        padded = (c + " " * (w - cell_len(c)) for c, w in zip(cells, self.widths, strict=True))
        return "  ".join(padded).rstrip()

    def hidden_note(self, width: int | None) -> str | None:
        if not self.hidden:
            return None
        names = ", ".join(self.hidden)
        where = f"{width} columns" if width else "the width"
        return f"{len(self.hidden)} column(s) left out to fit {where}: {names}"


def cells_of(table: Table) -> tuple[list[str], list[list[str]]]:
    """Heading and rows as one-line strings, every row as long as the longest."""
    count = max([len(table.columns), *(len(row) for row in table.rows)])
    heading = [str(c) for c in table.columns] + [""] * (count - len(table.columns))
    rows = [[_one_line(cell) for cell in row] + [""] * (count - len(row)) for row in table.rows]
    return heading, rows


def fit(table: Table, width: int | None, overhead: Overhead = text_gaps) -> Fitted:
    """Which columns of ``table`` fit in ``width`` characters, and how wide each is."""
    heading, rows = cells_of(table)
    count = len(heading)
    natural = [max(map(cell_len, [heading[i], *(row[i] for row in rows)])) for i in range(count)]
    free = [any(len(row[i].split()) >= FREE_TEXT_WORDS for row in rows) for i in range(count)]
    smallest = [
        min(natural[i], max(cell_len(heading[i]), FREE_TEXT_MIN)) if free[i] else natural[i]
        for i in range(count)
    ]
    kept = list(range(count))
    widths = list(natural)
    if width is not None:
        while len(kept) > 1 and _needed(kept, smallest, overhead) > width:
            kept.pop()
        excess = _needed(kept, natural, overhead) - width
        # The widest free text gives way first, each down to its smallest width.
        for i in sorted((i for i in kept if free[i]), key=lambda i: -natural[i]):
            if excess <= 0:
                break
            give = min(excess, natural[i] - smallest[i])
            widths[i] -= give
            excess -= give
    shown = [[_cut(row[i], widths[i]) for i in kept] for row in rows]
    return Fitted(
        columns=[heading[i] for i in kept],
        widths=[widths[i] for i in kept],
        rows=shown,
        hidden=[heading[i] for i in range(count) if i not in kept],
        shortened=any(widths[i] < natural[i] for i in kept),
    )


def _needed(columns: list[int], widths: list[int], overhead: Overhead) -> int:
    return sum(widths[i] for i in columns) + overhead(len(columns))


def _cut(cell: str, width: int) -> str:
    if cell_len(cell) <= width:
        return cell
    return set_cell_size(cell, max(width - 1, 0)).rstrip() + ELLIPSIS


def _one_line(cell: object) -> str:
    return "" if cell is None else str(cell).replace("\r", " ").replace("\n", " ")
