"""INSERT ... ON CONFLICT for whichever backend a session is bound to.

SQLite and PostgreSQL both implement it (same method names in SQLAlchemy);
using it instead of "select, then insert" keeps idempotent writes race-free.
"""

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT for `table` that supports on_conflict_do_nothing / on_conflict_do_update."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"no upsert support for database backend {dialect!r}")
