"""The store handle: one engine, one place where sessions begin and end, and `init_db`.

`init_db()` is what a process calls at start-up: it resolves the URL
(argument, $DATABASE_URL, or the SQLite default), brings the schema to the
newest revision, and returns the handle the `Repository` is built on.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import migrate
from db.engine import create_store_engine
from db.url import redact_url, resolve_url

log = logging.getLogger(__name__)


class Database:
    """An engine plus the session factory; safe to share between threads."""

    def __init__(self, url: str | URL | None = None) -> None:
        self.url = resolve_url(url)
        self.engine: Engine = create_store_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.url.get_backend_name()

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed if the block succeeds, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def ping(self) -> bool:
        """True if the database answers and accepts a write: a no-op update of alembic_version, rolled back.

        Needs the migrated schema (init_db); the reason for a False is logged, never the password.
        """
        try:
            with self.engine.connect() as connection, connection.begin() as transaction:
                connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
                transaction.rollback()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            log.warning("database %s is not usable: %s", redact_url(self.url), reason)
            return False
        return True

    def dispose(self) -> None:
        """Close pooled connections (at shutdown, or in tests before dropping a database)."""
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()


def init_db(url: str | URL | None = None) -> Database:
    """Open the store and migrate it to the newest schema revision."""
    database = Database(url)
    try:
        migrate.upgrade(database.engine, "head")
    except BaseException:
        database.dispose()
        raise
    log.info("database %s at schema revision %s", redact_url(database.url), migrate.head_revision())
    return database
