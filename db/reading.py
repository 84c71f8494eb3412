"""Read-only connections for analytics: a consistent snapshot, without blocking the bot's writes.

Why not the store's own engine on SQLite: it opens every transaction with BEGIN IMMEDIATE
(right for writers), which would make each analytics read take the database's write
lock.  Reads here use a second engine on the same file whose transactions are deferred
(plain BEGIN): in WAL mode they see one snapshot and never block the writer.
PostgreSQL needs no such care: its reads never block writes.

A reading that must be one snapshot across several statements (the exporter's scrape) asks for
`consistent=True`: REPEATABLE READ on PostgreSQL; other readings there run in autocommit, which
reads what PostgreSQL's default READ COMMITTED transaction would (a snapshot per statement) without
its BEGIN and ROLLBACK round trips.  SQLite's deferred transaction already reads one snapshot.  `change_marker` names
that snapshot, so a caller can tell cheaply whether anything was committed since.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from threading import Lock
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event
from sqlalchemy.sql.compiler import Compiled

from db.database import Database
from db.engine import SQLITE_BUSY_TIMEOUT_MS

_engines: weakref.WeakKeyDictionary[Database, Engine] = weakref.WeakKeyDictionary()
_lock = Lock()


@contextmanager
def reading(database: Database, consistent: bool = False) -> Iterator[Connection]:
    """A connection in a read transaction (rolled back at the end: nothing is ever written);
    `consistent`: every statement sees the same snapshot."""
    with _engine_for(database).connect() as connection:
        if database.backend == "postgresql":
            # READ COMMITTED takes a snapshot per statement anyway: without `consistent`, autocommit
            # reads the same and saves the BEGIN and ROLLBACK round trips of every request.
            level = "REPEATABLE READ" if consistent else "AUTOCOMMIT"
            connection = connection.execution_options(isolation_level=level)
        with connection.begin() as transaction:
            try:
                yield connection
            finally:
                transaction.rollback()


def change_marker(connection: Connection) -> str | None:
    """A text that changes whenever a transaction that could have written anything ends; None where
    the backend has no cheap exact one (SQLite: its data_version is per connection, and the pool
    hands out different ones).

    PostgreSQL: the transaction's snapshot, pg_current_snapshot() (xmin:xmax:in-progress xids).
    Any transaction that wrote has an xid; when it commits or aborts it leaves the in-progress list
    or moves xmax (the latest completed xid + 1), so two equal markers mean the same committed data.
    It is cluster-wide (a write in another database of the server also moves it): it can only say
    "changed" too often, never too rarely.  Take it as the first statement of a `consistent` reading
    and it is the snapshot every later statement of that reading sees.
    """
    if connection.dialect.name != "postgresql":
        return None
    return connection.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar_one()


def store_marker(database: Database) -> str | None:
    """change_marker of the store as it is now, in one statement outside any transaction (no BEGIN and
    ROLLBACK round trips: it is asked on every scrape); None without a marker, without connecting."""
    if database.backend != "postgresql":
        return None
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return change_marker(connection)


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


class Prebuilt:
    """A SELECT with named bind parameters, compiled once per dialect and run as that SQL text.

    Why: the analytics the REST API serves most (correlation, daily summaries) spent a millisecond a
    request building their statement and its cache key before SQLAlchemy found the compiled form it
    had cached.  Built once, a request sends the text with its values and takes the driver's rows.
    On PostgreSQL only (psycopg2 adapts dates, texts and numbers itself); elsewhere the statement runs
    through SQLAlchemy as usual, whose type processing SQLite's dates need."""

    def __init__(self, statement: Select) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = Lock()

    def rows(self, connection: Connection, **values: Any) -> list[tuple]:
        """The statement's rows as the driver returns them (plain_rows), `values` for its bind parameters."""
        if connection.dialect.name != "postgresql":
            result = connection.execute(self.statement, values)
        else:
            text, defaults = self._text(connection)
            result = connection.exec_driver_sql(text, {**defaults, **values})
        try:
            return result.cursor.fetchall()
        finally:
            result.close()

    def _text(self, connection: Connection) -> tuple[str, dict[str, Any]]:
        name = connection.dialect.name
        found = self._compiled.get(name)
        if found is None:
            with self._lock:
                compiled: Compiled = self.statement.compile(dialect=connection.dialect)
                found = self._compiled[name] = (compiled.string, dict(compiled.params))
        return found


# Every such statement is built once per shape (of periods, of filters) with its values bound, and
# run as its compiled text.  Why: building a statement over a UNION ALL and its cache key cost 1 to
# 4 ms a request (48 sums for "by hour"), up to forty times what the server takes.  One cache for
# every module that reads this way (db.analytics, db.daily_results): keys start with the query's name.
_STATEMENTS: dict[tuple, Prebuilt] = {}


def prebuilt(key: tuple, build: Callable[[], Select]) -> Prebuilt:
    """The Prebuilt statement cached under `key` (its query's name first), built by `build` the first time."""
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS.setdefault(key, Prebuilt(build()))
    return found


R = TypeVar("R")


def stored_record(record_type: type[R], values: Mapping[str, Any]) -> R:
    """A frozen record (db.records) of values read back from the store, without its __post_init__ checks.

    Why: they were checked when they were written (db.records validates every record the store takes),
    and re-checking a year of daily rows on every read cost more than the query.  The fields are set
    as dataclass __init__ would set them on a frozen class."""
    record = object.__new__(record_type)
    for name in record_type.__dataclass_fields__:
        object.__setattr__(record, name, values[name])
    return record
