"""Bulk inserts through the driver: COPY on PostgreSQL, executemany on SQLite.

Why: rebuilding rollups or seeding demo data writes hundreds of thousands of rows, and
SQLAlchemy's per-value processing (or PostgreSQL parsing multi-row INSERTs with tens of
thousands of parameters) turns seconds into minutes.  Values must already be exact
(quantized Decimals, aware datetimes); here they only take the backend's storage form,
the same one the column types of db.types produce: on SQLite REAL for NUMERIC and
fixed-width UTC text for timestamps, on PostgreSQL their text form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table

SQLITE_CHUNK = 5_000


def bulk_insert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (missing keys are NULL; an autoincrement id is left to the database)."""
    if not rows:
        return
    names = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
    if connection.dialect.name == "postgresql":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow([_pg_text(row.get(name)) for name in names])
        buffer.seek(0)
        cursor = connection.connection.driver_connection.cursor()
        try:
            cursor.copy_expert(f"COPY {table.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)", buffer)
        finally:
            cursor.close()
        return
    statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    for start in range(0, len(rows), SQLITE_CHUNK):
        connection.exec_driver_sql(
            statement,
            [tuple(_sqlite_value(row.get(name)) for name in names) for row in rows[start:start + SQLITE_CHUNK]],
        )


def _pg_text(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is str:
        return value
    if value is None:
        return ""  # NULL in COPY's csv format (an empty string would be "")
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _sqlite_value(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is str or value is None:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value
