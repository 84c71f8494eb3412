"""Trade analytics a trader can trust, answered from the rollups in milliseconds at any size.

Every figure is computed from `trade_rollups` (db.rollups keeps them equal to the raw
trades, in the closing transaction), never by scanning the trades table.

Definitions and edge cases:
- Profit is net: gross profit + commission + swap, as stored on the trade.
- A trade is a winner when its net profit is > 0, a loser when < 0; a breakeven trade
  (exactly 0.00) is neither, but counts in `trades`.  win_rate = winners / trades.
- Pips are the trade's `profit_pips`, measured in the symbol's pip size (bot.pips:
  0.0001 for EURUSD, 0.01 for JPY pairs, 0.1 for gold).
- profit_factor = sum of winners' profit / |sum of losers' profit|; None without losers.
- expectancy = win_rate x average win + loss_rate x average loss, which is the average
  net profit per trade (breakevens add nothing), rounded to the cent like every amount.
- Days, weeks (starting Monday) and months are broker days (db.brokerday: the trade server's
  date at the trade's exit; UTC days while the account's offset is unknown); hours are UTC.
- A Selection restricts to one account and optionally a symbol, a strategy and a range of
  broker days (both ends included).
- Drawdown: the equity curve of the selection is initial balance + cumulative net profit
  of its trades in closing order (exit time, then id), starting at the account's initial
  balance (db.rollups.lock_base: the newest snapshot's balance before the account's first
  exit).  After each trade, drawdown = peak equity so far - equity, and its ratio =
  drawdown / peak equity (None while peak equity is not positive).  A date range selects
  which trades' drawdowns are reported; the peak is the selection's since its first trade.
- Correlation: Pearson correlation of daily net P&L between symbols (or strategies),
  over the broker days on which the selection closed at least one trade (a series is 0 on
  days it did not trade); None where a series does not vary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import (
    Select,
    bindparam,
    func,
    select,
)

from db.correlation import CORRELATE_BY, Correlation, correlation, pearson_matrix  # noqa: F401 - db.analytics' API
from db.database import Database
from db.ledger import CENT, cents, drawdown_ratio, from_cents
from db.models import (
    ANY,
    HOUR_CENTS_COLUMNS,
    HOUR_TRADES_COLUMNS,
    HOURS,
    EquityBaseModel,
    trade_rollups,
)
from db.reading import prebuilt, reading
from db.rollup_cover import (  # noqa: F401 - Selection: db.analytics' API
    Selection,
    covering,
    day_text,
    grain_bound,
    grain_values,
    period_values,
)

BUCKETS = ("hour", "weekday", "day", "week", "month")

_R = trade_rollups.c  # the rollup columns, used in nearly every expression here


# -- records returned ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrategyPerformance:
    strategy: str  # '' for trades without a strategy
    trades: int
    winners: int
    losers: int
    breakevens: int
    win_rate: float
    total_profit: Decimal
    average_profit: Decimal
    gross_profit: Decimal  # sum of the winners
    gross_loss: Decimal  # sum of the losers (<= 0)
    profit_factor: float | None
    expectancy: Decimal
    largest_win: Decimal | None
    largest_loss: Decimal | None


@dataclass(frozen=True, slots=True)
class SymbolPerformance:
    symbol: str
    trades: int
    winners: int
    losers: int
    breakevens: int
    win_rate: float
    profit: Decimal
    pips: Decimal


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """Trades and net profit of one bucket: hour 0-23, weekday 0-6 (Monday 0), ISO day, week's Monday, YYYY-MM."""

    key: int | str
    trades: int
    profit: Decimal


@dataclass(frozen=True, slots=True)
class Drawdown:
    trades: int
    initial_balance: Decimal
    equity: Decimal  # after the selection's last trade
    peak_equity: Decimal
    current_drawdown: Decimal
    current_drawdown_ratio: float | None
    max_drawdown: Decimal
    max_drawdown_ratio: float | None
    as_of: datetime | None  # exit time of that last trade


# -- performance by strategy and by symbol ---------------------------------------------------


def strategy_performance(database: Database, selection: Selection) -> list[StrategyPerformance]:
    """One line per strategy (only the selected one when the selection names it), by name."""
    shape, values = period_values(selection)
    values.update(strategy=selection.strategy, symbol=selection.symbol or ANY)
    every = selection.strategy is None
    statement = prebuilt(("strategies", shape, every), lambda: _strategies_statement(shape, every))
    with reading(database) as connection:
        rows = statement.rows(connection, **values)
    return [_strategy_line(*row) for row in rows]


