"""/metrics: the store's trading figures as Prometheus metrics, every series labelled with `account`.

Why a custom collector: the figures live in the database, so each scrape reads them
from it (db.scoreboard: a handful of indexed queries, never a scan of the trades) instead
of mirroring them in process state that could drift; a scrape that finds the store unchanged
since the last read reuses what that read gave, rendered text included (exporter/figures.py).
When the database cannot be read, the scrape still answers, with
tradewatch_exporter_database_up 0 and no trading series (an old value presented as current
would be worse than none).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from db.database import Database
from db.mt5board import Mt5Board
from db.mt5report import Mt5Figures
from db.scoreboard import AccountBoard, read_scoreboard
from exporter.exposition import Rows
from exporter.figures import Read, Reused, StoreMarker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Trading:
    boards: list[AccountBoard]
    families: list[Rows]  # every trading family but the snapshot age, in scrape order


class TradingCollector(Collector):
    """Reads db.scoreboard and the MT5-report figures (again only when the store changed:
    exporter/figures.py, the store asked once per scrape) and yields their families."""

    def __init__(self, database: Database, clock: Callable[[], datetime], max_age_seconds: float = 0.0) -> None:
        self._database = database
        self._clock = clock
        self.figures = Reused(lambda now, _: self._read_trading(now), max_age_seconds)
        self.mt5 = Reused(_mt5_reader(Mt5Board(database)), max_age_seconds)

    def _read_trading(self, now: datetime) -> Read[_Trading]:
        last = self.figures.last
        earlier = {b.account: b for b in last.value.boards} if last is not None else None
        board = read_scoreboard(self._database, now, earlier)
        starts = [b.broker_day.start for b in board.boards if b.broker_day is not None]
        families = stored_families(board.boards, last.value.families if last is not None else ())
        return Read(_Trading(board.boards, families), board.marker, max(starts) if starts else None,
                    board.valid_until)

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = self._clock()
        marker = StoreMarker(self._database)
        try:
            trading, age = self.figures.get(now, marker)
        except SQLAlchemyError as exc:
            log.warning("scrape could not read the database: %s", _reason(exc))
            trading, age = None, None
        up = GaugeMetricFamily("tradewatch_exporter_database_up", "1 if the last scrape could read the database.")
        up.add_metric([], 0.0 if trading is None else 1.0)
        yield up
        if trading is not None:
            yield from _in_order(trading.families, snapshot_ages(trading.boards, now))
        duration = GaugeMetricFamily(
            "tradewatch_exporter_scrape_duration_seconds", "Time this scrape spent reading the database."
        )
        duration.add_metric([], time.perf_counter() - started)
        yield duration
        if age is not None:
            figures_age = GaugeMetricFamily(
                "tradewatch_exporter_figures_age_seconds",
                "Seconds since this scrape's trading figures were read from the store (they are reused while "
                "the store is unchanged: then they are still exact).")
            figures_age.add_metric([], age)
            yield figures_age
        try:
            mt5, _ = self.mt5.get(now, marker)
        except SQLAlchemyError as exc:  # tradewatch_exporter_database_up says so already
            log.warning("scrape could not read the deals: %s", _reason(exc))
            return
        yield from mt5_families(mt5)


def _mt5_reader(board: Mt5Board) -> Callable[[datetime, Callable[[], str | None]], Read[dict[str, Mt5Figures]]]:
    def read(_now: datetime, marker: Callable[[], str | None]) -> Read[dict[str, Mt5Figures]]:
        taken = marker()  # before the figures: a change committed after it moves the next marker
        return Read(board.figures(), taken)
    return read


_AGE_AT = 11  # where the snapshot age goes among stored_families (the order of the scrape)


def _in_order(families: list[Rows], age: Rows) -> list[Rows]:
    return [*families[:_AGE_AT], age, *families[_AGE_AT:]]


def snapshot_ages(boards: list[AccountBoard], now: datetime) -> Rows:
    """Seconds since each account's newest snapshot: the one trading family that moves with the clock."""
    age = Rows(
        "tradewatch_snapshot_age_seconds", "Seconds since the newest account snapshot.", labels=["account"]
    )
    for board in boards:
        if board.snapshot is not None:
            age.add((board.account,), max(0.0, (now - board.snapshot.time).total_seconds()))
    return age


