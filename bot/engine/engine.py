"""The trading cycle: sync the books, read bars, ask each strategy, size, send, snapshot.

The engine knows the gateway interface, the repository and the strategies; it does not know which
terminal is behind the gateway, which database is behind the repository, or how it is observed
(telemetry plugs in through `EngineObserver`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from db import AccountSnapshot, PositionSnapshot, Repository, SignalRecord

from ..config import ConfigError, Settings
from ..gateway import AccountState, Gateway, Position, Quote, SymbolSpec
from ..gateway.errors import BadBrokerData
from ..resilience.order_flow import Freshness, OrderFlow
from ..resilience.order_queue import OrderQueue, QueuedOrder
from ..resilience.supervisor import ConnectionSupervisor
from ..store.errors import StoreUnavailable
from ..telemetry.context import correlation_context, cycle_context, new_correlation_id, new_cycle_id
from .account_policy import AccountPolicy
from .books import Books
from .equity import EquityGuard
from .history_guard import BrokerHistoryRewound, check_broker_history
from .orders import OrderSender, SendOutcome, new_client_order_id
from .quarantine import Quarantine
from .risk import position_volume, stops_from_atr
from .strategies import BUY, HOLD, SELL, Signal, Strategy, atr
from .symbols import symbol_specs

log = logging.getLogger("bot.engine")


class EngineObserver:
    """What the engine reports as it goes. The default does nothing; telemetry overrides it."""

    def cycle_finished(self, report: CycleReport) -> None: ...

    def signal(self, symbol: str, strategy: str, action: str) -> None: ...

    def order(self, symbol: str, strategy: str, side: str, outcome: str) -> None: ...

    def account(self, state: AccountState) -> None: ...

    def positions(self, counts: dict[str, int]) -> None: ...

    def order_replayed(self) -> None: ...

    def order_expired(self, reason: str) -> None: ...

    def trading_halted(self, reason: str | None) -> None:
        """Reconciliation failed (reason) or succeeded again (None)."""

    def broker_record_rejected(self, kind: str, reason: str) -> None:
        """The gateway refused a broker record (reported once per record, see bot.gateway.guard)."""

    def deal_conflict(self) -> None:
        """A deal ticket came back with other content."""

    def symbol_skipped(self, symbol: str, reason: str) -> None:
        """A symbol sat out this cycle: its quote, bars or positions were refused."""

    def new_orders_halted(self, reason: str | None) -> None:
        """Sizing refuses the account state (reason), or accepts it again (None)."""

    def prop_rules(self, statuses: list) -> None:
        """The prop-firm rules judged this cycle (bot.engine.proprules.RuleStatus)."""


@dataclass
class CycleReport:
    cycle_id: str
    number: int
    started_at: datetime | None = None
    duration_seconds: float = 0.0
    signals: Counter = field(default_factory=Counter)
    orders: Counter = field(default_factory=Counter)
    trades_opened: int = 0
    trades_closed: int = 0
    unknown_resolved: int = 0
    replayed: int = 0
    expired: int = 0
    open_positions: int = 0
    equity: Decimal | None = None
    balance: Decimal | None = None
    error: str | None = None
    error_expected: bool = False  # a gateway failure (terminal away), not a bug

    @property
    def ok(self) -> bool:
        return self.error is None


class Engine:
    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        repo: Repository,
        strategies: list[Strategy],
        observer: EngineObserver | None = None,
        *,
        supervisor: ConnectionSupervisor | None = None,
        order_queue: OrderQueue | None = None,
        order_breaker: Any = None,
    ):
        self.settings = settings
        self.gateway = gateway
        self.repo = repo
        self.strategies = strategies
        self.observer = observer or EngineObserver()
        self.supervisor = supervisor or ConnectionSupervisor(gateway)
        self.order_queue = order_queue or OrderQueue(":memory:")
        self.order_breaker = order_breaker
        self.quarantine = Quarantine(repo, lambda: self.account_id or str(settings.mt5_login or "unknown"),
                                     lambda: self.observer)
        gateway.set_rejection_sink(self.quarantine)
        self.equity_guard = EquityGuard(settings.max_equity_jump)
        self.policy = AccountPolicy(settings)  # watch-only, prop rules, first-start history import
        self.flow: OrderFlow | None = None
        self._spooling_since: float | None = None
        self.reconciled = False
        self.halted_reason: str | None = "not reconciled with the broker yet"
        self.account_id: str | None = None
        self.specs: dict[str, SymbolSpec] = {}
        self.books: Books | None = None
        self.sender: OrderSender | None = None
        self.cycles = 0
        self.last_report: CycleReport | None = None
        self._last_bar: dict[tuple[str, str], int] = {}
        self._known_symbols: set[str] = set()
        self._history_checked = False
        self._history_deferred = False

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and learn the account and symbols. Raises a GatewayError when the terminal is out of reach."""
        if not self.gateway.connected:
            self.gateway.connect()
        account = self.gateway.account()
        self.account_id = str(account.login)
        self.specs.update(symbol_specs(self.gateway, self.settings.symbols))  # unknown symbol: ConfigError
        digits = {name: spec.digits for name, spec in self.specs.items()}
        self.books = Books(self.gateway, self.repo, self.account_id, self.settings.magic, digits, whole_account=True)
        self.sender = OrderSender(self.gateway, self.repo, self.account_id, self.settings.magic,
                                  self.settings.deviation_points, requote_retries=self.settings.requote_retries)
        self.flow = OrderFlow(
            self.order_queue, self.sender, self.repo,
            can_send=lambda: self.supervisor.usable and self.gateway.connected,
            breaker=self.order_breaker,
            on_replayed=lambda: self.observer.order_replayed(),
            on_expired=lambda reason: self.observer.order_expired(reason),
            freshness=self._freshness,
        )
        # A deal the store holds with other content: counted like the gateway's deal conflicts.
        self.books.on_conflict = lambda: self.observer.deal_conflict()
        self.policy.started(self)
        log.info(
            "engine started",
            extra={"account": self.account_id, "symbols": list(self.specs), "strategies": [s.name for s in self.strategies],
                   "balance": str(account.balance), "equity": str(account.equity)},
        )

    @property
    def started(self) -> bool:
        return self.books is not None

    # -- the cycle ---------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        self.cycles += 1
        report = CycleReport(cycle_id=new_cycle_id(), number=self.cycles)
        began = time.perf_counter()
        with cycle_context(report.cycle_id):
            try:
                self._flush_store()
                if not self.supervisor.check():
                    # Keep cycling: health is served, the spool flushes, the next attempt is scheduled.
                    report.error = f"TerminalUnavailable: {self.supervisor.reason}"
                    report.error_expected = True
                else:
                    if not self.started:
                        self.start()
                    self._cycle(report)
            except ConfigError:
                raise  # a setting the terminal refuses (an unknown symbol): stop, exit 2
            except BrokerHistoryRewound as exc:
                self.halted_reason = str(exc)
                self.observer.trading_halted(self.halted_reason)  # logged once, alerted (BotTradingHalted)
                raise  # the one error the loop must not survive: the caller stops the bot (exit 2)
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything one cycle does
                report.error = f"{type(exc).__name__}: {exc}"
                report.error_expected = _is_expected(exc)
                if getattr(exc, "kind", None) in ("connection_lost", "unavailable", "outcome_unknown"):
                    self.supervisor.mark_lost(str(exc))
                log.log(logging.WARNING if report.error_expected else logging.ERROR, "cycle failed: %s",
                        report.error, exc_info=not report.error_expected)
            report.duration_seconds = time.perf_counter() - began
            self.last_report = report
            self.observer.cycle_finished(report)
            log.info(
                "cycle %d %s: %d signals, %d orders, %d opened, %d closed, %d positions, equity %s",
                report.number,
                "ok" if report.ok else "failed",
                sum(report.signals.values()),
                sum(report.orders.values()),
                report.trades_opened,
                report.trades_closed,
                report.open_positions,
                report.equity,
                extra={
                    "cycle": report.number,
                    "duration_ms": round(report.duration_seconds * 1000, 3),
                    "signals": dict(report.signals),
                    "orders": dict(report.orders),
                    "error": report.error,
                },
            )
        return report

    def _cycle(self, report: CycleReport) -> None:
        assert self.books is not None and self.sender is not None
        now = self._broker_now()
        report.started_at = now
        positions = self._our_positions()
        self._check_history(now)
        if not self.reconciled:
            self._reconcile(now, positions, report)
        else:
            report.trades_opened, report.trades_closed = self.books.sync(
                now, self.settings.history_days, {p.ticket for p in positions}
            )
        # Unknown outcomes are resolved at the broker before anything is replayed or sent.
        report.unknown_resolved = self.books.resolve_unknown_orders(now, skip=self.flow.waiting_ids())
        self.flow.settle_in_flight()
        report.replayed, report.expired = self._replay(now, report)
        if report.replayed:
            positions = self._our_positions()
        account = self.policy.gate(self._sizing_account(), self, now)
        for symbol, spec in self.policy.tradable(self.specs):
            if symbol in self.gateway.refused_position_symbols:
                self.observer.symbol_skipped(symbol, "bad_position")  # its books are unsure this cycle
                continue
            try:
                closed = _closed_bars(self.gateway.bars(symbol, self.settings.timeframe_code, self.settings.bars + 1))
                last_closed = int(closed.time[-1])
                due = [s for s in self.strategies if self._last_bar.get((symbol, s.name)) != last_closed]
                quote: Quote | None = self.gateway.quote(symbol) if due else None
            except BadBrokerData as exc:
                self.observer.symbol_skipped(symbol, exc.reason)  # said once per streak by the quarantine
                continue
            for strategy in due:
                self._last_bar[(symbol, strategy.name)] = last_closed  # one signal per closed bar
                signal = strategy.evaluate(closed)
                positions = self._act(report, now, spec, strategy, signal, closed, quote, account, positions)
        positions = self._our_positions()
        if report.orders:
            opened, closed_count = self.books.sync(now, self.settings.history_days, {p.ticket for p in positions})
            report.trades_opened += opened
            report.trades_closed += closed_count
        # The snapshot's figures are read together at the end of the cycle and stamped with the
        # broker time read right after them: a snapshot stamped earlier (the cycle's start) could
        # hold the balance of a deal made later in the cycle, and the analytics' initial balance
        # (the newest snapshot before the first exit) would then include that trade's profit.
        account = self.equity_guard.snapshot_account(self.gateway)
        if account is not None:  # a refused or implausible account state is never snapshotted
            self._snapshot(self._broker_now(), account, positions, report)
        self.policy.watch(account, self, now)

    def _sizing_account(self) -> AccountState | None:
        """The account state new orders are sized on, or None (new orders halt, exits go on; see equity.py)."""
        return self.equity_guard.sizing_account(self.gateway, self.observer)

    def _act(self, report, now, spec, strategy, signal: Signal, bars, quote, account, positions) -> list[Position]:
        correlation_id = new_correlation_id()
        with correlation_context(correlation_id):
            price = quote.ask if signal.action == BUY else quote.bid
            signal_id = self.repo.record_signal(
                SignalRecord(
                    account=self.account_id,
                    time=now,
                    cycle_id=report.cycle_id,
                    correlation_id=correlation_id,
                    symbol=spec.name,
                    strategy=strategy.name,
                    signal=signal.action,
                    confidence=float(signal.confidence),
                    reason=signal.reason,
                    price=price if signal.action != HOLD else quote.bid,
                )
            )
            report.signals[signal.action] += 1
            self.observer.signal(spec.name, strategy.name, signal.action)
            log.log(
                logging.INFO if signal.action != HOLD else logging.DEBUG,
                "signal %s %s %s",
                signal.action,
                spec.name,
                strategy.name,
                extra={"symbol": spec.name, "strategy": strategy.name, "signal": signal.action,
                       "confidence": signal.confidence, "reason": signal.reason},
            )
            if signal.action == HOLD:
                return positions
            acted = False
            for position in self._strategy_positions(positions, spec.name, strategy.name):
                if position.direction != signal.action:
                    acted |= self._send(report, now, correlation_id, signal_id, spec.name, strategy.name,
                                        side=signal.action, purpose="close", volume=position.volume,
                                        price=quote.ask if signal.action == BUY else quote.bid,
                                        position_ticket=position.ticket)
            positions = self._our_positions() if acted else positions
            same_way = [p for p in self._strategy_positions(positions, spec.name, strategy.name) if p.direction == signal.action]
            on_symbol = [p for p in positions if p.symbol == spec.name]
            if same_way or len(on_symbol) >= self.settings.max_positions_per_symbol or account is None:
                return positions  # account None: sizing refuses the account state (new orders halted)
            distance = Decimal(str(atr(bars.high, bars.low, bars.close, self.settings.atr_period)))
            if distance <= 0:
                return positions
            stops = stops_from_atr(spec, signal.action, price, distance, self.settings.sl_atr_multiple,
                                   self.settings.tp_atr_multiple, spread=quote.ask - quote.bid,
                                   slippage_points=self.settings.deviation_points)
            volume = position_volume(spec, account.equity, self.settings.risk_per_trade, abs(price - stops.sl))
            if self._send(report, now, correlation_id, signal_id, spec.name, strategy.name, side=signal.action,
                          purpose="open", volume=volume, price=price, sl=stops.sl, tp=stops.tp):
                positions = self._our_positions()
            return positions

    def _send(self, report, now, correlation_id, signal_id, symbol, strategy, *, side, purpose, volume, price,
              sl=None, tp=None, position_ticket=None) -> bool:
        spec = self.specs[symbol]
        order = QueuedOrder(
            client_order_id=new_client_order_id(), account=self.account_id, correlation_id=correlation_id,
            signal_id=signal_id, symbol=symbol, strategy=strategy, side=side, purpose=purpose, volume=volume,
            price=price, sl=sl, tp=tp, position_ticket=position_ticket,
            deviation_points=self.settings.deviation_points,
            max_deviation=spec.point * self.settings.order_max_deviation_points,
            decided_at=now, expires_at=now + timedelta(seconds=self.settings.order_ttl_seconds),
        )
        outcome = self.flow.submit(order, price)
        self._count(report, order, outcome)
        return outcome.status not in ("rejected", "duplicate")

    def _count(self, report: CycleReport, order: QueuedOrder, outcome: SendOutcome) -> None:
        report.orders[outcome.status] += 1
        if outcome.status == "queued":
            return  # counted once it is sent or expired
        self.observer.order(order.symbol, order.strategy, order.side, outcome.status)
        if outcome.status == "filled" and order.signal_id is not None:
            self.repo.mark_signal_executed(order.signal_id)

    def _flush_store(self) -> None:
        """Drain the store spool a little each cycle (a no-op on a plain Repository)."""
        maybe_flush = getattr(self.repo, "maybe_flush", None)
        if maybe_flush is None:
            return
        try:
            maybe_flush()
        except Exception as exc:  # noqa: BLE001 - the database being away must not stop the cycle
            log.warning("store spool flush failed: %s", exc)
        depth = self.repo.depth
        if depth and self._spooling_since is None:
            self._spooling_since = time.monotonic()
        elif not depth and self._spooling_since is not None:
            log.info("store spool drained", extra={"spooled_for_s": round(time.monotonic() - self._spooling_since, 3)})
            self._spooling_since = None

    # -- reconciliation and replay -------------------------------------------------------------

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
                if not any(p.ticket == order.position_ticket for p in self._our_positions()):
                    return None, "position_closed"
                return price, None
            strategy = next((s for s in self.strategies if s.name == order.strategy), None)
            if strategy is None:
                return None, "strategy"
            bars = _closed_bars(self.gateway.bars(order.symbol, self.settings.timeframe_code, self.settings.bars + 1))
            opposite = SELL if order.side == BUY else BUY
            if strategy.evaluate(bars).action == opposite:
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

    # -- helpers -----------------------------------------------------------------------------

    def _broker_now(self) -> datetime:
        """The broker's time from the first symbol whose quote the gateway accepts."""
        refused: BadBrokerData | None = None
        for symbol in self.settings.symbols:
            try:
                return self.gateway.quote(symbol).time
            except BadBrokerData as exc:
                refused = refused or exc
        raise refused or BadBrokerData("quote", "any", "missing", "no symbol to read the broker time from")

    def _our_positions(self) -> list[Position]:
        return [p for p in self.gateway.positions() if p.magic == self.settings.magic]

    def _strategy_positions(self, positions: list[Position], symbol: str, strategy: str) -> list[Position]:
        owners = self._position_strategies()
        return [p for p in positions if p.symbol == symbol and owners.get(p.ticket) == strategy]

    def _position_strategies(self) -> dict[int, str | None]:
        return {t.ticket: t.strategy_name for t in self.repo.open_trades(self.account_id)}

    def _snapshot(self, now: datetime, account: AccountState, positions: list[Position], report: CycleReport) -> None:
        self.repo.record_account_snapshot(
            AccountSnapshot(
                account=self.account_id,
                time=now,
                balance=account.balance,
                equity=account.equity,
                profit=account.profit,
                margin=account.margin,
                free_margin=account.free_margin,
                margin_level=account.margin_level,
                open_positions=len(positions),
            )
        )
        if positions:
            self.repo.record_position_snapshots(
                self.account_id,
                now,
                [
                    PositionSnapshot(
                        ticket=p.ticket, symbol=p.symbol, direction=p.direction, volume=p.volume,
                        price_open=p.price_open, price_current=p.price_current, sl=p.sl, tp=p.tp,
                        profit=p.profit, swap=p.swap,
                    )
                    for p in positions
                ],
            )
        counts = {symbol: 0 for symbol in self.specs}
        for p in positions:
            counts[p.symbol] = counts.get(p.symbol, 0) + 1
        report.open_positions = len(positions)
        report.equity, report.balance = account.equity, account.balance
        self.observer.account(account)
        self.observer.positions(counts)


def _closed_bars(bars):
    """Drop the bar still forming: strategies only ever see complete bars."""
    from ..gateway import Bars

    return Bars(bars.symbol, bars.time[:-1], bars.open[:-1], bars.high[:-1], bars.low[:-1], bars.close[:-1])


def _is_expected(exc: Exception) -> bool:
    from ..gateway import GatewayError
    from ..store import StoreUnavailable

    # A database away whose state the spool does not know: an outage to wait out, not a bug.
    return isinstance(exc, GatewayError | StoreUnavailable)