def _strategies_statement(shape: tuple, every_strategy: bool) -> Select:
    strategy_filter = _R.strategy != ANY if every_strategy else _R.strategy == bindparam("strategy")
    rows = covering(
        shape,
        [_R.strategy, _R.trades, _R.winners, _R.losers, _R.profit_cents, _R.win_cents, _R.loss_cents,
         _R.largest_win_cents, _R.largest_loss_cents],
        (strategy_filter, _R.symbol == bindparam("symbol")),
    )
    return (
        select(
            rows.c.strategy,
            func.sum(rows.c.trades),
            func.sum(rows.c.winners),
            func.sum(rows.c.losers),
            func.sum(rows.c.profit_cents),
            func.sum(rows.c.win_cents),
            func.sum(rows.c.loss_cents),
            func.max(rows.c.largest_win_cents),
            func.min(rows.c.largest_loss_cents),
        )
        .group_by(rows.c.strategy)
        .order_by(rows.c.strategy)
    )


def _strategy_line(strategy, trades, winners, losers, profit, wins, losses, largest_win, largest_loss):
    trades, winners, losers, profit, wins, losses = map(int, (trades, winners, losers, profit, wins, losses))
    average = _average(profit, trades)
    return StrategyPerformance(
        strategy=strategy,
        trades=trades,
        winners=winners,
        losers=losers,
        breakevens=trades - winners - losers,
        win_rate=winners / trades,
        total_profit=from_cents(profit),
        average_profit=average,
        gross_profit=from_cents(wins),
        gross_loss=from_cents(losses),
        profit_factor=wins / -losses if losses else None,
        expectancy=average,
        largest_win=None if largest_win is None else from_cents(int(largest_win)),
        largest_loss=None if largest_loss is None else from_cents(int(largest_loss)),
    )


