"""INSERT ... ON CONFLICT for a Connection (db.upsert.insert_for does the same for a Session).

The rollups, counters and metrics history are written on the connection of the
transaction that changes the raw rows, so they need the Connection form.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for_connection(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT for `table` supporting on_conflict_do_nothing / on_conflict_do_update."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"no upsert support for database backend {dialect!r}")
