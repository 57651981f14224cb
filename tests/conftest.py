"""Shared fixtures. Fakes live only at boundaries (the embedding model in fast tests)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from govchat.settings import BUNDLED_SNAPSHOT, Settings

SNAPSHOT = BUNDLED_SNAPSHOT


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder; records every text it embeds."""

    name = "fake-hashing"
    dimension = 64
    max_tokens = 256

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dimension] += 1.0
            n = np.linalg.norm(out[row])
            out[row] = out[row] / n if n else out[row]
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", collection="test_chunks")


@pytest.fixture
def snapshot_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled snapshot (tests edit and remove pages in it)."""
    dest = tmp_path / "snapshot"
    shutil.copytree(SNAPSHOT, dest)
    return dest
