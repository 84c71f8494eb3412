"""Random trading books and a plain-Python recomputation of every analytics figure from raw trades.

The other analytics and exporter tests import from here: `random_book` builds opens,
closes and snapshots (winners, losers, exact breakevens, JPY and gold pairs, trades
without a strategy, tied exit times, exits given in a non-UTC zone, closes recorded out
of order); the `expected_*` functions recompute the figures from the raw trade rows with
Decimal and lists, sharing no code with db.analytics / db.rollups.  The tests in this
file check the reference itself on examples worked out by hand.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from db import AccountSnapshot, Repository, TradeClose, TradeOpen, TradeRow

CENT = Decimal("0.01")
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "GBPJPY", "XAUUSD")
STRATEGIES = ("ma_crossover", "rsi_reversion", "breakout", None)
START = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


@dataclass
class Book:
    """What to write into a store, in the order to write it."""

    opens: list[TradeOpen] = field(default_factory=list)
    closes: list[TradeClose] = field(default_factory=list)  # in the order they are recorded
    snapshots: list[AccountSnapshot] = field(default_factory=list)


def snapshot(account: str, moment: datetime, balance: str, equity: str | None = None) -> AccountSnapshot:
    amount = Decimal(balance)
    return AccountSnapshot(
        account=account,
        time=moment,
        balance=amount,
        equity=Decimal(equity) if equity is not None else amount,
        profit=Decimal(0),
        margin=Decimal(0),
        free_margin=amount,
        margin_level=None,
        open_positions=0,
    )


def random_book(seed: int, accounts: dict[str, str | None], trades: int, days: int = 110,
                left_open: int = 3) -> Book:
    """`trades` trades per account over `days` days from START; `accounts` maps account -> initial balance.

    An account whose balance is None gets no snapshot before its first close (its base is 0).
    """
    rng = random.Random(seed)
    book = Book()
    for account, balance in accounts.items():
        if balance is not None:
            book.snapshots.append(snapshot(account, START - timedelta(days=1), balance))
        exits: list[datetime] = []
        closes = []
        for k in range(trades):
            ticket = 10_000 + k
            symbol = rng.choice(SYMBOLS)
            entry = START + timedelta(minutes=rng.randrange(days * 24 * 60))
            book.opens.append(
                TradeOpen(
                    account=account,
                    ticket=ticket,
                    symbol=symbol,
                    direction=rng.choice(("BUY", "SELL")),
                    volume=Decimal(rng.choice(("0.01", "0.10", "0.50", "1.00"))),
                    entry_price=Decimal("1.100000"),
                    entry_time=entry,
                    stop_loss=None,
                    take_profit=None,
                    strategy_name=rng.choice(STRATEGIES),
                    ml_confidence=None,
                    client_order_id=None,
                    magic=7,
                    correlation_id=None,
                )
            )
            if k >= trades - left_open:
                continue
            if exits and rng.random() < 0.06:
                exit_time = rng.choice(exits)  # a tie with another trade's exit
            else:
                exit_time = entry + timedelta(seconds=rng.randrange(60, 4 * 86400), microseconds=rng.randrange(10**6))
            exits.append(exit_time)
            commission = -Decimal(rng.randrange(0, 1500)) / 100
            swap = Decimal(rng.randrange(-400, 300)) / 100
            if rng.random() < 0.07:
                gross = -(commission + swap)  # net exactly 0.00: breakeven
            else:
                gross = Decimal(rng.randrange(-90_000, 100_000)) / 100
            closes.append(
                TradeClose(
                    account=account,
                    ticket=ticket,
                    exit_price=Decimal("1.200000"),
                    exit_time=exit_time.astimezone(PLUS_TWO) if rng.random() < 0.3 else exit_time,
                    gross_profit=gross,
                    commission=commission,
                    swap=swap,
                    profit_pips=Decimal(rng.randrange(-3000, 3000)) / 10,
                )
            )
        # Mostly in exit order, with local swaps and a few closes recorded far too late.
        closes.sort(key=lambda c: c.exit_time)
        for i in range(len(closes) - 1):
            if rng.random() < 0.25:
                closes[i], closes[i + 1] = closes[i + 1], closes[i]
        for _ in range(max(1, len(closes) // 25)):
            late = closes.pop(rng.randrange(len(closes)))
            closes.append(late)
        book.closes.extend(closes)
        # A few snapshots inside the period, for the daily results' end balance.
        for day in (3, 17, 40):
            moment = START + timedelta(days=day, hours=rng.randrange(1, 17))
            book.snapshots.append(snapshot(account, moment, str(1000 + day), str(999 + day)))
    return book


def load(repo: Repository, book: Book) -> None:
    """Write a book through the repository: snapshots, opens, then the closes in their order."""
    for s in book.snapshots:
        repo.record_account_snapshot(s)
    for o in book.opens:
        repo.open_trade(o)
    for c in book.closes:
        assert repo.close_trade(c) is True


def closed_rows(repo: Repository, account: str) -> list[TradeRow]:
    """The raw closed trades of an account, in closing order (exit time, then id)."""
    return repo.closed_trades_between(account, EPOCH, FAR)


# -- the reference: figures recomputed from raw rows ------------------------------------------------


def strategy_of(row: TradeRow) -> str:
    return row.strategy_name or ""


def in_selection(row: TradeRow, start=None, end=None, symbol=None, strategy=None) -> bool:
    day = row.exit_time.astimezone(UTC).date()
    return (
        (start is None or day >= start)
        and (end is None or day <= end)
        and (symbol is None or row.symbol == symbol)
        and (strategy is None or strategy_of(row) == strategy)
    )


def expected_strategies(rows: list[TradeRow]) -> list[dict]:
    lines = []
    for name in sorted({strategy_of(r) for r in rows}):
        profits = [r.profit for r in rows if strategy_of(r) == name]
        wins = [p for p in profits if p > 0]
        losses = [p for p in profits if p < 0]
        total = sum(profits, Decimal(0))
        average = (total / len(profits)).quantize(CENT, rounding=ROUND_HALF_UP)
        lines.append(
            {
                "strategy": name,
                "trades": len(profits),
                "winners": len(wins),
                "losers": len(losses),
                "breakevens": len(profits) - len(wins) - len(losses),
                "win_rate": len(wins) / len(profits),
                "total_profit": total,
                "average_profit": average,
                "gross_profit": sum(wins, Decimal(0)),
                "gross_loss": sum(losses, Decimal(0)),
                "profit_factor": float(sum(wins, Decimal(0)) / -sum(losses, Decimal(0))) if losses else None,
                # win_rate * average win + loss_rate * average loss
                "expectancy": (
                    (Decimal(len(wins)) / len(profits)) * (sum(wins, Decimal(0)) / len(wins) if wins else 0)
                    + (Decimal(len(losses)) / len(profits)) * (sum(losses, Decimal(0)) / len(losses) if losses else 0)
                ).quantize(CENT, rounding=ROUND_HALF_UP),
                "largest_win": max(wins) if wins else None,
                "largest_loss": min(losses) if losses else None,
            }
        )
    return lines


def expected_symbols(rows: list[TradeRow]) -> list[dict]:
    lines = []
    for name in sorted({r.symbol for r in rows}):
        mine = [r for r in rows if r.symbol == name]
        winners = sum(1 for r in mine if r.profit > 0)
        losers = sum(1 for r in mine if r.profit < 0)
        lines.append(
            {
                "symbol": name,
                "trades": len(mine),
                "winners": winners,
                "losers": losers,
                "breakevens": len(mine) - winners - losers,
                "win_rate": winners / len(mine),
                "profit": sum((r.profit for r in mine), Decimal(0)),
                "pips": sum((r.profit_pips for r in mine), Decimal(0)),
            }
        )
    return lines


def bucket_key(moment: datetime, bucket: str) -> int | str:
    moment = moment.astimezone(UTC)
    day = moment.date()
    if bucket == "hour":
        return moment.hour
    if bucket == "weekday":
        return day.weekday()
    if bucket == "day":
        return day.isoformat()
    if bucket == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


def expected_buckets(rows: list[TradeRow], bucket: str) -> list[tuple[int | str, int, Decimal]]:
    totals: dict[int | str, list] = {}
    if bucket == "hour":
        totals = {h: [0, Decimal(0)] for h in range(24)}
    if bucket == "weekday":
        totals = {d: [0, Decimal(0)] for d in range(7)}
    for r in rows:
        total = totals.setdefault(bucket_key(r.exit_time, bucket), [0, Decimal(0)])
        total[0] += 1
        total[1] += r.profit
    return [(key, n, profit) for key, (n, profit) in sorted(totals.items())]


def pearson(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def expected_correlation(rows: list[TradeRow], by: str) -> tuple[list[str], int, list[list[float | None]]]:
    name_of = (lambda r: r.symbol) if by == "symbol" else strategy_of
    days = sorted({r.exit_time.astimezone(UTC).date() for r in rows})
    names = sorted({name_of(r) for r in rows})
    series = {n: {d: Decimal(0) for d in days} for n in names}
    for r in rows:
        series[name_of(r)][r.exit_time.astimezone(UTC).date()] += r.profit
    floats = {n: [float(series[n][d]) for d in days] for n in names}
    return names, len(days), [[pearson(floats[a], floats[b]) for b in names] for a in names]


def expected_base(snapshots: list[AccountSnapshot], rows: list[TradeRow], account: str) -> Decimal:
    """The initial balance: the newest snapshot before the account's earliest exit, else 0."""
    if not rows:
        return Decimal(0)
    first_exit = min(r.exit_time for r in rows)
    before = [s for s in snapshots if s.account == account and s.time < first_exit]
    return max(before, key=lambda s: s.time).balance if before else Decimal(0)


