"""Factories that wire settings into components (used by the CLI, the API lifespan and tests)."""

from __future__ import annotations

from collections.abc import Callable

from govchat.settings import Settings
from ingest.indexer import Indexer
from retrieval.sparse import Bm25Encoder
from retrieval.store import ChunkStore, make_client


class StoreUnavailable(RuntimeError):
    pass


def open_store(settings: Settings) -> ChunkStore:
    try:
        client = make_client(settings)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreUnavailable(
                f"the local index at {settings.qdrant_path} is open in another process "
                "(for example `govchat serve`); stop it first, or run Qdrant as a server and set "
                "GOVCHAT_QDRANT_URL"
            ) from exc
        raise
    return ChunkStore(client, settings.collection)


def build_indexer(
    settings: Settings, store: ChunkStore, progress: Callable[[str], None] | None = None
) -> Indexer:
    from ingest.tokens import load_token_counter
    from retrieval.embeddings import load_embedder, resolve_model_dir

    model_dir = resolve_model_dir(settings.embedding_model)
    return Indexer(
        store,
        embedder_factory=lambda: load_embedder(
            settings.embedding_model, batch_size=settings.embedding_batch_size
        ),
        count_tokens=load_token_counter(model_dir),
        bm25=Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len),
        max_tokens=settings.chunk_max_tokens,
        min_tokens=settings.chunk_min_tokens,
        progress=progress,
    )


def build_retriever(settings: Settings, store: ChunkStore, embedder=None):
    """The hybrid retriever with the configured embedding model and retrieval settings."""
    from retrieval.embeddings import load_embedder
    from retrieval.search import HybridRetriever, RetrievalConfig

    return HybridRetriever(
        store,
        embedder
        or load_embedder(settings.embedding_model, batch_size=settings.embedding_batch_size),
        Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len),
        RetrievalConfig.from_settings(settings),
    )
