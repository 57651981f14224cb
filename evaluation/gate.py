"""Thresholds (a versioned YAML file) and the gate: which thresholds a run meets, and whether a
baseline regressed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evaluation.scoring import CaseRules

DEFAULT_THRESHOLDS = Path(__file__).resolve().parent / "thresholds.yaml"


class ThresholdsError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    metric: str
    min: float | None = None
    max: float | None = None
    why: str = ""
    required: bool = False
    baseline: bool = True
    tolerance: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.min is not None

    @property
    def target(self) -> str:
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


@dataclass(frozen=True)
class Thresholds:
    version: str
    path: str
    thresholds: tuple[Threshold, ...]
    tolerance: float
    case_rules: CaseRules


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read and validate a thresholds file (ThresholdsError with what is wrong)."""
    path = Path(path) if path else DEFAULT_THRESHOLDS
    if not path.is_file():
        raise ThresholdsError(f"thresholds file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ThresholdsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "version" not in data:
        raise ThresholdsError(f"{path}: needs a `version` and a `thresholds` list")
    items = []
    for i, t in enumerate(data.get("thresholds") or [], 1):
        if not isinstance(t, dict) or not isinstance(t.get("metric"), str):
            raise ThresholdsError(f"{path}: threshold {i} needs a `metric` name")
        if ("min" in t) == ("max" in t):
            raise ThresholdsError(f"{path}: threshold {t['metric']} needs exactly one of min/max")
        try:
            items.append(
                Threshold(
                    metric=t["metric"],
                    min=float(t["min"]) if "min" in t else None,
                    max=float(t["max"]) if "max" in t else None,
                    why=str(t.get("why", "")),
                    required=bool(t.get("required", False)),
                    baseline=bool(t.get("baseline", True)),
                    tolerance=float(t["tolerance"]) if "tolerance" in t else None,
                )
            )
        except (TypeError, ValueError) as exc:
            raise ThresholdsError(f"{path}: threshold {t['metric']}: {exc}") from exc
    rules = data.get("case_pass") or {}
    try:
        case_rules = CaseRules(
            key_fact_coverage=float(rules.get("key_fact_coverage", 0.5)),
            similarity=float(rules.get("similarity", 0.6)),
            retrieval_k=int(rules.get("retrieval_k", 5)),
        )
    except (TypeError, ValueError) as exc:
        raise ThresholdsError(f"{path}: case_pass: {exc}") from exc
    return Thresholds(
        version=str(data["version"]),
        path=str(path),
        thresholds=tuple(items),
        tolerance=float((data.get("baseline") or {}).get("tolerance", 0.03)),
        case_rules=case_rules,
    )


def check_thresholds(metrics: dict[str, float | None], thresholds: Thresholds) -> list[dict]:
    """One row per threshold: value, target, status pass / fail / not measured."""
    rows = []
    for t in thresholds.thresholds:
        value = metrics.get(t.metric)
        if value is None:
            status = "fail" if t.required else "not measured"
        elif t.min is not None:
            status = "pass" if value >= t.min - 1e-9 else "fail"
        else:
            status = "pass" if value <= t.max + 1e-9 else "fail"  # type: ignore[operator]
        rows.append(
            {
                "metric": t.metric,
                "value": value,
                "target": t.target,
                "op": ">=" if t.min is not None else "<=",
                "target_value": t.min if t.min is not None else t.max,
                "status": status,
                "why": t.why,
                "required": t.required,
            }
        )
    return rows


def gate_result(
    threshold_rows: list[dict[str, Any]], comparison: dict[str, Any] | None
) -> dict[str, Any]:
    """Pass unless a threshold failed or a baseline metric regressed beyond its tolerance."""
    failed = [r["metric"] for r in threshold_rows if r["status"] == "fail"]
    regressed = [r["metric"] for r in (comparison or {}).get("metrics", []) if r["regressed"]]
    return {
        "passed": not failed and not regressed,
        "failed_thresholds": failed,
        "regressions": regressed,
        "not_measured": [r["metric"] for r in threshold_rows if r["status"] == "not measured"],
    }