def expected_drawdown(all_rows: list[TradeRow], base: Decimal, start=None, end=None, symbol=None,
                      strategy=None) -> dict:
    """The selection's curve from its first trade; the points of the trades in [start, end] are reported."""
    curve = [r for r in all_rows if in_selection(r, symbol=symbol, strategy=strategy)]
    curve.sort(key=lambda r: (r.exit_time, r.id))
    cum = peak = Decimal(0)
    points = []
    for r in curve:
        cum += r.profit
        peak = max(peak, cum)
        ratio = float((peak - cum) / (base + peak)) if base + peak > 0 else None
        if in_selection(r, start, end):
            points.append((cum, peak, peak - cum, ratio, r.exit_time))
    if not points:
        return {"trades": 0, "equity": base, "peak_equity": base, "current_drawdown": Decimal("0.00"),
                "current_drawdown_ratio": None, "max_drawdown": Decimal("0.00"), "max_drawdown_ratio": None,
                "as_of": None, "initial_balance": base}
    ratios = [p[3] for p in points if p[3] is not None]
    last = points[-1]
    return {
        "trades": len(points),
        "initial_balance": base,
        "equity": base + last[0],
        "peak_equity": base + last[1],
        "current_drawdown": last[2],
        "current_drawdown_ratio": last[3],
        "max_drawdown": max(p[2] for p in points),
        "max_drawdown_ratio": max(ratios) if ratios else None,
        "as_of": last[4].astimezone(UTC),
    }


