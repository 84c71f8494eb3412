"""Schema migrations, driven from code so they work from an installed package and any directory.

Alembic is configured programmatically (script location inside this package)
and runs on a connection we hand it, in one transaction: on PostgreSQL the
env script also takes an advisory lock, on SQLite BEGIN IMMEDIATE does the
same job, so two processes starting together migrate one after the other.
Within one process a lock does it: Alembic keeps its running context in
module globals, so two threads must never migrate at the same time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_alembic_lock = Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (normally head)."""
    with _alembic_lock, _migration_transaction(engine) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision` ('base' drops everything)."""
    with _alembic_lock, _migration_transaction(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for the whole migration run.

    On SQLite, foreign keys are switched off around it, as SQLite's own recipe
    for rebuilding a table asks (a batch migration drops and recreates tables;
    with enforcement on, dropping a referenced table would cascade into its
    children).  The pragma only works outside a transaction; integrity is
    checked before committing.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _driver_pragma(connection, "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _driver_pragma(connection, "PRAGMA foreign_keys=ON")


def _driver_pragma(connection: Connection, pragma: str) -> None:
    """Run a pragma on the raw sqlite3 connection, outside any transaction (SQLAlchemy would open one)."""
    connection.connection.driver_connection.execute(pragma)
