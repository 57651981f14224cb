"""The project's local embedding model (all-MiniLM-L6-v2, bundled) behind ragas 0.4's modern
embeddings interface, so ragas metrics that need embeddings run offline with no download."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from retrieval.embeddings import Embedder


def ragas_embeddings(embedder: Embedder) -> Any:
    """A `ragas.embeddings.base.BaseRagasEmbedding` that embeds with `embedder`."""
    from evaluation.ragas_compat import prepare_ragas

    prepare_ragas()
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalEmbeddings(BaseRagasEmbedding):
        """Normalised sentence embeddings from the local model (thread-safe reads)."""

        def __init__(self) -> None:
            super().__init__(cache=None)
            self.embedder = embedder

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_texts([text])[0]

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            vectors = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
            return vectors.tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return await asyncio.to_thread(self.embed_text, text)

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

    return LocalEmbeddings()
