"""Benchmark: the offline output checks on good and bad answers (evaluation/datasets).

    .venv/bin/python bench/bench_output_checks.py

Each case has evidence (what the model was shown), an answer and the problem it has ("none" for a
good answer). A check "flags" an answer when it removes a sentence or blocks it. Prints, per
problem, how many bad answers were flagged (recall), how many good answers were flagged (false
positives), and p50/p95 latency of running all checks on one answer.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardrails import output as og  # noqa: E402

DATASET = ROOT / "evaluation" / "datasets" / "output_checks.jsonl"


def flags(answer: str, evidence: str) -> set[str]:
    found = set()
    if og.remove_ungrounded_sentences(answer, evidence).removed:
        found.add("ungrounded_figure")
    checks = {
        "personal_data": og.check_personal_data_in_answer,
        "advice_opinion": og.check_advice_opinion,
        "forbidden": og.check_forbidden_terms,
    }
    for problem, check in checks.items():
        if not check(answer).passed:
            found.add(problem)
    return found


def main() -> None:
    cases = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    caught, totals, false_pos, times = Counter(), Counter(), [], []
    misses = []
    for case in cases:
        t0 = time.perf_counter()
        found = flags(case["answer"], case["evidence"])
        times.append((time.perf_counter() - t0) * 1000)
        problem = case["problem"]
        totals[problem] += 1
        if problem == "none":
            if found:
                false_pos.append((case["id"], sorted(found)))
        elif problem in found:
            caught[problem] += 1
        else:
            misses.append((case["id"], problem, sorted(found)))
    print(f"{'problem':<20}{'cases':>6}{'flagged':>9}{'recall':>8}")
    for problem in sorted(p for p in totals if p != "none"):
        print(
            f"{problem:<20}{totals[problem]:>6}{caught[problem]:>9}"
            f"{caught[problem] / totals[problem]:>8.2f}"
        )
    bad = sum(v for k, v in totals.items() if k != "none")
    print(
        f"{'all bad answers':<20}{bad:>6}{sum(caught.values()):>9}"
        f"{sum(caught.values()) / bad:>8.2f}"
    )
    print(f"good answers flagged: {len(false_pos)} of {totals['none']} {false_pos}")
    print(f"misses: {misses}")
    q = statistics.quantiles(times, n=20)
    print(f"latency per answer: p50 {statistics.median(times):.2f} ms, p95 {q[18]:.2f} ms")


if __name__ == "__main__":
    main()
