"""A PNG chart of an experiment run's probes over time, the fault window shaded: what the
report's embed shows. Drawn and encoded here (zlib and a few chunks), with no plotting library.

Each probe is a line scaled to its own range (probes of different units share the chart);
a failed check is a red dot. The shaded band runs from the first fault to the rollback.
Labels (a 3×5 pixel font, ``font``): seconds since the start under the x axis, "min"/"max"
on the y axis with its title, and a legend naming each probe, its color and its range.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

from clustercord_builtins.chaos import font

WIDTH, PLOT_HEIGHT = 600, 200
MARGIN = 20
LEFT = 30
"""The plot area's left edge: room for the y axis' title and its min/max."""
LEGEND_ROW = 8
LABEL = (60, 60, 60)
WHITE = (255, 255, 255)
AXIS = (160, 160, 160)
WINDOW = (255, 225, 225)
FAILED = (220, 30, 30)
LINES = [(40, 100, 200), (30, 150, 80), (200, 120, 20), (130, 60, 170), (20, 150, 160)]

Color = tuple[int, int, int]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * width * height)

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = (y * self.width + x) * 3
            self.pixels[at : at + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(max(0, y0), min(self.height, y1 + 1)):
            for x in range(max(0, x0), min(self.width, x1 + 1)):
                self.dot(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            self.dot(x0, y0, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def png(self) -> bytes:
        rows = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows, 9))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def run_chart(
    observations: Sequence[dict[str, Any]], window: tuple[float, float] | None
) -> bytes | None:
    """The chart of ``observations`` (``at``, ``probe``, ``value``, ``ok``); ``window`` is the
    fault window's (start, end) times. ``None`` without observations."""
    if not observations:
        return None
    times = [o["at"] for o in observations] + (list(window) if window else [])
    start, end = min(times), max(times)
    span = max(end - start, 1e-6)
    series: dict[str, list[dict[str, Any]]] = {}
    for item in observations:
        series.setdefault(item["probe"], []).append(item)
    left, right, top, bottom = LEFT, WIDTH - MARGIN, MARGIN, MARGIN + PLOT_HEIGHT
    canvas = Canvas(WIDTH, bottom + 24 + LEGEND_ROW * len(series))

    def x_of(at: float) -> int:
        return left + round((at - start) / span * (right - left))

    def label(x: int, y: int, text: str, color: Color = LABEL) -> None:
        font.draw(lambda px, py: canvas.dot(px, py, color), x, y, text)

    if window:
        canvas.rect(x_of(window[0]), top, x_of(window[1]), bottom, WINDOW)
        label(x_of(window[0]) + 2, bottom - 7, "fault", FAILED)
    canvas.line(left, bottom, right, bottom, AXIS)
    canvas.line(left, top, left, bottom, AXIS)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):  # x ticks: seconds since the start
        x = left + round(fraction * (right - left))
        canvas.line(x, bottom, x, bottom + 2, AXIS)
        seconds = fraction * span
        text = f"{seconds:.0f}" if span >= 10 else f"{seconds:.1f}"
        label(x - font.text_width(text) // 2, bottom + 5, text)
    title = "time (s)"
    label((left + right - font.text_width(title)) // 2, bottom + 13, title)
    label(left - 14, top, "max")
    label(left - 14, bottom - font.HEIGHT, "min")
    font.draw_vertical(
        lambda px, py: canvas.dot(px, py, LABEL), 2, (top + bottom) // 2 + 44, "each line: min-max"
    )
    for index, points in enumerate(series.values()):
        color = LINES[index % len(LINES)]
        values = [p["value"] for p in points if p["value"] is not None]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        scale = (high - low) or 1.0
        row = bottom + 24 + LEGEND_ROW * index
        canvas.rect(left, row + 1, left + 8, row + 3, color)
        name = points[0]["probe"]
        label(left + 12, row, f"{name}  [{low:g} .. {high:g}]"[: (right - left - 12) // 4])

        def y_of(value: float | None, low: float = low, scale: float = scale) -> int:
            if value is None:
                return bottom
            return bottom - 8 - round((value - low) / scale * (bottom - top - 16))

        previous = None
        for point in sorted(points, key=lambda p: p["at"]):
            here = (x_of(point["at"]), y_of(point["value"]))
            if previous is not None:
                canvas.line(*previous, *here, color)
            if not point["ok"]:
                canvas.rect(here[0] - 2, here[1] - 2, here[0] + 2, here[1] + 2, FAILED)
            previous = here
    return canvas.png()
