"""Hybrid search over the chunk collection, with every stage's score kept for inspection.

Stages (each can be switched off for ablations):
  1. candidates: dense (cosine on the sentence-transformers vector) and sparse (BM25 with
     Qdrant's IDF) prefetches, fused inside Qdrant by the Query API (RRF or DBSF);
  2. rescore (optional): the fused candidates re-ordered by their dense cosine;
  3. reranker: a cross-encoder slot, off (no reranking model ships offline);
  4. document-type weight multiplies the score; minimum scores drop weak candidates;
  5. per-page cap (by base path) so the top k covers several sections and pages.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from qdrant_client import models

from retrieval.embeddings import Embedder
from retrieval.sparse import Bm25Encoder
from retrieval.store import DENSE, SPARSE, ChunkStore

Mode = Literal["hybrid", "dense", "sparse"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


class InvalidQuery(ValueError):
    """The query cannot be searched; the message is fit to show the user."""


def clean_query(query: str, max_chars: int = 2000) -> str:
    """NFKC-normalise a query, drop control and invisible characters, or refuse it."""
    if not isinstance(query, str):
        raise InvalidQuery("the query must be text")
    if len(query) > max_chars * 4:
        raise InvalidQuery(f"the query is too long ({len(query)} characters; limit {max_chars})")
    text = unicodedata.normalize("NFKC", query)
    text = _CONTROL.sub(" ", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cs", "Co", "Cn"))
    text = " ".join(text.split())
    if not text:
        raise InvalidQuery("the query is empty")
    if len(text) > max_chars:
        raise InvalidQuery(f"the query is too long ({len(text)} characters; limit {max_chars})")
    if not any(ch.isalnum() for ch in text):
        raise InvalidQuery("the query has no letters or digits")
    return text


@dataclass
class RetrievalConfig:
    k: int = 5
    prefetch: int = 40
    mode: Mode = "hybrid"
    fusion: Literal["rrf", "dbsf"] = "rrf"
    rrf_k: int = 60
    sparse_weight: float = 1.0
    rescore: Literal["none", "dense"] = "none"
    reranker: Literal["none"] = "none"
    use_weights: bool = True
    document_type_weights: dict[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    # How strongly weights act: score * (1 + strength * (weight - 1)). RRF scores are nearly flat,
    # so full-strength weights (x2.0) outrank far better matches; see bench/RESULTS.md.
    weight_strength: float = 1.0
    max_per_page: int = 2
    cap_by: Literal["page", "base_path"] = "page"
    min_score: float = 0.0
    min_dense_score: float = 0.0
    max_query_chars: int = 2000
    # Also run the dense and BM25 queries on their own, to show each one's rank and score (the
    # search playground). Off, hybrid search is one fused query (dense cosine still computed).
    explain: bool = True

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> RetrievalConfig:
        cfg = cls(
            k=settings.retrieval_k,
            prefetch=settings.retrieval_prefetch,
            fusion=settings.retrieval_fusion,
            rrf_k=settings.retrieval_rrf_k,
            sparse_weight=settings.retrieval_sparse_weight,
            rescore=settings.retrieval_rescore,
            reranker=settings.retrieval_reranker,
            document_type_weights=dict(settings.document_type_weights),
            default_weight=settings.default_document_type_weight,
            weight_strength=settings.retrieval_weight_strength,
            max_per_page=settings.retrieval_max_per_page,
            min_score=settings.retrieval_min_score,
            min_dense_score=settings.retrieval_min_dense_score,
            max_query_chars=settings.max_query_chars,
        )
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg

    def weight(self, document_type: str) -> float:
        if not self.use_weights:
            return 1.0
        w = self.document_type_weights.get(document_type, self.default_weight)
        return 1.0 + self.weight_strength * (w - 1.0)


@dataclass
class StageScores:
    dense: float | None = None  # cosine similarity to the query
    dense_rank: int | None = None  # 1-based rank among dense candidates
    sparse: float | None = None  # BM25 score
    sparse_rank: int | None = None
    fused: float | None = None  # Qdrant's RRF/DBSF score
    rescored: float | None = None
    weight: float = 1.0
    final: float = 0.0


@dataclass
class SearchResult:
    chunk_id: str
    url: str
    exact_path: str
    base_path: str
    title: str
    heading_trail: list[str]
    document_type: str
    text: str
    score: float
    stages: StageScores
    payload: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def page_path(self) -> str:
        return self.exact_path.split("#", 1)[0]

    def as_dict(self, *, stages: bool = True) -> dict[str, Any]:
        d = {
            "chunk_id": self.chunk_id,
            "url": self.url,
            "exact_path": self.exact_path,
            "title": self.title,
            "heading_trail": self.heading_trail,
            "document_type": self.document_type,
            "score": round(self.score, 6),
            "text": self.text,
        }
        if stages:
            d["stages"] = {
                k: (round(v, 6) if isinstance(v, float) else v)
                for k, v in asdict(self.stages).items()
            }
        return d


class HybridRetriever:
    def __init__(
        self, store: ChunkStore, embedder: Embedder, bm25: Bm25Encoder, config: RetrievalConfig
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.bm25 = bm25
        self.config = config

    def search(self, query: str, k: int | None = None, **overrides: Any) -> list[SearchResult]:
        return self.search_many([query], k, **overrides)[0]

    def search_many(
        self, queries: list[str], k: int | None = None, **overrides: Any
    ) -> list[list[SearchResult]]:
        cfg = (
            self.config
            if not overrides
            else RetrievalConfig(**{**asdict(self.config), **overrides})
        )
        cleaned = [clean_query(q, cfg.max_query_chars) for q in queries]
        if not self.store.exists():
            return [[] for _ in cleaned]
        dense = self.embedder.embed(cleaned)
        return [self._search_one(q, dense[i], cfg, k or cfg.k) for i, q in enumerate(cleaned)]

    # ------------------------------------------------------------------ internals

    def _search_one(
        self, query: str, dense_vec: np.ndarray, cfg: RetrievalConfig, k: int
    ) -> list[SearchResult]:
        sparse_vec = self.bm25.encode_query(query)
        dense_q = [float(x) for x in dense_vec]
        n = max(cfg.prefetch, k)
        use_dense = cfg.mode in ("hybrid", "dense")
        use_sparse = cfg.mode in ("hybrid", "sparse") and bool(sparse_vec.indices)
        requests: list[models.QueryRequest] = []
        if use_dense and use_sparse:
            # RRF with an explicit k and list weights, so local mode and a server agree.
            fusion: models.Query = (
                models.RrfQuery(rrf=models.Rrf(k=cfg.rrf_k, weights=[1.0, cfg.sparse_weight]))
                if cfg.fusion == "rrf"
                else models.FusionQuery(fusion=models.Fusion.DBSF)
            )
            requests.append(
                models.QueryRequest(
                    prefetch=[
                        models.Prefetch(query=dense_q, using=DENSE, limit=n),
                        models.Prefetch(query=sparse_vec.to_qdrant(), using=SPARSE, limit=n),
                    ],
                    query=fusion,
                    limit=n,
                    with_payload=True,
                    with_vector=[DENSE],
                )
            )
        fused_only = use_dense and use_sparse and not cfg.explain
        if use_dense and not fused_only:
            requests.append(
                models.QueryRequest(
                    query=dense_q, using=DENSE, limit=n, with_payload=True, with_vector=[DENSE]
                )
            )
        if use_sparse and not fused_only:
            requests.append(
                models.QueryRequest(
                    query=sparse_vec.to_qdrant(),
                    using=SPARSE,
                    limit=n,
                    with_payload=True,
                    with_vector=[DENSE],
                )
            )
        if not requests:
            return []
        responses = self.store.client.query_batch_points(self.store.collection, requests=requests)
        if fused_only:
            candidates, dense_resp, sparse_resp = responses[0].points, [], []
        elif use_dense and use_sparse:
            candidates, dense_resp, sparse_resp = (r.points for r in responses)
        elif use_dense:
            candidates = dense_resp = responses[0].points
            sparse_resp = []
        else:
            candidates = sparse_resp = responses[0].points
            dense_resp = []
        dense_rank = {str(p.id): (i + 1, p.score) for i, p in enumerate(dense_resp)}
        sparse_rank = {str(p.id): (i + 1, p.score) for i, p in enumerate(sparse_resp)}
        qv = np.asarray(dense_q, dtype=np.float32)

        results: list[SearchResult] = []
        for point in candidates:
            pid = str(point.id)
            payload = point.payload or {}
            st = StageScores()
            if pid in dense_rank:
                st.dense_rank, st.dense = dense_rank[pid]
            else:
                st.dense = _cosine(qv, point.vector)
            if pid in sparse_rank:
                st.sparse_rank, st.sparse = sparse_rank[pid]
            st.fused = point.score
            score = point.score
            if cfg.rescore == "dense" and st.dense is not None:
                st.rescored = score = st.dense
            st.weight = cfg.weight(payload.get("document_type", ""))
            st.final = score * st.weight
            if st.dense is not None and st.dense < cfg.min_dense_score:
                continue
            if st.final < cfg.min_score:
                continue
            results.append(_result(pid, payload, st))
        results.sort(key=lambda r: r.score, reverse=True)
        return _cap_per_page(results, cfg.max_per_page, cfg.cap_by)[:k]


def _cosine(q: np.ndarray, vector: Any) -> float | None:
    if isinstance(vector, dict):
        vector = vector.get(DENSE)
    if vector is None:
        return None
    v = np.asarray(vector, dtype=np.float32)
    denom = float(np.linalg.norm(q) * np.linalg.norm(v))
    return float(q @ v) / denom if denom and not math.isnan(denom) else None


def _result(pid: str, payload: dict[str, Any], st: StageScores) -> SearchResult:
    return SearchResult(
        chunk_id=pid,
        url=payload.get("url", ""),
        exact_path=payload.get("exact_path", ""),
        base_path=payload.get("base_path", ""),
        title=payload.get("title", ""),
        heading_trail=list(payload.get("heading_trail") or []),
        document_type=payload.get("document_type", ""),
        text=payload.get("text", ""),
        score=st.final,
        stages=st,
        payload=payload,
    )


def _cap_per_page(results: list[SearchResult], cap: int, by: str = "page") -> list[SearchResult]:
    """At most `cap` chunks per page (a guide part counts as a page) or per base path."""
    if cap <= 0:
        return results
    seen: dict[str, int] = {}
    kept = []
    for r in results:
        key = r.page_path if by == "page" else r.base_path
        if seen.get(key, 0) < cap:
            seen[key] = seen.get(key, 0) + 1
            kept.append(r)
    return kept
