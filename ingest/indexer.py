"""Incremental indexing: fetch -> parse -> chunk -> (embed only what changed) -> upsert -> delete.

Why it converges after a crash: chunk ids are deterministic (uuid5 of the cited path and an
ordinal), each page's new and changed chunks are upserted *before* its stale chunks are deleted,
and every run compares the pages it sees with what the collection actually holds. Re-running
after a kill therefore overwrites half-written points, removes orphans and skips what is done.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.chunk import chunk_page
from ingest.parse import parse_content_item
from ingest.sources import PageSource
from ingest.types import Chunk, Failed, Gone, Skip, digest_of
from retrieval.embeddings import Embedder
from retrieval.sparse import Bm25Encoder
from retrieval.store import ChunkStore, StoredChunk

log = logging.getLogger(__name__)

# Read back from the collection for each stored chunk when planning a run.
_STORED_FIELDS = ("base_path", "digest", "payload_digest", "exact_path")


def _payload(chunk: Chunk) -> dict[str, Any]:
    """The chunk's payload plus a digest of it, so metadata changes are cheap to detect."""
    payload = chunk.payload()
    payload["payload_digest"] = digest_of(json.dumps(payload, sort_keys=True, default=str))
    return payload


@dataclass
class PageChange:
    base_path: str
    action: str  # "add" | "update" | "delete" | "skip"
    reason: str | None = None
    added: list[str] = field(default_factory=list)  # exact paths
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"base_path": self.base_path, "action": self.action}
        if self.reason:
            d["reason"] = self.reason
        for key in ("added", "updated", "deleted"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


@dataclass
class IndexSummary:
    source: str = ""
    dry_run: bool = False
    pages_seen: int = 0
    pages_indexed: int = 0  # fetched, parsed and holding chunks in the collection
    pages_changed: int = 0
    pages_skipped: int = 0
    pages_deleted: int = 0
    pages_failed: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_unchanged: int = 0
    chunks_deleted: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    changes: list[PageChange] = field(default_factory=list)

    def as_dict(self, *, with_changes: bool = True) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("changes", "skip_reasons")}
        d["seconds"] = round(self.seconds, 3)
        d["embed_seconds"] = round(self.embed_seconds, 3)
        d["skip_reasons"] = dict(sorted(self.skip_reasons.items()))
        if with_changes:
            d["changes"] = [c.as_dict() for c in self.changes]
        return d


@dataclass
class _Pending:
    chunks: list[Chunk]  # to embed and upsert
    refresh: list[Chunk]  # unchanged text, changed metadata
    stale_ids: list[str]  # to delete once the new points are written


