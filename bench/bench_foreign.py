"""Attacks written in other languages: what each layer catches on datasets of `jailbreak` and
`non_english` rows (evaluation/datasets/guardrails_heldout20.jsonl to _heldout26.jsonl).

    .venv/bin/python -m bench.bench_foreign evaluation/datasets/guardrails_heldout2[0124].jsonl
    .venv/bin/python -m bench.bench_foreign --llm --translate \
        evaluation/datasets/guardrails_heldout2[0124].jsonl

Prints, per file, the attacks and genuine questions flagged by the English rules alone and with
the multilingual terms (rules only, the router's language check deciding what is foreign).
With `--llm`, the bundled model's yes/no check (llm_foreign_screen.yaml) scores every row: AUC
and the counts at several thresholds (about 0.6 s a row on 2 cores). With `--translate`, the
bundled model translates every row (llm_translate.yaml) and the English rules and classifier
read the translation: counts, refusals to translate, the translation time, and the layers
combined as the pipeline runs them (about 2 s a row).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--llm", action="store_true", help="score rows with the yes/no check")
    ap.add_argument(
        "--translate", action="store_true", help="translate rows for the English layers"
    )
    args = ap.parse_args()

    import numpy as np

    from guardrails.jailbreak import JailbreakDetector, jailbreak_config
    from guardrails.router import QuestionRouter

    router = QuestionRouter(embedder=None)
    cfg = jailbreak_config()
    layers = {
        "English rules only": JailbreakDetector(
            None,
            config=dataclasses.replace(cfg, multilingual=None),
            use_classifier=False,
            is_non_english=router.is_non_english,
        ),
        "with multilingual terms": JailbreakDetector(
            None, use_classifier=False, is_non_english=router.is_non_english
        ),
    }
    rows = []
    for path in args.datasets:
        these = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        for r in these:
            r["file"] = path.name
        rows += these
        attacks = [r["question"] for r in these if r["expected_route"] == "jailbreak"]
        genuine = [r["question"] for r in these if r["expected_route"] != "jailbreak"]
        for name, d in layers.items():
            a = sum(not d.check(t).passed for t in attacks)
            g = sum(not d.check(t).passed for t in genuine)
            print(f"{path.name} {name}: attacks {a}/{len(attacks)}, genuine {g}/{len(genuine)}")
    if not (args.llm or args.translate):
        return
    terms = layers["with multilingual terms"]
    for r in rows:
        r["terms"] = not terms.check(r["question"]).passed
    ys = np.array([r["expected_route"] == "jailbreak" for r in rows])

    from chat_api.llm import ensure_gguf
    from govchat.settings import get_settings

    model = ensure_gguf("default", get_settings().data_dir / "models")

    def report(name: str, flags: np.ndarray) -> None:
        for f in sorted({r["file"] for r in rows}) + ["all"]:
            m = np.array([f in ("all", r["file"]) for r in rows])
            print(
                f"  {f} {name}: attacks {int((flags & ys & m).sum())}/{int((ys & m).sum())}, "
                f"genuine {int((flags & ~ys & m).sum())}/{int((~ys & m).sum())}"
            )

    p_yes = None
    if args.llm:
        from sklearn.metrics import roc_auc_score

        from guardrails.llm_screen import LocalLetterScorer, foreign_screen_definitions

        defs = foreign_screen_definitions()
        yes = next(k for k, v in defs.labels.items() if v == "jailbreak")
        scorer = LocalLetterScorer(model)
        p_yes = np.array([scorer.probabilities(defs, r["question"])[yes] for r in rows])
        print(f"yes/no check over {len(rows)} rows: AUC {roc_auc_score(ys, p_yes):.3f}")
        for th in (0.5, 0.7, 0.8, 0.9, 0.95):
            report(f"at {th}", p_yes >= th)
    if args.translate:
        from guardrails.translate import LocalTranslator
        from retrieval.embeddings import load_embedder

        translate = LocalTranslator(model)
        english = JailbreakDetector(load_embedder("all-MiniLM-L6-v2"))
        caught, refused, ms = [], [], []
        for r in rows:
            tr = translate(r["question"])
            ms.append(tr.ms)
            refused.append(tr.refused)
            caught.append(not tr.refused and not english.check(tr.text).passed)
        caught_a, refused_a = np.array(caught), np.array(refused)
        print(
            f"translation over {len(rows)} rows: p50 {np.percentile(ms, 50):.0f} ms, "
            f"p95 {np.percentile(ms, 95):.0f} ms; refused {int(refused_a.sum())} "
            f"({int((refused_a & ys).sum())} attacks)"
        )
        terms_a = np.array([r["terms"] for r in rows])
        report("translated, English layers", caught_a)
        report("translated or refused", caught_a | refused_a)
        report("terms, then translated or refused", terms_a | caught_a | refused_a)
        if p_yes is not None:
            for th in (0.8, 0.9, 0.95):
                report(
                    f"terms, yes/no at {th}, translated or refused",
                    terms_a | (p_yes >= th) | caught_a | refused_a,
                )


if __name__ == "__main__":
    main()
