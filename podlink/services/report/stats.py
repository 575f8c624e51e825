"""The summary statistics of the report, spelled once: sample standard deviation (n-1), means
and standard deviations to 2 decimals, percentages to 1."""
from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean and sample standard deviation; the sd is null for one value (n-1 is 0), and
    the mean too when there is none."""
    n = len(values)
    return {
        "n": n,
        "mean": round(statistics.fmean(values), 2) if n else None,
        "sd": round(statistics.stdev(values), 2) if n > 1 else None,
    }


def quartiles(values: Sequence[float]) -> dict[str, float] | None:
    """Median and interquartile range, interpolated between order statistics as Excel's
    QUARTILE.INC and numpy's default do; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        q1 = median = q3 = values[0]
    else:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": _tidy(median), "q1": _tidy(q1), "q3": _tidy(q3)}


def pct(part: int, whole: int) -> float | None:
    """`part` as a percentage of `whole`, 1 decimal; null when `whole` is 0."""
    return round(100 * part / whole, 1) if whole else None


def _tidy(value: float) -> float:
    # A whole number stays whole (45, not 45.0); an interpolated one keeps 2 decimals.
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded
