"""Latency per pipeline step (p50/p95/max) and token counts, from the turns' `timings_ms` and
`tokens`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from evaluation.metrics.stats import percentile


def latency_summary(timings: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """`{step: {"n", "p50", "p95", "max"}}` in milliseconds, over turns that ran the step."""
    by_step: dict[str, list[float]] = defaultdict(list)
    for t in timings:
        for step, ms in t.items():
            if isinstance(ms, int | float):
                by_step[step].append(float(ms))
    return {
        step: {
            "n": len(v),
            "p50": percentile(v, 50),
            "p95": percentile(v, 95),
            "max": max(v),
        }
        for step, v in by_step.items()
    }


def token_summary(tokens: Sequence[dict[str, int]]) -> dict[str, dict[str, Any]]:
    """`{counter: {"total", "mean", "n"}}` over turns that reported the counter."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for t in tokens:
        for key, value in t.items():
            if isinstance(value, int):
                by_key[key].append(value)
    return {
        k: {"total": sum(v), "mean": sum(v) / len(v), "n": len(v)}
        for k, v in sorted(by_key.items())
    }
