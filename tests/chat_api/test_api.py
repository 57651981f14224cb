"""Every endpoint over HTTP (FastAPI TestClient), with a real SQLite database and fakes for the
LLM and the index."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from chat_api.app import create_app
from chat_api.repository import Repository
from chat_api.services import Services
from govchat.db import init_db, make_engine
from govchat.settings import Settings
from tests.chat_api.fakes import SSP_URL, FakeRetriever, answer_json, llm_replying
from tests.support.clock import wait_for_fresh_rate_window

API = "/api/v1"
GOOD = answer_json("SSP is £116.75 a week for up to 28 weeks ([SSP](link_1)).")


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(*replies: str, retriever=None, **settings_kw) -> TestClient:
        settings = Settings(data_dir=tmp_path / "data", **settings_kw)

        def factory(s: Settings) -> Services:
            engine = make_engine(s)
            sessions = init_db(engine)
            services = Services(
                settings=s,
                sessions=sessions,
                repository=Repository(sessions),
                retriever=retriever or FakeRetriever(),
                llm=llm_replying(*replies),
            )
            services.closers.append(engine.dispose)
            return services

        client = TestClient(create_app(settings, services_factory=factory))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_health_ready_and_openapi(make_client):
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        f"{API}/conversations",
        f"{API}/conversations/{{conversation_id}}/questions",
        f"{API}/conversations/{{conversation_id}}",
        f"{API}/answers/{{answer_id}}/feedback",
    } <= set(paths)


def test_start_conversation_answers_with_cited_sources_and_stores_it(make_client):
    client = make_client(GOOD)
    r = client.post(f"{API}/conversations", json={"question": "How much is SSP?"})
    assert r.status_code == 201, r.text
    body = r.json()
    answer = body["answer"]
    assert answer["status"] == "answered" and SSP_URL in answer["message"]
    assert answer["sources"] == [
        {"url": SSP_URL, "title": "SSP: employer guide", "heading": "Entitlement"}
    ]
    assert answer["route"] == "answer" and answer["created_at"] and answer["id"]

    conv = client.get(f"{API}/conversations/{body['conversation_id']}").json()
    assert [t["question"] for t in conv["turns"]] == ["How much is SSP?"]
    assert conv["turns"][0]["answer"]["id"] == answer["id"]


def test_follow_up_uses_the_history(make_client):
    retriever = FakeRetriever()
    client = make_client(GOOD, "How much is SSP for an agency worker?", GOOD, retriever=retriever)
    first = client.post(f"{API}/conversations", json={"question": "How much is SSP?"}).json()
    cid = first["conversation_id"]
    r = client.post(
        f"{API}/conversations/{cid}/questions", json={"question": "And for agency workers?"}
    )
    assert r.status_code == 201 and r.json()["conversation_id"] == cid
    assert retriever.queries[-1] == "How much is SSP for an agency worker?"
    turns = client.get(f"{API}/conversations/{cid}").json()["turns"]
    assert len(turns) == 2 and turns[1]["question"] == "And for agency workers?"


def test_streaming_sends_sources_then_tokens_then_done(make_client):
    client = make_client(GOOD)
    events = []
    with client.stream(
        "POST",
        f"{API}/conversations",
        json={"question": "How much is SSP?"},
        headers={"Accept": "text/event-stream"},
    ) as r:
        assert r.status_code == 201
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                events.append((event, json.loads(line.split(":", 1)[1])))
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    assert events[0][1]["sources"][0]["url"] == SSP_URL
    assert events[0][1]["sources"][0]["excerpt"]
    done = events[-1][1]
    assert done["answer"]["status"] == "answered" and done["conversation_id"]
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert streamed.startswith("SSP is £116.75")


def test_feedback_is_recorded_and_unknown_ids_are_404(make_client):
    client = make_client(GOOD)
    answer = client.post(f"{API}/conversations", json={"question": "How much is SSP?"}).json()
    aid = answer["answer"]["id"]
    r = client.post(
        f"{API}/answers/{aid}/feedback",
        json={"useful": False, "reason": "wrong", "comment": "rate is old"},
    )
    assert r.status_code == 201 and r.json()["useful"] is False
    assert client.post(f"{API}/answers/nope/feedback", json={"useful": True}).status_code == 404
    assert client.get(f"{API}/conversations/nope").status_code == 404
    r = client.post(f"{API}/conversations/nope/questions", json={"question": "hi"})
    assert r.status_code == 404 and r.json() == {"detail": "conversation not found"}


@pytest.mark.parametrize(
    "body", [{}, {"question": ""}, {"question": 3}, {"q": "x"}, {"question": "x" * 5001}]
)
def test_invalid_input_is_422_with_a_message(make_client, body):
    client = make_client()
    r = client.post(f"{API}/conversations", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["msg"]


def test_broken_json_wrong_type_and_oversized_body(make_client):
    client = make_client()
    r = client.post(
        f"{API}/conversations", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    r = client.post(
        f"{API}/conversations",
        content=b"question=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = client.post(
        f"{API}/conversations", content=b"x" * 20_000, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    r = client.post(f"{API}/answers/a/feedback", json={"useful": True, "reason": "x" * 101})
    assert r.status_code == 422


def test_over_long_question_gets_a_friendly_status_not_an_error(make_client):
    client = make_client()
    r = client.post(f"{API}/conversations", json={"question": "x " * 600})
    assert r.status_code == 201 and r.json()["answer"]["status"] == "invalid_input"


def test_personal_data_never_reaches_the_database(make_client, tmp_path):
    client = make_client(GOOD)
    r = client.post(
        f"{API}/conversations",
        json={"question": "I'm jo@example.com (07700 900123), how much is SSP?"},
    )
    assert r.status_code == 201
    raw = (tmp_path / "data" / "govchat.sqlite3").read_bytes()
    for wal in (tmp_path / "data").glob("govchat.sqlite3-wal"):
        raw += wal.read_bytes()
    assert b"jo@example.com" not in raw and b"07700 900123" not in raw
    assert b"[email address]" in raw


def test_rate_limits_per_end_user_with_headers(make_client):
    client = make_client(*([GOOD] * 5), rate_limit_user_per_minute=2)
    h = {"X-End-User-Id": "user-1"}
    wait_for_fresh_rate_window()  # the three requests must share one per-minute window
    codes = [
        client.post(f"{API}/conversations", json={"question": "Hello"}, headers=h) for _ in range(3)
    ]
    assert [c.status_code for c in codes] == [201, 201, 429]
    assert codes[0].headers["X-RateLimit-Limit"] == "2"
    assert codes[1].headers["X-RateLimit-Remaining"] == "0"
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert "end user" in codes[2].json()["detail"]
    other = client.post(
        f"{API}/conversations", json={"question": "Hello"}, headers={"X-End-User-Id": "user-2"}
    )
    assert other.status_code == 201


def test_api_keys_when_required(make_client):
    client = make_client(api_keys_required=True)
    assert client.post(f"{API}/conversations", json={"question": "Hello"}).status_code == 401
    repo = client.app.state.services.repository
    secret = repo.create_api_key("widget")
    ok = client.post(
        f"{API}/conversations",
        json={"question": "Hello"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert ok.status_code == 201
    bad = client.post(
        f"{API}/conversations", json={"question": "Hello"}, headers={"X-API-Key": secret + "x"}
    )
    assert bad.status_code == 401
    repo.revoke_api_key("widget")
    assert (
        client.post(
            f"{API}/conversations", json={"question": "Hello"}, headers={"X-API-Key": secret}
        ).status_code
        == 401
    )


def test_cors_only_for_configured_origins(make_client):
    client = make_client(cors_origins=["https://business.example"])
    pre = {"Access-Control-Request-Method": "POST"}
    ok = client.options(
        f"{API}/conversations", headers={**pre, "Origin": "https://business.example"}
    )
    assert ok.headers.get("access-control-allow-origin") == "https://business.example"
    no = client.options(f"{API}/conversations", headers={**pre, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in no.headers


def test_conversation_turn_cap(make_client):
    client = make_client(max_turns_per_conversation=2)
    cid = client.post(f"{API}/conversations", json={"question": "Hello"}).json()["conversation_id"]
    assert (
        client.post(f"{API}/conversations/{cid}/questions", json={"question": "thanks"}).status_code
        == 201
    )
    r = client.post(f"{API}/conversations/{cid}/questions", json={"question": "hi"})
    assert r.status_code == 409 and "start a new one" in r.json()["detail"]


def test_index_down_is_a_clear_status(make_client):
    client = make_client(retriever=FakeRetriever(error=ConnectionError("qdrant down")))
    r = client.post(f"{API}/conversations", json={"question": "How much is SSP?"})
    assert r.status_code == 201 and r.json()["answer"]["status"] == "unavailable"


def test_demo_page_is_served_at_the_root(make_client):
    r = make_client().get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script src="/static/govchat-widget.js"' in r.text  # the widget (tests/web)
    widget = make_client().get("/static/govchat-widget.js")
    assert widget.status_code == 200 and "/api/v1" in widget.text
