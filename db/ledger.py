"""The arithmetic of trade rollups, free of any database: what one rollup row holds and how it grows.

Why a separate module: the transaction that closes a trade, the full rebuild and the
consistency check must compute rollups the same way, and this arithmetic is easier to
trust (and to test) on its own.

Conventions (see db.analytics for the full list):
- amounts are integers in hundredths: cents of the account currency, hundredths of a pip;
- a trade is a winner when its net profit is > 0, a loser when < 0, breakeven at exactly 0;
- the equity curve of a selection of trades (an account, or its trades of one strategy
  and/or symbol) is `initial balance + cumulative net profit` in closing order (exit time,
  then trade id).  It starts at 0 profit, so the running peak is never below 0.
  After each trade: drawdown = peak - cum, ratio = drawdown / (initial balance + peak)
  (undefined, None, when that denominator is not positive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from db.brokerday import broker_date
from db.models import ANY, HOUR_CENTS_COLUMNS, HOUR_TRADES_COLUMNS

# period_start of the all-time rollup rows.
ALL_TIME = date.min
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """The facts of a closed trade that rollups need."""

    id: int
    account: str
    symbol: str
    strategy: str  # '' when the trade has no strategy
    exit_time: datetime
    profit_cents: int
    pips_hundredths: int
    offset_seconds: int = 0  # the broker's server offset at the exit (db.brokerday; 0: UTC days)

    @property
    def day(self) -> date:
        """The broker day it closed on: the date at the trade server (db.brokerday.broker_date)."""
        return broker_date(self.exit_time, self.offset_seconds)

    @property
    def order_key(self) -> tuple[datetime, int]:
        """Closing order: by exit time, ties by trade id."""
        return (self.exit_time, self.id)


def cents(amount: Decimal) -> int:
    """A Decimal with at most two decimals as integer hundredths (refuses anything finer)."""
    scaled = amount * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than two decimals")
    return int(scaled)


def from_cents(value: int) -> Decimal:
    """Integer hundredths back to a two-decimal Decimal."""
    return Decimal(value).scaleb(-2).quantize(CENT)


def month_start(day: date) -> date:
    return day.replace(day=1)


def grains(strategy: str, symbol: str) -> tuple[tuple[str, str], ...]:
    """The (strategy, symbol) rollup keys a trade counts in: itself, its strategy, its symbol, all."""
    return ((strategy, symbol), (strategy, ANY), (ANY, symbol), (ANY, ANY))


def matches(grain: tuple[str, str], trade: ClosedTrade) -> bool:
    strategy, symbol = grain
    return strategy in (ANY, trade.strategy) and symbol in (ANY, trade.symbol)


def drawdown_ratio(drawdown: int, peak: int, base: int) -> float | None:
    """drawdown / (initial balance + peak), None when the denominator is not positive."""
    denominator = base + peak
    return drawdown / denominator if denominator > 0 else None


def _max_ratio(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """A selection's equity curve just after one trade (amounts relative to the initial balance)."""

    cum: int
    peak: int
    drawdown: int
    ratio: float | None

    @staticmethod
    def after(cum: int, peak: int, profit: int, base: int) -> CurvePoint:
        new_cum = cum + profit
        new_peak = max(peak, new_cum)
        drawdown = new_peak - new_cum
        return CurvePoint(new_cum, new_peak, drawdown, drawdown_ratio(drawdown, new_peak, base))


