"""Realistic demo data: closed trades over several years, for dashboards, the API and benchmarks.

    python -m db seed-demo --trades 1000000 --accounts 2

Why bulk inserts and a rebuild instead of Repository.close_trade: a million closes one
transaction at a time would take an hour; inserting the rows in bulk and recomputing the
rollups from them once gives exactly what the closes would have produced (the tests check
that db.rollups.rebuild and the per-close updates agree).

What is generated, per account (demo accounts are named 9000001, 9000002, ...):
- closed trades on weekdays across `years` years up to now, over eight symbols (majors,
  JPY crosses and gold) and four strategies with different edges; net profit = gross +
  commission + swap, pips in each symbol's pip size, about 2 % breakevens (net 0.00);
- a few open trades, an initial account snapshot before the first trade, one at the end
  of each trading day and one now;
- signals (a tenth of the trades), and the daily_performance row of every trading day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy
from sqlalchemy import func, select

from db import rollups, signal_counts
from db.bulk import bulk_insert
from db.database import Database
from db.ledger import CENT, from_cents
from db.models import (
    ANY,
    AccountSnapshotModel,
    DailyPerformanceModel,
    SignalModel,
    TradeModel,
    trade_rollups,
)

log = logging.getLogger(__name__)

FIRST_ACCOUNT = 9_000_001
FIRST_TICKET = 50_000_000
CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    price: float
    digits: int
    pip: Decimal  # the symbol's pip size (bot.pips)
    pip_value: Decimal  # account currency per pip per lot
    volatility_pips: float  # typical pips a trade moves


INSTRUMENTS = (
    Instrument("EURUSD", 1.0850, 5, Decimal("0.0001"), Decimal("10"), 18),
    Instrument("GBPUSD", 1.2650, 5, Decimal("0.0001"), Decimal("10"), 24),
    Instrument("AUDUSD", 0.6550, 5, Decimal("0.0001"), Decimal("10"), 15),
    Instrument("USDCHF", 0.8800, 5, Decimal("0.0001"), Decimal("11.30"), 16),
    Instrument("USDJPY", 149.50, 3, Decimal("0.01"), Decimal("6.70"), 25),
    Instrument("EURJPY", 162.00, 3, Decimal("0.01"), Decimal("6.70"), 30),
    Instrument("GBPJPY", 189.00, 3, Decimal("0.01"), Decimal("6.70"), 40),
    Instrument("XAUUSD", 2030.00, 2, Decimal("0.1"), Decimal("10"), 60),
)
SYMBOL_WEIGHTS = (0.22, 0.16, 0.08, 0.06, 0.16, 0.08, 0.06, 0.18)
# (name, share of trades, edge in pips per trade)
STRATEGIES = (("ma_crossover", 0.35, 1.5), ("rsi_reversion", 0.30, 0.8), ("breakout", 0.20, -0.4), ("carry", 0.15, 2.0))
COMMISSION_PER_LOT = Decimal("3.50")  # each side
VOLUMES = numpy.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0])


@dataclass(frozen=True, slots=True)
class SeedSummary:
    accounts: list[str]
    closed_trades: int
    open_trades: int
    signals: int
    snapshots: int
    rollup_rows: int


def demo_accounts(count: int) -> list[str]:
    return [str(FIRST_ACCOUNT + k) for k in range(count)]


def seed_demo(
    database: Database, trades: int, accounts: int = 2, years: float = 3.0, seed: int = 7, now: datetime | None = None
) -> SeedSummary:
    """Fill a migrated, demo-free store with `trades` closed trades spread over `accounts` accounts."""
    if trades < 1 or accounts < 1 or not 0 < years <= 30:
        raise ValueError("seed-demo needs --trades >= 1, --accounts >= 1 and 0 < --years <= 30")
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    names = demo_accounts(accounts)
    rng = numpy.random.default_rng(seed)
    table = TradeModel.__table__
    with database.engine.begin() as connection:
        taken = connection.execute(
            select(func.count()).select_from(table).where(table.c.account.in_(names))
        ).scalar_one()
        if taken:
            raise ValueError(f"the demo accounts {names[0]}..{names[-1]} already have trades: use a fresh database")
    totals = {"closed": 0, "open": 0, "signals": 0, "snapshots": 0, "rollups": 0}
    for index, account in enumerate(names):
        share = trades // accounts + (1 if index < trades % accounts else 0)
        if share == 0:
            continue
        balance = Decimal(10_000 * (index + 1))
        with database.engine.begin() as connection:
            closed = _closed_trades(rng, account, share, now, years)
            opened = _open_trades(account, now, FIRST_TICKET + share)
            bulk_insert(connection, TradeModel.__table__, closed + opened)
            snapshots = _snapshots(account, balance, closed, now)
            bulk_insert(connection, AccountSnapshotModel.__table__, snapshots)
            signals = _signals(rng, account, max(1, share // 10), now, years)
            bulk_insert(connection, SignalModel.__table__, signals)
            totals["rollups"] += rollups.rebuild(connection, account)
        _daily_rows(database, account, snapshots)
        totals["closed"] += len(closed)
        totals["open"] += len(opened)
        totals["signals"] += len(signals)
        totals["snapshots"] += len(snapshots)
        log.info("seeded account %s: %d closed trades", account, len(closed))
    with database.engine.begin() as connection:
        signal_counts.recount(connection)
    return SeedSummary(names, totals["closed"], totals["open"], totals["signals"], totals["snapshots"],
                       totals["rollups"])


def _weekday_times(rng, count: int, now: datetime, years: float) -> list[datetime]:
    """`count` random moments in the last `years` years, moved off weekends, in order."""
    span = int(years * 365.25 * 86400)
    offsets = numpy.sort(rng.integers(0, span, size=count))
    start = now - timedelta(seconds=span + 3 * 86400)
    moments = []
    for offset in offsets.tolist():
        moment = start + timedelta(seconds=offset)
        if moment.weekday() >= 5:  # Saturday/Sunday -> the Friday before
            moment -= timedelta(days=moment.weekday() - 4)
        moments.append(moment)
    return moments


def _closed_trades(rng, account: str, count: int, now: datetime, years: float) -> list[dict]:
    symbol_index = rng.choice(len(INSTRUMENTS), size=count, p=SYMBOL_WEIGHTS)
    strategy_index = rng.choice(len(STRATEGIES), size=count, p=[s[1] for s in STRATEGIES])
    buys = rng.random(count) < 0.5
    volumes = rng.choice(VOLUMES, size=count)
    durations = numpy.clip(rng.lognormal(mean=4.5, sigma=1.3, size=count), 1, 4 * 1440)  # minutes
    noise = rng.standard_normal(count)
    breakeven = rng.random(count) < 0.02
    drift = rng.standard_normal(count) * 0.002
    entries = _weekday_times(rng, count, now, years)
    rows = []
    for i in range(count):
        instrument = INSTRUMENTS[symbol_index[i]]
        strategy, _, edge = STRATEGIES[strategy_index[i]]
        volume = Decimal(str(volumes[i]))
        pips = Decimal(0) if breakeven[i] else Decimal(
            str(round(edge + noise[i] * instrument.volatility_pips, 1))
        )
        entry_time = entries[i]
        exit_time = entry_time + timedelta(minutes=float(durations[i]))
        if exit_time.weekday() >= 5:  # the market is closed: held over the weekend, closed on Monday
            exit_time += timedelta(days=7 - exit_time.weekday())
        exit_time = min(exit_time, now - timedelta(minutes=1))
        entry_price = Decimal(str(round(instrument.price * (1 + drift[i]), instrument.digits)))
        move = pips * instrument.pip
        exit_price = entry_price + move if buys[i] else entry_price - move
        commission = -(COMMISSION_PER_LOT * 2 * volume).quantize(CENT)
        nights = (exit_time.date() - entry_time.date()).days
        swap = (Decimal("-0.70") * nights * volume * 10).quantize(CENT)
        gross = (pips * instrument.pip_value * volume).quantize(CENT)
        if breakeven[i]:
            gross = -(commission + swap)  # net exactly 0.00
        rows.append(
            {
                "account": account,
                "ticket": FIRST_TICKET + i,
                "symbol": instrument.symbol,
                "direction": "BUY" if buys[i] else "SELL",
                "volume": volume,
                "entry_price": entry_price,
                "exit_price": exit_price,
                "entry_time": entry_time,
                "exit_time": exit_time,
                "profit": gross + commission + swap,
                "gross_profit": gross,
                "commission": commission,
                "swap": swap,
                "profit_pips": pips,
                "stop_loss": None,
                "take_profit": None,
                "strategy_name": strategy,
                "ml_confidence": None,
                "sentiment_score": None,
                "is_closed": True,
                "client_order_id": None,
                "magic": 20260101,
                "correlation_id": None,
            }
        )
    return rows


def _open_trades(account: str, now: datetime, first_ticket: int) -> list[dict]:
    rows = []
    for k in range(3):
        instrument = INSTRUMENTS[k * 3 % len(INSTRUMENTS)]
        rows.append(
            {
                "account": account,
                "ticket": first_ticket + k,
                "symbol": instrument.symbol,
                "direction": "BUY" if k % 2 == 0 else "SELL",
                "volume": Decimal("0.10"),
                "entry_price": Decimal(str(instrument.price)),
                "entry_time": now - timedelta(minutes=30 * (k + 1)),
                "strategy_name": STRATEGIES[k % len(STRATEGIES)][0],
                "is_closed": False,
                "magic": 20260101,
            }
        )
    return rows


def _snapshots(account: str, initial: Decimal, closed: list[dict], now: datetime) -> list[dict]:
    """An initial snapshot, one at the end of each trading day, and one now; balance follows the trades."""
    by_day: dict = {}
    for row in closed:
        day = row["exit_time"].date()
        by_day[day] = by_day.get(day, Decimal(0)) + row["profit"]
    first = min(row["exit_time"] for row in closed) - timedelta(days=1)
    rows = [_snapshot(account, first, initial)]
    balance = initial
    for day in sorted(by_day):
        balance += by_day[day]
        moment = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        if moment < now:
            rows.append(_snapshot(account, moment, balance))
    rows.append(_snapshot(account, now, balance))
    return rows


def _snapshot(account: str, moment: datetime, balance: Decimal) -> dict:
    return {
        "account": account,
        "time": moment,
        "balance": balance,
        "equity": balance,
        "profit": Decimal(0),
        "margin": Decimal("250.00"),
        "free_margin": balance - Decimal("250.00"),
        "margin_level": (balance / Decimal("250.00") * 100).quantize(CENT),
        "open_positions": 3,
    }


def _signals(rng, account: str, count: int, now: datetime, years: float) -> list[dict]:
    times = _weekday_times(rng, count, now, years)
    symbols = rng.choice(len(INSTRUMENTS), size=count)
    strategies = rng.choice(len(STRATEGIES), size=count)
    kinds = rng.choice(3, size=count, p=(0.2, 0.2, 0.6))
    executed = rng.random(count) < 0.5
    rows = []
    for i in range(count):
        signal = ("BUY", "SELL", "HOLD")[kinds[i]]
        rows.append(
            {
                "account": account,
                "time": times[i],
                "cycle_id": f"seed-{i}",
                "correlation_id": f"seed-{account}-{i}",
                "symbol": INSTRUMENTS[symbols[i]].symbol,
                "strategy": STRATEGIES[strategies[i]][0],
                "signal": signal,
                "confidence": 0.5,
                "reason": "demo data",
                "price": None,
                "executed": bool(executed[i]) and signal != "HOLD",
            }
        )
    return rows


def _daily_rows(database: Database, account: str, snapshots: list[dict]) -> None:
    """What the bot writes at each day's end: daily_performance for every day with closed trades."""
    ends = {}
    for snap in sorted(snapshots, key=lambda s: s["time"]):
        ends[snap["time"].date()] = snap
    r = trade_rollups.c
    with database.engine.begin() as connection:
        days = connection.execute(
            select(r.period_start, r.trades, r.winners, r.losers, r.profit_cents, r.pips_hundredths,
                   r.largest_win_cents, r.largest_loss_cents, r.period_drawdown_cents)
            .where(r.account == account, r.span == "day", r.strategy == ANY, r.symbol == ANY)
        ).all()
        rows = []
        for day, trades, winners, losers, profit, pips, largest_win, largest_loss, fall in days:
            end = ends.get(day)
            rows.append({
                "account": account, "date": day, "trades": trades, "winners": winners, "losers": losers,
                "profit": from_cents(profit), "pips": from_cents(pips), "win_rate": winners / trades,
                "largest_win": from_cents(largest_win or 0), "largest_loss": from_cents(largest_loss or 0),
                "max_drawdown": from_cents(fall),
                "end_balance": end["balance"] if end else None, "end_equity": end["equity"] if end else None,
            })
        bulk_insert(connection, DailyPerformanceModel.__table__, rows)
