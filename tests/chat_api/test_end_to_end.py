"""The whole pipeline with every real component: the snapshot indexed with the real embedding
model into local Qdrant, the bundled local LLM (Qwen2.5 1.5B), the HTTP API, SQLite."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from chat_api.app import create_app
from govchat.services import build_indexer, open_store
from govchat.settings import Settings
from ingest.sources import SnapshotSource

pytestmark = pytest.mark.slow

PAGES = [
    "/employers-sick-pay",
    "/national-minimum-wage-rates",
    "/holiday-entitlement-rights",
    "/maternity-pay-leave",
    "/employment-status",
    "/temporary-events-notice",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e")
    settings = Settings(data_dir=data, collection="e2e")
    store = open_store(settings)
    build_indexer(settings, store).run(SnapshotSource(settings.source, paths=PAGES))
    store.client.close()
    # Reuse the assembled model file if the default data dir already has it (saves 1 GB copy).
    from pathlib import Path

    shared_models = Path(".govchat/models")
    if shared_models.is_dir():
        (data / "models").symlink_to(shared_models.resolve())
    with TestClient(create_app(settings)) as c:
        yield c


def test_real_question_gets_a_grounded_cited_answer(client):
    r = client.post(
        "/api/v1/conversations", json={"question": "What is the weekly rate of Statutory Sick Pay?"}
    )
    assert r.status_code == 201, r.text
    answer = r.json()["answer"]
    assert answer["status"] == "answered", answer
    assert "116.75" in answer["message"]
    urls = [s["url"] for s in answer["sources"]]
    assert any(u.startswith("https://www.gov.uk/employers-sick-pay") for u in urls), urls


def test_question_the_snapshot_cannot_answer_is_refused(client):
    r = client.post(
        "/api/v1/conversations",
        json={
            "question": "How do I file my company's confirmation statement with Companies House?"
        },
    )
    answer = r.json()["answer"]
    assert answer["status"] == "cannot_answer"
    assert "gov.uk/search" in answer["message"] and answer["sources"] == []
