"""The bot's metrics history: one row per account and minute, kept for the daily report and Grafana.

Why an additive upsert: the bot flushes what it counted since its last flush, possibly
several times within one minute (and again after a restart).  Writing a minute adds its
counts and sums to what is stored, keeps the larger maximum, and takes the latest
memory and CPU samples, so any split of a minute into pieces gives the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Connection, Insert, delete, func, select

from db import sqlite_rows
from db.models import MetricsMinuteModel
from db.upsert import insert_for_dialect
from db.validation import check_record, require_aware

_TABLE = MetricsMinuteModel.__table__
_ADDED = (
    "cycles",
    "cycle_seconds_sum",
    "signals",
    "orders",
    "trades_executed",
    "broker_latency_seconds_sum",
    "broker_calls",
)
_LATEST = ("memory_rss_bytes", "cpu_percent")


@dataclass(frozen=True, slots=True)
class MetricsMinute:
    """What the bot did during one minute (or part of it): `minute` is truncated when stored."""

    account: str
    minute: datetime
    cycles: int = 0
    cycle_seconds_sum: float = 0.0
    cycle_seconds_max: float = 0.0
    signals: int = 0
    orders: int = 0
    trades_executed: int = 0
    broker_latency_seconds_sum: float = 0.0
    broker_calls: int = 0
    memory_rss_bytes: int | None = None  # the latest sample
    cpu_percent: float | None = None  # the latest sample

    def __post_init__(self) -> None:
        check_record(self)
        for name in (*_ADDED, "cycle_seconds_max", *_LATEST):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"MetricsMinute.{name} must not be negative, got {value}")


def truncate_to_minute(moment: datetime) -> datetime:
    """The UTC minute a moment falls in."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def record_minute(connection: Connection, m: MetricsMinute) -> None:
    """Add one flush to its minute's row (see the module docstring)."""
    values = {name: getattr(m, name) for name in MetricsMinute.__dataclass_fields__}
    values["minute"] = truncate_to_minute(m.minute)
    if connection.dialect.name == "sqlite":  # the same statement straight through the driver (db.sqlite_rows)
        names = tuple(values)
        _sqlite_rows().insert_columns(connection, names, [[values[name]] for name in names], returning=False)
    else:
        connection.execute(_record_statement(connection.dialect.name), values)


@cache
def _record_statement(dialect: str) -> Insert:
    """The additive upsert, built once per backend and run with each minute's values: building it (and
    SQLAlchemy's cache key for it) on every call cost ~1.9 ms a minute row on the trading thread, once a
    minute - every other cycle at the default 30 s (issue 16)."""
    statement = insert_for_dialect(dialect, _TABLE)
    stored, new = _TABLE.c, statement.excluded
    larger = func.greatest if dialect == "postgresql" else func.max
    updates = {name: stored[name] + new[name] for name in _ADDED}
    updates["cycle_seconds_max"] = larger(stored.cycle_seconds_max, new.cycle_seconds_max)
    updates.update({name: func.coalesce(new[name], stored[name]) for name in _LATEST})
    return statement.on_conflict_do_update(index_elements=["account", "minute"], set_=updates)


@cache
def _sqlite_rows() -> sqlite_rows.RawRows:
    """_record_statement on SQLite, run through the driver: SQLAlchemy's execution around one row
    took most of the write's time on the trading thread (db.sqlite_rows)."""
    return sqlite_rows.upsert_rows(_TABLE, _record_statement("sqlite"))


def minutes(
    connection: Connection, account: str, since: datetime | None = None, until: datetime | None = None
) -> list[MetricsMinute]:
    """The account's minutes in [since, until), oldest first."""
    query = select(*(_TABLE.c[name] for name in MetricsMinute.__dataclass_fields__)).where(_TABLE.c.account == account)
    if since is not None:
        require_aware("since", since)
        query = query.where(_TABLE.c.minute >= since)
    if until is not None:
        require_aware("until", until)
        query = query.where(_TABLE.c.minute < until)
    return [MetricsMinute(**row._mapping) for row in connection.execute(query.order_by(_TABLE.c.minute))]


def prune(connection: Connection, account: str, older_than: datetime) -> int:
    """Delete the account's minutes before `older_than`; how many went."""
    require_aware("older_than", older_than)
    result = connection.execute(delete(_TABLE).where(_TABLE.c.account == account, _TABLE.c.minute < older_than))
    return result.rowcount
