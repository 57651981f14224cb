"""Stored conversations, answers, feedback, API keys and rate-limit counters.

Only redacted question text is ever stored. Every timestamp is timezone-aware UTC: ``UTCDateTime``
normalises on write and reattaches UTC on read (SQLite keeps no offset).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from govchat.db import Base

REASON_MAX_CHARS = 100
COMMENT_MAX_CHARS = 2000
RATE_LIMIT_KEY_MAX_CHARS = 255


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always stores UTC and always returns aware datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # naive values are taken to be UTC already
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    end_user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    api_client_id: Mapped[str | None] = mapped_column(String(100), nullable=True)

    questions: Mapped[list[QuestionRecord]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="QuestionRecord.position",
    )


class QuestionRecord(Base):
    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("conversation_id", "position", name="uq_questions_conversation_position"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("conversations.id", ondelete="CASCADE", name="fk_questions_conversation_id"),
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)  # the REDACTED question, never the original
    redactions: Mapped[list[str]] = mapped_column(JSON, default=list)  # kinds removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="questions")
    answer: Mapped[AnswerRecord | None] = relationship(
        back_populates="question", cascade="all, delete-orphan", passive_deletes=True
    )


class AnswerRecord(Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("question_id", name="uq_answers_question_id"),
        Index("ix_answers_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    question_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("questions.id", ondelete="CASCADE", name="fk_answers_question_id")
    )
    status: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    route: Mapped[str] = mapped_column(String(50), default="")
    condensed_question: Mapped[str] = mapped_column(Text, default="")
    guardrails: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    tokens: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    llm_model: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    question: Mapped[QuestionRecord] = relationship(back_populates="answer")
    sources: Mapped[list[AnswerSourceRecord]] = relationship(
        back_populates="answer",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AnswerSourceRecord.position",
        lazy="selectin",
    )
    feedback: Mapped[list[FeedbackRecord]] = relationship(
        back_populates="answer",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by=lambda: [FeedbackRecord.created_at, FeedbackRecord.id],
    )


class AnswerSourceRecord(Base):
    """A source shown with the answer (used=True) or retrieved but not cited (used=False)."""

    __tablename__ = "answer_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("answers.id", ondelete="CASCADE", name="fk_answer_sources_answer_id"),
        index=True,
    )
    position: Mapped[int] = mapped_column(Integer)
    chunk_id: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(1000), default="")
    heading: Mapped[str] = mapped_column(String(1000), default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    used: Mapped[bool] = mapped_column(Boolean, default=True)

    answer: Mapped[AnswerRecord] = relationship(back_populates="sources")


class FeedbackRecord(Base):
    """End-user feedback on an answer; several per answer allowed, the latest wins in reads."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("answers.id", ondelete="CASCADE", name="fk_feedback_answer_id"),
        index=True,
    )
    useful: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(REASON_MAX_CHARS), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    answer: Mapped[AnswerRecord] = relationship(back_populates="feedback")


class ApiKey(Base):
    """An API client's key: only a SHA-256 hash of the secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("name", name="uq_api_keys_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(8), index=True)  # first 8 chars, for display
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RateLimitWindow(Base):
    """A fixed-window request counter shared by every process using the database."""

    __tablename__ = "rate_limit_windows"

    key: Mapped[str] = mapped_column(String(RATE_LIMIT_KEY_MAX_CHARS), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # window end, epoch seconds


class AuditEvent(Base):
    """An append-only record of an operator action: the service switched off or on (the kill
    switch; the latest such event is the current state), an API key created or revoked."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action_id", "action", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(50))  # service.off | service.on | apikey.*
    subject: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


__all__ = [
    "AnswerRecord",
    "AuditEvent",
    "AnswerSourceRecord",
    "ApiKey",
    "Conversation",
    "FeedbackRecord",
    "QuestionRecord",
    "RateLimitWindow",
    "UTCDateTime",
    "new_id",
    "utcnow",
]
