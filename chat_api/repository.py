"""Data access for conversations, answers, feedback, API keys and rate limits.

Works on SQLite (the default) and PostgreSQL. Only redacted question text is ever stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased, selectinload, sessionmaker

from chat_api.models import (
    COMMENT_MAX_CHARS,
    RATE_LIMIT_KEY_MAX_CHARS,
    REASON_MAX_CHARS,
    AnswerRecord,
    AnswerSourceRecord,
    ApiKey,
    AuditEvent,
    Conversation,
    FeedbackRecord,
    QuestionRecord,
    RateLimitWindow,
    utcnow,
)
from chat_api.types import PipelineState, Turn

API_KEY_PREFIX = "gck_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
PURGE_BATCH = 500
SAVE_RETRIES = 25
RATE_LIMIT_CLEANUP_PROBABILITY = 0.01
SERVICE_OFF = "service.off"
SERVICE_ON = "service.on"

T = TypeVar("T")


class NotFound(LookupError):
    """No conversation, question or answer with that id."""


class ConversationFull(Exception):
    """The conversation already has the maximum number of turns (checked inside the write)."""


class ApiKeyExists(ValueError):
    """An API key with that name already exists (revoked ones included)."""


class _PositionTaken(Exception):
    """Another writer took the position this turn was about to use: retry."""


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def answer_public(answer: AnswerRecord) -> dict[str, Any]:
    """The answer object of DESIGN §4: only the sources shown to the user."""
    return {
        "id": answer.id,
        "status": answer.status,
        "message": answer.message,
        "sources": [
            {"url": s.url, "title": s.title, "heading": s.heading}
            for s in sorted(answer.sources, key=lambda s: s.position)
            if s.used
        ],
        "route": answer.route,
        "created_at": _iso(answer.created_at),
    }


def _feedback_public(fb: FeedbackRecord) -> dict[str, Any]:
    return {
        "id": fb.id,
        "answer_id": fb.answer_id,
        "useful": fb.useful,
        "reason": fb.reason,
        "comment": fb.comment,
        "created_at": _iso(fb.created_at),
    }


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _is_retryable_lock(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text or "deadlock" in text


class Repository:
    """Storage operations, each in its own short transaction."""

    answer_public = staticmethod(answer_public)

    def __init__(self, sessions: sessionmaker[Session], retry_seconds: float = 30.0) -> None:
        self.sessions = sessions
        # A write that keeps meeting a locked database gives up after this long (-> HTTP 503).
        self.retry_seconds = retry_seconds

    # --- conversations

    def create_conversation(
        self, end_user_id: str | None = None, api_client_id: str | None = None
    ) -> str:
        with self.sessions.begin() as s:
            conv = Conversation(end_user_id=end_user_id, api_client_id=api_client_id)
            s.add(conv)
            s.flush()
            return conv.id

    def get_history(self, conversation_id: str, max_turns: int = 3) -> list[Turn]:
        """The last ``max_turns`` turns (redacted question, answer message), oldest first."""
        with self.sessions() as s:
            if s.get(Conversation, conversation_id) is None:
                raise NotFound(conversation_id)
            if max_turns <= 0:
                return []
            rows = s.execute(
                select(QuestionRecord.text, AnswerRecord.message)
                .join(AnswerRecord, AnswerRecord.question_id == QuestionRecord.id)
                .where(QuestionRecord.conversation_id == conversation_id)
                .order_by(QuestionRecord.position.desc())
                .limit(max_turns)
            ).all()
            return [Turn(question=q, answer=a) for q, a in reversed(rows)]

    def count_turns(self, conversation_id: str) -> int:
        with self.sessions() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(QuestionRecord)
                    .where(QuestionRecord.conversation_id == conversation_id)
                )
                or 0
            )

    def save_turn(
        self,
        conversation_id: str,
        question_text_redacted: str,
        redactions: list[str],
        state: PipelineState,
        max_turns: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Store the (redacted) question, its answer and sources in ONE transaction.

        Returns (question_id, public answer dict). ``state.status`` must be set. Raises NotFound
        for an unknown conversation, ConversationFull when it already has ``max_turns`` turns
        (checked under the conversation's write lock, so a flood of concurrent follow-ups cannot
        overshoot). Positions are consecutive from 0 even under concurrency.
        """
        if state.status is None:
            raise ValueError("state.status must be set before the turn is stored")
        return self._retrying(
            lambda: self._save_turn_once(
                conversation_id,
                question_text_redacted,
                list(redactions),
                state,
                max_turns=max_turns,
            )
        )

    def save_first_turn(
        self,
        state: PipelineState,
        end_user_id: str | None = None,
        api_client_id: str | None = None,
    ) -> tuple[str, str, dict[str, Any]]:
        """Create a conversation and store its first turn in ONE transaction (all or nothing).

        Returns (conversation_id, question_id, public answer dict).
        """
        if state.status is None:
            raise ValueError("state.status must be set before the turn is stored")
        conv_id = str(uuid.uuid4())

        def attempt() -> tuple[str, dict[str, Any]]:
            return self._save_turn_once(
                conv_id,
                state.redacted_question,
                list(state.redactions),
                state,
                new_conversation=Conversation(
                    id=conv_id, end_user_id=end_user_id, api_client_id=api_client_id
                ),
            )

        question_id, answer = self._retrying(attempt)
        return conv_id, question_id, answer

    def ping(self) -> None:
        with self.sessions() as s:
            s.execute(select(1))

    def _save_turn_once(
        self,
        conversation_id: str,
        text: str,
        redactions: list[str],
        state: PipelineState,
        new_conversation: Conversation | None = None,
        max_turns: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        now = utcnow()
        with self.sessions.begin() as s:
            if new_conversation is not None:
                s.add(new_conversation)
                s.flush()
            # Writing first takes the write lock (SQLite) / row lock (PostgreSQL), so concurrent
            # turns of one conversation queue up here instead of racing for a position.
            touched = s.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not touched:
                raise NotFound(conversation_id)
            last = s.scalar(
                select(func.max(QuestionRecord.position)).where(
                    QuestionRecord.conversation_id == conversation_id
                )
            )
            if max_turns is not None and last is not None and last + 1 >= max_turns:
                raise ConversationFull(conversation_id)
            question = QuestionRecord(
                conversation_id=conversation_id,
                position=0 if last is None else last + 1,
                text=text,
                redactions=redactions,
                created_at=now,
            )
            s.add(question)
            try:
                s.flush()
            except IntegrityError as exc:
                raise _PositionTaken from exc

            answer = AnswerRecord(
                question_id=question.id,
                status=str(state.status),
                message=state.message or "",
                route=state.route or "",
                condensed_question=state.condensed_question or "",
                guardrails={name: v.as_dict() for name, v in state.guardrails.items()},
                timings_ms=dict(state.timings_ms),
                tokens=dict(state.tokens),
                versions=dict(state.versions),
                llm_model=state.llm_model or "",
                created_at=now,
                sources=_source_records(state),
            )
            s.add(answer)
            s.flush()
            return question.id, answer_public(answer)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_seconds
        for n in range(SAVE_RETRIES):
            try:
                return attempt()
            except _PositionTaken:
                pass
            except OperationalError as exc:
                last = n == SAVE_RETRIES - 1 or time.monotonic() >= deadline
                if not _is_retryable_lock(exc) or last:
                    raise
            time.sleep(min(0.5, 0.005 * 2**n) * random.random())
        raise RuntimeError("could not store the turn: too many concurrent writers")

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """{"conversation_id", "created_at", "turns": [{"question_id", "question", "answer",
        "feedback"}]}, oldest turn first; "feedback" is the latest feedback or None."""
        with self.sessions() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None:
                raise NotFound(conversation_id)
            questions = s.scalars(
                select(QuestionRecord)
                .where(QuestionRecord.conversation_id == conversation_id)
                .order_by(QuestionRecord.position)
                .options(
                    selectinload(QuestionRecord.answer).selectinload(AnswerRecord.sources),
                    selectinload(QuestionRecord.answer).selectinload(AnswerRecord.feedback),
                )
            ).all()
            turns = []
            for q in questions:
                a = q.answer
                latest = a.feedback[-1] if a is not None and a.feedback else None
                turns.append(
                    {
                        "question_id": q.id,
                        "question": q.text,
                        "answer": answer_public(a) if a is not None else None,
                        "feedback": _feedback_public(latest) if latest is not None else None,
                    }
                )
            return {
                "conversation_id": conv.id,
                "created_at": _iso(conv.created_at),
                "turns": turns,
            }

    def get_answer(self, answer_id: str) -> dict[str, Any]:
        """The public answer, plus its conversation_id and question_id."""
        with self.sessions() as s:
            row = s.execute(
                select(AnswerRecord, QuestionRecord.conversation_id)
                .join(QuestionRecord, QuestionRecord.id == AnswerRecord.question_id)
                .where(AnswerRecord.id == answer_id)
            ).first()
            if row is None:
                raise NotFound(answer_id)
            answer, conversation_id = row
            return {
                "conversation_id": conversation_id,
                "question_id": answer.question_id,
                "answer": answer_public(answer),
            }

    # --- admin: browsing questions and answers (read only)

    def list_answers(
        self,
        *,
        status: str | None = None,
        route: str | None = None,
        feedback: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Answers newest first, filtered; ``feedback`` is useful | not_useful | any | none (the
        latest feedback on each answer counts). ``until`` is exclusive.

        Returns {"total", "items": [{"answer_id", "question_id", "conversation_id", "position",
        "question", "status", "route", "created_at", "feedback", "feedback_reason"}]}.
        """
        if feedback not in (None, "", "useful", "not_useful", "any", "none"):
            raise ValueError("feedback must be useful, not_useful, any or none")
        latest = (
            select(FeedbackRecord.answer_id, func.max(FeedbackRecord.id).label("feedback_id"))
            .group_by(FeedbackRecord.answer_id)
            .subquery()
        )
        fb = aliased(FeedbackRecord)
        conditions = []
        if status:
            conditions.append(AnswerRecord.status == status)
        if route:
            conditions.append(AnswerRecord.route == route)
        if since is not None:
            conditions.append(AnswerRecord.created_at >= since)
        if until is not None:
            conditions.append(AnswerRecord.created_at < until)
        if feedback == "useful":
            conditions.append(fb.useful.is_(True))
        elif feedback == "not_useful":
            conditions.append(fb.useful.is_(False))
        elif feedback == "any":
            conditions.append(fb.id.is_not(None))
        elif feedback == "none":
            conditions.append(fb.id.is_(None))
        base = (
            select(
                AnswerRecord.id,
                AnswerRecord.question_id,
                QuestionRecord.conversation_id,
                QuestionRecord.position,
                QuestionRecord.text,
                AnswerRecord.status,
                AnswerRecord.route,
                AnswerRecord.created_at,
                fb.useful,
                fb.reason,
            )
            .join(QuestionRecord, QuestionRecord.id == AnswerRecord.question_id)
            .outerjoin(latest, latest.c.answer_id == AnswerRecord.id)
            .outerjoin(fb, fb.id == latest.c.feedback_id)
            .where(*conditions)
        )
        with self.sessions() as s:
            total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = s.execute(
                base.order_by(AnswerRecord.created_at.desc(), AnswerRecord.id)
                .limit(max(1, min(limit, 500)))
                .offset(max(0, offset))
            ).all()
        items = [
            {
                "answer_id": r[0],
                "question_id": r[1],
                "conversation_id": r[2],
                "position": r[3],
                "question": r[4],
                "status": r[5],
                "route": r[6],
                "created_at": _iso(r[7]),
                "feedback": None if r[8] is None else ("useful" if r[8] else "not_useful"),
                "feedback_reason": r[9],
            }
            for r in rows
        ]
        return {"total": total, "items": items}

    def answer_facets(self) -> dict[str, list[str]]:
        """The statuses and routes that occur in stored answers (for filter menus)."""
        with self.sessions() as s:
            statuses = s.scalars(
                select(AnswerRecord.status).distinct().order_by(AnswerRecord.status)
            )
            routes = s.scalars(select(AnswerRecord.route).distinct().order_by(AnswerRecord.route))
            return {"statuses": [x for x in statuses if x], "routes": [x for x in routes if x]}

    def answer_trace(self, answer_id: str) -> dict[str, Any]:
        """Everything stored about one answer: the (redacted) question, condensed question,
        route, guardrail verdicts, every source with its score (used or only retrieved),
        timings, tokens, prompt/guardrail versions, model and feedback."""
        with self.sessions() as s:
            answer = s.get(
                AnswerRecord,
                answer_id,
                options=[selectinload(AnswerRecord.question), selectinload(AnswerRecord.feedback)],
            )
            if answer is None:
                raise NotFound(answer_id)
            q = answer.question
            return {
                "answer_id": answer.id,
                "question_id": q.id,
                "conversation_id": q.conversation_id,
                "position": q.position,
                "question": q.text,
                "redactions": list(q.redactions or []),
                "condensed_question": answer.condensed_question,
                "status": answer.status,
                "route": answer.route,
                "message": answer.message,
                "guardrails": dict(answer.guardrails or {}),
                "sources": [
                    {
                        "position": src.position,
                        "url": src.url,
                        "title": src.title,
                        "heading": src.heading,
                        "chunk_id": src.chunk_id,
                        "score": src.score,
                        "used": src.used,
                    }
                    for src in sorted(answer.sources, key=lambda x: x.position)
                ],
                "timings_ms": dict(answer.timings_ms or {}),
                "tokens": dict(answer.tokens or {}),
                "versions": dict(answer.versions or {}),
                "llm_model": answer.llm_model,
                "created_at": _iso(answer.created_at),
                "feedback": [_feedback_public(f) for f in answer.feedback],
            }

    # --- feedback

    def add_feedback(
        self,
        answer_id: str,
        useful: bool,
        reason: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        if reason is not None and len(reason) > REASON_MAX_CHARS:
            raise ValueError(f"reason is longer than {REASON_MAX_CHARS} characters")
        if comment is not None and len(comment) > COMMENT_MAX_CHARS:
            raise ValueError(f"comment is longer than {COMMENT_MAX_CHARS} characters")
        with self.sessions.begin() as s:
            if s.get(AnswerRecord, answer_id) is None:
                raise NotFound(answer_id)
            fb = FeedbackRecord(
                answer_id=answer_id, useful=bool(useful), reason=reason, comment=comment
            )
            s.add(fb)
            s.flush()
            return _feedback_public(fb)

    # --- retention

    def purge_older_than(self, days: float, now: datetime | None = None) -> dict[str, int]:
        """Delete conversations not updated for ``days`` days, with everything under them.

        Children are deleted explicitly (no reliance on ON DELETE CASCADE being enabled), in
        batches, each batch in its own short transaction. Returns the rows deleted per table.
        """
        if days < 0:
            raise ValueError("days must be >= 0")
        cutoff = (now or utcnow()) - timedelta(days=days)
        counts = {
            "conversations": 0,
            "questions": 0,
            "answers": 0,
            "answer_sources": 0,
            "feedback": 0,
        }
        while True:
            with self.sessions.begin() as s:
                conv_ids = list(
                    s.scalars(
                        select(Conversation.id)
                        .where(Conversation.updated_at < cutoff)
                        .limit(PURGE_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not conv_ids:
                    break
                q_ids = select(QuestionRecord.id).where(
                    QuestionRecord.conversation_id.in_(conv_ids)
                )
                a_ids = select(AnswerRecord.id).where(AnswerRecord.question_id.in_(q_ids))
                steps = [
                    ("feedback", delete(FeedbackRecord).where(FeedbackRecord.answer_id.in_(a_ids))),
                    (
                        "answer_sources",
                        delete(AnswerSourceRecord).where(AnswerSourceRecord.answer_id.in_(a_ids)),
                    ),
                    ("answers", delete(AnswerRecord).where(AnswerRecord.question_id.in_(q_ids))),
                    (
                        "questions",
                        delete(QuestionRecord).where(QuestionRecord.conversation_id.in_(conv_ids)),
                    ),
                    (
                        "conversations",
                        delete(Conversation)
                        .where(Conversation.id.in_(conv_ids))
                        .where(Conversation.updated_at < cutoff),
                    ),
                ]
                for table, stmt in steps:
                    result = s.execute(stmt.execution_options(synchronize_session=False))
                    counts[table] += result.rowcount or 0
            if len(conv_ids) < PURGE_BATCH:
                break
        return counts

    # --- API keys

    def create_api_key(self, name: str, actor: str = "") -> str:
        """Create a key for an API client and return its secret: shown ONCE, never stored."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("an API key name needs 1 to 100 characters")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.sessions.begin() as s:
                if s.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
                    raise ApiKeyExists(name)
                s.add(ApiKey(name=name, prefix=secret[:8], key_hash=_hash_secret(secret)))
                s.add(AuditEvent(action="apikey.create", subject=name, actor=actor[:200]))
        except IntegrityError as exc:
            raise ApiKeyExists(name) from exc
        return secret

    def revoke_api_key(self, name: str, actor: str = "", reason: str = "") -> bool:
        """Revoke the named key; False if there is no such active key."""
        with self.sessions.begin() as s:
            result = s.execute(
                update(ApiKey)
                .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:
                s.add(
                    AuditEvent(
                        action="apikey.revoke", subject=name, reason=reason, actor=actor[:200]
                    )
                )
            return bool(result.rowcount)

    # --- kill switch and audit trail

    def set_service_paused(self, paused: bool, reason: str, actor: str) -> dict[str, Any]:
        """Switch answering off (paused=True) or back on, recording who, when and why.

        Every API process reads the state from the database on each question, so it takes
        effect everywhere at once. Returns the new state (as `service_state`)."""
        reason, actor = reason.strip(), actor.strip()
        if not reason:
            raise ValueError("a reason is required (it is kept in the audit trail)")
        if not actor:
            raise ValueError("who is making the change is required (audit trail)")
        with self.sessions.begin() as s:
            s.add(
                AuditEvent(
                    action=SERVICE_OFF if paused else SERVICE_ON,
                    subject="service",
                    reason=reason,
                    actor=actor[:200],
                )
            )
        return self.service_state()

    def service_state(self) -> dict[str, Any]:
        """{"paused", "reason", "actor", "since"}: the latest kill-switch event (on if none)."""
        with self.sessions() as s:
            event = s.scalar(
                select(AuditEvent)
                .where(AuditEvent.action.in_((SERVICE_OFF, SERVICE_ON)))
                .order_by(AuditEvent.id.desc())
                .limit(1)
            )
        if event is None:
            return {"paused": False, "reason": "", "actor": "", "since": None}
        return {
            "paused": event.action == SERVICE_OFF,
            "reason": event.reason,
            "actor": event.actor,
            "since": _iso(event.created_at),
        }

    def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest audit events, newest first."""
        with self.sessions() as s:
            events = s.scalars(
                select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
            ).all()
        return [
            {
                "id": e.id,
                "action": e.action,
                "subject": e.subject,
                "reason": e.reason,
                "actor": e.actor,
                "at": _iso(e.created_at),
            }
            for e in events
        ]

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.sessions() as s:
            keys = s.scalars(select(ApiKey).order_by(ApiKey.name)).all()
            return [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "active": k.revoked_at is None,
                    "created_at": _iso(k.created_at),
                    "revoked_at": _iso(k.revoked_at) if k.revoked_at else None,
                    "last_used_at": _iso(k.last_used_at) if k.last_used_at else None,
                }
                for k in keys
            ]

    def verify_api_key(self, secret: str | None) -> str | None:
        """The client name for a valid, unrevoked secret, else None (constant-time compare)."""
        if not secret or not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
            return None
        digest = _hash_secret(secret)
        now = utcnow()
        with self.sessions() as s:
            candidates = s.execute(
                select(ApiKey.id, ApiKey.name, ApiKey.key_hash, ApiKey.last_used_at).where(
                    ApiKey.prefix == secret[:8], ApiKey.revoked_at.is_(None)
                )
            ).all()
        match = None
        for key_id, name, key_hash, last_used in candidates:
            if hmac.compare_digest(key_hash, digest) and match is None:
                match = (key_id, name, last_used)
        if match is None:
            return None
        key_id, name, last_used = match
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            stale = now - LAST_USED_RESOLUTION
            try:
                with self.sessions.begin() as s:
                    s.execute(
                        update(ApiKey)
                        .where(ApiKey.id == key_id)
                        .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at <= stale))
                        .values(last_used_at=now)
                        .execution_options(synchronize_session=False)
                    )
            except OperationalError:  # bookkeeping only: never fail a request over it
                pass
        return name

    # --- rate limiting

    def hit_rate_limit(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> tuple[bool, int, int]:
        """Count one request for ``key`` in the current fixed window, atomically in the database.

        Returns (allowed, remaining, reset_epoch). Shared by every process using the database.
        """
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        now = time.time() if now is None else now
        if len(key) > RATE_LIMIT_KEY_MAX_CHARS:
            key = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
        window_start = int(now // window_seconds) * window_seconds
        reset = window_start + window_seconds
        count = self._retrying(lambda: self._increment(key, window_start, reset))
        if random.random() < RATE_LIMIT_CLEANUP_PROBABILITY:
            with contextlib.suppress(OperationalError):  # housekeeping only
                self.cleanup_rate_limits(now)
        return count <= limit, max(0, limit - count), reset

    def _increment(self, key: str, window_start: int, reset: int) -> int:
        with self.sessions.begin() as s:
            dialect = s.get_bind().dialect.name
            values = {"key": key, "window_start": window_start, "count": 1, "expires_at": reset}
            if dialect in ("sqlite", "postgresql"):
                return int(s.execute(upsert_counter_statement(dialect, **values)).scalar_one())
            # Other databases: update, else insert (a lost insert race is retried).
            bumped = s.execute(
                update(RateLimitWindow)
                .where(RateLimitWindow.key == key, RateLimitWindow.window_start == window_start)
                .values(count=RateLimitWindow.count + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not bumped:
                s.add(RateLimitWindow(**values))
                try:
                    s.flush()
                except IntegrityError as exc:
                    raise _PositionTaken from exc
                return 1
            return int(
                s.scalar(
                    select(RateLimitWindow.count).where(
                        RateLimitWindow.key == key, RateLimitWindow.window_start == window_start
                    )
                )
            )

    def cleanup_rate_limits(self, now: float | None = None) -> int:
        """Delete counters of windows that have ended; returns how many."""
        now = time.time() if now is None else now
        with self.sessions.begin() as s:
            result = s.execute(
                delete(RateLimitWindow)
                .where(RateLimitWindow.expires_at <= int(now))
                .execution_options(synchronize_session=False)
            )
            return result.rowcount or 0


def upsert_counter_statement(
    dialect: str, key: str, window_start: int, count: int, expires_at: int
) -> Any:
    """INSERT ... ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1, RETURNING."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise ValueError(f"no native upsert for {dialect}")
    stmt = insert(RateLimitWindow).values(
        key=key, window_start=window_start, count=count, expires_at=expires_at
    )
    return stmt.on_conflict_do_update(
        index_elements=[RateLimitWindow.key, RateLimitWindow.window_start],
        set_={"count": RateLimitWindow.count + 1},
    ).returning(RateLimitWindow.count)


def _source_records(state: PipelineState) -> list[AnswerSourceRecord]:
    """Cited sources in order (used flag as given), then retrieved chunks not cited (unused)."""
    scores = {c.chunk_id: c.score for c in state.retrieved}
    records: list[AnswerSourceRecord] = []
    seen: set[str] = set()
    for src in state.sources:
        score = src.score if src.score is not None else scores.get(src.chunk_id)
        records.append(
            AnswerSourceRecord(
                position=len(records),
                chunk_id=src.chunk_id or "",
                url=src.url,
                title=src.title or "",
                heading=src.heading or "",
                score=score,
                used=bool(src.used),
            )
        )
        if src.chunk_id:
            seen.add(src.chunk_id)
    for chunk in state.retrieved:
        if chunk.chunk_id in seen:
            continue
        seen.add(chunk.chunk_id)
        records.append(
            AnswerSourceRecord(
                position=len(records),
                chunk_id=chunk.chunk_id,
                url=chunk.url,
                title=chunk.title or "",
                heading=chunk.heading or "",
                score=chunk.score,
                used=False,
            )
        )
    return records
