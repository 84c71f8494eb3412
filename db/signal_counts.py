"""Signals recorded per (account, strategy, signal, executed), kept in step with the signals table.

Why: the exporter's `tradewatch_signals_recorded_total` / `_executed_total` must not count the signals table
(millions of rows: one per cycle, symbol and strategy) on every scrape.  The repository
moves these counters in the same transaction as the signal write, so they always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import Connection, func, insert, select

from db import sqlite_rows
from db.models import SignalCountModel, SignalModel
from db.statements import statements

_COUNTS = SignalCountModel.__table__
_SIGNALS = SignalModel.__table__
_COUNT_ROWS = sqlite_rows.counter_rows(_COUNTS, ("account", "strategy", "signal", "executed"))
_COUNT_NAMES = ("account", "strategy", "signal", "executed", "count")


def bump(connection: Connection, account: str, strategy: str, signal: str, executed: bool, by: int = 1) -> None:
    """Add `by` (which may be negative) to one counter, creating it at 0 first."""
    connection.execute(statements(connection.dialect.name).bump_count,
                       {"account": account, "strategy": strategy, "signal": signal, "executed": executed, "count": by})


def bump_many(connection: Connection, keys: Iterable[tuple[str, str, str, bool]]) -> None:
    """Add 1 per (account, strategy, signal, executed) key, repeats summed: one executemany for a batch.

    Summed first because one upsert statement may not touch the same counter row twice (PostgreSQL
    refuses it); the counters end where one `bump` per key would leave them."""
    counted = Counter(keys)
    if not counted:
        return
    if connection.dialect.name == "sqlite":  # the same upsert, without SQLAlchemy's cost: the keys as columns
        _COUNT_ROWS.insert_columns(connection, _COUNT_NAMES, [*zip(*counted, strict=True), tuple(counted.values())],
                                   returning=False)
    else:
        connection.execute(statements(connection.dialect.name).bump_count,
                           [dict(zip(_COUNT_NAMES, (*key, by), strict=True)) for key, by in counted.items()])


def recount(connection: Connection) -> None:
    """Rebuild every counter from the signals table (after a bulk load or a migration)."""
    connection.execute(_COUNTS.delete())
    grouped = select(
        _SIGNALS.c.account, _SIGNALS.c.strategy, _SIGNALS.c.signal, _SIGNALS.c.executed, func.count()
    ).group_by(_SIGNALS.c.account, _SIGNALS.c.strategy, _SIGNALS.c.signal, _SIGNALS.c.executed)
    connection.execute(
        insert(_COUNTS).from_select(["account", "strategy", "signal", "executed", "count"], grouped)
    )
