"""BM25 sparse vectors for Qdrant.

Tokenisation, stop words and stemming come from kept libraries (bm25s's default splitter and
English stop words, PyStemmer's Snowball English stemmer). Documents carry the BM25
term-frequency part; Qdrant supplies the IDF through the sparse vector's `Modifier.IDF`, so
adding or removing pages never requires re-encoding the others. Token ids are CRC32 hashes of
the stemmed token, stable across runs and processes.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

from qdrant_client import models

# bm25s's default token pattern (words of two or more word characters), plus single digits so
# that "Class 4" or "Plan 2" keep their number.
_TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b|\b\d\b")


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]

    def to_qdrant(self) -> models.SparseVector:
        return models.SparseVector(indices=self.indices, values=self.values)


class Bm25Encoder:
    """Encode documents and queries with the same analysis (split, lower-case, stop, stem)."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_doc_len: float = 120.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_doc_len = avg_doc_len

    @cached_property
    def _stopwords(self) -> frozenset[str]:
        from bm25s.stopwords import STOPWORDS_EN_PLUS

        return frozenset(STOPWORDS_EN_PLUS)

    @cached_property
    def _stemmer(self):
        import Stemmer

        return Stemmer.Stemmer("english")

    def analyse(self, text: str) -> list[str]:
        words = [w for w in _TOKEN_PATTERN.findall(text.lower()) if w not in self._stopwords]
        return self._stemmer.stemWords(words)

    @staticmethod
    def token_id(token: str) -> int:
        return zlib.crc32(token.encode("utf-8"))

    def _counts(self, text: str) -> Counter[int]:
        return Counter(self.token_id(t) for t in self.analyse(text))

    def encode_document(self, text: str) -> SparseVector:
        counts = self._counts(text)
        doc_len = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * doc_len / self.avg_doc_len)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices, values)

    def encode_documents(self, texts: list[str]) -> list[SparseVector]:
        return [self.encode_document(t) for t in texts]

    def encode_query(self, text: str) -> SparseVector:
        # Each distinct query term counts once; Qdrant multiplies by the document weight and IDF.
        indices = sorted(set(self._counts(text)))
        return SparseVector(indices, [1.0] * len(indices))
