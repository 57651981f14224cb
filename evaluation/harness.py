"""`govchat eval` end to end: load datasets, run the pipeline over every case (resumable), judge
(optional), score, compare with a baseline, gate, and write results.json, report.html and
cases.csv into the output folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from evaluation.compare import BaselineError, compare_runs, load_results
from evaluation.datasets import DatasetError, EvalCase, load_datasets
from evaluation.gate import ThresholdsError, check_thresholds, gate_result, load_thresholds
from evaluation.runner import CASES_FILE, JsonlWriter, read_jsonl, run_cases

CONFIG_FILE = "run_config.json"
JUDGE_FILE = "judge.jsonl"


class EvalError(Exception):
    """Bad input or an unavailable dependency: a message for the user."""


@dataclass
class EvalOptions:
    datasets: list[Path]
    out_dir: Path
    baseline: Path | None = None
    thresholds: Path | None = None
    concurrency: int = 1
    repeats: int = 1
    judge: bool = True
    fresh: bool = False


@dataclass
class EvalResult:
    summary: dict[str, Any]
    gate: dict[str, Any]
    out_dir: Path
    files: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def default_out_dir(data_dir: Path) -> Path:
    """`<data_dir>/reports/<UTC timestamp>/` (the admin pages list `reports/*/report.html`)."""
    return data_dir / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _case_record(case: EvalCase, outcome: dict[str, Any], metrics: dict[str, Any]) -> dict:
    return {
        **outcome,
        "topic": case.topic,
        "question_kind": case.question_kind,
        "expected_route": case.expected_route,
        "expected_sources": list(case.expected_sources),
        "reference_answer": case.reference_answer,
        "key_facts": list(case.key_facts),
        "standalone_last_question": case.standalone_question,
        "family": case.family,
        "metrics": metrics,
    }


def _missing_outcome(case: EvalCase) -> dict[str, Any]:
    """A case an interrupted run never reached: shown as missing, never silently dropped."""
    from evaluation.runner import error_outcome

    out = error_outcome(case, RuntimeError("not run (the run was interrupted)"))
    out["status"] = "not_run"
    return out


def _check_resume(out_dir: Path, config: dict[str, Any], fresh: bool) -> None:
    from evaluation.components import resume_key

    path = out_dir / CONFIG_FILE
    if fresh:
        for name in (CASES_FILE, JUDGE_FILE):
            (out_dir / name).unlink(missing_ok=True)
        return
    if not path.exists() or not (out_dir / CASES_FILE).exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return
    if resume_key(old) != resume_key(config):
        raise EvalError(
            f"{out_dir} holds a run with a different configuration (models, prompts, guardrails, "
            "corpus or datasets changed); choose another --out, or add --fresh to start over"
        )


def _judge_phase(
    cases: list[EvalCase],
    outcomes: dict[str, dict[str, Any]],
    config: Any,
    embedder: Any,
    out_dir: Path,
    repeats: int,
    concurrency: int,
    progress: TextIO,
) -> list[dict[str, Any]]:
    """Judge every answer and conversation case `repeats` times (resumable via judge.jsonl)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from evaluation.embeddings import ragas_embeddings
    from evaluation.metrics.judge import applicable, judge_case, judge_inputs

    path = out_dir / JUDGE_FILE
    done = {(r["key"], r["repeat"]): r for r in read_jsonl(path)}
    emb = ragas_embeddings(embedder)
    todo = []
    for case in cases:
        outcome = outcomes.get(case.key)
        if case.kind not in ("answer", "conversation") or not outcome:
            continue
        if outcome["status"] in ("error", "not_run"):
            continue
        inputs = judge_inputs(outcome, case.reference_answer)
        if not applicable(inputs):
            continue
        todo += [(case.key, r, inputs) for r in range(repeats) if (case.key, r) not in done]
    writer = JsonlWriter(path)
    bar = tqdm(total=len(todo), desc="judging", unit="case", file=progress, disable=None)

    def work(item: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
        key, repeat, inputs = item
        rec = {"key": key, "repeat": repeat, "metrics": judge_case(config, emb, inputs)}
        writer.write(rec)
        bar.update(1)
        return rec

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for rec in pool.map(work, todo):
            done[(rec["key"], rec["repeat"])] = rec
    bar.close()
    return list(done.values())


def run_eval(
    settings: Any,
    options: EvalOptions,
    *,
    llm: Any | None = None,
    progress: TextIO | None = None,
    components_factory: Callable[..., Any] | None = None,
) -> EvalResult:
    """The whole evaluation. Raises EvalError on bad input (before any model is loaded)."""
    from tqdm import tqdm

    from evaluation.components import build_components, run_configuration
    from evaluation.metrics.judge import judge_config
    from govchat.services import StoreUnavailable

    progress = progress or sys.stderr  # looked up now: the CLI (and tests) may swap stderr
    try:
        datasets = load_datasets(options.datasets)
        thresholds = load_thresholds(options.thresholds)
        baseline = load_results(options.baseline) if options.baseline else None
    except (DatasetError, ThresholdsError, BaselineError) as exc:
        raise EvalError(str(exc)) from exc
    if options.repeats < 1 or options.concurrency < 1:
        raise EvalError("--repeats and --concurrency must be at least 1")
    cases = [c for d in datasets for c in d.cases]
    judge = judge_config(settings) if options.judge else None

    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        components = (components_factory or build_components)(settings, llm=llm)
    except StoreUnavailable as exc:
        raise EvalError(str(exc)) from exc
    try:
        if not components.index_urls:
            raise EvalError("the index is empty: run `govchat index` first")
        config = run_configuration(
            settings,
            components,
            [d.describe() for d in datasets],
            concurrency=options.concurrency,
            repeats=options.repeats,
            judge=judge.describe() if judge else None,
        )
        _check_resume(out_dir, config, options.fresh)
        (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")

        bar = tqdm(total=len(cases), desc="evaluating", unit="case", file=progress, disable=None)
        bar.update(len([c for c in cases if c.key in _done_keys(out_dir)]))
        report = run_cases(
            cases,
            components.make_pipeline,
            components.retriever,
            out_dir,
            in_index=components.in_index,
            concurrency=options.concurrency,
            progress=lambda _o: bar.update(1),
        )
        bar.close()
        judged: list[dict[str, Any]] = []
        if judge and not report.interrupted:
            judged = _judge_phase(
                cases,
                report.outcomes,
                judge,
                components.embedder,
                out_dir,
                options.repeats,
                options.concurrency,
                progress,
            )
        results = _score_and_write(
            settings, cases, report.outcomes, judged, components, config, thresholds, baseline,
            out_dir, options,
        )  # fmt: skip
    finally:
        components.close()
    results.interrupted = report.interrupted
    return results


def _done_keys(out_dir: Path) -> set[str]:
    from evaluation.runner import completed_outcomes

    return set(completed_outcomes(out_dir / CASES_FILE))


def _score_and_write(
    settings: Any,
    cases: list[EvalCase],
    outcomes: dict[str, dict[str, Any]],
    judged: list[dict[str, Any]],
    components: Any,
    config: dict[str, Any],
    thresholds: Any,
    baseline: dict[str, Any] | None,
    out_dir: Path,
    options: EvalOptions,
) -> EvalResult:
    from evaluation.report import write_report

    feedback, feedback_error = _feedback(settings, cases)
    results, extra = build_results(
        cases, outcomes, judged, components.embedder, config, thresholds, baseline,
        repeats=options.repeats, feedback=feedback, feedback_error=feedback_error,
        database=_safe_db_label(settings),
    )  # fmt: skip
    results_path = out_dir / "results.json"
    tmp = results_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), "utf-8")
    tmp.replace(results_path)
    files = write_report(out_dir, results, extra)
    return EvalResult(
        summary=results["summary"],
        gate=results["summary"]["gate"],
        out_dir=out_dir,
        files={"results": str(results_path), **{k: str(v) for k, v in files.items()}},
    )