def stored_families(boards: list[AccountBoard], previous: list[Rows] = ()) -> list[Rows]:
    """Every trading family but the snapshot age: what depends on the store alone (`previous`: those
    of the last read, whose rendered line prefixes are reused, and whose lines of an account's totals
    and signals too where the board holds the very lists they were rendered from: db.scoreboard
    hands those back while the account's rollups and signals are unchanged)."""
    return _families(boards, {family.name: family for family in previous})


def _pair_rows(account: str, pairs: list) -> Callable[[Rows], None]:
    def add(profit: Rows) -> None:
        for pair in pairs:
            # cents / 100 is the float of the exact Decimal amount (both are the correctly rounded c/100)
            profit.add((account, pair.strategy, pair.symbol), pair.profit_cents / 100)
    return add


def _closed_rows(account: str, strategies: list) -> Callable[[Rows], None]:
    def add(closed: Rows) -> None:
        for strategy in strategies:
            for result, count in (("win", strategy.winners), ("loss", strategy.losers),
                                  ("breakeven", strategy.breakevens)):
                closed.add((account, strategy.strategy, result), count)
    return add


def _ratio_rows(account: str, strategies: list) -> Callable[[Rows], None]:
    def add(win_ratio: Rows) -> None:
        for strategy in strategies:
            win_ratio.add((account, strategy.strategy), strategy.win_ratio)
    return add


def _factor_rows(account: str, strategies: list) -> Callable[[Rows], None]:
    def add(profit_factor: Rows) -> None:
        for strategy in strategies:
            factor = strategy.profit_factor
            if factor is not None:
                profit_factor.add((account, strategy.strategy), factor)
    return add


def _signal_rows(account: str, rows: list, executed_only: bool) -> Callable[[Rows], None]:
    def add(family: Rows) -> None:
        if executed_only:
            for strategy_name, signal, executed, count in rows:
                if executed:
                    family.add((account, strategy_name, signal), count)
            return
        recorded: dict[tuple[str, str], int] = {}
        for strategy_name, signal, _, count in rows:
            recorded[strategy_name, signal] = recorded.get((strategy_name, signal), 0) + count
        for (strategy_name, signal), count in sorted(recorded.items()):
            family.add((account, strategy_name, signal), count)
    return add


def _families(boards: list[AccountBoard], earlier: dict[str, Rows]) -> list[Rows]:
    profit = Rows(
        "tradewatch_realized_profit", "Net profit of closed trades (account currency).",
        labels=["account", "strategy", "symbol"],
    )
    # Per strategy, not per (strategy, symbol): x3 results made it the largest family (A*S*Y*3 series;
    # exporter/cardinality.py), and the dashboards only ever sum it by account or by result.
    closed = Rows(
        "tradewatch_trades_closed", "Closed trades by result: win (net > 0), loss (< 0), breakeven (= 0).",
        labels=["account", "strategy", "result"], kind="counter",
    )
    win_ratio = Rows(
        "tradewatch_win_ratio", "Winners / closed trades, per strategy.", labels=["account", "strategy"]
    )
    profit_factor = Rows(
        "tradewatch_profit_factor", "Gross profit / gross loss of closed trades, per strategy (+Inf without losses).",
        labels=["account", "strategy"],
    )
    drawdown = Rows(
        "tradewatch_drawdown_ratio", "Current drawdown of the closed-trade equity curve, relative to its peak.",
        labels=["account"],
    )
    max_drawdown = Rows(
        "tradewatch_max_drawdown_ratio", "Deepest drawdown of the closed-trade equity curve, relative to its peak.",
        labels=["account"],
    )
    daily = Rows(
        "tradewatch_daily_profit",
        "Net profit of the trades closed on the current broker day (from the trade server's midnight; "
        "UTC midnight while the server's offset is unknown).", labels=["account"]
    )
    stop_outs = Rows(
        "tradewatch_stopped_out_trades", "Trades the broker closed by a stop-out (close reason stop_out).",
        labels=["account"], kind="counter",
    )
    equity = Rows("tradewatch_snapshot_equity", "Equity of the newest account snapshot.", labels=["account"])
    balance = Rows(
        "tradewatch_snapshot_balance", "Balance of the newest account snapshot.", labels=["account"]
    )
    margin = Rows(
        "tradewatch_snapshot_margin_level_ratio", "Margin level of the newest snapshot (1 = 100 %).", labels=["account"]
    )
    last_trade = Rows(
        "tradewatch_last_trade_timestamp_seconds", "Exit time of the newest closed trade (Unix seconds).",
        labels=["account"],
    )
    open_trades = Rows(
        "tradewatch_open_trades", "Trades open in the store, per symbol.", labels=["account", "symbol"]
    )
    # Two counters, not one gauge by `executed`: a signal moves from not executed to executed, so a
    # per-`executed` count can go down, which a `_total` series must never do. Both of these only grow.
    signals = Rows(
        "tradewatch_signals_recorded", "Strategy signals stored (HOLD included).",
        labels=["account", "strategy", "signal"], kind="counter",
    )
    executed_signals = Rows(
        "tradewatch_signals_executed", "Strategy signals an order was filled for.",
        labels=["account", "strategy", "signal"], kind="counter",
    )
    families = [profit, closed, win_ratio, profit_factor, drawdown, max_drawdown, daily, stop_outs, equity, balance,
                margin, last_trade, open_trades, signals, executed_signals]
    for family in families:
        if family.name in earlier:
            family.reuse_prefixes(earlier[family.name])
    for board in boards:
        account = board.account
        # Blocks: an account's rows, by the list they come from (reused as is while it is the same list)
        profit.block(board.pairs, _pair_rows(account, board.pairs))
        closed.block(board.strategies, _closed_rows(account, board.strategies))
        win_ratio.block(board.strategies, _ratio_rows(account, board.strategies))
        profit_factor.block(board.strategies, _factor_rows(account, board.strategies))
        if board.drawdown_ratio is not None:
            drawdown.add((account,), board.drawdown_ratio)
        if board.max_drawdown_ratio is not None:
            max_drawdown.add((account,), board.max_drawdown_ratio)
        daily.add((account,), float(board.daily_profit))
        stop_outs.add((account,), board.stop_outs)
        if board.last_trade_time is not None:
            last_trade.add((account,), board.last_trade_time.timestamp())
        snapshot = board.snapshot
        if snapshot is not None:
            equity.add((account,), float(snapshot.equity))
            balance.add((account,), float(snapshot.balance))
            if snapshot.margin_level is not None:
                margin.add((account,), float(snapshot.margin_level) / 100)
        for symbol, count in sorted(board.open_trades.items()):
            open_trades.add((account, symbol), count)
        signals.block(board.signals, _signal_rows(account, board.signals, executed_only=False))
        executed_signals.block(board.signals, _signal_rows(account, board.signals, executed_only=True))
    return families


