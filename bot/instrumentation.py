"""Where the engine meets telemetry: engine events become metrics, history and alerts.

The engine reports through `EngineObserver` and the gateway through its call observer; this
module turns those reports into Prometheus series (`BotMetrics`), the per-minute metrics history
and Alertmanager alerts, so neither the engine nor telemetry needs to know the other.

The gateway's quick lane (issue 16): once a call name has succeeded while the terminal is known to
be reachable, its later successes need nothing but their histogram observation, so the gateway
appends them as (call, seconds) to `BotMetrics.broker_calls` (`quick_calls` names them) instead of
calling the observer - no Python frame per call. A failure empties `quick_calls`: every call comes
through the observer again until one succeeds, which restores the connection state, resolves the
terminal alert and opens the lane again. order_send never takes it (its observation carries the
correlation id as an exemplar).

A finished cycle is one append too: (time, report, where the quick lane stood, the observed calls)
waits in a pending list (bot.telemetry.deferred) that every read of the series it feeds folds first -
its duration, signals, and the latest account state and position counts (measured under cold caches:
cycle_finished 22.5 us -> 13-18 us a cycle on the loop thread, of a ~2.5 ms cycle).

The minute history is fed from the same list in batches (bot.history_feed): by the metrics server's
scrape thread as it reads, where the history can take a batch without a store write, and otherwise
by the loop - once HISTORY_EVERY cycles wait, at a new wall-clock minute nobody else will feed, at a
cycle past the settled broker day, and at shutdown (flush_history).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil

from .engine import CycleReport, EngineObserver
from .gateway import GatewayError
from .history_feed import HISTORY_EVERY, READER_FRESH_SECONDS, CycleFigures, HistoryFeed
from .telemetry.alerts import AlertmanagerClient
from .telemetry.deferred import Deferred
from .telemetry.metrics import EXEMPLAR_CALLS, BotMetrics

log = logging.getLogger("bot.instrumentation")

__all__ = ["HISTORY_EVERY", "CycleFigures", "Instrumentation"]  # the first two: bot.history_feed


class Instrumentation(EngineObserver):
    """Engine observer + gateway call observer feeding metrics, history and alerts."""

    ALERT_CYCLE_ERROR = "BotCycleError"
    ALERT_TERMINAL = "BotTerminalUnreachable"

    def __init__(
        self,
        metrics: BotMetrics,
        history_sink: Any = None,
        alerts: AlertmanagerClient | None = None,
        terminal_alert_after: float = 60.0,
    ):
        self.metrics = metrics
        self.history_sink = history_sink
        self.alerts = alerts
        self.terminal_alert_after = terminal_alert_after
        self._process = psutil.Process()  # /status
        self._process.cpu_percent(None)
        self._calls = 0
        self._latency = 0.0
        self._unreachable_since: float | None = None
        self._terminal_alerting = False
        self._cycle_alerting = False
        self._connected: bool | None = None
        #: The wall clock (time.time) the cycles are stamped with; bench.telemetry gives its own to run the
        #: minute history at production pacing (a minute every other cycle) with cycles back to back.
        self.clock = time.time
        self.last_positions: dict[str, int] = {}
        #: Call names whose successes the gateway appends to metrics.broker_calls (see the module doc).
        self.quick_calls: set[str] = set()
        self._quick_known: set[str] = set()  # every name that was in quick_calls (restored after a failure)
        #: Finished cycles as (clock(), report, quick-lane index at its end, observed calls, their
        #: seconds): appended by cycle_finished, folded into metrics before every read of the series they
        #: feed and at each history feed, taken by the minute history (see the module doc).
        self._ended = Deferred(self._fold_ended, fold_every=HISTORY_EVERY)
        self._feed: HistoryFeed | None = None
        if history_sink is not None:  # the minute history counts each cycle's calls, the quick ones too
            metrics.broker_calls.count_cycles()
            self._ended.count_cycles()
            self._feed = HistoryFeed(self._ended, metrics, history_sink)
        # A read folds the cycles into metrics first; with a history a reader can feed, it feeds it too.
        metrics.fold_before_reads(self._feed if self._feed is not None and self._feed.reads_feed else self._ended)
        self._write_closed = getattr(history_sink, "write_closed", None)  # a test's sink may only add
        self._closed_minutes = getattr(history_sink, "closed", None)  # a list: nothing to write while empty
        self.strategy_metrics: Any = None
        self._refused_keys: set[tuple[str, str, str]] = set()  # signal label sets metrics refused (said once)
        self._bad_duration_said = False

    # -- gateway ---------------------------------------------------------------------------

    def watch(self, gateway: Any) -> None:
        """Become `gateway`'s call observer, its quick lane (see the module doc) included."""
        gateway.set_observer(self.on_broker_call, self.quick_calls, self.metrics.broker_calls.append)

    def on_broker_call(self, call: str, seconds: float, error: GatewayError | None) -> None:
        self._calls += 1
        self._latency += seconds
        if error is None:
            self.metrics.observe_broker_call(call, seconds)
            if self._connected is not True:
                self._set_connected(True)
            self._unreachable_since = None
            if self._terminal_alerting:
                self._terminal_alerting = False
                if self.alerts:
                    self.alerts.resolve(self.ALERT_TERMINAL)
            if call not in EXEMPLAR_CALLS:  # nothing left to do for its later successes but observe them
                self._quick_known.add(call)
            self.quick_calls.update(self._quick_known)
            return
        self.quick_calls.clear()  # every call through here until one succeeds (it restores the state)
        self.metrics.observe_broker_call(call, seconds, error.kind)
        if error.kind not in ("connection_lost", "unavailable"):
            self._set_connected(error.kind != "outcome_unknown")
            self._unreachable_since = None
        else:
            self._set_connected(False)
            if self._unreachable_since is None:
                self._unreachable_since = time.monotonic()

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self.metrics.set_connected(connected)

    # -- engine ----------------------------------------------------------------------------

    def order(self, symbol: str, strategy: str, side: str, outcome: str) -> None:
        self.metrics.count_order(symbol, strategy, side, outcome)

    def execution(self, symbol: str, outcome: str, quality) -> None:
        self.metrics.execution.observe(symbol, outcome, quality)

    # -- resilience (supervisor, order queue, breakers, reconciliation) --------------------

    ALERT_CIRCUIT = "BotCircuitOpen"
    ALERT_HALTED = "BotTradingHalted"

    def reconnected(self, outage_seconds: float) -> None:
        self.metrics.count_reconnect()
        self._set_connected(True)

    def circuit(self, breaker: str, state: str) -> None:
        """A breaker changed state: metric always; opening is an ERROR log and an alert, closing resolves it."""
        self.metrics.set_circuit_state(breaker, state)
        if state == "open":
            log.error("circuit %s opened: calls stop until it resets", breaker, extra={"breaker": breaker})
            if self.alerts:
                self.alerts.fire(self.ALERT_CIRCUIT, "critical", f"The {breaker} circuit breaker is open",
                                 f"{breaker}: too many consecutive failures; it retries by itself", breaker=breaker)
        elif state == "closed" and self.alerts:
            self.alerts.resolve(self.ALERT_CIRCUIT, breaker=breaker)

    def order_replayed(self) -> None:
        self.metrics.count_replayed()

    def order_expired(self, reason: str) -> None:
        self.metrics.count_expired(reason)

    def order_skipped(self, symbol: str, strategy: str, reason: str) -> None:
        self.metrics.count_skipped(symbol, reason)

    def orders_halted(self, reason: str | None) -> None:
        """-8: the terminal refuses algorithmic trading; an ERROR line and a metric (alert rule on it)."""
        self.metrics.set_orders_halted(reason is not None)
        if reason is not None:
            log.error("orders halted: %s", reason, extra={"reason": reason})

    def broker_clock(self, previous: int | None, offset: int | None) -> None:
        self.metrics.set_broker_clock_offset(offset)

    def trading_halted(self, reason: str | None) -> None:
        if reason is not None:
            log.error("trading halted: %s", reason, extra={"reason": reason})
            if self.alerts:
                self.alerts.fire(self.ALERT_HALTED, "critical", "The bot cannot reconcile with the broker", reason)
        elif self.alerts:
            self.alerts.resolve(self.ALERT_HALTED)

    # -- broker data (bot.gateway.guard -> bot.engine.quarantine) -----------------------------

    def broker_record_rejected(self, kind: str, reason: str) -> None:
        self.metrics.count_rejected_record(kind, reason)

    def deal_conflict(self) -> None:
        self.metrics.count_deal_conflict()

    def symbol_skipped(self, symbol: str, reason: str) -> None:
        self.metrics.count_symbol_skipped(symbol, reason)

    def new_orders_halted(self, reason: str | None, source: str = "equity") -> None:
        self.metrics.set_new_orders_halted(reason, source)

    def strategy_failed(self, strategy: str, reason: str) -> None:
        if self.strategy_metrics is not None:  # set by the app (bot.telemetry.strategy_metrics)
            self.strategy_metrics.failed(strategy)

    def prop_rules(self, statuses: list) -> None:
        self.metrics.set_prop_rules(statuses)

    def cycle_finished(self, report: CycleReport) -> None:
        """Once a cycle, on the loop thread: kept to what cannot wait (issue 16). The cycle is appended
        (one C-level append); its duration, signals, account state and position counts reach metrics
        when they are read or the minute history is fed (`_fold_ended`, bot.telemetry.deferred)."""
        now = self.clock()
        calls = self.metrics.broker_calls
        ended = self._ended
        ended.append((now, report, calls.appended(), self._calls, self._latency))
        self._calls, self._latency = 0, 0.0
        feed = self._feed
        if feed is None:
            if len(ended.items) >= HISTORY_EVERY:
                ended.fold_pending()
                self.metrics.keep_bounded()
        elif (not feed.batched or len(ended.items) >= HISTORY_EVERY
              or (now >= feed.minute_ends and now - feed.reader_fed_at >= READER_FRESH_SECONDS)):
            feed.feed()  # which keeps the metrics' pending lists bounded too
        elif (started := report.started_at) is not None:
            day_ends = feed.day_ends
            if day_ends is None or started.tzinfo is None or started >= day_ends:
                feed.feed()
        if self.alerts is not None and (report.error is not None or self._cycle_alerting
                                        or self._unreachable_since is not None):
            self._check_alerts(report)  # (a good cycle with nothing alerting or unreachable changes nothing)

    def _fold_ended(self, batch: list[tuple[float, CycleReport, int, int, float]]) -> None:
        """Finished cycles into metrics (any thread, under the pending list's lock; never raises): their
        durations and signals, and the latest account state and position counts among them."""
        metrics = self.metrics
        try:
            metrics.observe_cycles([entry[1].duration_seconds for entry in batch], batch[-1][0])
        except (TypeError, ValueError):  # the engine measures them: one by one, a bad one said once
            for finished, report, *_ in batch:
                try:
                    metrics.observe_cycle(report.duration_seconds, finished)
                except (TypeError, ValueError) as exc:
                    if not self._bad_duration_said:
                        self._bad_duration_said = True
                        log.warning("cycle duration not observed in metrics: %s", exc,
                                    extra={"cycle": report.number})
        keys = [key for entry in batch if (cycle_keys := entry[1].signal_keys) for key in cycle_keys]
        if keys:
            try:
                metrics.count_signals(keys)
            except ValueError:  # a label metrics refuse (see _count_one_by_one)
                self._count_one_by_one(keys)
        for entry in reversed(batch):
            report = entry[1]
            if (account := report.account) is not None:
                metrics.hold_account(account)  # exported when read (bot.telemetry.account_figures)
                if (counts := report.position_counts) is not None and counts != self.last_positions:
                    metrics.set_positions(counts)  # (the counts seldom change)
                    self.last_positions = dict(counts)
                break

    def open_positions(self) -> dict[str, int]:
        """Open positions per symbol as of the last finished cycle that read them (for /status)."""
        self._ended.fold_pending()
        return dict(self.last_positions)

    def _count_one_by_one(self, keys: list[tuple[str, str, str]]) -> None:
        """Signals one at a time: those with labels metrics take are counted, each refused key is said
        once (a WARNING) and not counted. Folds run outside the cycle's own guard and must not raise."""
        for key in keys:
            try:
                self.metrics.count_signal(*key)
            except ValueError as exc:
                if key not in self._refused_keys:
                    self._refused_keys.add(key)
                    log.warning("signal not counted in metrics: %s", exc, extra={"signal_key": list(key)})

    def flush_history(self) -> None:
        """Feed the waiting cycles to the minute history (the app calls this before the history's flush)."""
        if self._feed is not None:
            self._feed.feed()
        elif self._ended.items:
            self._ended.fold_pending()

    def store_unit_closing(self) -> None:
        """The cycle's store unit is about to commit: the minutes closed since the last one join it."""
        if self._write_closed is not None and (self._closed_minutes is None or self._closed_minutes):
            self._write_closed()  # a minute closed by the last cycle: in this cycle's commit

    def _check_alerts(self, report: CycleReport) -> None:
        if self.alerts is None:
            return
        crashed = report.error is not None and not report.error_expected
        if crashed and not self._cycle_alerting:
            self._cycle_alerting = True
            self.alerts.fire(self.ALERT_CYCLE_ERROR, "critical", "A trading cycle failed with an unhandled error",
                             f"cycle {report.number}: {report.error}")
        elif report.ok and self._cycle_alerting:
            self._cycle_alerting = False
            self.alerts.resolve(self.ALERT_CYCLE_ERROR)
        if (self._unreachable_since is not None and not self._terminal_alerting
                and time.monotonic() - self._unreachable_since >= self.terminal_alert_after):
            self._terminal_alerting = True
            self.alerts.fire(self.ALERT_TERMINAL, "critical", "The trading terminal is unreachable",
                             f"no answer from the terminal for over {self.terminal_alert_after:.0f} s: {report.error}")

    # -- status ----------------------------------------------------------------------------

    def process_figures(self) -> dict[str, Any]:
        with self._process.oneshot():
            return {
                "memory_rss_bytes": self._process.memory_info().rss,
                "cpu_percent": self._process.cpu_percent(None),
                "threads": self._process.num_threads(),
            }
