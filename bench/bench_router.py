"""Benchmark: question routing (guardrails/router.py) on the guardrails development set.

    .venv/bin/python bench/bench_router.py [--eval FILE] [--json OUT]

Rows with expected_route jailbreak or pii are out of scope for the router (the injection rules
and the redaction step decide those); they are routed after redaction, as in the pipeline, and
reported separately (a genuine question with personal data in it should still be "answer").
Reports per-route precision, recall, F1 and F2, the confusion matrix, the false-refusal rate on
expected "answer" rows, every miss, and p50/p95 latency (after warm-up; training excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardrails.input import redact_personal_data  # noqa: E402
from guardrails.router import ROUTES, QuestionRouter  # noqa: E402

DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "guardrails.jsonl"
OUT_OF_SCOPE = ("jailbreak", "pii")


def fbeta(p: float, r: float, beta: float) -> float:
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rows = [json.loads(line) for line in args.eval.read_text().splitlines() if line.strip()]
    router = QuestionRouter()
    t0 = time.perf_counter()
    router.warm_up()
    warm_s = time.perf_counter() - t0

    results = []
    latencies: list[float] = []
    for row in rows:
        text = redact_personal_data(row["question"]).text
        t = time.perf_counter()
        d = router.route(text)
        latencies.append((time.perf_counter() - t) * 1000)
        results.append({**row, "got": d.route, "reason": d.verdict.reason})

    scope = [r for r in results if r["expected_route"] not in OUT_OF_SCOPE]
    other = [r for r in results if r["expected_route"] in OUT_OF_SCOPE]
    labels = [r for r in ROUTES if any(x["expected_route"] == r or x["got"] == r for x in scope)]
    confusion = Counter((r["expected_route"], r["got"]) for r in scope)

    print(f"{args.eval} — {len(rows)} rows, {len(scope)} in scope; warm-up {warm_s:.1f}s\n")
    print("| route | n | precision | recall | F1 | F2 |\n|---|---:|---:|---:|---:|---:|")
    per_route = {}
    for lab in labels:
        tp = confusion[(lab, lab)]
        n_pred = sum(v for (e, g), v in confusion.items() if g == lab)
        n_true = sum(v for (e, g), v in confusion.items() if e == lab)
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_true if n_true else 0.0
        per_route[lab] = {"n": n_true, "precision": p, "recall": r}
        print(
            f"| {lab} | {n_true} | {p:.2f} | {r:.2f} | {fbeta(p, r, 1):.2f} | "
            f"{fbeta(p, r, 2):.2f} |"
        )
    correct = sum(confusion[(lab, lab)] for lab in labels)
    print(f"\naccuracy (in scope): {correct}/{len(scope)} = {correct / len(scope):.3f}")
    answers = [r for r in scope if r["expected_route"] == "answer"]
    refused = [r for r in answers if r["got"] != "answer"]
    print(
        f"false refusals on expected 'answer': {len(refused)}/{len(answers)}"
        f" = {len(refused) / max(1, len(answers)):.1%}"
    )
    not_answered = [r for r in scope if r["expected_route"] != "answer" and r["got"] == "answer"]
    print(f"refusal routes answered instead: {len(not_answered)}")

    print("\nconfusion (rows = expected, columns = routed):")
    short = {lab: lab[:8] for lab in labels}
    print("| expected \\ got | " + " | ".join(short[x] for x in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for e in labels:
        print(f"| {e} | " + " | ".join(str(confusion[(e, g)] or ".") for g in labels) + " |")

    print("\nmisses (in scope):")
    for r in scope:
        if r["got"] != r["expected_route"]:
            print(f"  {r['id']}: expected {r['expected_route']}, got {r['got']} ({r['reason']})")

    print("\nout of scope (jailbreak / pii rows, routed after redaction):")
    for kind in OUT_OF_SCOPE:
        got = Counter(r["got"] for r in other if r["expected_route"] == kind)
        print(f"  {kind}: {dict(got)}")

    print(
        f"\nlatency per question (ms, {len(latencies)} questions): "
        f"p50 {statistics.median(latencies):.1f}, p95 {pct(latencies, 0.95):.1f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "per_route": per_route,
                    "confusion": {f"{e}->{g}": v for (e, g), v in confusion.items()},
                    "false_refusals": len(refused),
                    "answers": len(answers),
                    "latency_ms": latencies,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