@dataclass(slots=True)
class Tally:
    """One rollup row being built: counts, sums, extremes, the equity path and hourly totals."""

    trades: int = 0
    winners: int = 0
    losers: int = 0
    profit_cents: int = 0
    win_cents: int = 0
    loss_cents: int = 0
    pips_hundredths: int = 0
    largest_win_cents: int | None = None
    largest_loss_cents: int | None = None
    # The period's own path from 0 at its start (profit_cents is where it ends).
    period_peak_cents: int = 0
    period_trough_cents: int | None = None
    period_drawdown_cents: int = 0
    # The selection's path since its first trade.
    end_cum_cents: int = 0
    end_peak_cents: int = 0
    max_drawdown_cents: int = 0
    max_drawdown_ratio: float | None = None
    last_exit_time: datetime | None = None
    last_trade_id: int | None = None
    hour_trades: list[int] = field(default_factory=lambda: [0] * 24)
    hour_cents: list[int] = field(default_factory=lambda: [0] * 24)

    @property
    def last_key(self) -> tuple[datetime, int] | None:
        if self.last_exit_time is None or self.last_trade_id is None:
            return None
        return (self.last_exit_time, self.last_trade_id)

    def add(self, trade: ClosedTrade, point: CurvePoint) -> None:
        """Count `trade`, which closed after every trade counted so far; `point` is the curve after it."""
        profit = trade.profit_cents
        self.trades += 1
        if profit > 0:
            self.winners += 1
            self.win_cents += profit
            self.largest_win_cents = profit if self.largest_win_cents is None else max(self.largest_win_cents, profit)
        elif profit < 0:
            self.losers += 1
            self.loss_cents += profit
            self.largest_loss_cents = (
                profit if self.largest_loss_cents is None else min(self.largest_loss_cents, profit)
            )
        self.profit_cents += profit
        self.pips_hundredths += trade.pips_hundredths
        self.period_peak_cents = max(self.period_peak_cents, self.profit_cents)
        self.period_trough_cents = (
            self.profit_cents if self.period_trough_cents is None else min(self.period_trough_cents, self.profit_cents)
        )
        self.period_drawdown_cents = max(self.period_drawdown_cents, self.period_peak_cents - self.profit_cents)
        self.end_cum_cents = point.cum
        self.end_peak_cents = point.peak
        self.max_drawdown_cents = max(self.max_drawdown_cents, point.drawdown)
        self.max_drawdown_ratio = _max_ratio(self.max_drawdown_ratio, point.ratio)
        self.last_exit_time = trade.exit_time
        self.last_trade_id = trade.id
        hour = trade.exit_time.hour
        self.hour_trades[hour] += 1
        self.hour_cents[hour] += profit

    def merge(self, later: Tally) -> None:
        """Append the trades of `later`, all of which closed after this tally's trades."""
        if later.trades == 0:
            return
        if self.trades == 0:
            for name in self.__slots__:
                value = getattr(later, name)
                setattr(self, name, list(value) if isinstance(value, list) else value)
            return
        start = self.profit_cents
        assert later.period_trough_cents is not None and self.period_trough_cents is not None
        self.period_drawdown_cents = max(
            self.period_drawdown_cents,
            later.period_drawdown_cents,
            self.period_peak_cents - (start + later.period_trough_cents),
        )
        self.period_peak_cents = max(self.period_peak_cents, start + later.period_peak_cents)
        self.period_trough_cents = min(self.period_trough_cents, start + later.period_trough_cents)
        self.trades += later.trades
        self.winners += later.winners
        self.losers += later.losers
        self.profit_cents += later.profit_cents
        self.win_cents += later.win_cents
        self.loss_cents += later.loss_cents
        self.pips_hundredths += later.pips_hundredths
        self.largest_win_cents = _extreme(max, self.largest_win_cents, later.largest_win_cents)
        self.largest_loss_cents = _extreme(min, self.largest_loss_cents, later.largest_loss_cents)
        self.end_cum_cents = later.end_cum_cents
        self.end_peak_cents = later.end_peak_cents
        self.max_drawdown_cents = max(self.max_drawdown_cents, later.max_drawdown_cents)
        self.max_drawdown_ratio = _max_ratio(self.max_drawdown_ratio, later.max_drawdown_ratio)
        self.last_exit_time = later.last_exit_time
        self.last_trade_id = later.last_trade_id
        self.hour_trades = [a + b for a, b in zip(self.hour_trades, later.hour_trades, strict=True)]
        self.hour_cents = [a + b for a, b in zip(self.hour_cents, later.hour_cents, strict=True)]

    # -- to and from table rows -------------------------------------------------------------

    _PLAIN = (
        "trades",
        "winners",
        "losers",
        "profit_cents",
        "win_cents",
        "loss_cents",
        "pips_hundredths",
        "largest_win_cents",
        "largest_loss_cents",
        "period_peak_cents",
        "period_trough_cents",
        "period_drawdown_cents",
        "end_cum_cents",
        "end_peak_cents",
        "max_drawdown_cents",
        "max_drawdown_ratio",
        "last_exit_time",
        "last_trade_id",
    )

    @classmethod
    def from_row(cls, row) -> Tally:
        """A tally from a trade_rollups row (any mapping of column name to value)."""
        tally = cls(**{name: row[name] for name in cls._PLAIN})
        tally.hour_trades = [row[name] for name in HOUR_TRADES_COLUMNS]
        tally.hour_cents = [row[name] for name in HOUR_CENTS_COLUMNS]
        return tally

    def values(self) -> dict[str, object]:
        """The tally as trade_rollups column values (without the key columns)."""
        values: dict[str, object] = {name: getattr(self, name) for name in self._PLAIN}
        values.update(zip(HOUR_TRADES_COLUMNS, self.hour_trades, strict=True))
        values.update(zip(HOUR_CENTS_COLUMNS, self.hour_cents, strict=True))
        return values


def _extreme(pick, a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


RowKey = tuple[str, date, str, str]  # (span, period_start, strategy, symbol)


def row_keys(trade: ClosedTrade, grain: tuple[str, str]) -> tuple[RowKey, RowKey, RowKey]:
    """The day, month and all-time rows of `grain` that `trade` counts in."""
    strategy, symbol = grain
    return (
        ("day", trade.day, strategy, symbol),
        ("month", month_start(trade.day), strategy, symbol),
        ("all", ALL_TIME, strategy, symbol),
    )


def day_tallies(
    trades, grain: tuple[str, str], base: int, cum: int = 0, peak: int = 0
) -> dict[date, Tally]:
    """Day tallies of `grain` from trades in closing order, continuing a curve at (cum, peak)."""
    days: dict[date, Tally] = {}
    for trade in trades:
        if not matches(grain, trade):
            continue
        point = CurvePoint.after(cum, peak, trade.profit_cents, base)
        cum, peak = point.cum, point.peak
        tally = days.get(trade.day)
        if tally is None:
            tally = days[trade.day] = Tally()
        tally.add(trade, point)
    return days


def fold_by_month(days: dict[date, Tally]) -> dict[date, Tally]:
    """Month tallies from day tallies (any order in, each month folded in day order)."""
    months: dict[date, Tally] = {}
    for day in sorted(days):
        months.setdefault(month_start(day), Tally()).merge(days[day])
    return months


def fold(tallies) -> Tally:
    """One tally from consecutive tallies given in time order."""
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total
