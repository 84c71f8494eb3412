"""Everything the exporter's /metrics shows, read in a handful of indexed queries.

Why its own module: a Prometheus scrape comes every 15 seconds and must stay fast and
cheap however large the trades table grows, so nothing here scans it.  Totals come from
the all-time rollup rows, today's profit from the day row of each account's current broker
day (db.brokerday: the server's date), open trades from a partial index on the open rows,
stop-outs from a partial index on the stop-out rows, signal counts from `signal_counts`, and
the newest account snapshot from the (account, time) index.

`read_scoreboard` reads it all in one snapshot and says which (db.reading.change_marker) and until
when its daily figures hold (the earliest next broker midnight), so the exporter can reuse it
until the store or the day changes.  Given the boards of an earlier read, it reads the per-pair and
per-strategy totals again only for the accounts whose rollups changed since (rollup_marker), and
hands back the earlier lists themselves where nothing changed (the exporter then reuses their
rendered lines): after one bot's commit a fleet's scrape reads and renders one account's thousands
of rows, not a hundred's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, String, bindparam, false, func, literal_column, select, true, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from db import brokerday
from db.database import Database
from db.ledger import cents, drawdown_ratio, from_cents
from db.models import (
    ANY,
    AccountSnapshotModel,
    EquityBaseModel,
    SignalCountModel,
    TradeModel,
    trade_rollups,
)
from db.reading import change_marker, plain_rows, reading

_R = trade_rollups.c  # the rollup columns, used in nearly every expression here


@dataclass(slots=True)
class Totals:
    """All-time closed-trade totals of one strategy/symbol selection (ANY = '*' for all).

    Amounts are kept in cents and turned into Decimals only when asked for: a fleet's scrape reads
    thousands of these and shows most of them as one figure (not frozen for the same reason: a
    frozen dataclass's __init__ costs three times as much)."""

    strategy: str
    symbol: str
    trades: int
    winners: int
    losers: int
    profit_cents: int
    win_cents: int
    loss_cents: int  # <= 0

    @property
    def profit(self) -> Decimal:
        return from_cents(self.profit_cents)

    @property
    def gross_profit(self) -> Decimal:
        return from_cents(self.win_cents)

    @property
    def gross_loss(self) -> Decimal:
        return from_cents(self.loss_cents)

    @property
    def breakevens(self) -> int:
        return self.trades - self.winners - self.losers

    @property
    def win_ratio(self) -> float:
        return self.winners / self.trades if self.trades else 0.0

    @property
    def profit_factor(self) -> float | None:
        """Gross profit over gross loss; +inf with wins and no losses, None with neither."""
        if self.loss_cents:
            return self.win_cents / -self.loss_cents  # int / int: the correctly rounded float
        return float("inf") if self.win_cents else None


@dataclass(slots=True)
class PairProfit:
    """All-time net profit of one (strategy, symbol): all the scrape shows per pair."""

    strategy: str
    symbol: str
    trades: int
    profit_cents: int

    @property
    def profit(self) -> Decimal:
        return from_cents(self.profit_cents)


@dataclass(frozen=True, slots=True)
class LatestSnapshot:
    time: datetime
    balance: Decimal
    equity: Decimal
    margin_level: Decimal | None  # percent


@dataclass(slots=True)
class AccountBoard:
    account: str
    pairs: list[PairProfit] = field(default_factory=list)  # per (strategy, symbol)
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
    rollup_marker: str | None = None  # rollup_marker() of the rows `pairs` and `strategies` were read from


@dataclass(frozen=True, slots=True)
class Scoreboard:
    """The boards of one snapshot of the store."""

    boards: list[AccountBoard]
    marker: str | None  # db.reading.change_marker of that snapshot (None: the backend has none)
    valid_until: datetime | None  # the first broker midnight after `now` (None: no account)


def scoreboard(database: Database, now: datetime | date) -> list[AccountBoard]:
    """One board per account known to the store, sorted by account.

    `now` (UTC) picks each account's current broker day; a date is taken as that day for every account.
    """
    return read_scoreboard(database, now).boards


def read_scoreboard(database: Database, now: datetime | date,
                    earlier: dict[str, AccountBoard] | None = None) -> Scoreboard:
    """scoreboard(), read in one snapshot, with that snapshot's change marker.

    `earlier`: boards of a previous read by account; an account whose rollup_marker is the same now
    gets their `pairs` and `strategies` lists (and `signals` when equal) instead of new ones."""
    with reading(database, consistent=True) as connection:
        marker = change_marker(connection)  # first: on PostgreSQL it fixes the snapshot read below
        boards = _read_boards(connection, now, earlier or {})
    ends = [board.broker_day.end for board in boards.values() if board.broker_day is not None]
    return Scoreboard([boards[account] for account in sorted(boards)], marker, min(ends) if ends else None)


def _read_boards(connection: Connection, now: datetime | date,
                 earlier: dict[str, AccountBoard]) -> dict[str, AccountBoard]:
    open_trades = open_trade_counts(connection)
    boards = {account: AccountBoard(account) for account in known_accounts(connection, open_trades)}
    if boards:
        for account, by_symbol in open_trades.items():
            boards[account].open_trades = by_symbol
        _fill_totals(connection, boards, earlier)
        _fill_today(connection, boards, now)
        _fill_stop_outs(connection, boards)
        _fill_signals(connection, boards, earlier)
        for account, snapshot in latest_snapshots(connection, list(boards)).items():
            boards[account].snapshot = snapshot
    return boards


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


def rollup_marker(connection: Connection):
    """A column naming the version of a trade_rollups row: PostgreSQL's xmin (None elsewhere).

    Why it marks a whole account: every write of an account's rollups (db.rollups: record_close's
    upsert or recompute, rebuild) rewrites its all-time (ANY, ANY) row in the same transaction, and
    a rewritten row has the writer's transaction id as xmin.  So while that one row's xmin is the
    same, so is every rollup row of the account (a VACUUM FREEZE shows xmin 2: "changed" once, too
    often, never too rarely).  SQLite has no such column: its boards are read whole every time."""
    if connection.dialect.name != "postgresql":
        return literal_column("NULL")
    return literal_column("trade_rollups.xmin::text")


def _fill_totals(connection: Connection, boards: dict[str, AccountBoard], earlier: dict[str, AccountBoard]) -> None:
    """All-time rows in three reads: the account's curve (A rows, with its rollup_marker), then for the
    accounts whose marker moved since `earlier` the pairs (A*S*Y rows, only what
    ix_trade_rollups_selection holds, so an index-only scan: the rollup rows are wide and each lives on
    its own heap page) and per strategy (A*S rows)."""
    accounts = list(boards)
    # Not also period_start == ALL_TIME (which every "all" row has): PostgreSQL takes the two as
    # independent, estimates a few rows instead of thousands and reads the heap through the primary key.
    all_time = (_R.account.in_(accounts), _R.span == "all")
    bases = EquityBaseModel.__table__
    base_of = {
        account: cents(balance)
        for account, balance in connection.execute(
            select(bases.c.account, bases.c.initial_balance).where(bases.c.account.in_(accounts))
        )
    }
    curves = select(
        _R.account, _R.end_cum_cents, _R.end_peak_cents, _R.max_drawdown_ratio, _R.last_exit_time,
        rollup_marker(connection),
    ).where(*all_time, _R.strategy == ANY, _R.symbol == ANY)
    for account, end_cum, end_peak, max_ratio, last_exit, version in connection.execute(curves).all():
        board = boards[account]
        board.drawdown_ratio = drawdown_ratio(end_peak - end_cum, end_peak, base_of.get(account, 0))
        board.max_drawdown_ratio = max_ratio
        board.last_trade_time = last_exit
        board.rollup_marker = version
    changed = []
    for account, board in boards.items():
        before = earlier.get(account)
        if board.rollup_marker is not None and before is not None and before.rollup_marker == board.rollup_marker:
            board.pairs, board.strategies = before.pairs, before.strategies
        else:
            changed.append(account)
    if not changed:
        return
    pairs = select(_R.account, _R.strategy, _R.symbol, _R.trades, _R.profit_cents).where(
        _R.account.in_(changed), _R.span == "all", _R.strategy != ANY, _R.symbol != ANY
    ).order_by(_R.account, _R.strategy, _R.symbol)
    for account, strategy, symbol, trades, profit in plain_rows(connection, pairs):
        boards[account].pairs.append(PairProfit(strategy, symbol, trades, profit))
    strategies = select(
        _R.account, _R.strategy, _R.symbol, _R.trades, _R.winners, _R.losers, _R.profit_cents, _R.win_cents,
        _R.loss_cents,
    ).where(_R.account.in_(changed), _R.span == "all", _R.strategy != ANY, _R.symbol == ANY).order_by(
        _R.account, _R.strategy)
    for account, *values in plain_rows(connection, strategies):
        boards[account].strategies.append(Totals(*values))


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


def _fill_signals(connection: Connection, boards: dict[str, AccountBoard], earlier: dict[str, AccountBoard]) -> None:
    counts = SignalCountModel.__table__
    query = select(counts.c.account, counts.c.strategy, counts.c.signal, counts.c.executed, counts.c["count"]).order_by(
        counts.c.account, counts.c.strategy, counts.c.signal, counts.c.executed
    )
    # plain_rows: one fetchall without SQLAlchemy's per-row work (a fleet has thousands; here and above).
    for account, strategy, signal, executed, count in plain_rows(connection, query):
        board = boards.get(account)
        if board is not None:
            board.signals.append((strategy, signal, bool(executed), count))  # SQLite gives 0 or 1
    for account, board in boards.items():  # the earlier list where equal: its rendered lines are reused
        before = earlier.get(account)
        if before is not None and before.signals == board.signals:
            board.signals = before.signals


def latest_snapshots(connection: Connection, accounts: list[str]) -> dict[str, LatestSnapshot]:
    """The newest snapshot of each account that has one, by one backward step of the (account, time)
    index per account.  On PostgreSQL all accounts in one statement (a LATERAL join over the list):
    a query per account made a 100-account scrape pay 100 round trips, about 40 ms.  SQLite is
    in-process, where a query per account costs no round trip."""
    snapshots = AccountSnapshotModel.__table__
    figures = (snapshots.c.time, snapshots.c.balance, snapshots.c.equity, snapshots.c.margin_level)
    if connection.dialect.name != "postgresql":
        latest = {}
        for account in accounts:
            row = connection.execute(
                select(*figures).where(snapshots.c.account == account).order_by(snapshots.c.time.desc()).limit(1)
            ).first()
            if row is not None:
                latest[account] = LatestSnapshot(*row)
        return latest
    wanted = func.unnest(bindparam("accounts", accounts, type_=ARRAY(String))).table_valued("account").render_derived(name="wanted")
    newest = (
        select(*figures).where(snapshots.c.account == wanted.c.account).order_by(snapshots.c.time.desc()).limit(1)
        .lateral("newest")
    )
    query = select(wanted.c.account, *newest.c).select_from(wanted.join(newest, true()))
    return {account: LatestSnapshot(*values) for account, *values in connection.execute(query).all()}
