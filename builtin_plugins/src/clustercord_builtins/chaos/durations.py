"""Durations and percentages as users type them, parsed strictly: ``30s``, ``5m``, ``1h30m``,
``250ms``. Anything else (``-5m``, ``0s``, ``5x``, more than the configured maximum) is a
clear error naming the option, before anything is recorded or changed."""

from __future__ import annotations

import re

from clustercord_sdk.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
EXAMPLES = "e.g. 30s, 5m, 1h30m"


def parse_duration(text: object, *, option: str, maximum: float | None = None) -> float:
    """Seconds in ``text``; a :class:`UsageError` naming ``option`` when it is not a positive
    duration within ``maximum`` seconds."""
    raw = str(text).strip().lower()
    if raw.startswith("-"):
        raise UsageError(f"{option}: {text!r} is negative; give a positive duration ({EXAMPLES})")
    if not raw or _PART.sub("", raw) != "":
        raise UsageError(f"{option}: {text!r} is not a duration ({EXAMPLES})")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
    if seconds <= 0:
        raise UsageError(f"{option}: {text!r} is no time at all; give more than 0 ({EXAMPLES})")
    if maximum is not None and seconds > maximum:
        raise UsageError(
            f"{option}: {text!r} is longer than the maximum of {format_duration(maximum)} "
            "(the plugin's max_duration setting)"
        )
    return seconds


def parse_latency(text: object, *, option: str) -> float:
    """Milliseconds of a latency (``100ms``, ``1s``; a bare number is milliseconds); 0 is
    allowed (no jitter), negative is not."""
    raw = str(text).strip().lower()
    if raw.startswith("-"):
        raise UsageError(f"{option}: {text!r} is negative; a latency is 0 or more (e.g. 100ms)")
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return float(raw)
    if not raw or _PART.sub("", raw) != "":
        raise UsageError(f"{option}: {text!r} is not a latency (e.g. 100ms, 1.5s)")
    return sum(float(n) * _UNITS[unit] * 1000 for n, unit in _PART.findall(raw))


def parse_percent(value: object, *, option: str, allow_zero: bool = False) -> float:
    """A percentage ``0 < p <= 100`` (``30``, ``30%``, ``2.5``)."""
    raw = str(value).strip().rstrip("%").strip()
    try:
        percent = float(raw)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a percentage (e.g. 30 or 30%)") from None
    if percent != percent or percent < 0 or percent > 100 or (percent == 0 and not allow_zero):
        low = "0" if allow_zero else "more than 0"
        raise UsageError(f"{option}: {value!r} is not a percentage from {low} to 100")
    return percent


def format_duration(seconds: float) -> str:
    """``90`` → ``1m30s``; under a second in milliseconds."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
