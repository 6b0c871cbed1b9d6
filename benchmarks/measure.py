"""Summaries every benchmark uses: medians and nearest-rank percentiles of noisy samples,
and how a figure reads against its target."""

from __future__ import annotations

import math
import statistics

Row = tuple[str, str, str, str, str]
"""One line of the summary table: benchmark, measured, baseline, ratio, target."""


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 values is the 990th smallest)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    return (
        f"median {median(values):.{digits}f} {unit}  "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f}, n={len(values)})"
    )


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def skipped(benchmark: str, why: str) -> list[Row]:
    """The summary line of a measurement this machine cannot make, saying why."""
    return [(benchmark, f"skipped: {why}", "-", "-", "-")]
