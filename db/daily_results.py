"""Daily results: one broker day's figures from its rollup row and last snapshot, and the stored
daily_performance rows the bot wrote at each day's end (the REST API's daily summaries).

Why a module of its own: the other analytics (db.analytics) answer a selection of trades from the
rollups; these read one account's days, and their REST rendering has a fast path of its own.
"""

from __future__ import annotations

import math
from datetime import UTC, date
from decimal import Decimal

from sqlalchemy import Select, String, bindparam, cast, select

from db import brokerday
from db.analytics import Selection
from db.database import Database
from db.ledger import from_cents
from db.models import ANY, AccountSnapshotModel, DailyPerformanceModel, trade_rollups
from db.reading import plain_rows, prebuilt, reading, stored_record
from db.records import DailyPerformance

_R = trade_rollups.c


def daily_performance(database: Database, account: str, day: date) -> DailyPerformance:
    """One broker day's results from the trades that closed that day and the day's last account snapshot.

    The day is cut at the trade server's midnight with the account's recorded offset (db.brokerday;
    a UTC day, with day_start and server_offset_seconds None, while no offset is recorded).
    max_drawdown is the deepest fall of that day's own equity path (from 0 at its start).
    """
    Selection(account, day, day)  # validates the arguments
    snapshots = AccountSnapshotModel.__table__
    with reading(database) as connection:
        broker_day = brokerday.load(connection, account).day(day)
        row = connection.execute(
            select(
                _R.trades,
                _R.winners,
                _R.losers,
                _R.profit_cents,
                _R.pips_hundredths,
                _R.largest_win_cents,
                _R.largest_loss_cents,
                _R.period_drawdown_cents,
            ).where(
                _R.account == account,
                _R.strategy == ANY,
                _R.symbol == ANY,
                _R.span == "day",
                _R.period_start == day,
            )
        ).first()
        snapshot = connection.execute(
            select(snapshots.c.balance, snapshots.c.equity)
            .where(
                snapshots.c.account == account,
                snapshots.c.time >= broker_day.start,
                snapshots.c.time < broker_day.end,
            )
            .order_by(snapshots.c.time.desc())
            .limit(1)
        ).first()
    trades, winners, losers, profit, pips, largest_win, largest_loss, fall = row or (0, 0, 0, 0, 0, None, None, 0)
    return DailyPerformance(
        account=account,
        date=day,
        trades=trades,
        winners=winners,
        losers=losers,
        profit=from_cents(profit),
        pips=from_cents(pips),
        win_rate=winners / trades if trades else 0.0,
        largest_win=from_cents(largest_win or 0),
        largest_loss=from_cents(largest_loss or 0),
        max_drawdown=from_cents(fall),
        end_balance=None if snapshot is None else snapshot.balance,
        end_equity=None if snapshot is None else snapshot.equity,
        day_start=None if broker_day.offset_seconds is None else broker_day.start,
        server_offset_seconds=broker_day.offset_seconds,
    )


def daily_summaries(
    database: Database, account: str, start: date | None = None, end: date | None = None
) -> list[DailyPerformance]:
    """The stored daily_performance rows of an account (what the bot wrote at each day's end), by date."""
    Selection(account, start, end)  # validates the arguments
    table = DailyPerformanceModel.__table__
    names = [name for name in DailyPerformance.__dataclass_fields__]
    query = select(*(table.c[name] for name in names)).where(table.c.account == account)
    if start is not None:
        query = query.where(table.c.date >= start)
    if end is not None:
        query = query.where(table.c.date <= end)
    query = query.order_by(table.c.date)
    with reading(database) as connection:
        if connection.dialect.name != "postgresql":
            return [stored_record(DailyPerformance, row._mapping) for row in connection.execute(query).all()]
        # The driver's values are the column types' already (NUMERIC(18, 2) reads back as the Decimal of
        # two decimals Money gives, a date as a date): only day_start needs its UTC.  A year of rows
        # through SQLAlchemy's per-value processing cost more than the query.
        rows = plain_rows(connection, query)
    at = names.index("day_start")
    records = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        if row[at] is not None:
            values["day_start"] = row[at].astimezone(UTC)
        records.append(stored_record(DailyPerformance, values))
    return records


# Money columns of daily_performance: NUMERIC(18, 2), whose text form is what str() of the Decimal read
# back gives (the driver builds that Decimal from the same text).
_DAILY_MONEY = frozenset({"profit", "pips", "largest_win", "largest_loss", "max_drawdown", "end_balance",
                          "end_equity"})


def daily_summaries_plain(
    database: Database, account: str, start: date | None = None, end: date | None = None
) -> list[dict[str, object]]:
    """daily_summaries() as JSON-ready values (money and dates as text, day_start in UTC, a ratio that is
    not finite None), what the REST API renders: exactly what rendering the records would give.

    Why: a year of days is 260 records of 15 fields; building the records (Decimals, then dataclasses)
    and rendering them field by field cost ten times the query.  On PostgreSQL the server gives the
    money and the dates as text and each row becomes its dict in one step."""
    if database.backend != "postgresql":
        return [_plain_daily(record) for record in daily_summaries(database, account, start, end)]
    Selection(account, start, end)  # validates the arguments
    shape = (start is None, end is None)
    statement = prebuilt(("daily plain", shape), lambda: _daily_plain_statement(*shape))
    with reading(database) as connection:
        rows = statement.rows(connection, account=account, start=start, end=end)
    names = _DAILY_NAMES
    at, ratio = names.index("day_start"), names.index("win_rate")
    items = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        if row[at] is not None:
            values["day_start"] = row[at].astimezone(UTC).isoformat()
        if not math.isfinite(row[ratio]):
            values["win_rate"] = None
        items.append(values)
    return items


_DAILY_NAMES = list(DailyPerformance.__dataclass_fields__)


def _daily_plain_statement(no_start: bool, no_end: bool) -> Select:
    """daily_performance rows of an account by date, money and dates as text; bound: account, start, end."""
    table = DailyPerformanceModel.__table__
    query = select(*(cast(table.c[name], String) if name in _DAILY_MONEY or name == "date" else table.c[name]
                     for name in _DAILY_NAMES)).where(table.c.account == bindparam("account"))
    if not no_start:
        query = query.where(table.c.date >= bindparam("start"))
    if not no_end:
        query = query.where(table.c.date <= bindparam("end"))
    return query.order_by(table.c.date)


def _plain_daily(record: DailyPerformance) -> dict[str, object]:
    values: dict[str, object] = {}
    for name in DailyPerformance.__dataclass_fields__:
        value = getattr(record, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, date):  # a datetime too
            value = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        values[name] = value
    return values
