import sqlite3

from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from govchat.db import is_unavailable


def _wrapped(cls, orig: BaseException):
    """What SQLAlchemy raises: its own error, ``from`` the driver's."""
    try:
        raise cls("SELECT 1", {}, orig) from orig
    except cls as exc:
        return exc


def test_connection_failures_are_unavailable():
    assert is_unavailable(_wrapped(OperationalError, sqlite3.OperationalError("locked")))


def test_a_connection_error_hidden_behind_a_cleanup_error_is_unavailable():
    # psycopg: the pre-ping fails with "connection socket closed", then restoring autocommit
    # raises "can't change 'autocommit' now" and SQLAlchemy reports only the second.
    try:
        try:
            raise sqlite3.OperationalError("connection socket closed")
        except sqlite3.OperationalError:
            raise sqlite3.ProgrammingError("can't change 'autocommit' now")  # noqa: B904
    except sqlite3.ProgrammingError as cleanup:
        exc = _wrapped(ProgrammingError, cleanup)
    assert is_unavailable(exc)


def test_other_database_errors_are_not_unavailable():
    assert not is_unavailable(_wrapped(IntegrityError, sqlite3.IntegrityError("duplicate")))
    assert not is_unavailable(_wrapped(ProgrammingError, sqlite3.ProgrammingError("bad SQL")))
    assert not is_unavailable(ValueError("not a database error"))
