"""Storage on a real SQLite file (WAL, foreign keys on) and on a real PostgreSQL server (when
GOVCHAT_TEST_POSTGRES_URL is set; required in CI), migrated with Alembic."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import sessionmaker

import chat_api.repository as repository
from chat_api.migrations import upgrade_database
from chat_api.models import (
    AnswerRecord,
    AnswerSourceRecord,
    ApiKey,
    Conversation,
    FeedbackRecord,
    QuestionRecord,
    RateLimitWindow,
)
from chat_api.repository import ApiKeyExists, NotFound, Repository
from chat_api.types import (
    PipelineState,
    Question,
    RetrievedChunk,
    Source,
    Status,
    Turn,
    Verdict,
)
from govchat.db import make_engine
from tests.support.postgres import BACKENDS, backend_settings, dump_database

ORIGINAL = "My name is Jane Smith and my NI number is QQ123456C, can I claim?"
REDACTED = "My name is [NAME] and my NI number is [NI_NUMBER], can I claim?"


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path):
    with backend_settings(request.param, tmp_path / "data", collection="test_chunks") as s:
        yield s


@pytest.fixture
def engine(settings):
    eng = make_engine(settings)
    upgrade_database(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def repo(engine) -> Repository:
    return Repository(sessionmaker(engine, expire_on_commit=False))


def chunk(n: int, score: float) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=f"c{n}",
        url=f"https://www.gov.uk/page-{n}#section",
        exact_path=f"/page-{n}#section",
        base_path=f"/page-{n}",
        title=f"Page {n}",
        heading_trail=["Overview", f"Section {n}"],
        document_type="guide",
        text=f"text {n}",
        score=score,
    )


def make_state(
    question: str = ORIGINAL, message: str = "You can claim.", status: Status = Status.ANSWERED
) -> PipelineState:
    state = PipelineState(question=Question(text=question))
    state.redacted_question = REDACTED
    state.redactions = ["name", "ni_number"]
    state.condensed_question = "can [NAME] claim"
    state.retrieved = [chunk(1, 0.9), chunk(2, 0.7), chunk(3, 0.5)]
    state.sources = [
        Source(url="https://www.gov.uk/page-2#section", title="Page 2", heading="Section 2",
               chunk_id="c2"),
        Source(url="https://www.gov.uk/page-1#section", title="Page 1", heading="Section 1",
               chunk_id="c1", used=False),
    ]  # fmt: skip
    state.guardrails = {"jailbreak": Verdict(name="jailbreak", passed=True, version="j1")}
    state.timings_ms = {"retrieve": 12.5}
    state.tokens = {"prompt": 100, "completion": 20}
    state.versions = {"prompt": "p3", "model": "qwen"}
    state.llm_model = "qwen2.5-1.5b-instruct"
    state.route = "answer"
    state.stop(status, message)
    return state


def save(repo: Repository, conv: str, state: PipelineState | None = None):
    state = state or make_state()
    return repo.save_turn(conv, state.redacted_question, state.redactions, state)


def count(repo: Repository, model) -> int:
    with repo.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_save_and_read_back_a_turn(repo):
    conv = repo.create_conversation(end_user_id="user-1", api_client_id="widget")
    question_id, answer = save(repo, conv)

    assert answer["status"] == "answered" and answer["message"] == "You can claim."
    assert answer["route"] == "answer"
    # Only used sources are public, in the order given, with url/title/heading only.
    assert answer["sources"] == [
        {"url": "https://www.gov.uk/page-2#section", "title": "Page 2", "heading": "Section 2"}
    ]
    created = datetime.fromisoformat(answer["created_at"])
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)

    got = repo.get_conversation(conv)
    assert got["conversation_id"] == conv
    assert datetime.fromisoformat(got["created_at"]).utcoffset() == timedelta(0)
    assert got["turns"] == [
        {"question_id": question_id, "question": REDACTED, "answer": answer, "feedback": None}
    ]
    assert repo.get_answer(answer["id"]) == {
        "conversation_id": conv,
        "question_id": question_id,
        "answer": answer,
    }
    assert repo.get_history(conv) == [Turn(question=REDACTED, answer="You can claim.")]
    assert repo.count_turns(conv) == 1

    with repo.sessions() as s:
        record = s.get(AnswerRecord, answer["id"])
        assert record.guardrails["jailbreak"]["passed"] is True
        assert record.timings_ms == {"retrieve": 12.5}
        assert record.tokens == {"prompt": 100, "completion": 20}
        assert record.versions == {"prompt": "p3", "model": "qwen"}
        assert record.llm_model == "qwen2.5-1.5b-instruct"
        assert record.condensed_question == "can [NAME] claim"
        assert record.created_at.tzinfo is not None
        # Cited sources first (with the retrieval score), then retrieved-but-unused chunks.
        assert [(x.chunk_id, x.used, x.score) for x in record.sources] == [
            ("c2", True, 0.7),
            ("c1", False, 0.9),
            ("c3", False, 0.5),
        ]
        q = s.get(QuestionRecord, question_id)
        assert q.redactions == ["name", "ni_number"] and q.position == 0


def test_only_the_redacted_question_is_stored(repo, engine, settings):
    conv = repo.create_conversation(None, None)
    save(repo, conv)
    dump = dump_database(engine)
    assert REDACTED in dump
    assert "QQ123456C" not in dump and "Jane Smith" not in dump
    if engine.dialect.name != "sqlite":
        return
    # Nor anywhere in the files on disk (main database and write-ahead log).
    db_files = list(Path(settings.data_dir).glob("govchat.sqlite3*"))
    assert db_files
    for path in db_files:
        assert b"QQ123456C" not in path.read_bytes()


def test_history_is_the_last_turns_oldest_first(repo):
    conv = repo.create_conversation(None, None)
    for i in range(5):
        state = make_state(message=f"answer {i}")
        repo.save_turn(conv, f"question {i}", [], state)
    history = repo.get_history(conv, max_turns=3)
    assert [(t.question, t.answer) for t in history] == [
        ("question 2", "answer 2"),
        ("question 3", "answer 3"),
        ("question 4", "answer 4"),
    ]
    assert repo.get_history(conv, max_turns=0) == []
    assert repo.count_turns(conv) == 5
    turns = repo.get_conversation(conv)["turns"]
    assert [t["question"] for t in turns] == [f"question {i}" for i in range(5)]


def test_unknown_ids_raise_not_found(repo):
    with pytest.raises(NotFound):
        repo.get_history("nope")
    with pytest.raises(NotFound):
        repo.get_conversation("nope")
    with pytest.raises(NotFound):
        save(repo, "nope")
    with pytest.raises(NotFound):
        repo.add_feedback("nope", True, None, None)
    with pytest.raises(NotFound):
        repo.get_answer("nope")
    assert repo.count_turns("nope") == 0
    assert count(repo, QuestionRecord) == 0


def test_a_state_without_status_is_refused(repo):
    conv = repo.create_conversation(None, None)
    state = PipelineState(question=Question(text="x"))
    with pytest.raises(ValueError):
        repo.save_turn(conv, "x", [], state)


def test_a_failure_mid_save_leaves_nothing(repo, monkeypatch):
    conv = repo.create_conversation(None, None)
    with repo.sessions() as s:
        updated_before = s.get(Conversation, conv).updated_at

    # The question is flushed, then the answer's sources fail (url is NOT NULL).
    def broken_sources(state):
        return [AnswerSourceRecord(position=0, url=None, used=True)]

    monkeypatch.setattr(repository, "_source_records", broken_sources)
    with pytest.raises(IntegrityError, match="(?i)not.null"):
        save(repo, conv)

    # An unserialisable guardrail detail fails while the answer is written.
    monkeypatch.undo()
    state = make_state()
    state.guardrails["bad"] = Verdict(name="bad", passed=True, details={"x": object()})
    with pytest.raises((StatementError, TypeError), match="not JSON serializable"):
        save(repo, conv, state)

    for model in (QuestionRecord, AnswerRecord, AnswerSourceRecord):
        assert count(repo, model) == 0
    with repo.sessions() as s:
        assert s.get(Conversation, conv).updated_at == updated_before
    # And the conversation still works afterwards, from position 0.
    save(repo, conv)
    assert repo.count_turns(conv) == 1


def test_concurrent_turns_get_unique_consecutive_positions(repo, settings):
    conv = repo.create_conversation(None, None)
    # Half the threads share one engine, half use a second one (like a second process).
    other_engine = make_engine(settings)
    other = Repository(sessionmaker(other_engine, expire_on_commit=False))
    threads_n, turns_each = 4, 5
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(n: int) -> None:
        r = repo if n % 2 else other
        try:
            barrier.wait()
            for i in range(turns_each):
                r.save_turn(conv, f"t{n}-{i}", [], make_state(message=f"a{n}-{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    other_engine.dispose()
    assert not errors, errors

    total = threads_n * turns_each
    with repo.sessions() as s:
        positions = sorted(
            s.scalars(select(QuestionRecord.position).where(QuestionRecord.conversation_id == conv))
        )
        texts = set(s.scalars(select(QuestionRecord.text)))
    assert positions == list(range(total))
    assert texts == {f"t{n}-{i}" for n in range(threads_n) for i in range(turns_each)}
    assert count(repo, AnswerRecord) == total
    # Every thread's turns keep their own order.
    turns = repo.get_conversation(conv)["turns"]
    for n in range(threads_n):
        mine = [t["question"] for t in turns if t["question"].startswith(f"t{n}-")]
        assert mine == [f"t{n}-{i}" for i in range(turns_each)]


def test_feedback_latest_wins_and_is_validated(repo):
    conv = repo.create_conversation(None, None)
    _, answer = save(repo, conv)
    first = repo.add_feedback(answer["id"], False, "inaccurate", "The figure is wrong")
    assert first["useful"] is False and first["reason"] == "inaccurate"
    second = repo.add_feedback(answer["id"], True, None, None)
    assert count(repo, FeedbackRecord) == 2

    turn = repo.get_conversation(conv)["turns"][0]
    assert turn["feedback"]["id"] == second["id"] and turn["feedback"]["useful"] is True

    with pytest.raises(ValueError):
        repo.add_feedback(answer["id"], True, "x" * 101, None)
    with pytest.raises(ValueError):
        repo.add_feedback(answer["id"], True, None, "x" * 2001)
    repo.add_feedback(answer["id"], True, "x" * 100, "x" * 2000)
    assert count(repo, FeedbackRecord) == 3


def _age(repo: Repository, conv: str, days: float) -> None:
    with repo.sessions.begin() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.id == conv)
            .values(updated_at=datetime.now(UTC) - timedelta(days=days))
        )


def test_purge_removes_old_conversations_and_everything_under_them(repo, monkeypatch):
    monkeypatch.setattr(repository, "PURGE_BATCH", 2)  # exercise several batches
    old = [repo.create_conversation(None, None) for _ in range(3)]
    recent = repo.create_conversation(None, None)
    for conv in [*old, recent]:
        for _ in range(2):
            _, answer = save(repo, conv)
            repo.add_feedback(answer["id"], True, None, None)
    for conv in old:
        _age(repo, conv, 40)
    _age(repo, recent, 10)

    counts = repo.purge_older_than(30)
    assert counts == {
        "conversations": 3,
        "questions": 6,
        "answers": 6,
        "answer_sources": 18,
        "feedback": 6,
    }
    for conv in old:
        with pytest.raises(NotFound):
            repo.get_conversation(conv)
    assert len(repo.get_conversation(recent)["turns"]) == 2
    assert count(repo, Conversation) == 1
    assert count(repo, QuestionRecord) == 2
    assert count(repo, AnswerRecord) == 2
    assert count(repo, AnswerSourceRecord) == 6
    assert count(repo, FeedbackRecord) == 2
    assert repo.purge_older_than(30)["conversations"] == 0
    with pytest.raises(ValueError):
        repo.purge_older_than(-1)


def test_a_new_turn_keeps_a_conversation_from_being_purged(repo):
    conv = repo.create_conversation(None, None)
    save(repo, conv)
    _age(repo, conv, 40)
    save(repo, conv)  # updated_at moves to now
    assert repo.purge_older_than(30)["conversations"] == 0
    assert repo.count_turns(conv) == 2


def test_api_keys_are_hashed_verified_and_revoked(repo, engine, monkeypatch):
    secret = repo.create_api_key("partner-a")
    other = repo.create_api_key("partner-b")
    assert secret.startswith("gck_") and len(secret) > 40 and secret != other

    dump = dump_database(engine)
    assert "partner-a" in dump  # the dump does show the rows
    assert secret not in dump and secret[8:] not in dump
    with repo.sessions() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.name == "partner-a"))
        assert row.prefix == secret[:8] and len(row.key_hash) == 64

    listed = repo.list_api_keys()
    assert [k["name"] for k in listed] == ["partner-a", "partner-b"]
    assert all(k["active"] and k["last_used_at"] is None for k in listed)
    assert not any(secret in str(v) or row.key_hash in str(v) for k in listed for v in k.values())

    assert repo.verify_api_key(secret) == "partner-a"
    assert repo.verify_api_key(other) == "partner-b"
    for bad in (None, "", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "gck_x", "abc"):
        assert repo.verify_api_key(bad) is None

    with pytest.raises(ApiKeyExists):
        repo.create_api_key("partner-a")
    with pytest.raises(ValueError):
        repo.create_api_key("  ")

    assert repo.revoke_api_key("partner-a") is True
    assert repo.revoke_api_key("partner-a") is False
    assert repo.revoke_api_key("nobody") is False
    assert repo.verify_api_key(secret) is None
    assert repo.verify_api_key(other) == "partner-b"
    assert {k["name"]: k["active"] for k in repo.list_api_keys()} == {
        "partner-a": False,
        "partner-b": True,
    }


def test_api_key_last_used_is_updated_at_most_once_a_minute(repo, monkeypatch):
    secret = repo.create_api_key("client")
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clock = {"now": t0}
    monkeypatch.setattr(repository, "utcnow", lambda: clock["now"])

    def last_used() -> datetime:
        return datetime.fromisoformat(repo.list_api_keys()[0]["last_used_at"])

    assert repo.verify_api_key(secret) == "client"
    assert last_used() == t0
    clock["now"] = t0 + timedelta(seconds=30)
    assert repo.verify_api_key(secret) == "client"
    assert last_used() == t0
    clock["now"] = t0 + timedelta(seconds=61)
    assert repo.verify_api_key(secret) == "client"
    assert last_used() == t0 + timedelta(seconds=61)


def test_rate_limit_windows_are_shared_across_engines_and_reset(repo, settings):
    # Two engines on the same SQLite file: two processes sharing one database.
    engine2 = make_engine(settings)
    repo2 = Repository(sessionmaker(engine2, expire_on_commit=False))
    now = 1_800_000_005.0  # 5 s into the 60 s window [1_800_000_000, 1_800_000_060)
    window_end = 1_800_000_060
    assert window_end % 60 == 0 and window_end - 60 < now < window_end

    results = [
        repo.hit_rate_limit("client:a", 3, 60, now=now),
        repo2.hit_rate_limit("client:a", 3, 60, now=now + 1),
        repo.hit_rate_limit("client:a", 3, 60, now=now + 2),
        repo2.hit_rate_limit("client:a", 3, 60, now=now + 3),
    ]
    assert results == [
        (True, 2, window_end),
        (True, 1, window_end),
        (True, 0, window_end),
        (False, 0, window_end),
    ]
    # Another key has its own counter.
    assert repo2.hit_rate_limit("client:b", 3, 60, now=now) == (True, 2, window_end)
    # The next window starts afresh.
    assert repo2.hit_rate_limit("client:a", 3, 60, now=window_end) == (True, 2, window_end + 60)

    # Ended windows are cleaned up; the current ones stay.
    assert repo.cleanup_rate_limits(now=window_end) == 2
    assert count(repo, RateLimitWindow) == 1
    engine2.dispose()


def test_concurrent_rate_limit_hits_are_all_counted(repo, settings):
    engine2 = make_engine(settings)
    repo2 = Repository(sessionmaker(engine2, expire_on_commit=False))
    allowed: list[bool] = []
    lock = threading.Lock()

    def work(r: Repository) -> None:
        for _ in range(10):
            ok, _, _ = r.hit_rate_limit("k", 15, 3600, now=1_000.0)
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=work, args=(r,)) for r in (repo, repo2, repo, repo2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    engine2.dispose()
    assert len(allowed) == 40 and allowed.count(True) == 15
    with repo.sessions() as s:
        assert s.scalar(select(RateLimitWindow.count)) == 40


def test_long_rate_limit_keys_are_hashed(repo):
    key = "end-user:" + "x" * 400
    assert repo.hit_rate_limit(key, 1, 10, now=0.0) == (True, 0, 10)
    assert repo.hit_rate_limit(key, 1, 10, now=1.0) == (False, 0, 10)
    with repo.sessions() as s:
        stored = s.scalar(select(RateLimitWindow.key))
    assert stored.startswith("sha256:") and len(stored) <= 255
    with pytest.raises(ValueError):
        repo.hit_rate_limit("k", 1, 0)


def test_foreign_keys_cascade_in_the_database_too(repo, engine):
    # Deleting a conversation row directly (not through purge) removes its children.
    conv = repo.create_conversation(None, None)
    _, answer = save(repo, conv)
    repo.add_feedback(answer["id"], True, None, None)
    with engine.begin() as c:
        c.execute(text("DELETE FROM conversations WHERE id = :id"), {"id": conv})
    for model in (QuestionRecord, AnswerRecord, AnswerSourceRecord, FeedbackRecord):
        assert count(repo, model) == 0
