"""The cycle's signal rows, their counters and its snapshots written straight through the SQLite driver.

Why: a cycle records a signal per (symbol, strategy), HOLD included, and writes them in one
INSERT plus one counter upsert (db.repository.record_signals). SQLite did that in ~50 us; the
SQLAlchemy execution around it (statement contexts, per-row parameter processing, results)
took ~400 us more, a tenth of a whole trading cycle (issue 16). Here the statements are the
ones SQLAlchemy renders for db.statements (the same ON CONFLICT clauses), their text made once
per row count, each value bound through its column type's own SQLAlchemy bind processor, or
for money the type's `driver_bind_processor` that gives the same values (a datetime, a Decimal,
a bool is stored exactly as SQLAlchemy stores it; tests/test_sqlite_rows.py compares the rows and
the bound values), column by column, run on the unit's own DBAPI connection and transaction. A driver error is
raised as the SQLAlchemy error it would have been, and the engine's before/after_cursor_execute
listeners see the statement as they see SQLAlchemy's. PostgreSQL keeps SQLAlchemy's path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from types import FunctionType
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

ROWS_PER_STATEMENT = 500  # SQLite allows 32 766 variables a statement; a signal row has ten


class RawRows:
    """INSERT of rows into `table`, with `tail` after the VALUES."""

    def __init__(self, table: Table, tail: str) -> None:
        self.table = table
        self.tail = tail
        self._processors: dict[tuple[str, ...], list[Callable[[Any], Any] | None]] = {}
        self._sql = lru_cache(maxsize=64)(self._render)

    def insert(self, connection: Connection, rows: Sequence[dict[str, Any]], returning: bool) -> list[tuple]:
        """Rows as dicts with the same keys: see `insert_columns`."""
        if not rows:
            return []
        names = tuple(rows[0])
        return self.insert_columns(connection, names, [[row[name] for row in rows] for name in names], returning)

    def insert_columns(self, connection: Connection, names: tuple[str, ...], columns: Sequence[Sequence[Any]],
                       returning: bool) -> list[tuple]:
        """The rows given column by column (`columns[i]`: every row's value of `names[i]`), one
        statement per ROWS_PER_STATEMENT rows; the RETURNING rows when `returning`.

        Why by column: a value bound by its column's processor over the whole column, interleaved
        into the statement's parameters by zip, cost a quarter of binding row by row, cell by cell
        (issue 16); and a caller whose rows share a value (a snapshot's account and time) passes
        that column as one value repeated, without a dict per row."""
        return self._insert(connection, names, columns, returning)[0]

    def insert_counted(self, connection: Connection, names: tuple[str, ...], columns: Sequence[Sequence[Any]]) -> int:
        """`insert_columns` without RETURNING: how many rows it inserted (SQLite's changes())."""
        return self._insert(connection, names, columns, False)[1]

    def _insert(self, connection: Connection, names: tuple[str, ...], columns: Sequence[Sequence[Any]],
                returning: bool) -> tuple[list[tuple], int]:
        count = len(columns[0]) if columns else 0
        if not count:
            return [], 0
        processors = self._processors_for(connection, names)
        bound = [_bound(process, column) for process, column in zip(processors, columns, strict=True)]
        cursor = connection.connection.dbapi_connection.cursor()
        out: list[tuple] = []
        changed = 0
        try:
            for start in range(0, count, ROWS_PER_STATEMENT):
                chunk = bound if count <= ROWS_PER_STATEMENT else [
                    column[start:start + ROWS_PER_STATEMENT] for column in bound]
                params = list(chain.from_iterable(zip(*chunk, strict=True)))
                sql = self._sql(names, len(chunk[0]))
                _execute(connection, cursor, sql, params)
                if returning:
                    try:
                        out.extend(cursor.fetchall())
                    except sqlite3.Error as exc:
                        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
                changed += cursor.rowcount
        finally:
            cursor.close()
        return out, changed

    def _processors_for(self, connection: Connection, names: tuple[str, ...]) -> list[Callable[[Any], Any] | None]:
        processors = self._processors.get(names)
        if processors is None:
            dialect, columns = connection.dialect, self.table.c
            processors = self._processors[names] = [_processor(columns[name].type.dialect_impl(dialect), dialect)
                                                    for name in names]
        return processors

    def _render(self, names: tuple[str, ...], count: int) -> str:
        row = "(" + ", ".join("?" * len(names)) + ")"
        return f"INSERT INTO {_quoted([self.table.name])} ({_quoted(names)}) VALUES {', '.join([row] * count)} {self.tail}"


def _processor(column_type: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's bind processor: its `driver_bind_processor` where it has one (db.types.Money:
    the same values, kept per Decimal), else SQLAlchemy's."""
    driver = getattr(column_type, "driver_bind_processor", None)
    return driver(dialect) if driver is not None else column_type.bind_processor(dialect)


def _bound(process: Callable[[Any], Any] | None, values: Sequence[Any]) -> Sequence[Any]:
    """A column's values through its bind processor (None: none; the values as they are).

    A value that is the very object another row has in that column (a cycle's signals share
    their time, their account; a symbol's two strategies its price) is bound once: a processor
    is a pure function of its value, and a datetime's costs ~4 us. The objects are the caller's,
    alive through the call, so their ids tell them apart."""
    if process is None:
        return values
    if len(values) == 1:
        return [process(values[0])]
    if type(process) is not FunctionType:  # a compiled one (Float's to_float): cheaper than the lookup
        return list(map(process, values))
    keys = list(map(id, values))
    once = {key: process(value) for key, value in dict(zip(keys, values, strict=True)).items()}
    return list(map(once.__getitem__, keys))


def _execute(connection: Connection, cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """One statement on the driver's cursor, as SQLAlchemy would run it: the engine's statement
    listeners see it, and a driver error is raised as the SQLAlchemy error it would have been."""
    dispatch = connection.dispatch
    dispatch.before_cursor_execute(connection, cursor, sql, params, None, False)
    try:
        cursor.execute(sql, params)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
    dispatch.after_cursor_execute(connection, cursor, sql, params, None, False)


def max_id(connection: Connection, table: Table) -> int:
    """The largest `id` of `table` (0 when empty): the rowid SQLite gives the next row it inserts
    without one is this + 1 (below MAX_ROWID: see db.repo_signals.record_signals)."""
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        _execute(connection, cursor, f"SELECT max(id) FROM {_quoted([table.name])}", ())
        return cursor.fetchone()[0] or 0
    finally:
        cursor.close()


MAX_ROWID = 2**63 - 1  # past it SQLite picks new rowids at random

_PREPARER = sqlite.dialect().identifier_preparer  # quotes a name only where SQLAlchemy would


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(_PREPARER.quote(name) for name in names)


def signal_rows(table: Table, key: Sequence[str]) -> RawRows:
    """db.statements.record_signals: DO NOTHING on the natural key, RETURNING id and the key."""
    return RawRows(table, f"ON CONFLICT ({_quoted(key)}) DO NOTHING RETURNING {_quoted(['id', *key])}")


def counter_rows(table: Table, key: Sequence[str]) -> RawRows:
    """db.statements.bump_count: count = count + the excluded row's count."""
    count = _quoted(["count"])
    return RawRows(table, f"ON CONFLICT ({_quoted(key)}) DO UPDATE SET {count} = {_quoted([table.name])}.{count}"
                          f" + excluded.{count}")


def ignoring_rows(table: Table, key: Sequence[str]) -> RawRows:
    """An ON CONFLICT (key) DO NOTHING insert (db.statements.account_snapshot, position_snapshots)."""
    return RawRows(table, f"ON CONFLICT ({_quoted(key)}) DO NOTHING")


def upsert_rows(table: Table, statement: Any) -> RawRows:
    """An INSERT ... ON CONFLICT built with SQLAlchemy (db.metrics_history's additive upsert), its
    conflict clause exactly as SQLAlchemy renders it for SQLite; a clause that binds no values."""
    text = statement.compile(dialect=sqlite.dialect()).string
    tail = text[text.index(" ON CONFLICT ") + 1:]
    if "?" in tail:
        raise ValueError(f"the conflict clause binds values, which RawRows does not: {tail}")
    return RawRows(table, tail)
