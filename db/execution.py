"""Execution quality per symbol and strategy, from the figures stored on the order rows.

Definitions (the figures themselves are defined in bot.engine.execution; slippage is in points,
positive = worse for the trader):
- the selection is one account's orders that were sent (``sent_at`` set), optionally one symbol,
  one strategy and a range of UTC days of ``sent_at`` (wall UTC, both ends included);
- ``orders`` counts them whatever their outcome, ``fills`` those filled; ``requotes`` is the sum
  of their requote resends and ``requote_rate`` the share of orders resent at least once;
- every other figure is over the fills: mean, median (p50) and 95th percentile of slippage against
  the decision price and against the quote at send, the mean spread at the decision, the mean
  decision-to-send and send-to-fill latencies. Percentiles interpolate linearly between the
  nearest ranks, like PostgreSQL's ``percentile_cont`` (the Grafana panels use that), so both
  give the same number. A figure no fill measured is None.

Why the aggregation runs here and not in SQL: percentile_cont does not exist on SQLite, and the
rows of a selection are few (one per order sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select

from db.analytics import Selection
from db.database import Database
from db.models import OrderModel
from db.reading import reading

POINTS = Decimal("0.01")
SECONDS = Decimal("0.000001")
RATE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class ExecutionLine:
    symbol: str
    strategy: str
    orders: int
    fills: int
    requotes: int
    requote_rate: Decimal | None
    slippage_decision_mean_points: Decimal | None
    slippage_decision_p50_points: Decimal | None
    slippage_decision_p95_points: Decimal | None
    slippage_send_mean_points: Decimal | None
    slippage_send_p50_points: Decimal | None
    slippage_send_p95_points: Decimal | None
    spread_mean_points: Decimal | None
    decision_to_send_mean_seconds: Decimal | None
    send_to_fill_mean_seconds: Decimal | None


def execution_quality(database: Database, selection: Selection) -> list[ExecutionLine]:
    """One line per (symbol, strategy) with at least one order sent, ordered by symbol then strategy."""
    o = OrderModel
    query = select(o.symbol, o.strategy, o.status, o.requotes, o.slippage_decision_points, o.slippage_send_points,
                   o.spread_points, o.decision_to_send_seconds, o.send_to_fill_seconds).where(
        o.account == selection.account, o.sent_at.is_not(None))
    if selection.symbol is not None:
        query = query.where(o.symbol == selection.symbol)
    if selection.strategy is not None:
        query = query.where(o.strategy == selection.strategy)
    if selection.start is not None:
        query = query.where(o.sent_at >= datetime.combine(selection.start, time(0), UTC))
    if selection.end is not None:
        query = query.where(o.sent_at < datetime.combine(selection.end + timedelta(days=1), time(0), UTC))
    groups: dict[tuple[str, str], list] = {}
    with reading(database) as connection:
        for row in connection.execute(query):
            groups.setdefault((row.symbol, row.strategy), []).append(row)
    return [_line(symbol, strategy, rows) for (symbol, strategy), rows in sorted(groups.items())]


def _line(symbol: str, strategy: str, rows: list) -> ExecutionLine:
    fills = [r for r in rows if r.status == "filled"]
    requoted = sum(1 for r in rows if r.requotes)
    decision = _figures(fills, "slippage_decision_points")
    send = _figures(fills, "slippage_send_points")
    return ExecutionLine(
        symbol=symbol,
        strategy=strategy,
        orders=len(rows),
        fills=len(fills),
        requotes=sum(r.requotes or 0 for r in rows),
        requote_rate=(Decimal(requoted) / len(rows)).quantize(RATE),
        slippage_decision_mean_points=_mean(decision, POINTS),
        slippage_decision_p50_points=percentile(decision, Decimal("0.5")),
        slippage_decision_p95_points=percentile(decision, Decimal("0.95")),
        slippage_send_mean_points=_mean(send, POINTS),
        slippage_send_p50_points=percentile(send, Decimal("0.5")),
        slippage_send_p95_points=percentile(send, Decimal("0.95")),
        spread_mean_points=_mean(_figures(fills, "spread_points"), POINTS),
        decision_to_send_mean_seconds=_mean(_figures(fills, "decision_to_send_seconds"), SECONDS),
        send_to_fill_mean_seconds=_mean(_figures(fills, "send_to_fill_seconds"), SECONDS),
    )


def _figures(rows: list, name: str) -> list[Decimal]:
    # SQLite hands NUMERIC back as float through a plain select: go through str for exact digits.
    return sorted(Decimal(str(v)) for r in rows if (v := getattr(r, name)) is not None)


def _mean(values: list[Decimal], quantum: Decimal) -> Decimal | None:
    return (sum(values) / len(values)).quantize(quantum) if values else None


def percentile(ordered: list[Decimal], q: Decimal) -> Decimal | None:
    """percentile_cont(q) of sorted values: linear between the two nearest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return value.quantize(POINTS)
