"""Unanswerable questions: the right result is an honest refusal that states no figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluation.metrics.answers import stated_figures

# Turn statuses that refuse to answer (anything but an answer). An error is not a refusal: it
# is counted separately so an outage never looks like good behaviour.
ERROR_STATUSES = frozenset({"llm_error", "timeout", "unavailable"})


def unanswerable_case(status: str, message: str, question: str) -> dict[str, Any]:
    """One case: refused (not answered, not an error), figures stated, and correct (both)."""
    figures = stated_figures(message, question)
    refused = status != "answered" and status not in ERROR_STATUSES
    return {
        "refused": refused,
        "figures_stated": figures,
        "stated_figure": bool(figures),
        "error": status in ERROR_STATUSES,
        "correct": refused and not figures,
    }


def unanswerable_summary(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Shares over `unanswerable_case` results."""
    n = len(cases)

    def rate(key: str) -> float | None:
        return sum(1 for c in cases if c[key]) / n if n else None

    return {
        "n": n,
        "correct_refusal_rate": rate("correct"),
        "refusal_rate": rate("refused"),
        "stated_figure_rate": rate("stated_figure"),
        "errors": sum(1 for c in cases if c["error"]),
    }
