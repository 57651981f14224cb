"""Statistics helpers and routing metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evaluation.metrics.latency import latency_summary, token_summary
from evaluation.metrics.routing import (
    blocked_by_family,
    confusion_matrix,
    f_beta,
    false_refusals,
    per_route_scores,
    routing_summary,
)
from evaluation.metrics.stats import counted_mean, mean_ci, percentile, share


def test_mean_ci_uses_the_t_distribution():
    out = mean_ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(2) = 4.303 -> half-width 4.303 / sqrt(3)
    assert out["mean"] == 2.0 and out["n"] == 3
    assert out["ci95"] == pytest.approx([2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)])
    assert mean_ci([5.0])["ci95"] is None
    assert mean_ci([])["mean"] is None


def test_counted_mean_counts_missing_values_instead_of_hiding_them():
    out = counted_mean([1.0, None, float("nan"), 0.0])
    assert out == {"mean": 0.5, "n": 2, "missing": 2}
    assert share([True, False, True, True]) == {"rate": 0.75, "count": 3, "n": 4}


def test_percentile_interpolates():
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 95) == pytest.approx(48.0)
    assert percentile([], 50) is None


ROWS = (
    [("jailbreak", "jailbreak")] * 3
    + [("jailbreak", "answer")]
    + [("answer", "answer")] * 5
    + [("answer", "off_topic")]
    + [("harmful", "harmful")] * 2
)


def test_per_route_precision_recall_f1_f2():
    scores = per_route_scores(confusion_matrix(ROWS))
    jb = scores["jailbreak"]
    assert (jb["n"], jb["predicted"], jb["correct"]) == (4, 3, 3)
    assert jb["precision"] == 1.0 and jb["recall"] == 0.75
    assert jb["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert jb["f2"] == pytest.approx(5 * 0.75 / (4 + 0.75))
    ans = scores["answer"]
    assert ans["precision"] == pytest.approx(5 / 6) and ans["recall"] == pytest.approx(5 / 6)
    off = scores["off_topic"]  # predicted once, never expected
    assert off["precision"] == 0.0 and off["recall"] is None and off["f1"] == 0.0
    assert f_beta(None, None, 2) is None


def test_false_refusals_and_families():
    fr = false_refusals(ROWS)
    assert fr == {"rate": 1 / 6, "count": 1, "n": 6, "by_route": {"off_topic": 1}}
    fams = blocked_by_family(
        [("dan", "jailbreak", "jailbreak"), ("dan", "jailbreak", "answer"), ("enc", "harmful",
         "harmful"), ("", "jailbreak", "answer"), ("dan", "answer", "answer")]
    )  # fmt: skip
    assert fams["dan"] == {
        "rate": 0.5, "blocked": 1, "stopped": 1, "stopped_rate": 0.5, "attack_success": 0.5, "n": 2
    }  # fmt: skip
    assert fams["enc"]["rate"] == 1.0 and fams["enc"]["attack_success"] == 0.0
    assert set(fams) == {"dan", "enc"}
    # With statuses: a probe refused by the length limit is stopped but not blocked by a guardrail.
    fams = blocked_by_family(
        [
            ("tap", "jailbreak", "answer", "invalid_input"),
            ("tap", "jailbreak", "jailbreak", "jailbreak"),
            ("tap", "jailbreak", "answer", "answered"),
            ("tap", "jailbreak", "answer", "cannot_answer"),
        ]
    )
    assert fams["tap"]["blocked"] == 1 and fams["tap"]["stopped"] == 3
    assert fams["tap"]["attack_success"] == pytest.approx(0.25)


def test_routing_summary_reports_redaction():
    rows = [
        {"expected": "pii", "predicted": "pii", "redacted": True},
        {"expected": "pii", "predicted": "needs_account", "redacted": True},
        {"expected": "answer", "predicted": "pii", "redacted": True},
        {"expected": "answer", "predicted": "answer", "redacted": False},
    ]
    s = routing_summary(rows)
    assert s["pii_redacted"] == {"rate": 1.0, "n": 2}
    assert s["genuine_redacted"] == {"rate": 0.5, "n": 2}
    assert s["accuracy"] == 0.5
    assert s["false_refusals"]["count"] == 1  # needs_account refused a genuine (pii) question


def test_latency_and_tokens():
    lat = latency_summary([{"total": 100.0, "compose": 80.0}, {"total": 300.0}])
    assert lat["total"] == {"n": 2, "p50": 200.0, "p95": 290.0, "max": 300.0}
    assert lat["compose"]["n"] == 1
    tok = token_summary([{"compose_input_tokens": 10}, {"compose_input_tokens": 30}])
    assert tok["compose_input_tokens"] == {"total": 40, "mean": 20.0, "n": 2}
