"""Small statistics shared by the metrics: means that never hide missing values, percentiles,
95% confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import fmean, stdev
from typing import Any

# Two-sided 95% Student t critical values by degrees of freedom (1..30); normal beyond.
_T95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def t95(df: int) -> float:
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    return _T95[df - 1] if df <= len(_T95) else 1.96


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are real numbers (None, NaN and non-numbers are left out)."""
    out = []
    for v in values:
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, int | float) and math.isfinite(v):
            out.append(float(v))
    return out


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean with a 95% t-interval (`ci95` is None with fewer than 2 values)."""
    vals = finite(values)
    if not vals:
        return {"mean": None, "n": 0, "ci95": None}
    m = fmean(vals)
    if len(vals) < 2:
        return {"mean": m, "n": len(vals), "ci95": None}
    half = t95(len(vals) - 1) * stdev(vals) / math.sqrt(len(vals))
    return {"mean": m, "n": len(vals), "ci95": [m - half, m + half]}


def counted_mean(values: Sequence[Any]) -> dict[str, Any]:
    """Mean of the measured values, with how many were measured and how many were missing.

    A missing value (None, NaN) is counted in `missing`, never averaged in or dropped silently.
    """
    vals = finite(values)
    return {
        "mean": fmean(vals) if vals else None,
        "n": len(vals),
        "missing": len(values) - len(vals),
    }


def share(flags: Sequence[bool]) -> dict[str, Any]:
    """The share of True among `flags`, with the counts."""
    n = len(flags)
    k = sum(1 for f in flags if f)
    return {"rate": k / n if n else None, "count": k, "n": n}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    vals = sorted(finite(values))
    if not vals:
        return None
    if len(vals) == 1:
        return vals[0]
    pos = (len(vals) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