def _average(total_cents: int, count: int) -> Decimal:
    return (Decimal(total_cents) / count / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def symbol_performance(database: Database, selection: Selection) -> list[SymbolPerformance]:
    """One line per symbol (only the selected one when the selection names it), by name."""
    shape, values = period_values(selection)
    values.update(strategy=ANY if selection.strategy is None else selection.strategy, symbol=selection.symbol)
    every = selection.symbol is None
    statement = prebuilt(("symbols", shape, every), lambda: _symbols_statement(shape, every))
    with reading(database) as connection:
        rows = statement.rows(connection, **values)
    lines = []
    for symbol, trades, winners, losers, profit, pips in rows:
        trades, winners, losers = int(trades), int(winners), int(losers)
        lines.append(
            SymbolPerformance(
                symbol=symbol,
                trades=trades,
                winners=winners,
                losers=losers,
                breakevens=trades - winners - losers,
                win_rate=winners / trades,
                profit=from_cents(int(profit)),
                pips=from_cents(int(pips)),
            )
        )
    return lines


def _symbols_statement(shape: tuple, every_symbol: bool) -> Select:
    symbol_filter = _R.symbol != ANY if every_symbol else _R.symbol == bindparam("symbol")
    rows = covering(
        shape,
        [_R.symbol, _R.trades, _R.winners, _R.losers, _R.profit_cents, _R.pips_hundredths],
        (_R.strategy == bindparam("strategy"), symbol_filter),
    )
    return (
        select(
            rows.c.symbol,
            func.sum(rows.c.trades),
            func.sum(rows.c.winners),
            func.sum(rows.c.losers),
            func.sum(rows.c.profit_cents),
            func.sum(rows.c.pips_hundredths),
        )
        .group_by(rows.c.symbol)
        .order_by(rows.c.symbol)
    )


# -- time buckets ------------------------------------------------------------------------------


def time_performance(database: Database, selection: Selection, bucket: str) -> list[TimeBucket]:
    """Trades and profit by hour of day or weekday (every bucket listed), or by day, week or month."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    if bucket == "hour":
        return _by_hour(database, selection)
    if bucket == "month":
        shape, values = period_values(selection, all_time_ok=False)
        statement = prebuilt(("months", shape), lambda: _months_statement(shape))
    else:
        values = {"account": selection.account, "start": selection.start,
                  "end": None if selection.end is None else selection.end + timedelta(days=1)}
        shape = (selection.start is None, selection.end is None)
        statement = prebuilt(("days", shape), lambda: _days_statement(*shape))
    values.update(grain_values(selection))
    with reading(database) as connection:
        rows = statement.rows(connection, **values)
    totals: dict[int | str, list[int]] = {}
    if bucket == "weekday":
        totals = {weekday: [0, 0] for weekday in range(7)}
    key_of = {
        "weekday": lambda day: date.fromisoformat(day).weekday(),
        "day": lambda day: day,
        "week": _monday,
        "month": lambda day: day[:7],
    }[bucket]
    for day, trades, profit in rows:
        total = totals.setdefault(key_of(day), [0, 0])
        total[0] += trades
        total[1] += profit
    return [TimeBucket(key, trades, from_cents(profit)) for key, (trades, profit) in sorted(totals.items())]


def _months_statement(shape: tuple) -> Select:
    rows = covering(shape, [day_text(), _R.trades, _R.profit_cents], grain_bound())
    return select(rows.c.day, rows.c.trades, rows.c.profit_cents)


def _days_statement(no_start: bool, no_end: bool) -> Select:
    """The day rows of the grain, bound: account, strategy, symbol, start, end (exclusive)."""
    conditions = [_R.account == bindparam("account"), *grain_bound(), _R.span == "day"]
    if not no_start:
        conditions.append(_R.period_start >= bindparam("start"))
    if not no_end:
        conditions.append(_R.period_start < bindparam("end"))
    return select(day_text(), _R.trades, _R.profit_cents).where(*conditions)


def _monday(day: str) -> str:
    """The Monday starting the ISO week of a 'YYYY-MM-DD' day."""
    moment = date.fromisoformat(day)
    return (moment - timedelta(days=moment.weekday())).isoformat()


def _by_hour(database: Database, selection: Selection) -> list[TimeBucket]:
    shape, values = period_values(selection)
    values.update(grain_values(selection))
    statement = prebuilt(("hours", shape), lambda: _hours_statement(shape))
    with reading(database) as connection:
        (row,) = statement.rows(connection, **values)
    sums = [int(value or 0) for value in row]
    return [TimeBucket(h, sums[h], from_cents(sums[24 + h])) for h in HOURS]


def _hours_statement(shape: tuple) -> Select:
    names = HOUR_TRADES_COLUMNS + HOUR_CENTS_COLUMNS
    rows = covering(shape, [_R[name] for name in names], grain_bound())
    return select(*(func.sum(rows.c[name]) for name in names))


# -- drawdown ----------------------------------------------------------------------------------


def drawdown(database: Database, selection: Selection) -> Drawdown:
    """Current and maximum drawdown of the selection's closed-trade equity curve, exact per trade."""
    shape, values = period_values(selection)
    values.update(grain_values(selection))
    statement = prebuilt(("drawdown", shape), lambda: _drawdown_statement(shape)).statement
    with reading(database) as connection:  # through SQLAlchemy: last_exit_time needs its UTC type's processing
        rows = connection.execute(statement, values).all()
        base = initial_balance_cents(connection, selection.account)
    return drawdown_from_rows(base, rows)


def _drawdown_statement(shape: tuple) -> Select:
    rows = covering(
        shape,
        [_R.period_start, _R.trades, _R.end_cum_cents, _R.end_peak_cents, _R.max_drawdown_cents,
         _R.max_drawdown_ratio, _R.last_exit_time],
        grain_bound(),
    )
    return select(
        rows.c.trades,
        rows.c.end_cum_cents,
        rows.c.end_peak_cents,
        rows.c.max_drawdown_cents,
        rows.c.max_drawdown_ratio,
        rows.c.last_exit_time,
    ).order_by(rows.c.period_start)


def drawdown_from_rows(base: int, rows: Iterable) -> Drawdown:
    """Fold (trades, end_cum, end_peak, max_dd, max_ratio, last_exit) rows given in time order."""
    trades, max_dd, max_ratio, last = 0, 0, None, None
    for row in rows:
        trades += row[0]
        max_dd = max(max_dd, row[3])
        if row[4] is not None:
            max_ratio = row[4] if max_ratio is None else max(max_ratio, row[4])
        last = row
    cum, peak = (last[1], last[2]) if last is not None else (0, 0)
    current = peak - cum
    return Drawdown(
        trades=trades,
        initial_balance=from_cents(base),
        equity=from_cents(base + cum),
        peak_equity=from_cents(base + peak),
        current_drawdown=from_cents(current),
        current_drawdown_ratio=drawdown_ratio(current, peak, base) if last is not None else None,
        max_drawdown=from_cents(max_dd),
        max_drawdown_ratio=max_ratio,
        as_of=None if last is None else last[5],
    )


def initial_balance_cents(connection, account: str) -> int:
    """Where the account's equity curve starts (0 until its first trade closes)."""
    table = EquityBaseModel.__table__
    value = connection.execute(
        select(table.c.initial_balance).where(table.c.account == account)
    ).scalar_one_or_none()
    return 0 if value is None else cents(value)
