"""Benchmark: the whole input side of the pipeline (validate, redact, jailbreak, route) on the
guardrails dataset, as the pipeline decides routes.

    .venv/bin/python bench/bench_guardrails.py [--dataset ../shared/eval/guardrails.jsonl]
        [--genuine ../shared/eval/rag_qa.jsonl ../shared/eval/unanswerable.jsonl ...]

`--genuine` adds in-scope questions from answer, unanswerable or conversation datasets (the
question, or a conversation's first and standalone last question) as expected "answer": a
larger check of false refusals by the input side, on questions no guardrail was tuned on.

The predicted route is `guardrails.router.dataset_route`: "pii" when personal data was redacted
and the question was answered or sent to the "needs your account" reply (DESIGN §6), else the
route the turn recorded. Prints per-route precision, recall, F1 and F2, the confusion matrix,
the false-refusal rate on genuine questions and the p50/p95
latency of the whole input side (no LLM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATASET = ROOT.parent / "shared" / "eval" / "guardrails.jsonl"


def predict(state) -> str:
    from guardrails.router import dataset_route

    return dataset_route(state.route, bool(state.redactions))


def genuine_rows(path: Path) -> list[dict[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "turns" in row:
            texts = [row["turns"][0]["question"], row["standalone_last_question"]]
        else:
            texts = [row["question"]]
        out += [
            {"id": f"{row['id']}#{i}", "question": t, "expected_route": "answer"}
            for i, t in enumerate(texts)
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--genuine", type=Path, nargs="*", default=[])
    ap.add_argument(
        "--screen",
        choices=["off", "local"],
        default="off",
        help="add the language-model screen (local = the bundled 1.5B GGUF)",
    )
    ap.add_argument(
        "--foreign",
        choices=["translate", "classify", "off"],
        default="translate",
        help="with a screen: how messages in other languages are checked for attacks",
    )
    ap.add_argument("--out", type=Path, help="write one JSON line per case (route, verdicts)")
    args = ap.parse_args()

    from chat_api import steps as s
    from chat_api.pipeline import AnswerPipeline, build_guards, warm_up_guards
    from chat_api.types import Question
    from retrieval.embeddings import load_embedder

    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]
    for path in args.genuine:
        rows += genuine_rows(path)
    screen = None
    if args.screen == "local":
        from govchat.settings import Settings
        from guardrails.llm_screen import build_screen

        screen = build_screen(Settings())
    guards = build_guards(load_embedder("all-MiniLM-L6-v2"), screen=screen, foreign=args.foreign)
    t0 = time.perf_counter()
    warm_up_guards(guards)
    warm = time.perf_counter() - t0
    pipeline = AnswerPipeline(
        [
            s.ValidateQuestion(),
            s.RedactPersonalData(guards.personal_data),
            s.CheckJailbreak(guards.jailbreak),
            s.CondenseQuestion(llm=None),
            s.RouteQuestion(guards.router),
            s.ScreenQuestion(guards.screen, guards.router),
        ]
    )
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    times, misses = [], []
    pii_found = pii_total = pii_false = genuine_total = 0
    out = args.out.open("w") if args.out else None
    for row in rows:
        t = time.perf_counter()
        state = pipeline.run(Question(row["question"]))
        times.append((time.perf_counter() - t) * 1000)
        got = predict(state)
        if row["expected_route"] == "pii":
            pii_total += 1
            pii_found += bool(state.redactions)
        elif row["expected_route"] == "answer":
            genuine_total += 1
            pii_false += bool(state.redactions)
        confusion[row["expected_route"]][got] += 1
        if out is not None:
            record = {
                **row,
                "predicted": got,
                "ms": round(times[-1], 1),
                "guardrails": {k: v.as_dict() for k, v in state.guardrails.items()},
            }
            out.write(json.dumps(record) + "\n")
        if got != row["expected_route"]:
            misses.append((row["id"], row["expected_route"], got))
    from evaluation.metrics.routing import per_route_scores, refusal_routes

    labels = sorted(set(confusion) | {p for c in confusion.values() for p in c})
    print(f"{len(rows)} cases; guards warm-up {warm:.1f} s")
    print(f"{'route':<16}{'n':>4}{'prec':>7}{'recall':>8}{'F1':>7}{'F2':>7}")
    for label, sc in per_route_scores({k: dict(v) for k, v in confusion.items()}).items():
        p, r, f1, f2 = (sc[k] or 0.0 for k in ("precision", "recall", "f1", "f2"))
        print(f"{label:<16}{sc['n']:>4}{p:>7.2f}{r:>8.2f}{f1:>7.2f}{f2:>7.2f}")
    genuine = confusion.get("answer", Counter())
    refused = sum(v for k, v in genuine.items() if k in refusal_routes())
    print(f"false refusals on genuine questions: {refused}/{sum(genuine.values())}")
    print(
        f"personal data redacted: {pii_found}/{pii_total} pii cases; "
        f"{pii_false}/{genuine_total} genuine questions redacted"
    )
    print("confusion (expected -> predicted counts):")
    for label in labels:
        print(f"  {label:<16}" + ", ".join(f"{k} {v}" for k, v in confusion[label].most_common()))
    print("misses:", misses)
    q = statistics.quantiles(times, n=20)
    print(f"input side latency: p50 {statistics.median(times):.1f} ms, p95 {q[18]:.1f} ms")


if __name__ == "__main__":
    main()
