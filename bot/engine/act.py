"""The act step of a cycle: one strategy's signal on one symbol becomes a stored signal and, maybe, orders.

Why a module of its own: this is the money path (sizing, the risk guard, the order queue) and
reads best without the cycle's orchestration around it.  Order of things: the signal is
recorded first (every signal, HOLD included: the store's record of what was decided); an
opposite position of the same strategy is closed; a new one is opened unless the strategy
already holds one that way or the symbol is at its cap.  `_send` hands the order to the order
flow, whose sender commits the cycle's store writes right before `order_send` (group commit).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from db import SignalRecord

from ..gateway import NotExpressible, Position
from ..gateway.freeze import check_close as check_not_frozen
from ..resilience.order_queue import QueuedOrder
from ..telemetry.context import correlation_context, new_correlation_id
from .execution import decision as decision_stamp
from .observer import CycleReport
from .orders import SendOutcome, new_client_order_id
from .risk import position_volume, stops_from_atr
from .riskguard import Entry
from .strategies import BUY, HOLD, Signal, atr

log = logging.getLogger("bot.engine")


class ActStep:
    """Engine methods of the act step (mixed into bot.engine.engine.Engine, whose state they use)."""

    def _act(self, report, now, spec, strategy, signal: Signal, bars, quote, account, positions) -> list[Position]:
        if signal.action == HOLD:
            self._hold(report, now, spec.name, strategy.name, signal, quote.bid)
            return positions
        correlation_id = new_correlation_id()
        decided = decision_stamp(quote.bid, quote.ask, spec.point)  # execution quality starts here
        with correlation_context(correlation_id):
            price = quote.ask if signal.action == BUY else quote.bid
            record = SignalRecord(
                account=self.account_id,
                time=now,
                cycle_id=report.cycle_id,
                correlation_id=correlation_id,
                symbol=spec.name,
                strategy=strategy.name,
                signal=signal.action,
                confidence=float(signal.confidence),
                reason=signal.reason,
                price=price,
            )
            # Stored now, before its orders, with the HOLDs waiting before it (signal_log.py).
            signal_id = self.signal_log.record(record)
            report.signals[signal.action] += 1
            report.signal_keys.append((spec.name, strategy.name, signal.action))
            self._log_signal(logging.INFO, spec.name, strategy.name, signal)
            if not self.attribution.allows(spec.name, strategy.name):
                return positions  # on a netting account another strategy owns this symbol (netting.py)
            acted = False
            for position in self.ownership.of(positions, spec.name, strategy.name):
                if position.direction != signal.action:
                    try:  # SL/TP inside the freeze level: 10029 if sent; skipped, decided again next cycle
                        check_not_frozen(spec, position, quote)
                    except NotExpressible as exc:
                        self._skip(spec.name, strategy.name, exc)
                        continue
                    acted |= self._send(report, now, correlation_id, signal_id, spec.name, strategy.name,
                                        side=signal.action, purpose="close", volume=position.volume,
                                        price=quote.ask if signal.action == BUY else quote.bid,
                                        position_ticket=position.ticket, decision=decided)
            positions = self._our_positions() if acted else positions
            same_way = [p for p in self.ownership.of(positions, spec.name, strategy.name)
                        if p.direction == signal.action]
            on_symbol = [p for p in positions if p.symbol == spec.name]
            if same_way or len(on_symbol) >= self.attribution.position_cap(self.settings.max_positions_per_symbol) \
                    or account is None:
                return positions  # account None: sizing refuses the account state (new orders halted)
            distance = Decimal(str(atr(bars.high, bars.low, bars.close, self.settings.atr_period)))
            if distance <= 0:
                return positions
            try:
                stops = stops_from_atr(spec, signal.action, price, distance, self.settings.sl_atr_multiple,
                                       self.settings.tp_atr_multiple, spread=quote.ask - quote.bid,
                                       slippage_points=self.settings.deviation_points)
                volume = position_volume(spec, account.equity, self.settings.risk_per_trade, abs(price - stops.sl))
            except NotExpressible as exc:
                self._skip(spec.name, strategy.name, exc)
                return positions
            if self._send(report, now, correlation_id, signal_id, spec.name, strategy.name, side=signal.action,
                          purpose="open", volume=volume, price=price, sl=stops.sl, tp=stops.tp, decision=decided):
                positions = self._our_positions()
            return positions

    def _hold(self, report, now, symbol: str, strategy: str, signal: Signal, bid: Decimal) -> None:
        """A HOLD: recorded (the bid as its price), counted, logged at DEBUG; nothing else happens.

        Why apart from `_act`: every (symbol, strategy) pair holds on most bars, and a HOLD needs
        none of the order path. It waits for the next signal that needs its id, or the end of the
        cycle's strategies: one store write for them all (signal_log.py). Its correlation id is only
        put in context for its DEBUG line: nothing else a HOLD does reads it (issue 16).
        """
        correlation_id = new_correlation_id()
        self.signal_log.hold(SignalRecord(
            account=self.account_id, time=now, cycle_id=report.cycle_id, correlation_id=correlation_id,
            symbol=symbol, strategy=strategy, signal=HOLD, confidence=float(signal.confidence),
            reason=signal.reason, price=bid,
        ))
        report.signals[HOLD] += 1
        report.signal_keys.append((symbol, strategy, HOLD))
        if log.isEnabledFor(logging.DEBUG):  # its extra is not built at INFO (each pair, each bar)
            with correlation_context(correlation_id):
                self._log_signal(logging.DEBUG, symbol, strategy, signal)

    @staticmethod
    def _log_signal(level: int, symbol: str, strategy: str, signal: Signal) -> None:
        log.log(level, "signal %s %s %s", signal.action, symbol, strategy,
                extra={"symbol": symbol, "strategy": strategy, "signal": signal.action,
                       "confidence": float(signal.confidence), "reason": signal.reason})

    def _send(self, report, now, correlation_id, signal_id, symbol, strategy, *, side, purpose, volume, price,
              sl=None, tp=None, position_ticket=None, decision=None) -> bool:
        spec = self.specs[symbol]
        if purpose == "open":  # the risk guard may shrink a new entry, or skip it (counted, never sent)
            volume = self.risk_guard.vet(Entry(spec, side, volume, price, sl, tp))
            if volume is None:
                return False
        order = QueuedOrder(
            client_order_id=new_client_order_id(), account=self.account_id, correlation_id=correlation_id,
            signal_id=signal_id, symbol=symbol, strategy=strategy, side=side, purpose=purpose, volume=volume,
            price=price, sl=sl, tp=tp, position_ticket=position_ticket,
            deviation_points=self.settings.deviation_points,
            max_deviation=spec.point * self.settings.order_max_deviation_points,
            decided_at=now, expires_at=now + timedelta(seconds=self.settings.order_ttl_seconds),
        )
        outcome = self.flow.submit(order, price, decision)
        self._count(report, order, outcome)
        return outcome.status not in ("rejected", "duplicate")

    def _count(self, report: CycleReport, order: QueuedOrder, outcome: SendOutcome) -> None:
        report.orders[outcome.status] += 1
        if order.purpose == "open" and outcome.status not in ("rejected", "duplicate", "expired"):
            self.ownership.opened(order.client_order_id, order.strategy, outcome.broker_order)
        if outcome.status == "queued":
            return  # counted once it is sent or expired
        self.observer.order(order.symbol, order.strategy, order.side, outcome.status)
        if outcome.quality is not None:
            self.observer.execution(order.symbol, outcome.status, outcome.quality)
        if outcome.status == "filled" and order.signal_id is not None:
            self.repo.mark_signal_executed(order.signal_id)

    def _skip(self, symbol: str, strategy: str, exc: NotExpressible) -> None:
        """A decided order the symbol's grid cannot express: counted always, logged once per reason."""
        self.observer.order_skipped(symbol, strategy, exc.reason)
        if (symbol, exc.reason) not in self._skips_logged:
            self._skips_logged.add((symbol, exc.reason))
            log.warning("order skipped, not sent: %s", exc,
                        extra={"symbol": symbol, "strategy": strategy, "reason": exc.reason})
