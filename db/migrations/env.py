"""Alembic environment for the trade store.

Normally `db.migrate` hands over an open connection (config.attributes
["connection"]) already inside a transaction.  Run through the `alembic`
command (db/alembic.ini) it connects to $DATABASE_URL itself.
"""

from alembic import context
from sqlalchemy import Connection, text

from db.engine import create_store_engine
from db.models import Base
from db.url import resolve_url

# Any fixed 64-bit number: serialises concurrent migrators on one PostgreSQL database.
MIGRATION_LOCK_KEY = 0x7472_6164_6577_6174  # "tradewat"

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: future revisions rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_store_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    url = resolve_url(config.get_main_option("sqlalchemy.url"))
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
