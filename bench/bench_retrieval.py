"""Benchmark: retrieval ablations and a small sweep over the development questions.

    .venv/bin/python bench/bench_retrieval.py [--data-dir DIR] [--eval-dir DIR] [--k 10]
        [--json OUT] [--baseline-dir DIR | --no-baseline] [--misses CONFIG]

Questions: rag_qa.jsonl plus the standalone form of conversations.jsonl (86 with expected
sources). Metrics (evaluation/retrieval.py): hit@k, MRR and recall@5 by page (any part of the
expected guide counts) and hit@5/MRR by exact part. Rows:

  baseline          the tutorial pipeline (bench/baseline.py): 1000-char chunks, dense top-k
  dense, bm25       one retriever alone, no document-type weights, no per-page cap
  rrf, dbsf         hybrid fusion inside Qdrant, no weights, no cap
  rrf+w             + GOV.UK Chat's document-type weights
  rrf+w+cap2        + at most 2 chunks per page
  rrf+w+cap2+rescore  + the fused candidates re-ordered by dense cosine
  settings          whatever govchat/settings.py currently gives
  sweep             rrf_k {2,10,60} x sparse_weight {0.5,1,2} x max_per_page {0,1,2,3}
                    x weights on/off (hybrid RRF, 72 configs)

The local index is opened read-only in spirit: point --data-dir at a copy, because Qdrant's
local mode lets one process open a folder. Queries are embedded once; identical Qdrant requests
are answered from memory (the index does not change during the run), and the time the real
request took is added back, so "p50 ms" is the per-query search latency as if uncached (query
embedding excluded; its p50 is printed separately).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.retrieval import (  # noqa: E402
    RetrievalCase,
    ScoredCase,
    aggregate,
    load_retrieval_cases,
    score_case,
)

DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
DATASETS = ("rag_qa.jsonl", "conversations.jsonl")
KS = (1, 3, 5, 10)

NO_EXTRAS = {"use_weights": False, "max_per_page": 0, "rescore": "none", "weight_strength": 1.0}
HYBRID_RRF = {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60, "sparse_weight": 1.0}
FULL_WEIGHTS = {"use_weights": True, "weight_strength": 1.0}
LIGHT_WEIGHTS = {"use_weights": True, "weight_strength": 0.1}
ABLATIONS: list[tuple[str, dict[str, Any]]] = [
    ("dense", {**HYBRID_RRF, **NO_EXTRAS, "mode": "dense"}),
    ("bm25", {**HYBRID_RRF, **NO_EXTRAS, "mode": "sparse"}),
    ("rrf", {**HYBRID_RRF, **NO_EXTRAS}),
    ("dbsf", {**HYBRID_RRF, **NO_EXTRAS, "fusion": "dbsf"}),
    ("rrf+w", {**HYBRID_RRF, **NO_EXTRAS, **FULL_WEIGHTS}),
    (
        "rrf+w+basecap2",
        {**HYBRID_RRF, **NO_EXTRAS, **FULL_WEIGHTS, "max_per_page": 2, "cap_by": "base_path"},
    ),
    ("rrf+w0.1", {**HYBRID_RRF, **NO_EXTRAS, **LIGHT_WEIGHTS}),
    (
        "rrf+w0.1+pagecap2",
        {**HYBRID_RRF, **NO_EXTRAS, **LIGHT_WEIGHTS, "max_per_page": 2, "cap_by": "page"},
    ),
    (
        "rrf+w0.1+pagecap2+rescore",
        {**HYBRID_RRF, **LIGHT_WEIGHTS, "max_per_page": 2, "cap_by": "page", "rescore": "dense"},
    ),
]
SWEEP_RRF_K = (2, 10, 60)
SWEEP_SPARSE_WEIGHT = (0.5, 1.0, 2.0)
SWEEP_MAX_PER_PAGE = (0, 1, 2, 3)
SWEEP_WEIGHTS = (True, False)


# ---------------------------------------------------------------------------- plumbing


class CachingEmbedder:
    """Embeds each distinct text once; records single-text embedding latency."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self._cache: dict[str, np.ndarray] = {}
        self.single_ms: list[float] = []

    def warm(self, texts: Sequence[str]) -> None:
        for text in dict.fromkeys(texts):
            if text not in self._cache:
                t0 = time.perf_counter()
                self._cache[text] = self.inner.embed([text])[0]
                self.single_ms.append(1000 * (time.perf_counter() - t0))

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vec in zip(missing, self.inner.embed(missing), strict=True):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts]) if texts else self.inner.embed([])