class Indexer:
    """Index pages from a source into the chunk store, embedding only what changed."""

    def __init__(
        self,
        store: ChunkStore,
        *,
        embedder_factory: Callable[[], Embedder],
        count_tokens: Callable[[str], int],
        bm25: Bm25Encoder,
        max_tokens: int = 256,
        min_tokens: int = 48,
        batch_size: int = 64,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self.count_tokens = count_tokens
        self.bm25 = bm25
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.batch_size = batch_size
        self.progress = progress or (lambda _path: None)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_factory()
            self.store.ensure_collection(self._embedder.dimension)
        return self._embedder

    # ------------------------------------------------------------------ run

    def run(
        self,
        source: PageSource,
        *,
        dry_run: bool = False,
        prune: bool | None = None,
        paths: list[str] | None = None,
    ) -> IndexSummary:
        started = time.perf_counter()
        summary = IndexSummary(source=source.description, dry_run=dry_run)
        stored_by_page: dict[str, dict[str, StoredChunk]] = {}
        for sc in self.store.stored_chunks(fields=_STORED_FIELDS):
            stored_by_page.setdefault(sc.base_path, {})[sc.chunk_id] = sc

        if paths is None:
            paths = source.list_paths()
        summary.pages_seen = len(paths)
        seen: set[str] = set()
        pending: list[_Pending] = []

        for path in paths:
            self.progress(path)
            result = source.fetch(path)
            if isinstance(result, Failed):
                summary.pages_failed += 1
                summary.errors.append({"base_path": path, "error": result.error})
                seen.add(path)  # keep what is stored: a transient failure is not a deletion
                continue
            if isinstance(result, Gone):
                self._delete_page(path, f"http_{result.status}", stored_by_page, summary, dry_run)
                continue
            try:
                parsed = parse_content_item(result.item)
            except (ValueError, TypeError, KeyError) as exc:
                summary.pages_failed += 1
                summary.errors.append({"base_path": path, "error": f"unparseable item: {exc}"})
                seen.add(path)
                continue
            base_path = parsed.base_path
            if base_path != path:
                # Redirected to a canonical path: what was stored under the old path goes.
                self._delete_page(path, "moved", stored_by_page, summary, dry_run)
            if base_path in seen:
                continue
            seen.add(base_path)
            if isinstance(parsed, Skip):
                summary.pages_skipped += 1
                summary.skip_reasons[parsed.reason] += 1
                self._delete_page(base_path, parsed.reason, stored_by_page, summary, dry_run)
                continue
            try:
                chunks = chunk_page(parsed, self.count_tokens, self.max_tokens, self.min_tokens)
            except ValueError as exc:
                summary.pages_failed += 1
                summary.errors.append({"base_path": base_path, "error": f"chunking: {exc}"})
                continue
            if not chunks:
                summary.pages_skipped += 1
                summary.skip_reasons["empty_body"] += 1
                self._delete_page(base_path, "empty_body", stored_by_page, summary, dry_run)
                continue
            plan = self._plan_page(base_path, chunks, stored_by_page.pop(base_path, {}), summary)
            summary.pages_indexed += 1
            if not dry_run and (plan.chunks or plan.refresh or plan.stale_ids):
                pending.append(plan)
                if sum(len(p.chunks) for p in pending) >= self.batch_size:
                    self._flush(pending, summary)
                    pending = []
        if pending:
            self._flush(pending, summary)

        if prune if prune is not None else source.complete:
            for base_path in sorted(set(stored_by_page) - seen):
                self._delete_page(base_path, "not_in_source", stored_by_page, summary, dry_run)

        stored_before = self.store.count()
        summary.chunks_total = (
            stored_before + summary.chunks_added - summary.chunks_deleted
            if dry_run
            else stored_before
        )
        summary.seconds = time.perf_counter() - started
        return summary

    # ------------------------------------------------------------------ steps

    def _plan_page(
        self,
        base_path: str,
        chunks: list[Chunk],
        stored: dict[str, StoredChunk],
        summary: IndexSummary,
    ) -> _Pending:
        change = PageChange(base_path, "update" if stored else "add")
        to_write: list[Chunk] = []
        refresh: list[Chunk] = []
        new_ids = set()
        for chunk in chunks:
            new_ids.add(chunk.chunk_id)
            old = stored.get(chunk.chunk_id)
            if old is None:
                summary.chunks_added += 1
                change.added.append(chunk.exact_path)
                to_write.append(chunk)
            elif old.digest != chunk.digest:
                summary.chunks_updated += 1
                change.updated.append(chunk.exact_path)
                to_write.append(chunk)
            else:
                summary.chunks_unchanged += 1
                if old.payload.get("payload_digest") != _payload(chunk)["payload_digest"]:
                    refresh.append(chunk)
        stale = [cid for cid in stored if cid not in new_ids]
        for cid in stale:
            change.deleted.append(stored[cid].payload.get("exact_path", cid))
        summary.chunks_deleted += len(stale)
        if to_write or stale:
            summary.pages_changed += 1
            summary.changes.append(change)
        return _Pending(to_write, refresh, stale)

    def _flush(self, pending: list[_Pending], summary: IndexSummary) -> None:
        chunks = [c for p in pending for c in p.chunks]
        if chunks:
            t0 = time.perf_counter()
            dense = self.embedder.embed([c.embed_text for c in chunks])
            summary.embed_seconds += time.perf_counter() - t0
            sparse = self.bm25.encode_documents([c.embed_text for c in chunks])
            now = datetime.now(UTC).isoformat()
            payloads = [{**_payload(c), "indexed_at": now} for c in chunks]
            self.store.upsert([c.chunk_id for c in chunks], payloads, dense, sparse)
            summary.chunks_embedded += len(chunks)
        refresh = [(c.chunk_id, _payload(c)) for p in pending for c in p.refresh]
        if refresh:
            self.embedder  # noqa: B018 - make sure the collection exists and matches
            self.store.set_payloads(refresh)
        stale = [cid for p in pending for cid in p.stale_ids]
        self.store.delete_ids(stale)

    def _delete_page(
        self,
        base_path: str,
        reason: str,
        stored_by_page: dict[str, dict[str, StoredChunk]],
        summary: IndexSummary,
        dry_run: bool,
    ) -> None:
        stored = stored_by_page.pop(base_path, {})
        if not stored:
            return
        summary.pages_deleted += 1
        summary.chunks_deleted += len(stored)
        summary.changes.append(
            PageChange(
                base_path,
                "delete",
                reason,
                deleted=[s.payload.get("exact_path", s.chunk_id) for s in stored.values()],
            )
        )
        if not dry_run:
            self.store.delete_ids(list(stored))
