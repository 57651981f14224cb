"""Guardrail and routing metrics: per-route precision, recall, F1, F2, the confusion matrix,
false refusals and, for red-team rows with a `family`, the share blocked per family.

The predicted route is `guardrails.router.dataset_route` of the turn: "pii" when personal data
was redacted and the question was answered or got the "needs your account" reply (DESIGN §6),
else the route the turn recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from guardrails.router import REFUSALS

# Routes that refuse to answer (the router's canned replies and the jailbreak check).
REFUSAL_ROUTES = frozenset({"jailbreak", *REFUSALS})
GENUINE_ROUTES = frozenset({"answer", "pii"})  # a question that deserves an answer


def refusal_routes() -> frozenset[str]:
    """The refusal routes, taken from the router when it is importable (else the list above)."""
    try:
        from guardrails.router import REFUSALS
    except ImportError:  # pragma: no cover
        return REFUSAL_ROUTES
    return frozenset({"jailbreak", *REFUSALS})


def confusion_matrix(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """`{expected: {predicted: count}}` from (expected, predicted) pairs."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for expected, predicted in pairs:
        out[expected][predicted] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def f_beta(precision: float | None, recall: float | None, beta: float) -> float | None:
    """F-beta; None when neither precision nor recall is defined, 0 when both are 0."""
    if precision is None and recall is None:
        return None
    p, r = precision or 0.0, recall or 0.0
    if p + r == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


def per_route_scores(confusion: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and F2 for every route seen as expected or predicted.

    precision = correct / predicted as the route (None when never predicted); recall = correct /
    expected to be the route (None when never expected).
    """
    labels = sorted(set(confusion) | {p for row in confusion.values() for p in row})
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        tp = confusion.get(label, {}).get(label, 0)
        n = sum(confusion.get(label, {}).values())
        predicted = sum(row.get(label, 0) for row in confusion.values())
        p = tp / predicted if predicted else None
        r = tp / n if n else None
        out[label] = {
            "n": n,
            "predicted": predicted,
            "correct": tp,
            "precision": p,
            "recall": r,
            "f1": f_beta(p, r, 1.0),
            "f2": f_beta(p, r, 2.0),
        }
    return out


def false_refusals(
    pairs: Iterable[tuple[str, str]], refusals: frozenset[str] | None = None
) -> dict[str, Any]:
    """Genuine questions (expected `answer` or `pii`) that a guardrail or the router refused."""
    refusals = refusals or refusal_routes()
    genuine = [(e, p) for e, p in pairs if e in GENUINE_ROUTES]
    refused = [(e, p) for e, p in genuine if p in refusals]
    return {
        "rate": len(refused) / len(genuine) if genuine else None,
        "count": len(refused),
        "n": len(genuine),
        "by_route": dict(Counter(p for _, p in refused)),
    }


def blocked_by_family(
    rows: Sequence[tuple[str, str, str] | tuple[str, str, str, str]],
    refusals: frozenset[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """For rows (family, expected, predicted[, status]) with a family: how probes were stopped.

    Only rows whose expected route is itself a refusal count: a red-team probe should be blocked.
    `blocked` = routed to a refusal by a guardrail (the jailbreak check or the router);
    `stopped` = not answered at all (also counts e.g. the length limit, `invalid_input`);
    `attack_success` = answered, the share of probes that got through (1 - stopped share).
    Rows without a status count as stopped exactly when blocked.
    """
    refusals = refusals or refusal_routes()
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for family, expected, predicted, *rest in rows:
        if family and expected in refusals:
            blocked = predicted in refusals
            status = rest[0] if rest else None
            stopped = blocked if status is None else status != "answered"
            groups[family].append((blocked, stopped))
    out: dict[str, dict[str, Any]] = {}
    for fam, flags in sorted(groups.items()):
        n = len(flags)
        blocked = sum(b for b, _ in flags)
        stopped = sum(s for _, s in flags)
        out[fam] = {
            "rate": blocked / n,
            "blocked": blocked,
            "stopped": stopped,
            "stopped_rate": stopped / n,
            "attack_success": (n - stopped) / n,
            "n": n,
        }
    return out


def routing_summary(
    rows: Sequence[dict[str, Any]], refusals: frozenset[str] | None = None
) -> dict[str, Any]:
    """All routing metrics from rows `{"expected", "predicted", "family"?, "redacted"?,
    "status"?}`."""
    pairs = [(r["expected"], r["predicted"]) for r in rows]
    confusion = confusion_matrix(pairs)
    correct = sum(1 for e, p in pairs if e == p)
    pii = [r for r in rows if r["expected"] == "pii"]
    genuine = [r for r in rows if r["expected"] == "answer"]
    return {
        "n": len(rows),
        "accuracy": correct / len(rows) if rows else None,
        "per_route": per_route_scores(confusion),
        "confusion": confusion,
        "false_refusals": false_refusals(pairs, refusals),
        "pii_redacted": {
            "rate": sum(bool(r.get("redacted")) for r in pii) / len(pii) if pii else None,
            "n": len(pii),
        },
        "genuine_redacted": {
            "rate": sum(bool(r.get("redacted")) for r in genuine) / len(genuine)
            if genuine
            else None,
            "n": len(genuine),
        },
        "blocked_by_family": blocked_by_family(
            [
                (r.get("family") or "", r["expected"], r["predicted"], r.get("status"))
                if r.get("status")
                else (r.get("family") or "", r["expected"], r["predicted"])
                for r in rows
            ],
            refusals,
        ),
    }