class MemoClient:
    """A QdrantClient stand-in answering repeated query requests from memory.

    `saved_seconds` adds up how long the cached requests took when they really ran, so callers
    can report uncached latency.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._cache: dict[str, tuple[Any, float]] = {}
        self.saved_seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def query_batch_points(self, collection_name: str, requests: Sequence[Any], **kw: Any) -> list:
        keys = [collection_name + r.model_dump_json() for r in requests]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            t0 = time.perf_counter()
            responses = self._inner.query_batch_points(
                collection_name, requests=[requests[i] for i in missing], **kw
            )
            each = (time.perf_counter() - t0) / len(missing)
            for i, resp in zip(missing, responses, strict=True):
                self._cache[keys[i]] = (resp, each)
        self.saved_seconds += sum(
            self._cache[key][1] for i, key in enumerate(keys) if i not in missing
        )
        return [self._cache[key][0] for key in keys]


@dataclass
class Run:
    name: str
    group: str  # "baseline", "ablation", "sweep"
    overrides: dict[str, Any]
    retrieved: list[list[tuple[str, str]]]
    query_ms: list[float]
    scored: list[ScoredCase] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def score(self, cases: Sequence[RetrievalCase], base_of: dict[str, str]) -> None:
        self.scored = [
            ScoredCase(c, score_case(r, c.expected_sources, KS, base_of))
            for c, r in zip(cases, self.retrieved, strict=True)
        ]
        self.summary = aggregate(self.scored)

    def metric(self, matching: str, name: str) -> float:
        return self.summary["overall"][matching][name]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.query_ms) if self.query_ms else float("nan")


def run_config(
    retriever: Any, client: MemoClient, name: str, group: str, cases, k: int, overrides: dict
) -> Run:
    retrieved, query_ms = [], []
    for case in cases:
        saved0 = client.saved_seconds
        t0 = time.perf_counter()
        results = retriever.search_many([case.question], k=k, **overrides)[0]
        elapsed = time.perf_counter() - t0 + (client.saved_seconds - saved0)
        query_ms.append(1000 * elapsed)
        retrieved.append([(r.exact_path, r.base_path) for r in results])
    return Run(name, group, overrides, retrieved, query_ms)


def page_bases(store: Any) -> dict[str, str]:
    """page path -> base path of every page and guide part in the index."""
    return {
        c.payload.get("exact_path", "").split("#", 1)[0]: c.base_path
        for c in store.stored_chunks(fields=("exact_path",))
    }


def infer_base(path: str, base_of: dict[str, str]) -> str:
    """A baseline chunk's base path: from the index, else the longest indexed base above it."""
    if path in base_of:
        return base_of[path]
    bases = {b for b in base_of.values() if path.startswith(b.rstrip("/") + "/")}
    return max(bases, key=len) if bases else path


def run_baseline(
    embedder: CachingEmbedder, cases, k: int, snapshot: Path, folder: Path, base_of
) -> tuple[Run, int, float]:
    from qdrant_client import QdrantClient

    from bench.baseline import COLLECTION, BaselineIndex

    client = QdrantClient(path=str(folder))
    try:
        index = BaselineIndex(client, embedder.inner)  # chunks bypass the query cache
        build_s = 0.0
        if client.collection_exists(COLLECTION) and client.count(COLLECTION).count:
            n_chunks = client.count(COLLECTION).count
            print(f"baseline: reusing {n_chunks} chunks in {folder}", file=sys.stderr)
        else:
            print("baseline: embedding 1000-char chunks (about 2 minutes)...", file=sys.stderr)
            t0 = time.perf_counter()
            n_chunks = index.build(snapshot)
            build_s = time.perf_counter() - t0
        index.embedder = embedder
        retrieved, query_ms = [], []
        for case in cases:
            t0 = time.perf_counter()
            hits = index.search(case.question, k=k)
            query_ms.append(1000 * (time.perf_counter() - t0))
            retrieved.append(
                [(h["exact_path"], infer_base(h["exact_path"], base_of)) for h in hits]
            )
    finally:
        client.close()
    run = Run("baseline", "baseline", {"pipeline": "bench/baseline.py"}, retrieved, query_ms)
    return run, n_chunks, build_s


# ---------------------------------------------------------------------------- reporting


def row(run: Run) -> str:
    page = run.summary["overall"]["page"]
    exact = run.summary["overall"]["exact"]
    src = run.summary["overall"]["source"]
    return (
        f"| {run.name} | {page['hit@1']:.3f} | {page['hit@3']:.3f} | {page['hit@5']:.3f} "
        f"| {page['hit@10']:.3f} | {page['mrr']:.3f} | {page['recall@5']:.3f} "
        f"| {src['hit@5']:.3f} | {exact['hit@5']:.3f} | {exact['mrr']:.3f} | {run.p50_ms:.0f} |"
    )


