"""The Qdrant collection of GOV.UK chunks: schema, writes and the index's view of what is stored.

One code path serves Qdrant's embedded local mode (a folder under GOVCHAT_DATA_DIR) and a Qdrant
server or cluster (GOVCHAT_QDRANT_URL).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient, models

from govchat.settings import Settings
from retrieval.sparse import SparseVector

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "base_path": models.PayloadSchemaType.KEYWORD,
    "document_type": models.PayloadSchemaType.KEYWORD,
    "exact_path": models.PayloadSchemaType.KEYWORD,
}


class SchemaMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: str
    base_path: str
    digest: str
    payload: dict[str, Any]


def make_client(settings: Settings) -> QdrantClient:
    if settings.qdrant_url:
        return QdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            timeout=int(settings.qdrant_timeout),
        )
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))


class ChunkStore:
    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection

    # ------------------------------------------------------------ schema

    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def ensure_collection(self, dense_dim: int) -> None:
        """Create the collection (dense cosine + sparse BM25 with IDF) and payload indexes."""
        if self.exists():
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
            if dense is None or dense.size != dense_dim:
                have = dense.size if dense is not None else "none"
                raise SchemaMismatch(
                    f"collection {self.collection!r} has dense size {have}, the embedding model "
                    f"gives {dense_dim}; use another GOVCHAT_COLLECTION or `govchat index --reset`"
                )
            return
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE: models.VectorParams(size=dense_dim, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            # Local mode ignores payload indexes (and says so); create them anyway so the
            # schema is identical when the same code runs against a server.
            warnings.simplefilter("ignore", UserWarning)
            for field, schema in PAYLOAD_INDEXES.items():
                self.client.create_payload_index(self.collection, field, field_schema=schema)
        log.info("created collection %s (dense %d + sparse bm25)", self.collection, dense_dim)

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    # ------------------------------------------------------------ reads

    def count(self) -> int:
        if not self.exists():
            return 0
        return self.client.count(self.collection, exact=True).count

    def stored_chunks(self, fields: Sequence[str] = ("base_path", "digest")) -> list[StoredChunk]:
        """Every stored chunk's id, page and digest (scrolled, payload fields only)."""
        if not self.exists():
            return []
        out: list[StoredChunk] = []
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                limit=1024,
                offset=offset,
                with_payload=list({"base_path", "digest", *fields}),
                with_vectors=False,
            )
            for p in points:
                payload = p.payload or {}
                out.append(
                    StoredChunk(
                        str(p.id), payload.get("base_path", ""), payload.get("digest", ""), payload
                    )
                )
            if offset is None:
                return out

    # ------------------------------------------------------------ writes

    def upsert(
        self,
        ids: Sequence[str],
        payloads: Sequence[dict[str, Any]],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
    ) -> None:
        if not ids:
            return
        points = [
            models.PointStruct(
                id=i,
                payload=p,
                vector={DENSE: list(map(float, d)), SPARSE: s.to_qdrant()},
            )
            for i, p, d, s in zip(ids, payloads, dense, sparse, strict=True)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def set_payloads(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Refresh payloads (metadata changed, embedded text did not): no re-embedding."""
        ops = [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload=p, points=[i]))
            for i, p in items
        ]
        if ops:
            self.client.batch_update_points(self.collection, update_operations=ops, wait=True)

    def delete_ids(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(
                self.collection,
                points_selector=models.PointIdsList(points=list(ids)),
                wait=True,
            )
