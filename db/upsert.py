"""INSERT ... ON CONFLICT for whichever backend a session, a connection or a dialect name is.

SQLite and PostgreSQL both implement it (same method names in SQLAlchemy); using it instead of
"select, then insert" keeps idempotent writes race-free. One place that knows which dialects
have it: the repository (a Session), the rollups, counters and quarantine (written on the
Connection of the transaction that changes the raw rows) and the prebuilt statements
(db.statements, db.deal_marks: a dialect name) all ask here.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def insert_for_dialect(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT for `table` that supports on_conflict_do_nothing / on_conflict_do_update."""
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise ValueError(f"no upsert support for database backend {dialect!r}")
    return insert(table)


def insert_for(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """`insert_for_dialect` of the backend the session is bound to."""
    return insert_for_dialect(session.get_bind().dialect.name, table)


def insert_for_connection(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """`insert_for_dialect` of the connection's backend."""
    return insert_for_dialect(connection.dialect.name, table)
