"""Attacks written in other languages: what each layer catches on datasets of `jailbreak` and
`non_english` rows (evaluation/datasets/guardrails_heldout20.jsonl to _heldout24.jsonl).

    .venv/bin/python -m bench.bench_foreign evaluation/datasets/guardrails_heldout2[0124].jsonl
    .venv/bin/python -m bench.bench_foreign --llm evaluation/datasets/guardrails_heldout2[012].jsonl

Prints, per file, the attacks and genuine questions flagged by the English rules alone and with
the multilingual terms (rules only, the router's language check deciding what is foreign). With
`--llm`, the bundled model's other-language check (llm_foreign_screen.yaml) scores every row:
AUC and the counts at several thresholds (about 2 s a row on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--llm", action="store_true", help="also score rows with the bundled model")
    args = ap.parse_args()

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
        rows += these
        attacks = [r["question"] for r in these if r["expected_route"] == "jailbreak"]
        genuine = [r["question"] for r in these if r["expected_route"] != "jailbreak"]
        for name, d in layers.items():
            a = sum(not d.check(t).passed for t in attacks)
            g = sum(not d.check(t).passed for t in genuine)
            print(f"{path.name} {name}: attacks {a}/{len(attacks)}, genuine {g}/{len(genuine)}")
    if not args.llm:
        return

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from chat_api.llm import ensure_gguf
    from govchat.settings import get_settings
    from guardrails.llm_screen import LocalLetterScorer, foreign_screen_definitions

    defs = foreign_screen_definitions()
    yes = next(k for k, v in defs.labels.items() if v == "jailbreak")
    settings = get_settings()
    scorer = LocalLetterScorer(ensure_gguf("default", settings.data_dir / "models"))
    ps = np.array([scorer.probabilities(defs, r["question"])[yes] for r in rows])
    ys = np.array([r["expected_route"] == "jailbreak" for r in rows])
    print(f"model check over {len(rows)} rows: AUC {roc_auc_score(ys, ps):.3f}")
    for th in (0.5, 0.7, 0.8, 0.9):
        print(
            f"  at {th}: attacks {int(((ps >= th) & ys).sum())}/{int(ys.sum())}, "
            f"genuine {int(((ps >= th) & ~ys).sum())}/{int((~ys).sum())}"
        )


if __name__ == "__main__":
    main()