def expected_day(rows: list[TradeRow], snapshots: list[AccountSnapshot], account: str, day: date) -> dict:
    mine = sorted((r for r in rows if r.exit_time.astimezone(UTC).date() == day), key=lambda r: (r.exit_time, r.id))
    profits = [r.profit for r in mine]
    cum = peak = fall = Decimal(0)
    for p in profits:
        cum += p
        peak = max(peak, cum)
        fall = max(fall, peak - cum)
    that_day = [s for s in snapshots if s.account == account and s.time.astimezone(UTC).date() == day]
    last = max(that_day, key=lambda s: s.time) if that_day else None
    wins = [p for p in profits if p > 0]
    losses = [p for p in profits if p < 0]
    return {
        "trades": len(profits),
        "winners": len(wins),
        "losers": len(losses),
        "profit": sum(profits, Decimal(0)),
        "pips": sum((r.profit_pips for r in mine), Decimal(0)),
        "win_rate": len(wins) / len(profits) if profits else 0.0,
        "largest_win": max(wins) if wins else Decimal("0.00"),
        "largest_loss": min(losses) if losses else Decimal("0.00"),
        "max_drawdown": fall,
        "end_balance": None if last is None else last.balance,
        "end_equity": None if last is None else last.equity,
    }


def same(actual, expected, path: str = "") -> None:
    """Assert equality: Decimals exactly (to the cent), floats to 1e-9, containers element-wise."""
    if isinstance(expected, float) or isinstance(actual, float):
        assert actual is not None and expected is not None, f"{path}: {actual!r} != {expected!r}"
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, dict):
        for key, value in expected.items():
            same(actual[key] if isinstance(actual, dict) else getattr(actual, key), value, f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), f"{path}: {len(actual)} items != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            same(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# -- the reference checked on examples worked out by hand -------------------------------------------


