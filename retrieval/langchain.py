"""LangChain adapter: the hybrid retriever as a `BaseRetriever`, so it plugs into chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from retrieval.search import HybridRetriever


class GovukRetriever(BaseRetriever):
    """Each result becomes a Document: page_content = section text, metadata = payload + scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: HybridRetriever
    k: int = 5
    search_kwargs: dict[str, Any] = {}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        results = self.retriever.search(query, self.k, **self.search_kwargs)
        return [
            Document(
                id=r.chunk_id,
                page_content=r.text,
                metadata={
                    "chunk_id": r.chunk_id,
                    "url": r.url,
                    "exact_path": r.exact_path,
                    "base_path": r.base_path,
                    "title": r.title,
                    "heading_trail": r.heading_trail,
                    "document_type": r.document_type,
                    "score": r.score,
                    "stages": r.as_dict()["stages"],
                },
            )
            for r in results
        ]
