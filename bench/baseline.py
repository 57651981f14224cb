"""The yardstick: the pipeline a team builds first from the LangChain tutorials.

Whole page text -> RecursiveCharacterTextSplitter(1000 chars, 200 overlap) -> all-MiniLM-L6-v2
-> one dense Qdrant collection -> top-k by cosine. Our figures are reported beside this one,
measured in the same run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from bs4 import BeautifulSoup
from qdrant_client import QdrantClient, models

COLLECTION = "baseline_chunks"


def page_texts(snapshot: Path) -> list[tuple[str, str]]:
    """(url path, plain text) per page or guide part, as a tutorial loader would give them."""
    out = []
    for f in sorted((snapshot / "content").glob("*.json")):
        item = json.loads(f.read_text())
        if item.get("locale", "en") != "en" or item.get("withdrawn_notice"):
            continue
        details = item.get("details") or {}
        parts = details.get("parts") or []
        if parts:
            for i, part in enumerate(parts):
                path = item["base_path"] + ("" if i == 0 else "/" + part.get("slug", ""))
                html = part.get("body") or ""
                text = BeautifulSoup(html, "lxml").get_text("\n") if html else ""
                out.append((path, f"{item['title']}: {part.get('title', '')}\n{text}"))
        else:
            body = details.get("body") or ""
            if isinstance(body, list):
                body = " ".join(b.get("content", "") for b in body)
            text = BeautifulSoup(body, "lxml").get_text("\n") if body else ""
            out.append((item["base_path"], f"{item['title']}\n{text}"))
    return out


def count_pages(snapshot: Path) -> int:
    return sum(
        1
        for f in (snapshot / "content").glob("*.json")
        if (item := json.loads(f.read_text())).get("locale", "en") == "en"
        and not item.get("withdrawn_notice")
    )


def split(pages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    return [(path, chunk) for path, text in pages for chunk in splitter.split_text(text)]


class BaselineIndex:
    def __init__(self, client: QdrantClient, embedder) -> None:
        self.client = client
        self.embedder = embedder

    def build(self, snapshot: Path) -> int:
        chunks = split(page_texts(snapshot))
        if self.client.collection_exists(COLLECTION):
            self.client.delete_collection(COLLECTION)
        self.client.create_collection(
            COLLECTION,
            vectors_config=models.VectorParams(
                size=self.embedder.dimension, distance=models.Distance.COSINE
            ),
        )
        vectors = self.embedder.embed([c for _, c in chunks])
        self.client.upsert(
            COLLECTION,
            points=[
                models.PointStruct(
                    id=str(uuid.uuid4()),
                    vector=list(map(float, v)),
                    payload={"exact_path": p, "text": c},
                )
                for (p, c), v in zip(chunks, vectors, strict=True)
            ],
        )
        return len(chunks)

    def search(self, query: str, k: int = 4) -> list[dict]:
        vec = self.embedder.embed([query])[0]
        hits = self.client.query_points(
            COLLECTION, query=list(map(float, vec)), limit=k, with_payload=True
        ).points
        return [
            {"exact_path": h.payload["exact_path"], "text": h.payload["text"], "score": h.score}
            for h in hits
        ]
