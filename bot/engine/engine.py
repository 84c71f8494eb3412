"""The trading cycle: sync the books, read bars, ask each strategy, size, send, snapshot.

The engine knows the gateway interface, the repository and the strategies; it does not know which
terminal is behind the gateway, which database is behind the repository, or how it is observed
(telemetry plugs in through `EngineObserver`).

This module is the cycle's orchestration: the order of the steps and what one failed cycle
means.  The steps live in their own modules, mixed into `Engine` (they share its state):
bot.engine.act (a signal becomes orders), bot.engine.replay (reconciliation, unknown outcomes,
queued orders), bot.engine.snapshot (the account at the end of a cycle), bot.engine.halts (the
terminal's -8 halt); bot.engine.observer holds the observer protocol and the cycle report,
re-exported here.  A whole cycle runs in one store unit of work (group commit, see
db.database): its writes are committed once at the end, and right before each order is sent.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from db import Repository

from ..config import ConfigError, Settings
from ..gateway import AccountState, Gateway, GatewayError, Position, Quote, SymbolSpec
from ..gateway.errors import BadBrokerData
from ..resilience.order_flow import OrderFlow
from ..resilience.order_queue import OrderQueue
from ..resilience.supervisor import ConnectionSupervisor
from ..telemetry.context import cycle_context, new_cycle_id
from .account_policy import AccountPolicy
from .act import ActStep
from .books import Books, open_ids
from .equity import EquityGuard
from .halts import HaltStep
from .history_guard import BrokerHistoryRewound, seed_server_clock
from .netting import Attribution
from .observer import CycleReport, EngineObserver
from .orders import OrderSender
from .ownership import Ownership
from .preflight import Preflight
from .quarantine import Quarantine
from .replay import ReplayStep
from .riskguard import RiskGuard, RiskLimits
from .signal_log import PendingSignals
from .snapshot import SnapshotStep
from .strategies import Strategy
from .strategy_runner import StrategyRunner
from .symbols import symbol_specs

__all__ = ["CycleReport", "Engine", "EngineObserver"]

log = logging.getLogger("bot.engine")


class Engine(ActStep, ReplayStep, SnapshotStep, HaltStep):
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
        self.signal_log = PendingSignals(repo)  # a cycle's HOLDs stored in one write (signal_log.py)
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
        #: Strategy of each open position, read once per cycle that needs it (ownership.py).
        self.ownership = Ownership(lambda: ((t.ticket, t.strategy_name) for t in self.repo.open_trades(self.account_id)))

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and learn the account and symbols. Raises a GatewayError when the terminal is out of reach."""
        if not self.gateway.connected:
            self.gateway.connect()
        account = self.gateway.account()
        self.account_id = str(account.login)
        seed_server_clock(self.gateway, self.repo, self.account_id)  # before any time is converted
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
        self.sender.on_unsettled = lambda: setattr(self, "unknown_outcomes", True)
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
        commits = getattr(self.repo, "commits", None)
        with cycle_context(report.cycle_id):
            self._in_store_unit(report)
            if commits is not None:
                report.store_commits = self.repo.commits - commits
            report.duration_seconds = time.perf_counter() - began
            self.last_report = report
            self.observer.cycle_finished(report)  # telemetry's own writes are not the cycle's
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

    def _in_store_unit(self, report: CycleReport) -> None:
        """The cycle in one store unit of work: its writes are committed once, at the end (group commit).

        The spooled store never raises at that commit (a failed one is spooled); a plain
        Repository's failure fails the cycle like any other store error, never the loop.
        """
        unit = getattr(self.repo, "unit", None)
        try:
            with unit() if unit is not None else nullcontext():
                try:
                    self._guarded_cycle(report)
                finally:
                    self._flush_signals()  # a failed cycle's signals decided before the failure (signal_log.py)
                    self._telemetry_writes()  # last: the cycle's own writes began the transaction
        except (ConfigError, BrokerHistoryRewound):
            raise
        except Exception as exc:  # noqa: BLE001 - the commit at the unit's end failed
            if report.error is None:
                report.error, report.error_expected = f"{type(exc).__name__}: {exc}", _is_expected(exc)
            log.warning("cycle's store writes not committed: %s", exc)

    def _telemetry_writes(self) -> None:
        """Telemetry's due store writes (a closed minute of history), in the cycle's one commit; never raises.

        At the unit's end, not its start: the cycle's own first write opens the transaction (the
        session, the pool checkout, BEGIN), which a minute row written first would pay instead - ~0.3 ms
        charged to telemetry every other cycle at the default 30 s (bench.telemetry, production pacing)."""
        try:
            self.observer.store_unit_closing()
        except Exception as exc:  # noqa: BLE001 - telemetry must never fail a cycle
            log.warning("telemetry's store writes failed: %s", exc)

    def _guarded_cycle(self, report: CycleReport) -> None:
        """One cycle; whatever it raises fails the cycle (reported), never the loop (but for two)."""
        reads = getattr(self.gateway, "cycle_reads", None)  # terminal/account read once (a test's fake: not)
        with reads() if reads is not None else nullcontext():
            self._guarded_steps(report)

    def _guarded_steps(self, report: CycleReport) -> None:
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
            self.unknown_outcomes = True  # a send may have been cut short: look its order up next cycle
            report.error = f"{type(exc).__name__}: {exc}"
            report.error_expected = _is_expected(exc)
            if getattr(exc, "kind", None) in ("connection_lost", "unavailable", "outcome_unknown"):
                self.supervisor.mark_lost(str(exc))
            log.log(logging.WARNING if report.error_expected else logging.ERROR, "cycle failed: %s",
                    report.error, exc_info=not report.error_expected)

    def _cycle(self, report: CycleReport) -> None:
        assert self.books is not None and self.sender is not None
        self.ownership.reset()
        now = self._broker_now()
        opening = self._now_quote  # the quote the broker time came from: its symbol's quote this cycle
        report.started_at = now
        if self.orders_halted_reason is not None:
            self._check_trading_enabled(now)
        held = self.gateway.positions()  # the account's open positions: read once a cycle, again after a send
        positions = self._ours(held)
        self._check_history(now)
        if not self.reconciled:
            self._reconcile(now, positions, report)
        else:
            report.trades_opened, report.trades_closed = self.books.sync(
                now, self.settings.history_days, open_ids(positions), open_ids(held)
            )
        # Unknown outcomes are resolved at the broker before anything is replayed or sent; the
        # store is asked only when an order can be unresolved (replay.py).
        self._resolve_unknown(now, report)
        self.flow.settle_in_flight()
        self._select_symbols()  # before preflight reads Market Watch: the bot adds its own symbols
        # A failed preflight check halts every order (preflight.py); a watch-only account never sends one.
        trading = self.preflight.check(now) and self.policy.trading
        report.replayed, report.expired = self._replay(now, report) if trading else (0, 0)
        if report.replayed:
            positions = self._our_positions()
        account = sized = self._sizing_account()
        self.risk_guard.observe(now, account)
        # Watch-only: nothing is sized and no strategy is asked (the prop rules are judged in watch()).
        account = self.policy.gate(account, self, now) if self.policy.trading else None
        plan = self.runner.plan() if trading else {}  # each symbol's strategies by timeframe
        for symbol, spec in self.specs.items() if trading else ():
            if symbol in self.gateway.refused_position_symbols:
                self.observer.symbol_skipped(symbol, "bad_position")  # its books are unsure this cycle
                continue
            # A strategy that raised this cycle is disabled: the plan, made before, does not know.
            groups = self.runner.groups(symbol) if self.runner.disabled else plan.get(symbol, ())
            for timeframe, group in groups:  # one bars read per (symbol, timeframe)
                try:
                    closed = self.runner.closed_bars(self.gateway, symbol, timeframe, group)
                    last_closed = int(closed.time[-1])
                    due = [s for s in group if self._last_bar.get((symbol, s.name)) != last_closed]
                    quote: Quote | None = None
                    if due:
                        quote = (opening if opening is not None and opening.symbol == symbol
                                 and not report.orders and not report.replayed else self.gateway.quote(symbol))
                except BadBrokerData as exc:
                    self.observer.symbol_skipped(symbol, exc.reason)  # said once per streak by the quarantine
                    break
                for strategy in due:
                    self._last_bar[(symbol, strategy.name)] = last_closed  # one signal per closed bar
                    signal = self.runner.evaluate(strategy, closed)  # None: it raised, now disabled
                    if signal is not None:
                        positions = self._act(report, now, spec, strategy, signal, closed, quote, account, positions)
        self.signal_log.flush()  # the HOLDs still waiting, in one write (signal_log.py)
        # `positions` is current: re-read after every send (act.py, the replay above).
        if report.orders:
            opened, closed_count = self.books.sync(now, self.settings.history_days, open_ids(positions))
            report.trades_opened += opened
            report.trades_closed += closed_count
        account = self._end_snapshot(now, sized, positions, report)  # what is read and when: snapshot.py
        self.policy.watch(account, self, now)

    def _flush_signals(self) -> None:
        """Store the signals still waiting after a failed cycle, as one write each would have; never raises."""
        try:
            self.signal_log.flush()
        except Exception as exc:  # noqa: BLE001 - the cycle's own error is the one reported
            log.warning("signals of a failed cycle not stored: %s", exc)

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

    # -- helpers -----------------------------------------------------------------------------

    #: The quote `_broker_now` last read the time from. Why kept: the cycle's loop needs that symbol's
    #: quote too, a moment later; while nothing was sent in between, it is the answer a second read
    #: gives (the read-ahead over the bridge serves the cycle-start tick as well), one read a cycle less.
    _now_quote: Quote | None = None

    def _broker_now(self) -> datetime:
        """The broker's time from the first symbol whose quote the gateway accepts."""
        refused: BadBrokerData | None = None
        self._now_quote = None
        for symbol in self.specs or self.settings.symbols:  # the broker's names
            try:
                self._now_quote = self.gateway.quote(symbol)
                return self._now_quote.time
            except BadBrokerData as exc:
                refused = refused or exc
        raise refused or BadBrokerData("quote", "any", "missing", "no symbol to read the broker time from")

    def _our_positions(self) -> list[Position]:
        return self._ours(self.gateway.positions())

    def _ours(self, positions: list[Position]) -> list[Position]:
        return [p for p in positions if p.magic == self.settings.magic]

    def _position_strategies(self) -> dict[int, str | None]:
        """Strategy of each open position, read from the store now (the operator's close-all, between cycles)."""
        return {t.ticket: t.strategy_name for t in self.repo.open_trades(self.account_id)}


def _is_expected(exc: Exception) -> bool:
    from ..gateway import GatewayError
    from ..store import StoreUnavailable

    # A database away whose state the spool does not know: an outage to wait out, not a bug.
    return isinstance(exc, GatewayError | StoreUnavailable)
