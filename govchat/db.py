"""Relational storage (SQLite by default, any SQLAlchemy URL by configuration)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from govchat.settings import Settings


class Base(DeclarativeBase):
    pass


def normalise_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean the psycopg (v3) driver, the one installed."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database is locked, unreachable or out of connections.

    Looks through the whole exception chain: a connection whose socket died can surface as
    another error raised while SQLAlchemy cleans up after the real one (psycopg's pre-ping
    reports "can't change 'autocommit' now" after "connection socket closed").
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if _is_dbapi_connection_error(exc):  # a driver's own error (SQLAlchemy's ``orig``)
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_dbapi_connection_error(exc: BaseException) -> bool:
    # DB-API 2.0 names, whatever the driver (sqlite3, psycopg, ...).
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(exc).__mro__)


def make_engine(settings: Settings) -> Engine:
    url = normalise_database_url(settings.resolved_database_url)
    timeout = settings.database_timeout
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args = {"connect_timeout": max(1, round(timeout))} if "+psycopg" in url else {}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=timeout,
        connect_args=connect_args,
    )


def init_db(engine: Engine) -> sessionmaker:
    """Bring the schema to the latest Alembic revision (cheap when it already is)."""
    from chat_api.migrations import upgrade_database

    upgrade_database(engine)
    return sessionmaker(engine, expire_on_commit=False)