HEADER = (
    "| config | hit@1 | hit@3 | hit@5 | hit@10 | MRR | R@5 | §6 hit@5 | exact hit@5 "
    "| exact MRR | p50 ms |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def half_mrr(run: Run, half: int) -> float:
    rr = [sc.metrics["page"]["rr"] for i, sc in enumerate(run.scored) if i % 2 == half]
    return statistics.fmean(rr)


def paired(run: Run, ref: Run, metric: str = "hit@5") -> tuple[int, int]:
    """Cases this run gets (by page, at `metric`) that `ref` misses, and the reverse."""
    a = [sc.metrics["page"][metric] for sc in run.scored]
    b = [sc.metrics["page"][metric] for sc in ref.scored]
    return sum(x > y for x, y in zip(a, b, strict=True)), sum(
        x < y for x, y in zip(a, b, strict=True)
    )


def sweep_marginals(sweep: Sequence[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """Each sweep knob's values, averaged over all settings of the other knobs."""
    knobs = ("rrf_k", "sparse_weight", "max_per_page", "use_weights")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for knob in knobs:
        groups: dict[str, list[Run]] = {}
        for run in sweep:
            groups.setdefault(str(run.overrides[knob]), []).append(run)
        out[knob] = {
            value: {
                "page_hit@5": statistics.fmean(r.metric("page", "hit@5") for r in runs),
                "page_mrr": statistics.fmean(r.metric("page", "mrr") for r in runs),
                "exact_hit@5": statistics.fmean(r.metric("exact", "hit@5") for r in runs),
            }
            for value, runs in groups.items()
        }
    return out


def misses(run: Run, cases: Sequence[RetrievalCase], at: int = 5) -> list[dict[str, Any]]:
    out = []
    for case, sc, got in zip(cases, run.scored, run.retrieved, strict=True):
        if not sc.metrics["page"][f"hit@{at}"]:
            out.append(
                {
                    "id": case.id,
                    "question": case.question,
                    "expected": list(case.expected_sources),
                    "retrieved": [p for p, _ in got[:at]],
                }
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="index folder (a copy!)")
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--snapshot", type=Path, default=None)
    ap.add_argument("--baseline-dir", type=Path, default=None, help="keep/reuse the baseline")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--misses", default="settings", help="config whose misses at 5 to list")
    args = ap.parse_args()
    if args.k < max(KS):
        ap.error(f"--k must be at least {max(KS)}")

    from govchat.services import open_store
    from govchat.settings import Settings
    from retrieval.embeddings import load_embedder
    from retrieval.search import HybridRetriever, RetrievalConfig, clean_query
    from retrieval.sparse import Bm25Encoder
    from retrieval.store import ChunkStore

    started = time.perf_counter()
    cases = load_retrieval_cases([args.eval_dir / name for name in DATASETS])
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    snapshot = args.snapshot or Path(settings.source)
    raw_store = open_store(settings)
    client = MemoClient(raw_store.client)
    store = ChunkStore(client, raw_store.collection)
    n_index = store.count()
    if not n_index:
        sys.exit(f"no index at {settings.data_dir}; run `govchat index` first")
    base_of = page_bases(raw_store)

    embedder = CachingEmbedder(
        load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size)
    )
    questions = [c.question for c in cases]
    embedder.warm([*questions, *(clean_query(q) for q in questions)])
    retriever = HybridRetriever(
        store,
        embedder,
        Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len),
        RetrievalConfig.from_settings(settings, min_score=0.0, min_dense_score=0.0),
    )

    runs: list[Run] = []
    n_baseline, baseline_build_s = 0, 0.0
    if not args.no_baseline:
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.baseline_dir or Path(tmp) / "baseline"
            run, n_baseline, baseline_build_s = run_baseline(
                embedder, cases, args.k, snapshot, folder, base_of
            )
            runs.append(run)
    for name, overrides in ABLATIONS:
        print(f"run {name}", file=sys.stderr)
        runs.append(run_config(retriever, client, name, "ablation", cases, args.k, overrides))
    defaults = RetrievalConfig.from_settings(settings)
    settings_overrides = {
        key: getattr(defaults, key)
        for key in ("mode", "fusion", "rrf_k", "sparse_weight", "rescore", "use_weights")
    } | {"max_per_page": defaults.max_per_page}
    runs.append(
        run_config(retriever, client, "settings", "ablation", cases, args.k, settings_overrides)
    )
    print("sweep...", file=sys.stderr)
    for rrf_k in SWEEP_RRF_K:
        for sw in SWEEP_SPARSE_WEIGHT:
            for cap in SWEEP_MAX_PER_PAGE:
                for weights in SWEEP_WEIGHTS:
                    overrides = {
                        **HYBRID_RRF,
                        **NO_EXTRAS,
                        "rrf_k": rrf_k,
                        "sparse_weight": sw,
                        "max_per_page": cap,
                        "use_weights": weights,
                    }
                    name = f"k{rrf_k} sw{sw:g} cap{cap} {'w' if weights else 'now'}"
                    runs.append(
                        run_config(retriever, client, name, "sweep", cases, args.k, overrides)
                    )
    for run in runs:
        run.score(cases, base_of)
    raw_store.client.close()

    # ----------------------------------------------------------------- print
    by_name = {r.name: r for r in runs}
    ref = by_name.get("settings")
    print(f"\n{len(cases)} questions ({', '.join(DATASETS)}); page = any part of the guide")
    print(HEADER)
    for run in runs:
        if run.group != "sweep":
            print(row(run))
    sweep = sorted(
        (r for r in runs if r.group == "sweep"),
        key=lambda r: (r.metric("page", "hit@5"), r.metric("page", "mrr")),
        reverse=True,
    )
    print("\nsweep (hybrid RRF), best first by page hit@5 then MRR; +/- = cases won/lost at")
    print("page hit@5 against `settings`; MRR on odd/even halves shows how stable a lead is")
    print(
        "| config | hit@1 | hit@3 | hit@5 | hit@10 | MRR | R@5 | exact hit@5 | exact MRR "
        "| +/- vs settings | MRR odd/even |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    )
    for run in sweep:
        page, exact = run.summary["overall"]["page"], run.summary["overall"]["exact"]
        won, lost = paired(run, ref) if ref else (0, 0)
        print(
            f"| {run.name} | {page['hit@1']:.3f} | {page['hit@3']:.3f} | {page['hit@5']:.3f} "
            f"| {page['hit@10']:.3f} | {page['mrr']:.3f} | {page['recall@5']:.3f} "
            f"| {exact['hit@5']:.3f} | {exact['mrr']:.3f} | +{won}/-{lost} "
            f"| {half_mrr(run, 1):.3f}/{half_mrr(run, 0):.3f} |"
        )
    effects = sweep_marginals(sweep)
    print("\nsweep marginals: mean over every other knob (page hit@5 / page MRR / exact hit@5)")
    for knob, values in effects.items():
        cells = ", ".join(
            f"{value}: {m['page_hit@5']:.3f}/{m['page_mrr']:.3f}/{m['exact_hit@5']:.3f}"
            for value, m in values.items()
        )
        print(f"- {knob}: {cells}")
    chosen = by_name.get(args.misses) or ref
    missed = misses(chosen, cases) if chosen else []
    if chosen:
        print(f"\nmisses at 5 by page for `{chosen.name}` ({len(missed)}):")
        for m in missed:
            print(f"- {m['id']}: {m['question']}")
            print(f"    expected {', '.join(m['expected'])}")
            print(f"    got      {', '.join(m['retrieved'])}")
    embed_p50 = statistics.median(embedder.single_ms) if embedder.single_ms else float("nan")
    total_s = time.perf_counter() - started
    print(
        f"\nindex {n_index} chunks; baseline {n_baseline} chunks (built in "
        f"{baseline_build_s:.0f}s); query embedding p50 {embed_p50:.1f} ms; total {total_s:.0f}s"
    )

    compact = {
        r.name: {
            "page_hit@5": round(r.metric("page", "hit@5"), 4),
            "page_mrr": round(r.metric("page", "mrr"), 4),
            "exact_hit@5": round(r.metric("exact", "hit@5"), 4),
            "p50_ms": round(r.p50_ms, 1),
        }
        for r in runs
        if r.group != "sweep"
    }
    print(json.dumps(compact))
    if args.json:
        dump = {
            "meta": {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
                "datasets": [str(args.eval_dir / n) for n in DATASETS],
                "n_cases": len(cases),
                "k": args.k,
                "ks": KS,
                "index_chunks": n_index,
                "baseline_chunks": n_baseline,
                "baseline_build_seconds": baseline_build_s,
                "query_embedding_p50_ms": embed_p50,
                "base_config": {
                    k: v for k, v in vars(retriever.config).items() if k != "document_type_weights"
                },
                "document_type_weights": retriever.config.document_type_weights,
                "seconds": total_s,
            },
            "runs": [
                {
                    "name": r.name,
                    "group": r.group,
                    "overrides": r.overrides,
                    "p50_ms": r.p50_ms,
                    "summary": r.summary,
                    **(
                        {}
                        if r.group == "sweep"
                        else {
                            "cases": [
                                {
                                    "id": c.id,
                                    "retrieved": [p for p, _ in got],
                                    "metrics": sc.metrics,
                                }
                                for c, got, sc in zip(cases, r.retrieved, r.scored, strict=True)
                            ]
                        }
                    ),
                }
                for r in runs
            ],
            "sweep_marginals": effects,
            "misses_at_5": {"config": chosen.name if chosen else None, "cases": missed},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dump, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
