"""The example-vector store and the recent-texts embedder (fakes at the model boundary)."""

from __future__ import annotations

import numpy as np

from retrieval.embeddings import RecentTextsEmbedder, embed_with_store


class CountingEmbedder:
    """Deterministic 4-d vectors from the text; records every text it was asked to embed."""

    def __init__(self, name: str = "fake-model") -> None:
        self.name = name
        self.dimension = 4
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.array(
            [[len(t), sum(map(ord, t)) % 97, t.count(" "), 1.0] for t in texts], dtype=np.float32
        )


def test_store_embeds_each_sentence_once_per_model(tmp_path):
    emb = CountingEmbedder()
    first = embed_with_store(emb, ["a b", "c"], tmp_path)
    assert emb.seen == ["a b", "c"]
    # another classifier's list that overlaps: only the new sentence is embedded
    second = embed_with_store(emb, ["c", "d e f", "a b"], tmp_path)
    assert emb.seen == ["a b", "c", "d e f"]
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])
    assert np.array_equal(second[1], emb.embed(["d e f"])[0])
    # a new process (nothing in memory) reads the file
    again = CountingEmbedder()
    embed_with_store(again, ["d e f", "c"], tmp_path)
    assert again.seen == []
    # another model keeps its own vectors
    other = CountingEmbedder("other/model")
    embed_with_store(other, ["c"], tmp_path)
    assert other.seen == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "vectors-fake-model.npz",
        "vectors-other_model.npz",
    ]


def test_store_rebuilds_an_unreadable_file_and_works_without_a_folder(tmp_path):
    (tmp_path / "vectors-fake-model.npz").write_bytes(b"not a numpy file")
    emb = CountingEmbedder()
    vectors = embed_with_store(emb, ["x y"], tmp_path)
    assert vectors.shape == (1, 4) and emb.seen == ["x y"]
    assert embed_with_store(CountingEmbedder(), ["x y"], tmp_path).shape == (1, 4)
    none = CountingEmbedder()
    embed_with_store(none, ["x y"], None)
    assert none.seen == ["x y"]


def test_recent_texts_embedder_reuses_recent_vectors_only():
    inner = CountingEmbedder()
    emb = RecentTextsEmbedder(inner, size=2)
    a = emb.embed(["one", "two"])
    b = emb.embed(["two", "one"])
    assert inner.seen == ["one", "two"]
    assert np.array_equal(a[0], b[1])
    emb.embed(["three"])  # "two" is now the oldest of three: dropped
    emb.embed(["two"])
    assert inner.seen == ["one", "two", "three", "two"]
    assert emb.embed([]).shape == (0, 4)
    big = [f"t{i}" for i in range(5)]  # a batch larger than the memory bypasses it
    emb.embed(big)
    assert inner.seen[-5:] == big
