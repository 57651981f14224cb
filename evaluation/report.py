"""The Responsible AI report: one self-contained, accessible `report.html` (no scripts, no
external files, charts as inline SVG with text alternatives), plus a per-case CSV."""

from __future__ import annotations

import csv
import hashlib
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"
KIND_LABELS = {
    "answer": "Answerable questions",
    "unanswerable": "Questions the guidance cannot answer",
    "guardrail": "Guardrails and routing",
    "conversation": "Follow-up questions in conversations",
}

# ---------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 2, percent: bool = False) -> str:
    """A number for people: percentages for rates, "not measured" for None."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if percent:
            return f"{value * 100:.{max(digits - 2, 0)}f}%"
        if float(value).is_integer() and abs(value) >= 1:
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    return str(value)


def metric_value(metric: str, value: Any) -> str:
    """Format a flat metric by its name (latencies in seconds, rates as percentages)."""
    if value is None:
        return "not measured"
    if metric.endswith("_ms"):
        return f"{value / 1000:.1f} s"
    if metric.startswith("run.") or metric.endswith(".failed"):
        return f"{int(value):,}"
    if metric.endswith(".words"):
        return fmt(value, 0)
    if any(k in metric for k in ("mrr", "similarity", "judge.")):
        return fmt(value, 3)
    if 0 <= value <= 1:
        return fmt(value, 3, percent=True)
    return fmt(value)


# ---------------------------------------------------------------------------- charts


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float | None]],
    *,
    max_value: float = 1.0,
    unit: str = "%",
) -> Markup:
    """A horizontal bar chart as inline SVG, with a title and a text description for screen
    readers (the same figures are always also in a table next to it)."""
    row_h, label_w, bar_w = 26, 230, 360
    height = row_h * len(items) + 10
    uid = "c" + hashlib.sha1(f"{title}{items}".encode()).hexdigest()[:8]
    desc = "; ".join(f"{label}: {_chart_label(v, max_value, unit)}" for label, v in items)
    parts = [
        f'<svg role="img" aria-labelledby="{uid}t {uid}d" width="{label_w + bar_w + 80}"'
        f' height="{height}" viewBox="0 0 {label_w + bar_w + 80} {height}"'
        ' xmlns="http://www.w3.org/2000/svg" class="chart">',
        f'<title id="{uid}t">{html.escape(title)}</title>',
        f'<desc id="{uid}d">{html.escape(desc)}</desc>',
    ]
    for i, (label, value) in enumerate(items):
        y = 5 + i * row_h
        width = 0 if value is None else max(0.0, min(1.0, value / max_value)) * bar_w
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="14" '
            f'fill="#0b0c0c">{html.escape(label[:34])}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="18" fill="#f3f2f1"/>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="18" fill="#1d70b8"/>'
        )
        parts.append(
            f'<text x="{label_w + bar_w + 6}" y="{y + 17}" font-size="14" fill="#0b0c0c">'
            f"{html.escape(_chart_label(value, max_value, unit))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _chart_label(value: float | None, max_value: float, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.0f}%" if unit == "%" else f"{value:.1f} {unit}"


# ---------------------------------------------------------------------------- worst cases


def worst_cases(cases: Sequence[dict[str, Any]], limit: int = 15) -> list[dict[str, Any]]:
    """Failed cases, the most serious first: harness errors, guardrail misses on safety routes,
    unanswerable questions answered with figures, then answers by lowest key-fact coverage."""

    def severity(c: dict[str, Any]) -> tuple[int, float]:
        m = c.get("metrics") or {}
        if c["status"] == "error":
            return (0, 0.0)
        if c["kind"] == "guardrail":
            safety = m.get("expected_route") in ("jailbreak", "harmful", "crisis", "pii")
            return (1 if safety else 4, 0.0)
        if c["kind"] == "unanswerable":
            return (2 if m.get("stated_figure") else 3, 0.0)
        kf = (m.get("key_facts") or {}).get("score")
        return (3, kf if kf is not None else (m.get("semantic_similarity") or 0.0))

    failed = [c for c in cases if not (c.get("metrics") or {}).get("correct")]
    return sorted(failed, key=severity)[:limit]


# ---------------------------------------------------------------------------- CSV


CSV_FIELDS = [
    "key", "dataset", "id", "kind", "topic", "question_kind", "question", "status", "route",
    "expected_route", "correct", "key_fact_coverage", "semantic_similarity", "citation_validity",
    "figure_grounding", "hit@5_exact", "hit@5_page", "rr_page", "condense_similarity",
    "stated_figure", "total_ms", "reasons", "message",
]  # fmt: skip


def cases_csv(cases: Sequence[dict[str, Any]]) -> str:
    """One row per case with its main metrics (the full record is in results.json)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for c in cases:
        m = c.get("metrics") or {}
        ret = m.get("retrieval") or {}
        w.writerow(
            {
                **{k: c.get(k, "") for k in ("key", "dataset", "id", "kind", "question")},
                "topic": c.get("topic", ""),
                "question_kind": c.get("question_kind", ""),
                "status": c["status"],
                "route": c.get("route", ""),
                "expected_route": c.get("expected_route", ""),
                "correct": m.get("correct"),
                "key_fact_coverage": (m.get("key_facts") or {}).get("score"),
                "semantic_similarity": m.get("semantic_similarity"),
                "citation_validity": (m.get("citations") or {}).get("score"),
                "figure_grounding": (m.get("figures") or {}).get("score"),
                "hit@5_exact": (ret.get("exact") or {}).get("hit@5"),
                "hit@5_page": (ret.get("page") or {}).get("hit@5"),
                "rr_page": (ret.get("page") or {}).get("rr"),
                "condense_similarity": m.get("condense_similarity"),
                "stated_figure": m.get("stated_figure"),
                "total_ms": (c.get("timings_ms") or {}).get("total"),
                "reasons": " | ".join(m.get("reasons") or []),
                "message": c.get("message", ""),
            }
        )
    return buf.getvalue()


# ---------------------------------------------------------------------------- HTML


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["pct"] = lambda v, d=1: fmt(v, d + 2, percent=True)
    env.filters["metric"] = lambda v, name: metric_value(name, v)
    env.globals["bar_chart"] = bar_chart
    env.globals["KIND_LABELS"] = KIND_LABELS
    return env


def render_report(results: dict[str, Any], extra: dict[str, Any]) -> str:
    """The report's HTML from `results` (results.json) and `extra` (gate rows, comparison,
    feedback, system card)."""
    summary = results["summary"]
    routing = summary.get("routing") or {}
    labels = sorted(
        set(routing.get("confusion", {}))
        | {p for row in routing.get("confusion", {}).values() for p in row}
    )
    context = {
        "results": results,
        "s": summary,
        "config": results.get("config", {}),
        "cases": results["cases"],
        "worst": worst_cases(results["cases"]),
        "labels": labels,
        **extra,
    }
    return _env().get_template("report.html").render(**context)


def write_report(out_dir: Path, results: dict[str, Any], extra: dict[str, Any]) -> dict[str, Path]:
    """Write report.html and cases.csv beside results.json; returns their paths."""
    report = out_dir / "report.html"
    csv_path = out_dir / "cases.csv"
    report.write_text(render_report(results, extra), encoding="utf-8")
    csv_path.write_text(cases_csv(results["cases"]), encoding="utf-8")
    return {"report": report, "csv": csv_path}
