"""Alembic environment: govchat's models and database URL; no alembic.ini needed.

Online with ``config.attributes["connection"]`` (what ``upgrade_database`` passes), online with a
URL (``sqlalchemy.url`` option, else the settings' resolved database URL), or offline (``--sql``).
"""

from __future__ import annotations

from typing import Any

from alembic import context

from chat_api.migrations import load_models, migration_connection, render_item

config = context.config
target_metadata = load_models()


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": True,  # SQLite cannot ALTER most things: copy-and-move tables
        "compare_type": True,
        "render_item": render_item,
    }


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from govchat.settings import get_settings

    return get_settings().resolved_database_url


def run_offline() -> None:
    context.configure(
        url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options()
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Any) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    run_online(config.attributes["connection"])
else:
    with migration_connection(_url()) as conn:
        run_online(conn)
