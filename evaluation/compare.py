"""Compare a run with a baseline run: what improved, what regressed, which cases flipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.gate import Thresholds

_LOWER_IS_BETTER = (
    "latency.",
    "false_refusal",
    "stated_figure",
    "run.",
    ".failed",
    "redaction_rate",
)


class BaselineError(ValueError):
    pass


def load_results(path: str | Path) -> dict[str, Any]:
    """A run's results.json (from its folder or the file itself)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise BaselineError(f"baseline results not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaselineError(f"cannot read baseline {file}: {exc}") from exc
    if not isinstance(data, dict) or "summary" not in data or "cases" not in data:
        raise BaselineError(f"{file} is not a govchat eval results.json")
    return data


def _direction(metric: str, thresholds: Thresholds) -> int:
    for t in thresholds.thresholds:
        if t.metric == metric:
            return 1 if t.higher_is_better else -1
    if metric.endswith(".words"):
        return 0
    return -1 if any(s in metric for s in _LOWER_IS_BETTER) else 1


def compare_runs(
    current: dict[str, Any], baseline: dict[str, Any], thresholds: Thresholds
) -> dict[str, Any]:
    """Metric deltas (regressed = a gated metric worse by more than its tolerance) and flips."""
    cur_m = current["summary"].get("metrics", {})
    base_m = baseline["summary"].get("metrics", {})
    gated = {t.metric: t for t in thresholds.thresholds if t.baseline}
    rows = []
    for name in sorted(set(cur_m) & set(base_m)):
        now, before = cur_m[name], base_m[name]
        if now is None or before is None:
            continue
        direction = _direction(name, thresholds)
        delta = now - before
        better = delta * direction
        t = gated.get(name)
        tol = (
            (t.tolerance if t and t.tolerance is not None else thresholds.tolerance) if t else None
        )
        rows.append(
            {
                "metric": name,
                "baseline": before,
                "current": now,
                "delta": delta,
                "change": "improved" if better > 1e-9 else "worse" if better < -1e-9 else "same",
                "gated": t is not None,
                "regressed": t is not None and better < -(tol or 0.0) - 1e-9,
            }
        )
    base_cases = {c.get("key") or f"{c['dataset']}/{c['id']}": c for c in baseline["cases"]}
    flips = []
    for case in current["cases"]:
        key = case.get("key") or f"{case['dataset']}/{case['id']}"
        old = base_cases.get(key)
        if old is None:
            continue
        was, now = (
            (old.get("metrics") or {}).get("correct"),
            (case.get("metrics") or {}).get("correct"),
        )
        if was is not None and now is not None and was != now:
            flips.append(
                {
                    "key": key,
                    "question": case["question"],
                    "kind": case.get("kind", ""),
                    "now": "pass" if now else "fail",
                    "status_before": old.get("status"),
                    "status_now": case.get("status"),
                }
            )
    return {
        "baseline_created_at": baseline["summary"].get("created_at"),
        "baseline_code": (baseline.get("config") or {}).get("code"),
        "metrics": rows,
        "improved": [r["metric"] for r in rows if r["change"] == "improved"],
        "worse": [r["metric"] for r in rows if r["change"] == "worse"],
        "regressions": [r["metric"] for r in rows if r["regressed"]],
        "flipped_to_pass": [f for f in flips if f["now"] == "pass"],
        "flipped_to_fail": [f for f in flips if f["now"] == "fail"],
        "cases_only_now": len({c.get("key") for c in current["cases"]} - set(base_cases)),
    }
