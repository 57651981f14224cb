"""Hostile and malformed input over HTTP: a clear 4xx with {"detail": ...}, never a traceback,
and nothing stored half-way. Real app, pipeline and SQLite database; fake index and LLM."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chat_api.models import AnswerRecord, Conversation, FeedbackRecord, QuestionRecord
from tests.reliability.apps import make_app

API = "/api/v1"


@pytest.fixture
def client(tmp_path):
    app = make_app(tmp_path / "data", rate_limit_client_per_minute=0, rate_limit_user_per_minute=0)
    with TestClient(app) as c:
        yield c


def rows(client: TestClient) -> dict[str, int]:
    sessions = client.app.state.services.repository.sessions
    with sessions() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m))
            for m in (Conversation, QuestionRecord, AnswerRecord, FeedbackRecord)
        }


NOTHING = {"conversations": 0, "questions": 0, "answers": 0, "feedback": 0}


def assert_clear_error(r, code: int) -> None:
    assert r.status_code == code, r.text
    body = r.json()
    assert set(body) == {"detail"} and body["detail"]
    assert "Traceback" not in r.text and 'File "' not in r.text


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b"{not json", "application/json", 422),
        (b'{"question": "unterminated', "application/json", 422),
        (b"\xff\xfe\x00b\x00a\x00d", "application/json", 422),  # not UTF-8
        (b'["a", "list"]', "application/json", 422),
        (b'{"question": null}', "application/json", 422),
        (b'{"question": "x", "question": 5}', "application/json", 422),
        (b"question=hi", "application/x-www-form-urlencoded", 415),
        (b'{"question": "hi"}', "text/plain", 415),
        (b"<question>hi</question>", "application/xml", 415),
        (b'{"question": "hi"}', "", 415),
        (b'{"question": "a\\u0000b"}', "application/json", 422),  # NUL
        (b'{"question": "bad \\ud800 surrogate"}', "application/json", 422),
        (b'{"question": "bell \\u0007"}', "application/json", 422),
    ],
)
def test_malformed_bodies_are_clear_4xx_and_store_nothing(client, content, content_type, code):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post(f"{API}/conversations", content=content, headers=headers)
    assert_clear_error(r, code)
    assert rows(client) == NOTHING


def test_oversized_bodies_are_413_whether_announced_or_streamed(client):
    big = json.dumps({"question": "x" * 40_000}).encode()
    assert_clear_error(
        client.post(
            f"{API}/conversations", content=big, headers={"Content-Type": "application/json"}
        ),
        413,
    )

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        yield b'{"question": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    r = client.post(
        f"{API}/conversations", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_clear_error(r, 413)
    assert rows(client) == NOTHING


def test_odd_but_valid_unicode_is_answered_and_stored_exactly(client):
    odd = "Is SSP paid 👩‍👩‍👧 for ‮RTL‬ zero​width, café, Ｆｕｌｌwidth and é̀ combining?"
    r = client.post(f"{API}/conversations", json={"question": odd})
    assert r.status_code == 201, r.text
    conv = client.get(f"{API}/conversations/{r.json()['conversation_id']}").json()
    assert conv["turns"][0]["question"] == odd
    assert rows(client)["questions"] == 1


def test_very_long_questions(client):
    # Over the pipeline's limit but within the schema: a friendly status, one whole turn stored.
    r = client.post(f"{API}/conversations", json={"question": "word " * 900})
    assert r.status_code == 201 and r.json()["answer"]["status"] == "invalid_input"
    assert rows(client) == {"conversations": 1, "questions": 1, "answers": 1, "feedback": 0}
    # Over the schema's limit: 422, nothing more stored.
    assert_clear_error(client.post(f"{API}/conversations", json={"question": "x" * 5001}), 422)
    assert rows(client)["questions"] == 1


@pytest.mark.parametrize(
    "bad_id",
    ["nope", "0" * 36, "a" * 5000, "%00", "../../etc/passwd", "' OR 1=1 --", "\u202e" * 36],
)
def test_bad_ids_are_404_without_touching_storage(client, bad_id):
    assert_clear_error(client.get(f"{API}/conversations/{bad_id}"), 404)
    assert_clear_error(
        client.post(f"{API}/conversations/{bad_id}/questions", json={"question": "hi"}), 404
    )
    assert_clear_error(client.post(f"{API}/answers/{bad_id}/feedback", json={"useful": True}), 404)
    assert rows(client) == NOTHING


def test_bad_feedback_is_422_and_not_stored(client):
    answer_id = client.post(f"{API}/conversations", json={"question": "How much is SSP?"}).json()[
        "answer"
    ]["id"]
    for body in (
        {},
        {"useful": "maybe"},
        {"useful": True, "reason": "r" * 101},
        {"useful": True, "comment": "c" * 2001},
        {"useful": True, "comment": "nul \u0000"},
    ):
        assert_clear_error(client.post(f"{API}/answers/{answer_id}/feedback", json=body), 422)
    assert rows(client)["feedback"] == 0


def test_a_flood_of_follow_ups_stops_at_the_cap_with_409(tmp_path):
    cap = 8
    app = make_app(
        tmp_path / "data",
        rate_limit_client_per_minute=0,
        rate_limit_user_per_minute=0,
        max_turns_per_conversation=cap,
    )
    with TestClient(app) as client:
        cid = client.post(f"{API}/conversations", json={"question": "How much is SSP?"}).json()[
            "conversation_id"
        ]
        codes: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def flood() -> None:
            barrier.wait()
            for i in range(5):
                r = client.post(
                    f"{API}/conversations/{cid}/questions", json={"question": f"And {i}?"}
                )
                if r.status_code == 409:
                    assert r.json()["detail"].startswith("this conversation is full")
                with lock:
                    codes.append(r.status_code)

        threads = [threading.Thread(target=flood) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(set(codes)) == [201, 409]
        assert codes.count(201) == cap - 1  # the first turn plus cap - 1 follow-ups
        turns = client.get(f"{API}/conversations/{cid}").json()["turns"]
        assert len(turns) == cap and all(t["answer"] for t in turns)
        assert rows(client) == {"conversations": 1, "questions": cap, "answers": cap, "feedback": 0}


def test_unknown_conversation_is_404_and_creates_nothing(client):
    r = client.post(f"{API}/conversations/{uuid.uuid4()}/questions", json={"question": "hi"})
    assert_clear_error(r, 404)
    assert rows(client) == NOTHING


def test_errors_never_leak_internals(client):
    r = client.post(
        f"{API}/conversations", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert "sqlalchemy" not in r.text.lower() and "pydantic" not in r.text.lower()
