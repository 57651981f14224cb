"""Run storage tests against PostgreSQL as well as SQLite.

`GOVCHAT_TEST_POSTGRES_URL` names a server (`eval "$(bash scripts/postgres_setup.sh)"` starts a
local one). Each test gets a fresh database on it, dropped afterwards. Without the variable the
PostgreSQL variants are skipped, except in CI (`CI` set), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, make_url, select, text
from sqlalchemy.engine import URL

from govchat.settings import Settings

POSTGRES_URL_ENV = "GOVCHAT_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def postgres_url() -> str:
    """The server URL, or skip (fail in CI) when none is configured."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return url
    message = (
        f'{POSTGRES_URL_ENV} is not set: run `eval "$(bash scripts/postgres_setup.sh)"` to '
        "start a local PostgreSQL server for the storage tests"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test server; dropped (connections and all) afterwards."""
    from govchat.db import normalise_database_url

    base: URL = make_url(normalise_database_url(postgres_url()))
    name = f"govchat_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def backend_settings(backend: str, data_dir: Path, **kw: Any) -> Iterator[Settings]:
    """Settings for a test on `backend`: SQLite in `data_dir`, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield Settings(data_dir=data_dir, **kw)
        return
    with fresh_postgres_database() as url:
        yield Settings(data_dir=data_dir, database_url=url, **kw)


def dump_database(engine: Engine) -> str:
    """Every row of every table as text (SQLite: the SQL dump), to search for leaked data."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as c:
            return "\n".join(c.connection.dbapi_connection.iterdump())
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(engine)
    lines: list[str] = []
    with engine.connect() as c:
        for name in inspect(engine).get_table_names():
            for row in c.execute(select(meta.tables[name])):
                lines.append(f"{name}: {tuple(row)!r}")
    return "\n".join(lines)
