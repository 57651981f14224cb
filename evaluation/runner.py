"""Run evaluation cases through the real answer pipeline, in process, and record every outcome.

Each case's full outcome (status, route, message, sources, retrieved exact paths in rank order,
the sections given to the model, guardrail verdicts, timings, tokens, versions) is appended to
`cases.jsonl` in the output folder as soon as it finishes, so an interrupted run resumes where
it stopped: a re-run with the same output folder skips the cases already recorded.

Conversations run turn by turn with the history the API would pass (the redacted questions and
the answers given), so the condensing step is really exercised; the case's outcome is the last
turn's, with every turn summarised under `turns`.

Concurrency: `concurrency` worker threads, each with its own pipeline (the pipeline keeps a
per-run deadline). The local llama.cpp model is not thread-safe, so its steps (condense,
compose) take a shared lock: cases overlap only in their retrieval and guardrail steps.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chat_api.types import PipelineState, Question, Turn
from evaluation.datasets import EvalCase
from evaluation.metrics.answers import links_in

log = logging.getLogger(__name__)

CASES_FILE = "cases.jsonl"
LLM_STEPS = ("condense", "compose")


# ---------------------------------------------------------------------------- retrieval log


class RecordingRetriever:
    """Wraps the retriever and remembers, per thread, the ranked results of the last search
    (before the pipeline's relevance floor), so retrieval is scored on the real ranking."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.embedder = getattr(inner, "embedder", None)
        self._local = threading.local()

    def search(self, query: str, k: int | None = None, **kw: Any) -> list[Any]:
        results = self.inner.search(query, k, **kw)
        self._local.last = list(results)
        return results

    def reset(self) -> None:
        self._local.last = []

    @property
    def last(self) -> list[Any]:
        return getattr(self._local, "last", [])


class SerialisedStep:
    """A pipeline step run under a lock (for a model that is not thread-safe)."""

    def __init__(self, step: Any, lock: threading.Lock) -> None:
        self.step = step
        self.lock = lock
        self.name = step.name

    def run(self, state: PipelineState, emit: Any) -> None:
        with self.lock:
            self.step.run(state, emit)


def serialise_llm_steps(pipeline: Any, lock: threading.Lock) -> Any:
    """Put the LLM steps of `pipeline` under `lock` (in place; returns the pipeline)."""
    pipeline.steps = [
        SerialisedStep(s, lock) if getattr(s, "name", "") in LLM_STEPS else s
        for s in pipeline.steps
    ]
    return pipeline


# ---------------------------------------------------------------------------- outcomes


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def turn_record(state: PipelineState, raw_results: list[Any], in_index: Callable[[str], bool]):
    """The recorded outcome of one turn (JSON-ready)."""
    prompt_text = {c.chunk_id: c.text for c in state.prompt_chunks}
    used_urls = {s.url for s in state.sources if s.used}
    contexts = [
        {
            "chunk_id": r.chunk_id,
            "url": r.url,
            "exact_path": r.exact_path,
            "base_path": r.base_path,
            "title": r.title,
            "heading": r.heading_trail[-1] if r.heading_trail else "",
            "text": r.text,
            "prompt_text": prompt_text.get(r.chunk_id),
            "used": r.url in used_urls,
            "score": r.score,
        }
        for r in raw_results
    ]
    sources = [
        {"url": s.url, "title": s.title, "heading": s.heading, "used": s.used}
        for s in state.sources
    ]
    status = str(state.status)
    cited = [s["url"] for s in sources if s["used"]]
    if status == "answered":
        cited += [u for u in links_in(state.message) if u not in cited]
    return {
        "status": status,
        "route": state.route,
        "message": state.message,
        "redactions": list(state.redactions),
        "redacted_question": state.redacted_question,
        "condensed_question": state.condensed_question,
        "search_query": state.search_query,
        "sources": sources,
        "retrieved": [r.exact_path for r in raw_results],
        "retrieved_base_paths": [r.base_path for r in raw_results],
        "contexts": contexts,
        "cited": cited,
        "in_index": {u: in_index(u) for u in cited},
        "guardrails": {name: v.as_dict() for name, v in state.guardrails.items()},
        "timings_ms": dict(state.timings_ms),
        "tokens": dict(state.tokens),
        "versions": dict(state.versions),
        "llm_model": state.llm_model,
    }


def run_case(
    case: EvalCase,
    pipeline: Any,
    retriever: RecordingRetriever,
    in_index: Callable[[str], bool],
) -> dict[str, Any]:
    """Run one case (every turn of a conversation) and return its outcome."""
    started = time.perf_counter()
    history: list[Turn] = []
    turns: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    for text in case.turns:
        retriever.reset()
        state = pipeline.run(Question(text, history=list(history)))
        record = turn_record(state, retriever.last, in_index)
        turns.append(
            {
                "question": text,
                "status": record["status"],
                "route": record["route"],
                "condensed_question": record["condensed_question"],
                "message": record["message"],
                "timings_ms": record["timings_ms"],
            }
        )
        history.append(Turn(state.redacted_question, state.message))
    return {
        "key": case.key,
        "id": case.id,
        "dataset": case.dataset,
        "kind": case.kind,
        "question": case.question,
        **record,
        "turns": turns if case.kind == "conversation" else [],
        "error": None,
        "finished_at": _iso_now(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def error_outcome(case: EvalCase, exc: BaseException) -> dict[str, Any]:
    """A case the harness could not run at all (retried on resume)."""
    return {
        "key": case.key,
        "id": case.id,
        "dataset": case.dataset,
        "kind": case.kind,
        "question": case.question,
        "status": "error",
        "route": "",
        "message": "",
        "sources": [],
        "retrieved": [],
        "retrieved_base_paths": [],
        "contexts": [],
        "cited": [],
        "in_index": {},
        "guardrails": {},
        "timings_ms": {},
        "tokens": {},
        "versions": {},
        "llm_model": "",
        "turns": [],
        "error": f"{type(exc).__name__}: {exc}"[:500],
        "finished_at": _iso_now(),
        "seconds": 0.0,
    }


# ---------------------------------------------------------------------------- the log file


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a results log; a line cut short by an interruption is dropped (and the file
    rewritten without it, so appending continues on a clean line)."""
    if not path.exists():
        return []
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028
        if not line.strip():
            continue
        try:
            good.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    if bad:
        log.warning("%s: dropped %d unreadable line(s) (interrupted write)", path, bad)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good), "utf-8")
        tmp.replace(path)
    return good


class JsonlWriter:
    """Appends one JSON object a line, flushed and synced, from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


# ---------------------------------------------------------------------------- running


@dataclass
class RunReport:
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> outcome
    ran: int = 0
    skipped: int = 0  # already recorded by an earlier, interrupted run
    interrupted: bool = False


def completed_outcomes(path: Path) -> dict[str, dict[str, Any]]:
    """Outcomes already recorded (the last one per case wins; harness errors do not count)."""
    done: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl(path):
        if rec.get("key") and rec.get("status") != "error":
            done[rec["key"]] = rec
    return done


def run_cases(
    cases: Iterable[EvalCase],
    make_pipeline: Callable[[], Any],
    retriever: RecordingRetriever,
    out_dir: Path,
    *,
    in_index: Callable[[str], bool],
    concurrency: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> RunReport:
    """Run every case not yet in `out_dir/cases.jsonl`, appending each outcome as it finishes.

    `make_pipeline()` builds a pipeline for one worker thread. A KeyboardInterrupt stops
    submitting cases, waits for the running ones and returns with `interrupted=True`.
    """
    path = out_dir / CASES_FILE
    report = RunReport(outcomes=completed_outcomes(path))
    todo = [c for c in cases if c.key not in report.outcomes]
    report.skipped = len(report.outcomes)
    writer = JsonlWriter(path)
    local = threading.local()

    def work(case: EvalCase) -> dict[str, Any]:
        if not hasattr(local, "pipeline"):
            local.pipeline = make_pipeline()
        try:
            return run_case(case, local.pipeline, retriever, in_index)
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the run
            log.exception("case %s failed in the harness", case.key)
            return error_outcome(case, exc)

    def finish(outcome: dict[str, Any]) -> None:
        writer.write(outcome)
        report.outcomes[outcome["key"]] = outcome
        report.ran += 1
        if progress:
            progress(outcome)

    if concurrency <= 1:
        try:
            for case in todo:
                finish(work(case))
        except KeyboardInterrupt:
            report.interrupted = True
        return report

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval")
    pending: set[Future[dict[str, Any]]] = set()
    queue = list(reversed(todo))
    try:
        while queue or pending:
            while queue and len(pending) < concurrency:
                pending.add(pool.submit(work, queue.pop()))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                finish(fut.result())
    except KeyboardInterrupt:
        report.interrupted = True
        for fut in pending:
            fut.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if report.interrupted:  # cases that were already running finished: keep them
        for fut in pending:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                finish(fut.result())
    return report
