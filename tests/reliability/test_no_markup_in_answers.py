"""Answers and sources never carry script or HTML to a widget: whatever markup the model writes
or a page title carries is removed before the turn is stored and returned (JSON and the stream's
`done` event), and links the sources do not back (javascript:, invented URLs) are dropped."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.chat_api.fakes import SSP_URL, FakeRetriever, _result, answer_json
from tests.reliability.apps import endless_llm, make_app, services_factory

HOSTILE = answer_json(
    "SSP is £116.75 a week <script>alert(document.cookie)</script>"
    "<img src=x onerror=alert(document.cookie)> "
    "[click](javascript:alert(document.cookie)) ([SSP](link_1))."
)
MARKERS = ("<script", "<img", "onerror", "javascript:", "<b ", "onmouseover")


def test_markup_from_the_model_or_a_page_never_reaches_the_client(tmp_path):
    retriever = FakeRetriever(
        [
            _result(
                SSP_URL,
                "The weekly rate for Statutory Sick Pay (SSP) is £116.75 <b onmouseover=x>x</b>.",
                title="SSP <script>alert(2)</script>",
                trail=("Entitlement <img src=x>",),
            )
        ]
    )
    app = make_app(tmp_path / "data", services_factory(retriever, endless_llm(HOSTILE)))
    with TestClient(app) as client:
        r = client.post("/api/v1/conversations", json={"question": "How much is SSP?"})
        answer = r.json()["answer"]
        assert answer["status"] == "answered" and "£116.75" in answer["message"], answer
        assert answer["sources"] == [
            {"url": SSP_URL, "title": "SSP alert(2)", "heading": "Entitlement "}
        ]
        with client.stream(
            "POST",
            "/api/v1/conversations",
            json={"question": "How much is SSP?"},
            headers={"Accept": "text/event-stream"},
        ) as s:
            done = [ln for ln in s.iter_lines() if ln.startswith("data:")][-1]
        stored = client.get(f"/api/v1/conversations/{r.json()['conversation_id']}").text
    for text in (json.dumps(answer), done, stored):
        for marker in MARKERS:
            assert marker not in text, (marker, text)
