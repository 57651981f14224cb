import uuid

import pytest
from qdrant_client import QdrantClient, models

from retrieval.sparse import Bm25Encoder
from retrieval.store import DENSE, SPARSE, ChunkStore, SchemaMismatch


@pytest.fixture
def store(tmp_path):
    client = QdrantClient(path=str(tmp_path / "q"))
    yield ChunkStore(client, "chunks")
    client.close()


def _points(texts, base_path="/a"):
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, t)) for t in texts]
    payloads = [{"base_path": base_path, "digest": t[:8], "text": t} for t in texts]
    dense = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(len(texts))]
    return ids, payloads, dense, Bm25Encoder().encode_documents(texts)


def test_collection_has_dense_and_idf_sparse_vectors(store):
    store.ensure_collection(4)
    info = store.client.get_collection("chunks")
    assert info.config.params.vectors[DENSE].size == 4
    assert info.config.params.sparse_vectors[SPARSE].modifier == models.Modifier.IDF
    store.ensure_collection(4)  # idempotent
    with pytest.raises(SchemaMismatch, match="dense size 4"):
        store.ensure_collection(8)


def test_upsert_scroll_refresh_delete(store):
    store.ensure_collection(4)
    ids, payloads, dense, sparse = _points(["sick pay", "maternity leave", "class 4 nics"])
    store.upsert(ids, payloads, dense, sparse)
    store.upsert(ids, payloads, dense, sparse)  # same ids: overwrite, never duplicate
    assert store.count() == 3
    stored = {s.chunk_id: s for s in store.stored_chunks()}
    assert set(stored) == set(ids) and stored[ids[0]].base_path == "/a"
    store.set_payloads([(ids[0], {"digest": "changed"})])
    assert {s.chunk_id: s.digest for s in store.stored_chunks()}[ids[0]] == "changed"
    store.delete_ids(ids[:2])
    assert [s.chunk_id for s in store.stored_chunks()] == [ids[2]]


def test_sparse_side_is_searchable_with_idf(store):
    store.ensure_collection(4)
    store.upsert(*_points(["statutory sick pay for employees", "maternity pay", "pay rates"]))
    enc = Bm25Encoder()
    hits = store.client.query_points(
        "chunks",
        query=enc.encode_query("sick pay").to_qdrant(),
        using=SPARSE,
        limit=3,
        with_payload=True,
    ).points
    assert hits[0].payload["text"] == "statutory sick pay for employees"
