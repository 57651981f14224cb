"""Initial schema: index runs, conversations, questions, answers, sources, feedback, API keys,
rate-limit windows.

Databases made before migrations existed (by ``Base.metadata.create_all``, which made
``index_runs`` and possibly others with this same definition) are adopted: only the tables that
are missing are created, and existing rows are kept.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _existing_tables() -> set[str]:
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    existing = _existing_tables()

    if "index_runs" not in existing:
        op.create_table(
            "index_runs",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("source", sa.String(length=2000), nullable=False),
            sa.Column("dry_run", sa.Boolean(), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=True),
            sa.Column("summary", sa.JSON(), nullable=False),
            sa.Column("errors", sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

    if "conversations" not in existing:
        op.create_table(
            "conversations",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("end_user_id", sa.String(length=255), nullable=True),
            sa.Column("api_client_id", sa.String(length=100), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_conversations_created_at", "conversations", ["created_at"])
        op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])

    if "questions" not in existing:
        op.create_table(
            "questions",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("conversation_id", sa.String(length=36), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.Column("redactions", sa.JSON(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["conversation_id"],
                ["conversations.id"],
                name="fk_questions_conversation_id",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint(
                "conversation_id", "position", name="uq_questions_conversation_position"
            ),
        )

    if "answers" not in existing:
        op.create_table(
            "answers",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("question_id", sa.String(length=36), nullable=False),
            sa.Column("status", sa.String(length=40), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("route", sa.String(length=50), nullable=False),
            sa.Column("condensed_question", sa.Text(), nullable=False),
            sa.Column("guardrails", sa.JSON(), nullable=False),
            sa.Column("timings_ms", sa.JSON(), nullable=False),
            sa.Column("tokens", sa.JSON(), nullable=False),
            sa.Column("versions", sa.JSON(), nullable=False),
            sa.Column("llm_model", sa.String(length=200), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["question_id"],
                ["questions.id"],
                name="fk_answers_question_id",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("question_id", name="uq_answers_question_id"),
        )
        op.create_index("ix_answers_created_at", "answers", ["created_at"])
        op.create_index("ix_answers_status_created_at", "answers", ["status", "created_at"])

    if "answer_sources" not in existing:
        op.create_table(
            "answer_sources",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("answer_id", sa.String(length=36), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("chunk_id", sa.String(length=200), nullable=False),
            sa.Column("url", sa.String(length=2000), nullable=False),
            sa.Column("title", sa.String(length=1000), nullable=False),
            sa.Column("heading", sa.String(length=1000), nullable=False),
            sa.Column("score", sa.Float(), nullable=True),
            sa.Column("used", sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(
                ["answer_id"],
                ["answers.id"],
                name="fk_answer_sources_answer_id",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_answer_sources_answer_id", "answer_sources", ["answer_id"])

    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("answer_id", sa.String(length=36), nullable=False),
            sa.Column("useful", sa.Boolean(), nullable=False),
            sa.Column("reason", sa.String(length=100), nullable=True),
            sa.Column("comment", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["answer_id"], ["answers.id"], name="fk_feedback_answer_id", ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_feedback_answer_id", "feedback", ["answer_id"])
        op.create_index("ix_feedback_created_at", "feedback", ["created_at"])

    if "api_keys" not in existing:
        op.create_table(
            "api_keys",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=100), nullable=False),
            sa.Column("prefix", sa.String(length=8), nullable=False),
            sa.Column("key_hash", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("name", name="uq_api_keys_name"),
        )
        op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])

    if "rate_limit_windows" not in existing:
        op.create_table(
            "rate_limit_windows",
            sa.Column("key", sa.String(length=255), nullable=False),
            sa.Column("window_start", sa.BigInteger(), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("key", "window_start"),
        )
        op.create_index("ix_rate_limit_windows_expires_at", "rate_limit_windows", ["expires_at"])


def downgrade() -> None:
    op.drop_table("rate_limit_windows")
    op.drop_table("api_keys")
    op.drop_table("feedback")
    op.drop_table("answer_sources")
    op.drop_table("answers")
    op.drop_table("questions")
    op.drop_table("conversations")
    op.drop_table("index_runs")