def build_results(
    cases: list[EvalCase],
    outcomes: dict[str, dict[str, Any]],
    judged: list[dict[str, Any]],
    embedder: Any,
    config: dict[str, Any],
    thresholds: Any,
    baseline: dict[str, Any] | None,
    *,
    repeats: int = 1,
    feedback: dict[str, Any] | None = None,
    feedback_error: str = "",
    database: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score every case and summarise: `results` (results.json) and the report's extras."""
    from evaluation.card import system_card
    from evaluation.embeddings import ragas_embeddings
    from evaluation.report import bar_chart
    from evaluation.scoring import score_outcome, summarise

    embed = embedder.embed
    emb = ragas_embeddings(embedder)
    metrics: dict[str, dict[str, Any]] = {}
    records = []
    for case in cases:
        outcome = outcomes.get(case.key) or _missing_outcome(case)
        m = score_outcome(case, outcome, embed, emb, thresholds.case_rules)
        if outcome["status"] == "not_run":
            m["reasons"] = ["not run: the run was interrupted (re-run to resume)"]
        metrics[case.key] = m
        records.append(_case_record(case, outcome, m))
    summary = summarise(cases, outcomes, metrics, judged, repeats)
    summary["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary["thresholds_version"] = thresholds.version
    results: dict[str, Any] = {"summary": summary, "config": config, "cases": records}
    comparison = compare_runs(results, baseline, thresholds) if baseline else None
    rows = check_thresholds(summary["metrics"], thresholds)
    gate = gate_result(rows, comparison)
    summary["gate"] = gate
    summary["thresholds"] = rows
    if comparison:
        summary["comparison"] = {k: comparison[k] for k in ("regressions", "improved", "worse")} | {
            "flipped_to_pass": [f["key"] for f in comparison["flipped_to_pass"]],
            "flipped_to_fail": [f["key"] for f in comparison["flipped_to_fail"]],
        }
    extra = {
        "gate": gate,
        "threshold_rows": rows,
        "thresholds_version": thresholds.version,
        "thresholds_path": thresholds.path,
        "case_rules": thresholds.case_rules,
        "comparison": comparison,
        "feedback": feedback,
        "feedback_error": feedback_error,
        "database": database,
        "card": system_card(config, summary, rows),
        "topic_chart": bar_chart(
            "Share of answerable questions answered correctly, by topic",
            [(t, v["accuracy"]) for t, v in (summary.get("by_topic") or {}).items()],
        )
        if summary.get("by_topic")
        else "",
        "latency_chart": bar_chart(
            "Median seconds per pipeline step",
            [
                (step, (v["p50"] or 0) / 1000)
                for step, v in summary["latency_ms"].items()
                if step != "total"
            ],
            max_value=max(
                [(v["p50"] or 0) / 1000 for k, v in summary["latency_ms"].items() if k != "total"]
                or [1.0]
            )
            or 1.0,
            unit="s",
        )
        if summary["latency_ms"]
        else "",
    }
    summary["feedback"] = feedback
    return results, extra


def _safe_db_label(settings: Any) -> str:
    """The database, without credentials."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "the configured database"


def _feedback(settings: Any, cases: list[EvalCase]) -> tuple[dict[str, Any] | None, str]:
    """Feedback from the configured database (None and the reason when it cannot be read)."""
    from evaluation.feedback import feedback_summary
    from govchat.db import init_db, make_engine

    topic_of_page = {p: c.topic for c in cases if c.topic for p in c.expected_sources}
    engine = None
    try:
        engine = make_engine(settings)
        return feedback_summary(init_db(engine), topic_of_page), ""
    except Exception as exc:  # noqa: BLE001 - the report still renders, and says why
        return None, f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if engine is not None:
            engine.dispose()
