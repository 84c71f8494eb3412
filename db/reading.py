"""Read-only connections for analytics: a consistent snapshot, without blocking the bot's writes.

Why not the store's own engine on SQLite: it opens every transaction with BEGIN IMMEDIATE
(right for writers), which would make each analytics read take the database's write
lock.  Reads here use a second engine on the same file whose transactions are deferred
(plain BEGIN): in WAL mode they see one snapshot and never block the writer.
PostgreSQL needs no such care: its reads never block writes.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock

from sqlalchemy import Connection, Engine, Select, create_engine, event

from db.database import Database
from db.engine import SQLITE_BUSY_TIMEOUT_MS

_engines: weakref.WeakKeyDictionary[Database, Engine] = weakref.WeakKeyDictionary()
_lock = Lock()


@contextmanager
def reading(database: Database) -> Iterator[Connection]:
    """A connection in a read transaction (rolled back at the end: nothing is ever written)."""
    with _engine_for(database).connect() as connection, connection.begin() as transaction:
        try:
            yield connection
        finally:
            transaction.rollback()


def _engine_for(database: Database) -> Engine:
    if database.backend != "sqlite" or database.url.database in (None, "", ":memory:"):
        return database.engine
    with _lock:
        engine = _engines.get(database)
        if engine is None:
            engine = _engines[database] = _deferred_sqlite_engine(database)
        return engine


def _deferred_sqlite_engine(database: Database) -> Engine:
    engine = create_engine(database.url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")

    weakref.finalize(database, engine.dispose)
    return engine


def plain_rows(connection: Connection, statement: Select) -> list[tuple]:
    """A SELECT's rows as the driver returns them, skipping SQLAlchemy's per-row processing.

    For the reads of thousands of small rows (daily series): building a Row and parsing a
    date per row costs more than the query itself.  SQLAlchemy still compiles the statement
    and binds its parameters; select only columns whose driver values are already what the
    caller wants (integers, text, e.g. dates cast to text).
    """
    result = connection.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()
