"""A 3×5 pixel font for the report chart's labels (the chart is drawn without a plotting
library). Lower-case letters are drawn as capitals; a character without a glyph is a box."""

from __future__ import annotations

from collections.abc import Callable

WIDTH, HEIGHT, ADVANCE = 3, 5, 4
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111", "a": "010101111101101", "b": "110101110101110",
    "c": "011100100100011", "d": "110101101101110", "e": "111100110100111",
    "f": "111100110100100", "g": "011100101101011", "h": "101101111101101",
    "i": "111010010010111", "j": "001001001101010", "k": "101101110101101",
    "l": "100100100100111", "m": "101111111101101", "n": "110101101101101",
    "o": "010101101101010", "p": "110101110100100", "q": "010101101110011",
    "r": "110101110101101", "s": "011100010001110", "t": "111010010010010",
    "u": "101101101101111", "v": "101101101101010", "w": "101101111111101",
    "x": "101101010101101", "y": "101101010010010", "z": "111001010100111",
    " ": "000000000000000", ".": "000000000000010", ",": "000000000010100",
    "-": "000000111000000", "_": "000000000000111", ":": "000010000010000",
    "(": "010100100100010", ")": "010001001001010", "[": "110100100100110",
    "]": "011001001001011", "/": "001001010100100", "%": "101001010100101",
    ">": "100010001010100", "<": "001010100010001", "=": "000111000111000",
    "!": "010010010000010", "+": "000010111010000", "*": "000101010101000",
    "?": "111001010000010", "'": "010010000000000", '"': "101101000000000",
}  # fmt: skip
_UNKNOWN = "111101101101111"


def text_width(text: str) -> int:
    return len(text) * ADVANCE


def draw(dot: Callable[[int, int], None], x: int, y: int, text: str) -> None:
    """Draw ``text`` with its top-left corner at (x, y) through ``dot(x, y)``."""
    for index, char in enumerate(text):
        bits = _GLYPHS.get(char.lower(), _UNKNOWN)
        for row in range(HEIGHT):
            for column in range(WIDTH):
                if bits[row * WIDTH + column] == "1":
                    dot(x + index * ADVANCE + column, y + row)


def draw_vertical(dot: Callable[[int, int], None], x: int, y: int, text: str) -> None:
    """``text`` read bottom to top, its baseline at ``x`` (a y-axis title)."""
    draw(lambda dx, dy: dot(x + (dy - y), y - (dx - x)), x, y, text)
