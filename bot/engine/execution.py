"""Execution quality: what a fill cost against the decision and against the market at send.

Why measure it: a strategy's back-tested edge is spent first on slippage, spread and latency, and
a broker whose fills drift is seen only here. Per order the sender measures

- slippage in points against the decision price (the signal's price when the strategy decided)
  and against the quote read right before the send that executed (after a requote: the fresh
  quote it was resent at). Sign convention: **positive = worse for the trader** (a BUY filled
  above the reference, a SELL filled below it), negative = price improvement;
- the spread at the decision, in points (ask - bid);
- latencies from ``time.monotonic()`` (never the wall or broker clock, which may jump):
  decision_to_send = strategy decided -> first ``order_send``; send_to_fill = first
  ``order_send`` -> the executed reply, so requote round trips count in send_to_fill and the two
  stages add up to decision-to-fill;
- requotes: how many times the order was resent after a requote (10004/10020/10021).

Stored times are true UTC (``sent_at``: the gateway's clock, which is the wall clock at a real
terminal and the simulator's own when it runs faster than the wall); the figures ride on the order row (db OrderOutcome) and
on the histograms of bot.telemetry.metrics. A figure that was not measured stays None: an order
replayed after a restart has no decision time in this process, an order resolved at the broker
after a lost reply has no measured fill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from time import monotonic  # a module name of its own, so a test can script this clock alone

POINTS = Decimal("0.01")  # db points_type scale
SECONDS = Decimal("0.000001")  # db seconds_type scale


@dataclass(frozen=True)
class Decision:
    """What the engine knew when the strategy decided (kept in memory, not in the order queue)."""

    monotonic: float
    spread_points: Decimal | None


@dataclass(frozen=True)
class ExecutionQuality:
    """One send's figures, named like the order row's columns (db.records.EXECUTION_FIELDS)."""

    sent_at: datetime
    requotes: int
    send_price: Decimal | None = None
    spread_points: Decimal | None = None
    slippage_decision_points: Decimal | None = None
    slippage_send_points: Decimal | None = None
    decision_to_send_seconds: Decimal | None = None
    send_to_fill_seconds: Decimal | None = None

    def columns(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def decision(bid: Decimal, ask: Decimal, point: Decimal | None) -> Decision:
    """Stamp a decision now, with the spread of the quote it was made on."""
    return Decision(monotonic(), None if not point else ((ask - bid) / point).quantize(POINTS))


def slippage_points(side: str, reference: Decimal, fill: Decimal, point: Decimal) -> Decimal:
    """Points the fill is worse than `reference` for the trader (negative: better)."""
    worse = fill - reference if side == "BUY" else reference - fill
    return (worse / point).quantize(POINTS)


def seconds(start: float, end: float) -> Decimal:
    return Decimal(str(max(0.0, end - start))).quantize(SECONDS)


class SendClock:
    """Timestamps of one order's send: first attempt (monotonic + wall UTC), requotes, the reply."""

    def __init__(self, decided: Decision | None, quote_at_send: Decimal | None,
                 utc_now: Callable[[], datetime] | None = None):
        self.decided = decided
        #: True UTC now: the gateway's (an accelerated simulator's own clock), else the machine's.
        self.utc_now = utc_now or (lambda: datetime.now(UTC))
        self.quote = quote_at_send
        self.first: float | None = None
        self.sent_at: datetime | None = None
        self.requotes = 0

    def sending(self) -> None:
        if self.first is None:
            self.first = monotonic()
            self.sent_at = self.utc_now()

    def requoted(self, fresh: Decimal) -> None:
        self.requotes += 1
        self.quote = fresh  # the resend goes at the fresh quote: slippage at send is judged against it

    def result(self, side: str, point: Decimal | None, decided_price: Decimal,
               fill: Decimal | None) -> ExecutionQuality | None:
        """The figures, or None if nothing was sent. `fill` is None unless the order executed."""
        if self.first is None or self.sent_at is None:
            return None
        done = monotonic()
        decided = self.decided
        filled = fill is not None and bool(point)
        return ExecutionQuality(
            sent_at=self.sent_at,
            requotes=self.requotes,
            send_price=self.quote,
            spread_points=None if decided is None else decided.spread_points,
            slippage_decision_points=slippage_points(side, decided_price, fill, point) if filled else None,
            slippage_send_points=(slippage_points(side, self.quote, fill, point)
                                  if filled and self.quote is not None else None),
            decision_to_send_seconds=None if decided is None else seconds(decided.monotonic, self.first),
            send_to_fill_seconds=seconds(self.first, done) if fill is not None else None,
        )
