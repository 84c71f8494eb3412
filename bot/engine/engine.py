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
from ..gateway import AccountState, Gateway, GatewayError, NotExpressible, Position, Quote, SymbolSpec
from ..gateway.errors import BadBrokerData
from ..gateway.freeze import check_close as check_not_frozen
from ..resilience.order_flow import Freshness, OrderFlow
from ..resilience.order_queue import OrderQueue, QueuedOrder
from ..resilience.supervisor import ConnectionSupervisor
from ..store.errors import StoreUnavailable
from ..telemetry.context import correlation_context, cycle_context, new_correlation_id, new_cycle_id
from .account_policy import AccountPolicy
from .books import Books, open_ids
from .equity import EquityGuard
from .execution import ExecutionQuality
from .execution import decision as decision_stamp
from .history_guard import BrokerHistoryRewound, check_broker_history
from .netting import Attribution
from .orders import OrderSender, SendOutcome, new_client_order_id
from .preflight import Preflight
from .quarantine import Quarantine
from .risk import position_volume, stops_from_atr
from .riskguard import Entry, RiskGuard, RiskLimits
from .strategies import BUY, HOLD, SELL, Signal, Strategy, atr
from .strategy_runner import StrategyRunner
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

    def order_skipped(self, symbol: str, strategy: str, reason: str) -> None:
        """A decided order could not be expressed on the symbol's grid and was not sent."""

    def orders_halted(self, reason: str | None) -> None:
        """The terminal refuses algorithmic trading (reason), or accepts it again (None)."""

    def execution(self, symbol: str, outcome: str, quality: ExecutionQuality) -> None:
        """A sent order's execution figures (bot.engine.execution), with its outcome."""

    def strategy_failed(self, strategy: str, reason: str) -> None:
        """A strategy raised: it is disabled for the rest of the run (see strategy_runner.py)."""

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
        self.runner = StrategyRunner(strategies, settings.symbols, settings.timeframe, settings.bars,
                                     lambda: self.observer,  # symbol_map: configured -> broker names, once started
                                     broker_name=lambda name: getattr(self, "symbol_map", {}).get(name, name))
        self.observer = observer or EngineObserver()
        self.supervisor = supervisor or ConnectionSupervisor(gateway)
        self.order_queue = order_queue or OrderQueue(":memory:")
        self.order_breaker = order_breaker
        self.quarantine = Quarantine(repo, lambda: self.account_id or str(settings.mt5_login or "unknown"),
                                     lambda: self.observer)
        gateway.set_rejection_sink(self.quarantine)
        self.equity_guard = EquityGuard(settings.max_equity_jump)
        self.specs: dict[str, SymbolSpec] = {}
        self.risk_guard = RiskGuard(RiskLimits.from_settings(settings), gateway, self.specs, settings.magic,
                                    settings.deviation_points)  # account limits on new entries (riskguard.py)
        self.policy = AccountPolicy(settings)  # watch-only, prop rules, first-start history import
        self.flow: OrderFlow | None = None
        self._spooling_since: float | None = None
        self.reconciled = False
        self.halted_reason: str | None = "not reconciled with the broker yet"
        self.account_id: str | None = None
        self.books: Books | None = None
        self.sender: OrderSender | None = None
        self.cycles = 0
        self.last_report: CycleReport | None = None
        self._last_bar: dict[tuple[str, str], int] = {}
        self._known_symbols: set[str] = set()
        self._history_checked = False
        self._history_deferred = False
        #: Configured name -> the broker's name (bot.engine.symbols); the broker's is used everywhere.
        self.symbol_map: dict[str, str] = {}
        #: Set while the terminal refuses algorithmic trading (-8): no order is sent.
        self.orders_halted_reason: str | None = None
        self._skips_logged: set[tuple[str, str]] = set()
        self._halted_at: tuple[datetime | None, Any] = (None, None)  # (broker time, terminal state) of a -8 halt
        self.attribution = Attribution("unknown", {})  # until preflight reads the margin mode (netting.py)
        self.preflight = Preflight(gateway, lambda: list(self.specs) or list(settings.symbols),
                                   on_margin_mode=self._on_margin_mode,
                                   watch_only=not getattr(settings, "trading", True))
        self.on_stop_out = None  # told the symbol of each stop-out deal (telemetry)

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and learn the account and symbols. Raises a GatewayError when the terminal is out of reach."""
        if not self.gateway.connected:
            self.gateway.connect()
        account = self.gateway.account()
        self.account_id = str(account.login)
        configured = symbol_specs(self.gateway, self.settings.symbols, self.settings.symbol_suffix)  # ConfigError
        self.symbol_map = {name: spec.name for name, spec in configured.items()}
        self.specs.update({spec.name: spec for spec in configured.values()})
        digits = {name: spec.digits for name, spec in self.specs.items()}
        self.books = Books(self.gateway, self.repo, self.account_id, self.settings.magic, digits, whole_account=True)
        self.sender = OrderSender(self.gateway, self.repo, self.account_id, self.settings.magic,
                                  self.settings.deviation_points, requote_retries=self.settings.requote_retries,
                                  on_trading_disabled=self._halt_orders,
                                  point_of=lambda symbol: spec.point if (spec := self.specs.get(symbol)) else None)
        self.flow = OrderFlow(
            self.order_queue, self.sender, self.repo,
            can_send=lambda: self.supervisor.usable and self.gateway.connected and self.orders_halted_reason is None,
            breaker=self.order_breaker,
            on_replayed=lambda: self.observer.order_replayed(),
            on_expired=lambda reason: self.observer.order_expired(reason),
            freshness=self._freshness,
        )
        # A deal the store holds with other content: counted like the gateway's deal conflicts.
        self.books.on_conflict = lambda: self.observer.deal_conflict()
        self.books.on_stop_out = lambda symbol: self.on_stop_out and self.on_stop_out(symbol)
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
        if self.orders_halted_reason is not None:
            self._check_trading_enabled(now)
        positions = self._our_positions()
        self._check_history(now)
        if not self.reconciled:
            self._reconcile(now, positions, report)
        else:
            report.trades_opened, report.trades_closed = self.books.sync(
                now, self.settings.history_days, open_ids(positions)
            )
        # Unknown outcomes are resolved at the broker before anything is replayed or sent.
        # A watch-only bot makes no new order intents: once none is left unresolved (e.g. from an
        # earlier trading run on this store) the two store reads per cycle are not needed any more.
        if self.policy.trading or self.books.unresolved != 0:
            report.unknown_resolved = self.books.resolve_unknown_orders(now, skip=self.flow.waiting_ids())
        self.flow.settle_in_flight()
        self._select_symbols()  # before preflight reads Market Watch: the bot adds its own symbols
        # A failed preflight check halts every order (preflight.py); a watch-only account never sends one.
        trading = self.preflight.check(now) and self.policy.trading
        report.replayed, report.expired = self._replay(now, report) if trading else (0, 0)
        if report.replayed:
            positions = self._our_positions()
        account = self._sizing_account()
        self.risk_guard.observe(now, account)
        # Watch-only: nothing is sized and no strategy is asked (the prop rules are judged in watch()).
        account = self.policy.gate(account, self, now) if self.policy.trading else None
        for symbol, spec in self.specs.items() if trading else ():
            if symbol in self.gateway.refused_position_symbols:
                self.observer.symbol_skipped(symbol, "bad_position")  # its books are unsure this cycle
                continue
            for timeframe, group in self.runner.groups(symbol):  # one bars read per (symbol, timeframe)
                try:
                    closed = self.runner.closed_bars(self.gateway, symbol, timeframe, group)
                    last_closed = int(closed.time[-1])
                    due = [s for s in group if self._last_bar.get((symbol, s.name)) != last_closed]
                    quote: Quote | None = self.gateway.quote(symbol) if due else None
                except BadBrokerData as exc:
                    self.observer.symbol_skipped(symbol, exc.reason)  # said once per streak by the quarantine
                    break
                for strategy in due:
                    self._last_bar[(symbol, strategy.name)] = last_closed  # one signal per closed bar
                    signal = self.runner.evaluate(strategy, closed)  # None: it raised, now disabled
                    if signal is not None:
                        positions = self._act(report, now, spec, strategy, signal, closed, quote, account, positions)
        positions = self._our_positions()
        if report.orders:
            opened, closed_count = self.books.sync(now, self.settings.history_days, open_ids(positions))
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

    def _on_margin_mode(self, mode: str) -> None:
        self.attribution = Attribution.for_account(mode, list(self.specs), self.strategies)
        self.attribution.announce()

    def _select_symbols(self) -> None:
        for symbol in self.specs:
            try:
                self.gateway.ensure_selected(symbol)
            except GatewayError:
                pass  # preflight's symbols_selected check says it, once, with what to do

    def _sizing_account(self) -> AccountState | None:
        """The account state new orders are sized on, or None (new orders halt, exits go on; see equity.py)."""
        return self.equity_guard.sizing_account(self.gateway, self.observer)

    def _act(self, report, now, spec, strategy, signal: Signal, bars, quote, account, positions) -> list[Position]:
        correlation_id = new_correlation_id()
        decided = decision_stamp(quote.bid, quote.ask, spec.point)  # execution quality starts here
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
            if signal.action == HOLD or not self.attribution.allows(spec.name, strategy.name):
                return positions  # on a netting account another strategy owns this symbol (netting.py)
            acted = False
            for position in self._strategy_positions(positions, spec.name, strategy.name):
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
            same_way = [p for p in self._strategy_positions(positions, spec.name, strategy.name) if p.direction == signal.action]
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

    def _halt_orders(self, reason: str) -> None:
        if self.orders_halted_reason is None:
            self.orders_halted_reason = reason
            try:
                state = self.gateway.terminal()  # what the switches said when the -8 came
            except GatewayError:
                state = None
            self._halted_at = (None, state)
            self.observer.orders_halted(reason)

    #: A -8 the terminal's switches do not explain is tried again after this long (broker time).
    HALT_RETRY = timedelta(minutes=5)

    def _check_trading_enabled(self, now: datetime) -> None:
        """While halted for -8: resume once the terminal allows algorithmic trading again.

        It must look allowed and either have changed since the halt (a person fixed it) or the
        halt be HALT_RETRY old: a -8 the switches do not explain is not retried every cycle.
        """
        state = self.gateway.terminal()
        since, before = self._halted_at
        if since is None:
            before = state if before is None else before
            self._halted_at = (now, before)
            since = now
        allowed = state.trade_allowed and not state.tradeapi_disabled
        if allowed and (state != before or now - since >= self.HALT_RETRY):
            log.info("algorithmic trading allowed in the terminal: orders resume")
            self.orders_halted_reason = None
            self.observer.orders_halted(None)

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

    # -- helpers -----------------------------------------------------------------------------

    def _broker_now(self) -> datetime:
        """The broker's time from the first symbol whose quote the gateway accepts."""
        refused: BadBrokerData | None = None
        for symbol in self.specs or self.settings.symbols:  # the broker's names
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


def _is_expected(exc: Exception) -> bool:
    from ..gateway import GatewayError
    from ..store import StoreUnavailable

    # A database away whose state the spool does not know: an outage to wait out, not a bug.
    return isinstance(exc, GatewayError | StoreUnavailable)
