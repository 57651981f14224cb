"""Personal data detection: recall, false positives and latency of guardrails.pii.

    .venv/bin/python bench/bench_pii.py [--eval /work/shared/eval/guardrails.jsonl] [--calls 200]

(a) our own labelled sentences below (written for this benchmark, not taken from the eval set);
(b) the shared guardrail eval set: recall on expected_route == "pii", false positives on "answer".
The regex-only `guardrails.input.redact_personal_data` is measured alongside as the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrails.input import redact_personal_data as regex_redact  # noqa: E402
from guardrails.pii import PersonalDataDetector  # noqa: E402

# (sentence, expected kinds); an empty set is a genuine question that must be left alone.
LABELLED: list[tuple[str, set[str]]] = [
    ("Could you email the PAYE letter to lucy.grant@example.net?", {"email address"}),
    ("Reply to ops@harbour-cafe.example.co.uk about our VAT.", {"email address"}),
    ("Text 07700 900333 when my refund is ready.", {"phone number"}),
    ("The payroll office is on 0161 496 0777, is that HMRC approved?", {"phone number"}),
    ("Call +44 (0)20 7946 0555 about the tax credits overpayment.", {"phone number"}),
    (
        "NI number QQ 98 76 54 D keeps getting rejected by the payroll software.",
        {"National Insurance number"},
    ),
    (
        "My national insurance number is qq987654b, can I check my record?",
        {"National Insurance number"},
    ),
    ("Her NINO is JT 44 55 66 A and she started last week.", {"National Insurance number"}),
    ("UTR 55443 32211, why is my statement blank?", {"Unique Taxpayer Reference"}),
    (
        "My unique taxpayer reference is 6677889900, have you got my return?",
        {"Unique Taxpayer Reference"},
    ),
    ("I used 1029384756K, my UTR, as the payment reference.", {"Unique Taxpayer Reference"}),
    ("I was charged on card 4000 0566 5566 5556 for the MOT, refund please.", {"bank card number"}),
    ("Card 6011111111111117 paid the Self Assessment bill twice.", {"bank card number"}),
    ("Was 3782 822463 10005 charged for my Companies House filing?", {"bank card number"}),
    ("Refund to sort code 09-01-28, account number 55667788 please.", {"bank account details"}),
    (
        "Our account 11223344, sort code 60-16-13, was debited twice for PAYE.",
        {"bank account details"},
    ),
    ("Direct debit from acct 99887766 failed, what now?", {"bank account details"}),
    (
        "Registered office: 3 Quarry Road, Sheffield S10 2TN, is that enough for my sole trade?",
        {"address"},
    ),
    ("We moved from 101 Kings Road, Reading RG1 3BZ last month.", {"address"}),
    ("Letters go to 8 Church Street, Ely CB7 4ED.", {"address"}),
    ("I was born on 30 September 1959, when can I get my pension?", {"date of birth"}),
    ("DOB 04/11/1972, does that change my State Pension age?", {"date of birth"}),
    ("My date of birth is 17th of August 1980 and HMRC have 1981.", {"date of birth"}),
    ("Hello, my name is Aisha Rahman and I'm a childminder. Do I need to register?", {"name"}),
    ("Is Gareth Lewis, my apprentice, entitled to the National Minimum Wage?", {"name"}),
    ("Can my wife Joanna Kowalski be added as a director?", {"name"}),
    (
        "I'm Ben Carter, born 9 May 1988, NI QQ 11 22 33 C: what is my tax code?",
        {"name", "date of birth", "National Insurance number"},
    ),
    ("Send the P60 for Emma Hughes to emma.h@example.org please.", {"name", "email address"}),
    ("Call Raj Patel on 07700 900444 about his SSP.", {"name", "phone number"}),
    (
        "Ship the forms to 12 Mill Lane, Derby DE1 1AA; my UTR is 1357924680.",
        {"address", "Unique Taxpayer Reference"},
    ),
    # genuine questions
    ("How much is SSP per week from 6 April 2025?", set()),
    ("What is the personal allowance of £12,570 for 2024 to 2025?", set()),
    ("Can I claim Universal Credit while on Statutory Maternity Pay?", set()),
    ("When do I file a P11D for benefits in kind?", set()),
    ("Do I need to register with Companies House to trade as a sole trader?", set()),
    ("What rate of Corporation Tax applies to profits of £250,000?", set()),
    ("How do I pay Class 2 National Insurance voluntarily?", set()),
    ("Is the Making Tax Digital deadline 7 August or 7 May?", set()),
    ("What is the 31 July payment on account?", set()),
    ("Can I reclaim VAT on a van bought for £24,000?", set()),
    ("How do I get an HMRC UTR for a new partnership?", set()),
    ("Do I pay Stamp Duty on a £300,000 house from 1 April 2025?", set()),
    ("What does box 14 on the SA103 mean?", set()),
    ("How many hours of free childcare can I get for a 3 year old?", set()),
    ("Is my 10 year old company eligible for R&D tax relief?", set()),
    ("What's the minimum wage for 21 year olds from April 2024?", set()),
    ("How do I report 2 employees leaving on 30 June?", set()),
    ("Does Access to Work cover a support worker for 20 hours a week?", set()),
    ("When was the Employment Allowance raised to £10,500?", set()),
    ("Can I pay HMRC by bank transfer to sort code 08 32 10?", set()),
    ("What does the Pension Credit form PC1 ask for?", set()),
    ("Do shops in Leeds LS1 pay business rates on an empty unit?", set()),
    ("If you were born after 6 April 1960, when is your State Pension age?", set()),
    ("Which bank holidays in 2025 count towards 28 days of holiday?", set()),
    ("What is the threshold for Child Benefit tax charge in 2024?", set()),
    ("How do I apply for a Lasting Power of Attorney?", set()),
    ("Can I use the £1,000 property allowance on Airbnb income?", set()),
    ("How long is the 14 day cooling off period for online sales?", set()),
    ("Is there a late filing penalty of £100 for the CT600?", set()),
    ("How do I change my company's registered office at Companies House?", set()),
]


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", default="/work/shared/eval/guardrails.jsonl")
    ap.add_argument("--calls", type=int, default=200, help="timed calls for latency")
    args = ap.parse_args()

    detector = PersonalDataDetector()
    t0 = time.perf_counter()
    detector.load()
    load_s = time.perf_counter() - t0

    def run(name, fn):
        pos = [(s, k) for s, k in LABELLED if k]
        neg = [s for s, k in LABELLED if not k]
        caught = sum(1 for s, _ in pos if fn(s).kinds)
        kinds_total = sum(len(k) for _, k in pos)
        kinds_found = sum(len(k & set(fn(s).kinds)) for s, k in pos)
        fp = [s for s in neg if fn(s).kinds]
        rows = [
            (name, "own: sentences with personal data flagged", f"{caught}/{len(pos)}"),
            (name, "own: expected kinds found", f"{kinds_found}/{kinds_total}"),
            (name, "own: genuine questions flagged (FP)", f"{len(fp)}/{len(neg)}"),
        ]
        misses = [(s, sorted(k - set(fn(s).kinds))) for s, k in pos if k - set(fn(s).kinds)]
        return rows, misses, fp

    eval_rows = [json.loads(line) for line in Path(args.eval).read_text().splitlines() if line]
    pii = [r["question"] for r in eval_rows if r["expected_route"] == "pii"]
    answer = [r["question"] for r in eval_rows if r["expected_route"] == "answer"]

    table = []
    for name, fn in [("govchat.pii", detector.redact), ("regex baseline", regex_redact)]:
        rows, misses, fp = run(name, fn)
        table += rows
        table.append(
            (name, "eval: pii rows flagged", f"{sum(1 for q in pii if fn(q).kinds)}/{len(pii)}")
        )
        table.append(
            (
                name,
                "eval: answer rows flagged (FP)",
                f"{sum(1 for q in answer if fn(q).kinds)}/{len(answer)}",
            )
        )
        if name == "govchat.pii":
            own_misses, own_fp = misses, fp

    # latency after warm-up, over all sentences in turn
    corpus = [s for s, _ in LABELLED] + pii + answer
    for s in corpus[:20]:
        detector.redact(s)
    times = []
    for i in range(args.calls):
        s = corpus[i % len(corpus)]
        t = time.perf_counter()
        detector.redact(s)
        times.append((time.perf_counter() - t) * 1000)

    print(f"load (spaCy + Presidio, first use): {load_s:.1f} s")
    print(
        f"latency per call over {args.calls} calls: p50 {_percentile(times, 0.5):.1f} ms, "
        f"p95 {_percentile(times, 0.95):.1f} ms, mean {statistics.mean(times):.1f} ms"
    )
    print()
    print("| detector | measure | result |")
    print("|---|---|---:|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    if own_misses:
        print("\nown misses (kinds not found):")
        for s, k in own_misses:
            print(f"  {k}: {s}")
    if own_fp:
        print("\nown false positives:")
        for s in own_fp:
            print(f"  {detector.redact(s).kinds}: {s}")


if __name__ == "__main__":
    main()
