"""Typed records of the ingest pipeline: fetch -> parse -> chunk -> embed -> store."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

# Namespace for deterministic chunk ids (uuid5): the same page section always gets the same id,
# so an interrupted run that is re-run overwrites instead of duplicating.
CHUNK_ID_NAMESPACE = uuid.UUID("6f1f3f7e-2c4b-4f51-9a55-6a0c1d9b7e21")

GOVUK_WEB_ROOT = "https://www.gov.uk"


# ---------------------------------------------------------------- fetch


@dataclass(frozen=True)
class Fetched:
    """A content item (Content API JSON) fetched for a base path."""

    base_path: str
    item: dict[str, Any]
    kind: Literal["fetched"] = "fetched"


@dataclass(frozen=True)
class Gone:
    """The page no longer exists (HTTP 404/410): its chunks must be deleted."""

    base_path: str
    status: int
    kind: Literal["gone"] = "gone"


@dataclass(frozen=True)
class Failed:
    """The page could not be fetched or decoded; existing chunks are kept, the error reported."""

    base_path: str
    error: str
    kind: Literal["failed"] = "failed"


FetchResult = Fetched | Gone | Failed


# ---------------------------------------------------------------- parse


@dataclass(frozen=True)
class Skip:
    """A content item that is deliberately not indexed (its existing chunks are deleted)."""

    base_path: str
    reason: str  # e.g. "locale:cy", "withdrawn", "document_type:redirect", "empty_body"


@dataclass
class Section:
    """A run of page content under one heading (or the page intro, before any heading).

    `blocks` are readable plain-text blocks in document order (a paragraph, a whole list
    rendered with "- " bullets, a table row, ...): the chunker may split between blocks, never
    inside one, except when one block alone exceeds the token budget.
    """

    path: str  # the URL path the section is shown at: base_path or base_path/part-slug
    heading_trail: list[str]  # e.g. ["Eligibility", "If you're an agency worker"]; [] for intro
    heading_id: str | None  # anchor of the deepest heading; None for the intro of a page/part
    blocks: list[str] = field(default_factory=list)


@dataclass
class ParsedPage:
    """A content item reduced to what retrieval needs."""

    base_path: str
    content_id: str
    title: str
    description: str
    document_type: str
    schema_name: str
    locale: str
    public_updated_at: str | None
    updated_at: str | None
    sections: list[Section]


# ---------------------------------------------------------------- chunk


def chunk_id_for(exact_path: str, ordinal: int) -> str:
    """Stable id for the `ordinal`-th chunk cited at `exact_path` (path#anchor)."""
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{exact_path}|{ordinal}"))


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Chunk:
    chunk_id: str
    content_id: str
    base_path: str
    exact_path: str  # base_path[/part-slug][#heading-id]
    url: str  # https://www.gov.uk + exact_path
    title: str
    description: str
    document_type: str
    schema_name: str
    heading_trail: list[str]
    text: str  # the section text shown to a reader / the LLM
    embed_text: str  # title + heading trail + text (+ description on a page's first chunk)
    digest: str  # sha256 of embed_text: a changed digest means re-embed
    token_count: int  # embedding-model word pieces in embed_text (incl. special tokens)
    public_updated_at: str | None = None
    updated_at: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "content_id": self.content_id,
            "base_path": self.base_path,
            "exact_path": self.exact_path,
            "url": self.url,
            "title": self.title,
            "description": self.description,
            "document_type": self.document_type,
            "schema_name": self.schema_name,
            "heading_trail": list(self.heading_trail),
            "text": self.text,
            "digest": self.digest,
            "token_count": self.token_count,
            "public_updated_at": self.public_updated_at,
            "updated_at": self.updated_at,
        }
