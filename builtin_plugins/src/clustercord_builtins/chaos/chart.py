"""A PNG chart of an experiment run's probes over time, the fault window shaded: what the
report's embed shows. Drawn and encoded here (zlib and a few chunks), with no plotting library.

Each probe is a line scaled to its own range (probes of different units share the chart);
a failed check is a red dot. The shaded band runs from the first fault to the rollback.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT = 600, 240
MARGIN = 20
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
    canvas = Canvas(WIDTH, HEIGHT)
    left, right, top, bottom = MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN

    def x_of(at: float) -> int:
        return left + round((at - start) / span * (right - left))

    if window:
        canvas.rect(x_of(window[0]), top, x_of(window[1]), bottom, WINDOW)
    canvas.line(left, bottom, right, bottom, AXIS)
    canvas.line(left, top, left, bottom, AXIS)
    series: dict[str, list[dict[str, Any]]] = {}
    for item in observations:
        series.setdefault(item["probe"], []).append(item)
    for index, points in enumerate(series.values()):
        color = LINES[index % len(LINES)]
        values = [p["value"] for p in points if p["value"] is not None]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        scale = (high - low) or 1.0

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
