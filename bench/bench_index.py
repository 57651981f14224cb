"""Benchmark: index the bundled snapshot from scratch, then again unchanged, beside the baseline.

    .venv/bin/python bench/bench_index.py [--snapshot DIR]

Each phase runs in its own process so its peak memory (max RSS) is its own. Prints a table and
one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_govchat(data_dir: str, snapshot: str) -> dict:
    from govchat.services import build_indexer, open_store
    from govchat.settings import Settings
    from ingest.sources import SnapshotSource

    settings = Settings(data_dir=Path(data_dir))
    store = open_store(settings)
    t0 = time.perf_counter()
    s = build_indexer(settings, store).run(SnapshotSource(snapshot))
    wall = time.perf_counter() - t0
    store.client.close()
    return {
        "pages": s.pages_indexed,
        "chunks_embedded": s.chunks_embedded,
        "chunks_total": s.chunks_total,
        "seconds": wall,
        "embed_seconds": s.embed_seconds,
        "peak_rss_mb": _peak_mb(),
    }


def phase_baseline(data_dir: str, snapshot: str) -> dict:
    from qdrant_client import QdrantClient

    from bench.baseline import BaselineIndex, count_pages
    from retrieval.embeddings import load_embedder

    t0 = time.perf_counter()
    client = QdrantClient(path=str(Path(data_dir) / "baseline"))
    pages = count_pages(Path(snapshot))
    n = BaselineIndex(client, load_embedder("all-MiniLM-L6-v2")).build(Path(snapshot))
    wall = time.perf_counter() - t0
    client.close()
    return {
        "pages": pages,
        "chunks_embedded": n,
        "chunks_total": n,
        "seconds": wall,
        "embed_seconds": None,
        "peak_rss_mb": _peak_mb(),
    }


def _run_phase(name: str, data_dir: str, snapshot: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--data-dir", data_dir, "--snapshot", snapshot],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot", default=str(ROOT / "ingest" / "snapshot"))
    ap.add_argument("--phase", choices=["govchat", "baseline"])
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    if args.phase:
        fn = phase_govchat if args.phase == "govchat" else phase_baseline
        print(json.dumps(fn(args.data_dir, args.snapshot)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "govchat_scratch": _run_phase("govchat", tmp, args.snapshot),
            "govchat_unchanged": _run_phase("govchat", tmp, args.snapshot),
            "baseline_scratch": _run_phase("baseline", tmp, args.snapshot),
        }
    print(
        f"{'run':<20}{'pages':>7}{'embedded':>10}{'secs':>8}{'pages/s':>9}{'chunks/s':>10}"
        f"{'embed%':>8}{'peakMB':>8}"
    )
    for name, r in results.items():
        emb = f"{100 * r['embed_seconds'] / r['seconds']:.0f}%" if r["embed_seconds"] else "-"
        cps = r["chunks_embedded"] / r["seconds"]
        print(
            f"{name:<20}{r['pages']:>7}{r['chunks_embedded']:>10}{r['seconds']:>8.1f}"
            f"{r['pages'] / r['seconds']:>9.1f}{cps:>10.1f}{emb:>8}{r['peak_rss_mb']:>8.0f}"
        )
    g, b = results["govchat_scratch"], results["baseline_scratch"]
    results["ratios"] = {
        "scratch_seconds_govchat_over_baseline": g["seconds"] / b["seconds"],
        "unchanged_seconds_over_scratch": results["govchat_unchanged"]["seconds"] / g["seconds"],
        "peak_rss_govchat_over_baseline": g["peak_rss_mb"] / b["peak_rss_mb"],
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
