"""Everything the exporter's /metrics shows, read in a handful of indexed queries.

Why its own module: a Prometheus scrape comes every 15 seconds and must stay fast and
cheap however large the trades table grows, so nothing here scans it.  Totals come from
the all-time rollup rows, today's profit from the day row of each account's current broker
day (db.brokerday: the server's date), open trades from a partial index on the open rows,
stop-outs from a partial index on the stop-out rows, signal counts from `signal_counts`, and
the newest account snapshot from the (account, time) index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, false, func, select, union
from sqlalchemy.orm import aliased

from db import brokerday
from db.database import Database
from db.ledger import ALL_TIME, cents, drawdown_ratio, from_cents
from db.models import (
    ANY,
    AccountSnapshotModel,
    EquityBaseModel,
    SignalCountModel,
    TradeModel,
    trade_rollups,
)
from db.reading import reading

_R = trade_rollups.c  # the rollup columns, used in nearly every expression here


@dataclass(frozen=True, slots=True)
class Totals:
    """All-time closed-trade totals of one strategy/symbol selection (ANY = '*' for all)."""

    strategy: str
    symbol: str
    trades: int
    winners: int
    losers: int
    profit: Decimal
    gross_profit: Decimal
    gross_loss: Decimal

    @property
    def breakevens(self) -> int:
        return self.trades - self.winners - self.losers

    @property
    def win_ratio(self) -> float:
        return self.winners / self.trades if self.trades else 0.0

    @property
    def profit_factor(self) -> float | None:
        """Gross profit over gross loss; +inf with wins and no losses, None with neither."""
        if self.gross_loss:
            return float(self.gross_profit / -self.gross_loss)
        return float("inf") if self.gross_profit else None


@dataclass(frozen=True, slots=True)
class LatestSnapshot:
    time: datetime
    balance: Decimal
    equity: Decimal
    margin_level: Decimal | None  # percent


@dataclass(slots=True)
class AccountBoard:
    account: str
    pairs: list[Totals] = field(default_factory=list)  # per (strategy, symbol)
    strategies: list[Totals] = field(default_factory=list)  # per strategy, all symbols
    drawdown_ratio: float | None = None
    max_drawdown_ratio: float | None = None
    last_trade_time: datetime | None = None
    daily_profit: Decimal = Decimal("0.00")  # of the current broker day
    broker_day: brokerday.BrokerDay | None = None  # the day daily_profit covers
    stop_outs: int = 0  # closed trades with close_reason 'stop_out'
    snapshot: LatestSnapshot | None = None
    open_trades: dict[str, int] = field(default_factory=dict)  # by symbol
    signals: list[tuple[str, str, bool, int]] = field(default_factory=list)  # strategy, signal, executed, n


def scoreboard(database: Database, now: datetime | date) -> list[AccountBoard]:
    """One board per account known to the store, sorted by account.

    `now` (UTC) picks each account's current broker day; a date is taken as that day for every account.
    """
    with reading(database) as connection:
        open_trades = open_trade_counts(connection)
        boards = {account: AccountBoard(account) for account in known_accounts(connection, open_trades)}
        if not boards:
            return []
        for account, by_symbol in open_trades.items():
            boards[account].open_trades = by_symbol
        _fill_totals(connection, boards)
        _fill_today(connection, boards, now)
        _fill_stop_outs(connection, boards)
        _fill_signals(connection, boards)
        for board in boards.values():
            board.snapshot = latest_snapshot(connection, board.account)
    return [boards[account] for account in sorted(boards)]


def known_accounts(connection: Connection, open_trades: dict[str, dict[str, int]] | None = None) -> list[str]:
    """Accounts with closed trades, open trades, signals or snapshots, without scanning big tables."""
    bases = EquityBaseModel.__table__
    counts = SignalCountModel.__table__
    query = union(select(bases.c.account), select(counts.c.account))
    if open_trades is None:
        open_trades = open_trade_counts(connection)
    accounts = set(connection.execute(query).scalars()) | set(open_trades) | _snapshot_accounts(connection)
    return sorted(accounts)


def open_trade_counts(connection: Connection) -> dict[str, dict[str, int]]:
    """Open trades per account and symbol, read from the partial index on the open rows only."""
    trades = TradeModel.__table__
    query = (
        select(trades.c.account, trades.c.symbol, func.count())
        .where(trades.c.is_closed == false())  # the partial index's predicate
        .group_by(trades.c.account, trades.c.symbol)
        .order_by(trades.c.account, trades.c.symbol)
    )
    counts: dict[str, dict[str, int]] = {}
    for account, symbol, count in connection.execute(query):
        counts.setdefault(account, {})[symbol] = count
    return counts


def _snapshot_accounts(connection: Connection) -> set[str]:
    """Distinct accounts of account_snapshots by skipping along its (account, time) index."""
    snapshots = AccountSnapshotModel.__table__
    first = select(func.min(snapshots.c.account).label("account")).cte("walk", recursive=True)
    walk = aliased(first, name="w")
    following = (
        select(func.min(snapshots.c.account))
        .where(snapshots.c.account > walk.c.account)
        .scalar_subquery()
    )
    first = first.union_all(select(following).where(walk.c.account.is_not(None)))
    return {account for account in connection.execute(select(first.c.account)).scalars() if account is not None}


def _fill_totals(connection: Connection, boards: dict[str, AccountBoard]) -> None:
    query = select(
        _R.account,
        _R.strategy,
        _R.symbol,
        _R.trades,
        _R.winners,
        _R.losers,
        _R.profit_cents,
        _R.win_cents,
        _R.loss_cents,
        _R.end_cum_cents,
        _R.end_peak_cents,
        _R.max_drawdown_ratio,
        _R.last_exit_time,
    ).where(_R.account.in_(list(boards)), _R.span == "all", _R.period_start == ALL_TIME)
    bases = EquityBaseModel.__table__
    base_of = {
        account: cents(balance)
        for account, balance in connection.execute(
            select(bases.c.account, bases.c.initial_balance).where(bases.c.account.in_(list(boards)))
        )
    }
    for row in connection.execute(query):
        board = boards[row.account]
        totals = Totals(
            strategy=row.strategy,
            symbol=row.symbol,
            trades=row.trades,
            winners=row.winners,
            losers=row.losers,
            profit=from_cents(row.profit_cents),
            gross_profit=from_cents(row.win_cents),
            gross_loss=from_cents(row.loss_cents),
        )
        if row.strategy != ANY and row.symbol != ANY:
            board.pairs.append(totals)
        elif row.strategy != ANY and row.symbol == ANY:
            board.strategies.append(totals)
        elif row.strategy == ANY and row.symbol == ANY:
            current = row.end_peak_cents - row.end_cum_cents
            board.drawdown_ratio = drawdown_ratio(current, row.end_peak_cents, base_of.get(row.account, 0))
            board.max_drawdown_ratio = row.max_drawdown_ratio
            board.last_trade_time = row.last_exit_time
    for board in boards.values():
        board.pairs.sort(key=lambda t: (t.strategy, t.symbol))
        board.strategies.sort(key=lambda t: t.strategy)


def _fill_today(connection: Connection, boards: dict[str, AccountBoard], now: datetime | date) -> None:
    offsets = brokerday.load_all(connection, boards)
    for account, board in boards.items():
        history = offsets[account]
        board.broker_day = (history.day_of(now) if isinstance(now, datetime)
                            else brokerday.BrokerDay(now, history.at(brokerday.day_start(now, history.latest))))
    query = select(_R.account, _R.period_start, _R.profit_cents).where(
        _R.account.in_(list(boards)),
        _R.span == "day",
        _R.strategy == ANY,
        _R.symbol == ANY,
        _R.period_start.in_(sorted({board.broker_day.date for board in boards.values()})),
    )
    for account, day, profit in connection.execute(query):
        if boards[account].broker_day.date == day:
            boards[account].daily_profit = from_cents(profit)


def _fill_stop_outs(connection: Connection, boards: dict[str, AccountBoard]) -> None:
    trades = TradeModel.__table__
    query = (select(trades.c.account, func.count()).where(trades.c.close_reason == "stop_out")
             .group_by(trades.c.account))  # the partial index ix_trades_stop_outs
    for account, count in connection.execute(query):
        if account in boards:
            boards[account].stop_outs = count


def _fill_signals(connection: Connection, boards: dict[str, AccountBoard]) -> None:
    counts = SignalCountModel.__table__
    query = select(counts).order_by(counts.c.account, counts.c.strategy, counts.c.signal, counts.c.executed)
    for row in connection.execute(query):
        if row.account in boards:
            boards[row.account].signals.append((row.strategy, row.signal, row.executed, row.count))


def latest_snapshot(connection: Connection, account: str) -> LatestSnapshot | None:
    snapshots = AccountSnapshotModel.__table__
    row = connection.execute(
        select(snapshots.c.time, snapshots.c.balance, snapshots.c.equity, snapshots.c.margin_level)
        .where(snapshots.c.account == account)
        .order_by(snapshots.c.time.desc())
        .limit(1)
    ).first()
    return None if row is None else LatestSnapshot(*row)