# (name, help, Mt5Figures field, scale): MT5's Trade History Report figures, on /metrics.
MT5_SERIES = (
    ("tradewatch_mt5_net_profit", "Total net profit, MT5 convention: the balance change without deposits and "
     "withdrawals, open positions' deals included.", "total_net_profit", 1),
    ("tradewatch_mt5_gross_profit", "Gross profit, MT5 convention: winning exit deals (and positive balance "
     "operations).", "gross_profit", 1),
    ("tradewatch_mt5_gross_loss", "Gross loss, MT5 convention: losing exit deals, entry commissions and "
     "charges (<= 0).", "gross_loss", 1),
    ("tradewatch_mt5_trades", "Trades, MT5 convention: exit deals (a partial close is a trade).", "total_trades", 1),
    ("tradewatch_mt5_balance_drawdown_absolute", "Initial deposit minus the lowest balance.",
     "balance_drawdown_absolute", 1),
    ("tradewatch_mt5_balance_drawdown_maximal", "Largest fall of the balance after every deal from a peak "
     "(account currency).", "balance_drawdown_maximal", 1),
    ("tradewatch_mt5_balance_drawdown_relative_ratio", "Largest fall of the balance relative to its peak "
     "(1 = 100 %).", "balance_drawdown_relative_percent", 100),
)


def mt5_families(figures: dict[str, Mt5Figures]) -> Iterator[Metric]:
    for name, text, attribute, scale in MT5_SERIES:
        family = GaugeMetricFamily(name, text, labels=["account"])
        for account, figure in figures.items():
            family.add_metric([account], float(getattr(figure, attribute)) / scale)
        yield family
    factor = GaugeMetricFamily("tradewatch_mt5_profit_factor", "Gross profit / gross loss, MT5 convention "
                               "(absent without a loss).", labels=["account"])
    for account, figure in figures.items():
        if figure.profit_factor is not None:
            factor.add_metric([account], float(figure.profit_factor))
    yield factor


def build_registry(database: Database, clock: Callable[[], datetime],
                   max_age_seconds: float = 0.0) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding the trading collectors
    (`max_age_seconds`: exporter/figures.py)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TradingCollector(database, clock, max_age_seconds))
    return registry


def _reason(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
