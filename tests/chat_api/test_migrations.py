"""Alembic migrations on real SQLite files and a real PostgreSQL server (GOVCHAT_TEST_POSTGRES_URL;
required in CI): complete, in step with the models, idempotent."""

from __future__ import annotations

import io
import threading

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import sessionmaker

from chat_api.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    load_models,
    migration_connection,
    schema_drift,
    upgrade_database,
)
from chat_api.repository import Repository, upsert_counter_statement
from govchat.db import Base, make_engine
from ingest.runs import IndexRun, RunLog
from tests.support.postgres import BACKENDS, backend_settings

HEAD = "0002_audit_events"

EXPECTED_TABLES = {
    "index_runs",
    "conversations",
    "questions",
    "answers",
    "answer_sources",
    "feedback",
    "api_keys",
    "rate_limit_windows",
    "audit_events",
}


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path):
    with backend_settings(request.param, tmp_path / "data", collection="test_chunks") as s:
        yield s


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_creates_every_table_with_no_drift(settings):
    engine = make_engine(settings)
    assert current_revision(engine) is None
    assert upgrade_database(engine) == head_revision() == HEAD

    assert set(load_models().tables) == EXPECTED_TABLES
    assert tables(engine) == EXPECTED_TABLES | {"alembic_version"}
    assert schema_drift(engine) == []
    # The same check `alembic check` makes, through env.py (raises on any difference).
    with migration_connection(engine) as conn:
        command.check(alembic_config(connection=conn))
    engine.dispose()


def test_upgrade_is_idempotent_and_keeps_data(settings):
    engine = make_engine(settings)
    upgrade_database(engine)
    repo = Repository(sessionmaker(engine, expire_on_commit=False))
    conv = repo.create_conversation(None, None)
    assert upgrade_database(engine) == HEAD
    assert upgrade_database(settings.resolved_database_url) == HEAD  # a URL works too
    command.upgrade(alembic_config(url=settings.resolved_database_url), "head")  # env.py by URL
    assert repo.get_conversation(conv)["turns"] == []
    assert schema_drift(engine) == []
    engine.dispose()


def test_a_database_made_by_create_all_is_adopted(settings):
    """What init_db made before migrations existed: index_runs only, no alembic_version."""
    engine = make_engine(settings)
    Base.metadata.create_all(engine, tables=[IndexRun.__table__])
    log = RunLog(sessionmaker(engine, expire_on_commit=False))
    run_id = log.start("snapshot", dry_run=False)
    log.finish(run_id, "completed", {"chunks_added": 1}, [])
    assert tables(engine) == {"index_runs"}

    assert upgrade_database(engine) == HEAD
    assert tables(engine) == EXPECTED_TABLES | {"alembic_version"}
    assert schema_drift(engine) == []
    runs = log.recent()
    assert [(r["id"], r["status"], r["summary"]) for r in runs] == [
        (run_id, "completed", {"chunks_added": 1})
    ]
    assert upgrade_database(engine) == HEAD
    engine.dispose()


def test_a_database_with_every_table_from_create_all_is_adopted(settings):
    engine = make_engine(settings)
    load_models()
    Base.metadata.create_all(engine)
    repo = Repository(sessionmaker(engine, expire_on_commit=False))
    conv = repo.create_conversation(None, None)
    assert upgrade_database(engine) == HEAD
    assert schema_drift(engine) == []
    assert repo.get_conversation(conv)["conversation_id"] == conv
    engine.dispose()


def test_concurrent_upgrades_of_a_fresh_database(settings):
    url = settings.resolved_database_url
    results: list[str | None] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(upgrade_database(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert results == [HEAD] * 3


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    upgrade_database(url)
    with migration_connection(url) as conn:
        command.downgrade(alembic_config(connection=conn), "base")
    engine = create_engine(url)
    assert tables(engine) == {"alembic_version"}
    assert upgrade_database(url) == HEAD
    assert tables(engine) == EXPECTED_TABLES | {"alembic_version"}
    engine.dispose()


def test_in_memory_sqlite_engine(tmp_path):
    from sqlalchemy.pool import StaticPool

    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    assert upgrade_database(engine) == HEAD
    assert tables(engine) == EXPECTED_TABLES | {"alembic_version"}


def test_postgresql_sql_renders():
    """Offline (`--sql`) rendering for PostgreSQL; no server needed."""
    buf = io.StringIO()
    cfg = alembic_config(url="postgresql://user:pw@localhost/govchat")
    cfg.output_buffer = buf
    command.upgrade(cfg, "head", sql=True)
    sql = buf.getvalue()
    for table in EXPECTED_TABLES:
        assert f"CREATE TABLE {table} " in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql and "ON DELETE CASCADE" in sql

    stmt = upsert_counter_statement("postgresql", "k", 0, 1, 60)
    compiled = str(stmt.compile(dialect=postgresql.dialect()))
    assert "ON CONFLICT (key, window_start) DO UPDATE" in compiled
    assert "RETURNING rate_limit_windows.count" in compiled


def test_upgrade_from_the_previous_revision_keeps_data(settings):
    engine = make_engine(settings)
    assert upgrade_database(engine, "0001_initial") == "0001_initial"
    repo = Repository(sessionmaker(engine, expire_on_commit=False))
    conv = repo.create_conversation(None, None)
    assert "audit_events" not in tables(engine)
    assert upgrade_database(engine) == HEAD
    assert repo.get_conversation(conv)["turns"] == []
    assert repo.service_state()["paused"] is False
    assert schema_drift(engine) == []
    engine.dispose()