def _row(ticket: int, profit: str, exit_time: datetime, symbol="EURUSD", strategy="a") -> TradeRow:
    return TradeRow(
        id=ticket, account="1", ticket=ticket, symbol=symbol, direction="BUY", volume=Decimal(1),
        entry_price=Decimal(1), exit_price=Decimal(1), entry_time=exit_time, exit_time=exit_time,
        profit=Decimal(profit), gross_profit=Decimal(profit), commission=Decimal(0), swap=Decimal(0),
        profit_pips=Decimal("1.5"), stop_loss=None, take_profit=None, strategy_name=strategy, ml_confidence=None,
        sentiment_score=None, is_closed=True, client_order_id=None, magic=1, correlation_id=None,
    )


def test_reference_drawdown_on_a_worked_example():
    t = datetime(2025, 1, 6, 10, tzinfo=UTC)
    rows = [_row(1, "100", t), _row(2, "-50", t + timedelta(days=1)), _row(3, "-100", t + timedelta(days=2)),
            _row(4, "80", t + timedelta(days=3))]
    # cum 100, 50, -50, 30; peak 100; drawdowns 0, 50, 150, 70; base 1000 -> ratios /1100
    whole = expected_drawdown(rows, Decimal(1000))
    assert (whole["max_drawdown"], whole["current_drawdown"], whole["equity"]) == (150, 70, 1030)
    assert whole["max_drawdown_ratio"] == 150 / 1100 and whole["current_drawdown_ratio"] == 70 / 1100
    # The last day only: the peak still comes from day one.
    last_day = expected_drawdown(rows, Decimal(1000), start=(t + timedelta(days=3)).date())
    assert (last_day["trades"], last_day["max_drawdown"]) == (1, 70)


def test_reference_performance_and_day_on_a_worked_example():
    t = datetime(2025, 1, 6, 10, tzinfo=UTC)
    rows = [_row(1, "10.00", t), _row(2, "-4.00", t), _row(3, "0.00", t), _row(4, "5.01", t)]
    (line,) = expected_strategies(rows)
    assert (line["winners"], line["losers"], line["breakevens"]) == (2, 1, 1)
    assert line["average_profit"] == line["expectancy"] == Decimal("2.75")  # 11.01 / 4 rounded half up
    assert line["profit_factor"] == 15.01 / 4
    day = expected_day(rows, [], "1", t.date())
    assert (day["max_drawdown"], day["profit"], day["pips"]) == (Decimal(4), Decimal("11.01"), Decimal(6))


def test_reference_pearson_agrees_with_the_standard_library():
    rng = random.Random(3)
    xs = [rng.uniform(-5, 5) for _ in range(50)]
    ys = [x * 0.3 + rng.uniform(-5, 5) for x in xs]
    assert math.isclose(pearson(xs, ys), statistics.correlation(xs, ys), rel_tol=1e-12)
    assert pearson([1.0, 1.0, 1.0], ys[:3]) is None


def test_random_books_have_every_kind_of_trade():
    book = random_book(11, {"1": "1000.00"}, trades=200)
    nets = [c.net_profit for c in book.closes]
    assert any(n > 0 for n in nets) and any(n < 0 for n in nets) and any(n == 0 for n in nets)
    assert {o.symbol for o in book.opens} >= {"USDJPY", "XAUUSD"}
    assert any(o.strategy_name is None for o in book.opens)
    assert any(c.exit_time.utcoffset() != timedelta(0) for c in book.closes)
    order = [c.exit_time for c in book.closes]
    assert order != sorted(order), "closes must also be recorded out of order"
