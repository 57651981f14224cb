"""Database schema migrations (Alembic), run from code: no alembic.ini is needed.

    from chat_api.migrations import upgrade_database
    upgrade_database(engine)            # or a SQLAlchemy URL; same as `alembic upgrade head`

The whole upgrade runs in ONE transaction that holds a database-wide lock (SQLite: BEGIN
IMMEDIATE; PostgreSQL: an advisory lock), so several processes starting at once are safe.
SQLite migrations run on a dedicated connection with foreign keys OFF, so a future batch
migration that recreates a table never cascades deletes into its children.

Databases made before migrations existed (``Base.metadata.create_all``: ``index_runs`` and no
``alembic_version``) are adopted: the initial revision only creates the tables that are missing.

To write a new revision after changing the models::

    from alembic import command
    from chat_api.migrations import alembic_config
    command.revision(alembic_config(url="sqlite:////tmp/x.sqlite3"), "what changed",
                     autogenerate=True)   # against a database upgraded to head; then edit it
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, make_url
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = 0x676F7663686174  # "govchat": serialises concurrent upgrades on PostgreSQL


def load_models() -> MetaData:
    """Import every model module so that all tables are registered, and return the metadata."""
    import chat_api.models  # noqa: F401
    import ingest.runs  # noqa: F401
    from govchat.db import Base

    return Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Autogenerate hook: write our UTC type as the plain column type it is in the database."""
    from chat_api.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    """An Alembic Config pointing at this folder; pass a connection (online) or a URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _url_of(engine_or_url: Engine | str | URL) -> URL:
    if isinstance(engine_or_url, Engine):
        return engine_or_url.url
    if isinstance(engine_or_url, str):
        from govchat.db import normalise_database_url

        engine_or_url = normalise_database_url(engine_or_url)
    return make_url(engine_or_url)


def _is_sqlite_memory(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in db or "mode=memory" in str(url.query)


def _sqlite_engine(url: URL) -> Engine:
    if url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60}, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin: DDL then
        # runs inside the transaction, and BEGIN IMMEDIATE takes the write lock up front.
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def migration_connection(engine_or_url: Engine | str | URL) -> Iterator[Connection]:
    """A connection inside one transaction that holds the database-wide migration lock."""
    url = _url_of(engine_or_url)
    own_engine: Engine | None = None
    if url.get_backend_name() == "sqlite" and not _is_sqlite_memory(url):
        engine = own_engine = _sqlite_engine(url)
    elif isinstance(engine_or_url, Engine):
        engine = engine_or_url  # in-memory SQLite must reuse the caller's engine (same pool)
    else:
        engine = own_engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            yield conn
    finally:
        if own_engine is not None:
            own_engine.dispose()


def upgrade_database(engine_or_url: Engine | str | URL, revision: str = "head") -> str | None:
    """Bring the schema up to ``revision`` (default: head); idempotent. Returns the revision."""
    from alembic import command

    with migration_connection(engine_or_url) as conn:
        command.upgrade(alembic_config(connection=conn), revision)
        return _current(conn)


def current_revision(engine_or_url: Engine | str | URL) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with migration_connection(engine_or_url) as conn:
        return _current(conn)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_drift(engine_or_url: Engine | str | URL) -> list[Any]:
    """Differences between the models and the database (empty = in step), like `alembic check`."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    metadata = load_models()
    with migration_connection(engine_or_url) as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True, "target_metadata": metadata}
        )
        return compare_metadata(ctx, metadata)


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "load_models",
    "migration_connection",
    "render_item",
    "schema_drift",
    "upgrade_database",
]
