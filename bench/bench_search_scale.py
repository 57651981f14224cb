"""Benchmark: hybrid query latency, open time and memory as the collection grows (local mode).

    .venv/bin/python bench/bench_search_scale.py [--sizes 3731,10000,100000] [--queries 50]

For each size, two processes run one after the other, so each peak RSS is its own:

* build: an on-disk local-mode collection of that many chunks in a temp dir. The size of the
  real index is a plain copy of it; other sizes are the real chunks repeated with new ids,
  dense vectors with a little gaussian noise (renormalised), the same BM25 sparse vectors and a
  base path made unique per copy ("/copy-N"), so per-page caps behave as with distinct pages.
  Written with ChunkStore.ensure_collection + upsert in batches.
* search: a fresh process opens the collection (local mode loads every point into memory:
  "open s"), loads the real embedder, warms up with 3 queries, then times N business queries
  through HybridRetriever.search(q, k=5) with the app's default retrieval settings. "embed" is
  the query embedding alone, "search" the rest of the call (BM25 query encoding, Qdrant query,
  fusion, weights, per-page cap) and "total" the whole call.

The source index is read from a private copy (a local-mode folder can be opened by one process
only). Prints a table and one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLLECTION = "govuk_chunks"
NOISE_SIGMA = 0.01  # per dimension; |noise| ~ 0.2 on a unit 384-d vector, cosine to source ~0.98
BATCH = 500

QUERIES = [
    "How much is statutory sick pay and how long is it paid for?",
    "What is the national minimum wage for 18 year olds?",
    "I lost my P45, how do I get a replacement?",
    "When do I pay Class 4 National Insurance as a self-employed person?",
    "How many days of holiday is a part-time worker entitled to?",
    "Do I need to register for VAT and what is the threshold?",
    "How do I register as self-employed with HMRC?",
    "What is the deadline for filing a Self Assessment tax return online?",
    "How do I set up payroll as a new employer?",
    "What are the rules for statutory maternity pay?",
    "Can I claim paternity leave if I am self-employed?",
    "How much redundancy pay is an employee entitled to?",
    "What records must a limited company keep?",
    "How do I close a limited company?",
    "What expenses can a sole trader claim against tax?",
    "Do I need a licence to sell alcohol?",
    "How does auto-enrolment into a workplace pension work for employers?",
    "What is the employment allowance and who can claim it?",
    "How do I check if someone has the right to work in the UK?",
    "What is IR35 and does it apply to my contract?",
    "How do I pay Corporation Tax and when is it due?",
    "How much notice must I give an employee before dismissal?",
    "What is the penalty for filing a VAT return late?",
    "How do I apply for a business rates relief for a small business?",
    "What counts as a working week for the Working Time Regulations?",
    "Can my employer deduct money from my wages?",
    "What is the current Class 2 National Insurance rate?",
    "How do I get a P60 at the end of the tax year?",
    "What is shared parental leave and how is it split?",
    "How do I report a change to my business address to Companies House?",
    "What is the flat rate VAT scheme?",
    "How do I claim capital allowances on equipment?",
    "Do I have to give my staff written terms of employment?",
    "What happens if I pay my employees below the minimum wage?",
    "How do I apply for an EORI number to import goods?",
    "What are the rules on rest breaks at work?",
    "How do I make a claim to an employment tribunal?",
    "What is the tax-free personal allowance this year?",
    "How do I pay a tax bill by bank transfer?",
    "Can I employ a child in my shop at weekends?",
    "What is the apprenticeship levy and who pays it?",
    "How do I register a trade mark for my business name?",
    "What is Making Tax Digital for income tax?",
    "How do I claim tax relief for working from home?",
    "What sick pay do I get if I am off work for four days?",
    "How do I appeal a tax penalty from HMRC?",
    "What are the health and safety duties of a small employer?",
    "How do I report an employee's pay to HMRC in real time?",
    "What is statutory adoption pay?",
    "How do I get a National Insurance number?",
]
WARMUP = [
    "How do I start a business?",
    "Tax on dividends",
    "Employer responsibilities for pensions",
]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    s = sorted(values)
    return 1000 * s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


# ---------------------------------------------------------------- phases (own processes)


def phase_build(source: str, target: str, size: int) -> dict:
    import numpy as np
    from qdrant_client import QdrantClient

    from retrieval.sparse import SparseVector
    from retrieval.store import ChunkStore

    t0 = time.perf_counter()
    src = QdrantClient(path=source)
    n_real = src.count(COLLECTION, exact=True).count
    if size == n_real:
        src.close()
        shutil.copytree(source, target)
        return {
            "method": "copy",
            "points": size,
            "build_seconds": time.perf_counter() - t0,
            "build_peak_rss_mb": _peak_mb(),
            "disk_mb": _disk_mb(Path(target)),
        }
    points, offset = [], None
    while True:
        batch, offset = src.scroll(
            COLLECTION, limit=1024, offset=offset, with_payload=True, with_vectors=True
        )
        points.extend(batch)
        if offset is None:
            break
    src.close()
    load_seconds = time.perf_counter() - t0

    rng = np.random.default_rng(20241124)
    client = QdrantClient(path=target)
    store = ChunkStore(client, COLLECTION)
    store.ensure_collection(len(points[0].vector["dense"]))
    base = np.asarray([p.vector["dense"] for p in points], dtype=np.float32)
    sparse = [
        SparseVector(list(p.vector["bm25"].indices), list(p.vector["bm25"].values)) for p in points
    ]
    cosines: list[float] = []
    t1 = time.perf_counter()
    for start in range(0, size, BATCH):
        seq = range(start, min(size, start + BATCH))
        copies = [i // len(points) for i in seq]
        rows = [i % len(points) for i in seq]
        dense = base[rows]
        ids, payloads = [], []
        for c, r in zip(copies, rows, strict=True):
            p = points[r]
            if c == 0:
                ids.append(str(p.id))
                payloads.append(p.payload)
                continue
            suffix = f"/copy-{c}"
            payload = dict(p.payload)
            payload["chunk_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.id}{suffix}"))
            payload["base_path"] = payload["base_path"] + suffix
            page, _, anchor = payload["exact_path"].partition("#")
            payload["exact_path"] = page + suffix + (f"#{anchor}" if anchor else "")
            payload["url"] = "https://www.gov.uk" + payload["exact_path"]
            ids.append(payload["chunk_id"])
            payloads.append(payload)
        noisy = np.asarray([c > 0 for c in copies])
        if noisy.any():
            perturbed = dense[noisy] + rng.normal(0, NOISE_SIGMA, dense[noisy].shape)
            perturbed /= np.linalg.norm(perturbed, axis=1, keepdims=True)
            cosines.extend(np.sum(perturbed * dense[noisy], axis=1).tolist())
            dense = dense.copy()
            dense[noisy] = perturbed
        store.upsert(ids, payloads, dense.tolist(), [sparse[r] for r in rows])
        done = seq.stop
        if done % 10_000 < BATCH or done == size:
            rate = done / (time.perf_counter() - t1)
            print(f"  built {done}/{size} ({rate:.0f} points/s)", file=sys.stderr, flush=True)
    count = store.count()
    client.close()
    return {
        "method": "upsert",
        "points": count,
        "build_seconds": time.perf_counter() - t0,
        "source_load_seconds": load_seconds,
        "upsert_seconds": time.perf_counter() - t1,
        "noise_cosine_mean": statistics.fmean(cosines) if cosines else None,
        "build_peak_rss_mb": _peak_mb(),
        "disk_mb": _disk_mb(Path(target)),
    }


def phase_search(target: str, n_queries: int, budget: float) -> dict:
    from qdrant_client import QdrantClient

    from govchat.settings import Settings
    from retrieval.search import HybridRetriever, RetrievalConfig
    from retrieval.sparse import Bm25Encoder
    from retrieval.store import DENSE, SPARSE, ChunkStore

    rss_start = _rss_mb()
    t0 = time.perf_counter()
    client = QdrantClient(path=target)  # local mode reads every point into memory here
    store = ChunkStore(client, COLLECTION)
    points = store.count()
    open_seconds = time.perf_counter() - t0
    rss_open = _rss_mb()

    from retrieval.embeddings import load_embedder

    t1 = time.perf_counter()
    embedder = load_embedder("all-MiniLM-L6-v2")
    embedder_seconds = time.perf_counter() - t1
    rss_embedder = _rss_mb()

    embed_times: list[float] = []

    class TimedEmbedder:
        name, dimension, max_tokens = embedder.name, embedder.dimension, embedder.max_tokens

        def embed(self, texts: list[str]):
            t = time.perf_counter()
            out = embedder.embed(texts)
            embed_times.append(time.perf_counter() - t)
            return out

    settings = Settings(_env_file=None)
    retriever = HybridRetriever(
        store,
        TimedEmbedder(),
        Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len),
        RetrievalConfig.from_settings(settings),
    )
    for q in WARMUP:
        retriever.search(q, k=5)
    embed_times.clear()

    totals: list[float] = []
    pages: list[int] = []
    started = time.perf_counter()
    for q in (QUERIES * (n_queries // len(QUERIES) + 1))[:n_queries]:
        t = time.perf_counter()
        results = retriever.search(q, k=5)
        totals.append(time.perf_counter() - t)
        pages.append(len({r.base_path for r in results}))
        if time.perf_counter() - started > budget:
            break  # keep the whole run bounded on large collections
    # The two retrievers alone (no payloads), to split the Qdrant cost: dense scoring is a numpy
    # matrix product, sparse scoring a Python loop over every stored sparse vector.
    dense_only: list[float] = []
    sparse_only: list[float] = []
    bm25 = Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len)
    for q in QUERIES[: min(10, len(totals))]:
        dq = [float(x) for x in embedder.embed([q])[0]]
        t = time.perf_counter()
        client.query_points(COLLECTION, query=dq, using=DENSE, limit=settings.retrieval_prefetch)
        dense_only.append(time.perf_counter() - t)
        sq = bm25.encode_query(q).to_qdrant()
        t = time.perf_counter()
        client.query_points(COLLECTION, query=sq, using=SPARSE, limit=settings.retrieval_prefetch)
        sparse_only.append(time.perf_counter() - t)
    client.close()
    searches = [t - e for t, e in zip(totals, embed_times, strict=True)]
    return {
        "points": points,
        "open_seconds": open_seconds,
        "embedder_load_seconds": embedder_seconds,
        "queries": len(totals),
        "embed_p50_ms": _pct(embed_times, 50),
        "embed_p95_ms": _pct(embed_times, 95),
        "search_p50_ms": _pct(searches, 50),
        "search_p95_ms": _pct(searches, 95),
        "total_p50_ms": _pct(totals, 50),
        "total_p95_ms": _pct(totals, 95),
        "dense_only_p50_ms": _pct(dense_only, 50),
        "sparse_only_p50_ms": _pct(sparse_only, 50),
        "mean_pages_in_top5": statistics.fmean(pages),
        "loadavg_1min_at_end": os.getloadavg()[0],
        "rss_after_open_mb": rss_open,
        "rss_open_delta_mb": rss_open - rss_start,
        "rss_after_embedder_mb": rss_embedder,
        "search_peak_rss_mb": _peak_mb(),
    }


# ---------------------------------------------------------------- driver


def _run(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3731,10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--source", default=str(ROOT / ".govchat" / "qdrant"))
    ap.add_argument(
        "--budget", type=float, default=300.0, help="Max seconds of timed queries per size."
    )
    ap.add_argument("--phase", choices=["build", "search"])
    ap.add_argument("--target")
    ap.add_argument("--size", type=int)
    args = ap.parse_args()
    if args.phase == "build":
        print(json.dumps(phase_build(args.source, args.target, args.size)))
        return
    if args.phase == "search":
        print(json.dumps(phase_search(args.target, args.queries, args.budget)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="govchat-scale-") as tmp:
        source = Path(tmp) / "source"
        shutil.copytree(args.source, source)  # the live folder may be locked by another process
        (source / ".lock").unlink(missing_ok=True)
        for size in sizes:
            target = Path(tmp) / f"n{size}"
            print(f"size {size}: build", file=sys.stderr, flush=True)
            build = _run(
                "--phase",
                "build",
                "--source",
                str(source),
                "--target",
                str(target),
                "--size",
                str(size),
            )
            print(f"size {size}: search", file=sys.stderr, flush=True)
            search = _run(
                "--phase",
                "search",
                "--target",
                str(target),
                "--queries",
                str(args.queries),
                "--budget",
                str(args.budget),
            )
            results[str(size)] = {**build, **search}
            shutil.rmtree(target)

    print(
        f"{'chunks':>8}{'build s':>9}{'disk MB':>9}{'open s':>8}{'embed p50/p95':>15}"
        f"{'search p50/p95':>16}{'total p50/p95':>15}{'dense':>7}{'sparse':>8}"
        f"{'open RSS+':>10}{'peak RSS':>10}"
    )
    for r in results.values():
        print(
            f"{r['points']:>8}{r['build_seconds']:>9.1f}{r['disk_mb']:>9.0f}"
            f"{r['open_seconds']:>8.1f}"
            f"{r['embed_p50_ms']:>8.0f}/{r['embed_p95_ms']:<6.0f}"
            f"{r['search_p50_ms']:>9.0f}/{r['search_p95_ms']:<6.0f}"
            f"{r['total_p50_ms']:>8.0f}/{r['total_p95_ms']:<6.0f}"
            f"{r['dense_only_p50_ms']:>7.0f}{r['sparse_only_p50_ms']:>8.0f}"
            f"{r['rss_open_delta_mb']:>10.0f}{r['search_peak_rss_mb']:>10.0f}"
        )
    print(
        "(latencies in ms; dense/sparse = p50 of one dense-only / sparse-only Qdrant query;"
        " 'open RSS+' = memory added by opening the collection, MB)"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
