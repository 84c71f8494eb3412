"""The books step of a cycle: reconciliation with the broker, unknown outcomes, and the replay of queued orders.

Why a module of its own: this is what makes the bot safe to restart and to lose the terminal
or the database: the store is brought in line with the broker before any new order, an order
whose outcome is unknown is looked up (never resent), and orders queued while the terminal was
away are sent or expired on fresh data.  Unknown-order resolution reads the store only when
something can be unresolved: at the first cycle, while an earlier lookup left orders open, or
after a send came back "unknown" or raised (the order sender says so); otherwise no lookup.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from ..gateway import NotExpressible, Position
from ..gateway.errors import BadBrokerData
from ..gateway.freeze import check_close as check_not_frozen
from ..resilience.order_flow import Freshness
from ..resilience.order_queue import QueuedOrder
from ..store.errors import StoreUnavailable
from .history_guard import check_broker_history
from .observer import CycleReport
from .orders import SendOutcome
from .strategies import BUY, SELL

log = logging.getLogger("bot.engine")


class ReplayStep:
    """Engine methods of the books step (mixed into bot.engine.engine.Engine)."""

    #: An order sent this run came back "unknown": look it up at the broker next cycle.
    unknown_outcomes = True  # also at start: a crash may have left one (the first lookup says)

    def _resolve_unknown(self, now: datetime, report: CycleReport) -> None:
        """Look up orders whose outcome is unknown, only when there can be any (no store read otherwise)."""
        if not self.unknown_outcomes and self.books.unresolved == 0:
            return
        self.unknown_outcomes = False
        report.unknown_resolved = self.books.resolve_unknown_orders(now, skip=self.flow.waiting_ids())

    def _check_history(self, now: datetime) -> None:
        """Once, before the first reconciliation: refuse a broker whose history is behind the store's.

        A store that cannot answer yet (database down at start) defers the check, not the trading:
        it runs on the first cycle the database answers.
        """
        if self._history_checked:
            return
        try:
            check_broker_history(self.gateway, self.repo, self.account_id, now, self.settings.history_days)
        except StoreUnavailable as exc:
            if not self._history_deferred:  # said once, not every cycle the database stays away
                log.warning("broker history not checked against the store yet: %s", exc)
            self._history_deferred = True
            return
        self._history_checked = True

    def _reconcile(self, now: datetime, positions: list[Position], report: CycleReport) -> None:
        """Store vs broker before any new order; while it fails the engine stays halted (raises)."""
        try:
            opened, closed, adopted = self.books.reconcile(now, self.settings.history_days, positions)
            self.books.resolve_unknown_orders(now, skip=self.flow.waiting_ids())
            self.unknown_outcomes = False
            self.flow.settle_in_flight()
        except Exception as exc:
            reason = f"reconciliation failed: {type(exc).__name__}: {exc}"
            if self.halted_reason != reason:
                self.halted_reason = reason
                self.observer.trading_halted(reason)
            raise
        report.trades_opened, report.trades_closed = opened, closed
        self.reconciled, self.halted_reason = True, None
        self.observer.trading_halted(None)
        log.info("reconciled with the broker", extra={"opened": opened, "closed": closed, "adopted": adopted,
                                                      "queued": self.order_queue.depth})

    def _replay(self, now: datetime, report: CycleReport) -> tuple[int, int]:
        if not self.order_queue.depth:
            return 0, 0

        def at_broker(ids: set[str]) -> set[str]:
            oldest = min((o.decided_at for o in self.order_queue.in_state("queued")), default=now)
            return set(self.books.find_at_broker(ids, oldest, now))

        def judge(order: QueuedOrder) -> tuple[Decimal | None, str | None]:
            try:
                return judge_on_broker_data(order)
            except BadBrokerData:
                return None, "bad_data"  # its quote or bars are refused: never sent on data we cannot trust

        def judge_on_broker_data(order: QueuedOrder) -> tuple[Decimal | None, str | None]:
            quote = self.gateway.quote(order.symbol)
            price = quote.ask if order.side == BUY else quote.bid
            if abs(price - order.price) > order.max_deviation:
                return None, "deviation"
            if order.purpose == "close":
                position = next((p for p in self._our_positions() if p.ticket == order.position_ticket), None)
                if position is None:
                    return None, "position_closed"
                spec = self.specs.get(order.symbol)
                if spec is not None:
                    try:  # 10029 if sent: expire it; the strategy decides the close again on a later cycle
                        check_not_frozen(spec, position, quote)
                    except NotExpressible:
                        return None, "freeze_level"
                return price, None
            if self.risk_guard.halted_reason is not None:
                return None, "risk_halted"  # a halt or pause also stops entries decided before it (riskguard.py)
            strategy = self.runner.find(order.strategy)
            if strategy is None:
                return None, "strategy"
            bars = self.runner.closed_bars(self.gateway, order.symbol, self.runner.timeframe_of(strategy), [strategy])
            signal = self.runner.evaluate(strategy, bars)
            if signal is None or signal.action == (SELL if order.side == BUY else BUY):
                return None, "strategy"
            return price, None

        def sent(order: QueuedOrder, outcome: SendOutcome) -> None:
            self._count(report, order, outcome)

        return self.flow.replay(now, judge, at_broker, on_sent=sent)

    def _freshness(self, order: QueuedOrder) -> Freshness:
        """Right before a send: is the decision still inside its TTL and its price deviation?"""
        quote = self.gateway.quote(order.symbol)
        price = quote.ask if order.side == BUY else quote.bid
        if quote.time > order.expires_at:
            return Freshness(quote.time, "ttl", price)
        if abs(price - order.price) > order.max_deviation:
            return Freshness(quote.time, "deviation", price)
        return Freshness(quote.time, None, price)
