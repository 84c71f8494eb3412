"""The bot's Prometheus metrics, all in one registry owned by :class:`BotMetrics`.

Why one object with its own registry: tests (and a future multi-account process) can
create several without "duplicated timeseries" clashes in the global registry, and
every series carries ``account`` as its first label so one Prometheus can watch many
bots. Metric and label names are a contract with the dashboards and alert rules:
change them only together with those.
"""

from __future__ import annotations

import importlib.metadata
import math
import threading
from collections import Counter as Tally
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from bot.telemetry.account_figures import AccountFigures
from bot.telemetry.collectors import AccountLabelled, PsutilProcessCollector
from bot.telemetry.context import correlation_id
from bot.telemetry.deferred import Deferred
from bot.telemetry.execution_metrics import ExecutionMetrics
from bot.telemetry.lean import FoldingGauge, LeanCounter, LeanHistogram
from bot.telemetry.prop_rule_metrics import PropRuleMetrics
from bot.telemetry.values import label as _label
from bot.telemetry.values import number as _number

CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BROKER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Broker calls whose observation carries an exemplar (the correlation id at the call): never deferred.
EXEMPLAR_CALLS = frozenset({"order_send"})

# tradewatch_circuit_state values; the `to` label of transitions uses the same names.
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


def _circuit_state(state: str) -> str:
    name = str(state).strip().lower().replace("-", "_")
    if name not in CIRCUIT_STATES:
        raise ValueError(f"unknown circuit state {state!r}: expected one of {', '.join(CIRCUIT_STATES)}")
    return name


def _package_version() -> str:
    try:
        return importlib.metadata.version("tradewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class BotMetrics:
    """Every tradewatch metric for one account, plus helpers the engine calls.

    The raw metric objects are public attributes (``metrics.orders`` …) for rare uses;
    prefer the helpers, which fill in ``account`` and validate input. ``registry`` is
    what the telemetry server exposes.
    """

    def __init__(self, account: str, registry: CollectorRegistry | None = None, version: str | None = None) -> None:
        self.account = _label("account", str(account))
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        acct = ["account"]

        # The loop's per-cycle and per-call series are lean (bot.telemetry.lean): same exposition, less CPU.
        self.cycle_duration = LeanHistogram("tradewatch_cycle_duration_seconds", "Wall time of one engine cycle.",
                                            acct, registry=r, buckets=CYCLE_BUCKETS)
        self.last_cycle_timestamp = FoldingGauge("tradewatch_last_cycle_timestamp_seconds",
                                                 "Unix time at which the last cycle finished.", acct, registry=r)
        self.cycles = LeanCounter("tradewatch_cycles_total", "Engine cycles completed.", acct, registry=r)

        self.broker_request_duration = LeanHistogram(
            "tradewatch_broker_request_duration_seconds", "Latency of broker (MT5) calls; order_send carries "
            "the correlation_id as an exemplar.", acct + ["call"], registry=r, buckets=BROKER_BUCKETS)
        self.broker_errors = Counter("tradewatch_broker_errors_total", "Failed broker calls by call and error kind.",
                                     acct + ["call", "kind"], registry=r)
        self.broker_connected = Gauge("tradewatch_broker_connected", "1 when the broker terminal is connected.",
                                      acct, registry=r)
        self.broker_reconnects = Counter("tradewatch_broker_reconnects_total", "Broker reconnections.", acct,
                                         registry=r)

        self.signals = LeanCounter("tradewatch_signals_total", "Strategy signals.",
                                   acct + ["symbol", "strategy", "signal"], registry=r)
        self.orders = Counter("tradewatch_orders_total", "Orders by outcome.",
                              acct + ["symbol", "strategy", "side", "outcome"], registry=r)

        self.open_positions = FoldingGauge("tradewatch_open_positions", "Open positions per symbol.",
                                           acct + ["symbol"], registry=r)
        self.account_balance = FoldingGauge("tradewatch_account_balance", "Account balance in deposit currency.",
                                            acct, registry=r)
        self.account_equity = FoldingGauge("tradewatch_account_equity", "Account equity in deposit currency.",
                                           acct, registry=r)
        self.account_margin_level = FoldingGauge(
            "tradewatch_account_margin_level_ratio", "Equity / used margin (MT5 margin level / 100); "
            "NaN while no margin is in use.", acct, registry=r)

        self.log_records_dropped = Counter("tradewatch_log_records_dropped_total",
                                           "Log lines lost before reaching Loki.", acct, registry=r)
        self.build_info = Gauge("tradewatch_build_info", "Always 1; the version label says what runs.",
                                acct + ["version"], registry=r)

        self.order_queue_depth = Gauge("tradewatch_order_queue_depth", "Orders waiting to be sent.", acct,
                                       registry=r)
        self.store_spool_depth = Gauge("tradewatch_store_spool_depth", "Events waiting to be written to the store.",
                                       acct, registry=r)
        self.circuit_state = Gauge("tradewatch_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                                   acct + ["breaker"], registry=r)
        self.circuit_transitions = Counter("tradewatch_circuit_transitions_total", "Circuit breaker state changes.",
                                           acct + ["breaker", "to"], registry=r)
        self.orders_replayed = Counter("tradewatch_orders_replayed_total", "Orders replayed after a restart.", acct,
                                       registry=r)
        self.orders_expired = Counter("tradewatch_orders_expired_total", "Queued orders dropped unsent, by reason.",
                                      acct + ["reason"], registry=r)
        # The broker gateway (i12): server clock, orders not expressible on the symbol's grid, -8 halts.
        self.broker_clock_offset = Gauge("tradewatch_broker_clock_offset_seconds",
                                         "Seconds the broker's server clock is ahead of UTC (NaN: not measured).",
                                         acct, registry=r)
        self.orders_skipped = Counter("tradewatch_orders_skipped_total",
                                      "Decided orders not sent: not expressible on the symbol's grid, by reason.",
                                      acct + ["symbol", "reason"], registry=r)
        self.orders_halted = Gauge("tradewatch_orders_halted",
                                   "1 while the terminal refuses algorithmic trading (-8): no order is sent.",
                                   acct, registry=r)

        # Broker data the gateway refused (bot.gateway.schema reasons) and what the engine did about it.
        self.broker_records_rejected = Counter(
            "tradewatch_broker_records_rejected_total", "Broker records refused and quarantined, by record kind and "
            "reason (each distinct record once).", acct + ["kind", "reason"], registry=r)
        self.symbol_cycles_skipped = Counter(
            "tradewatch_symbol_cycles_skipped_total", "Cycles in which a symbol sat out because its quote, bars, "
            "positions or spec were refused.", acct + ["symbol", "reason"], registry=r)
        self.broker_deal_conflicts = Counter(
            "tradewatch_broker_deal_conflicts_total", "Deal tickets met again with other content (the first kept).",
            acct, registry=r)
        self.new_orders_halted = Gauge(
            "tradewatch_new_orders_halted", "1 while new orders are halted for this reason (implausible or refused "
            "account state); exits still go out.", acct + ["reason"], registry=r)

        self.execution = ExecutionMetrics(r, self.account)  # slippage, fill latency, spread, requotes
        self.prop_rules = PropRuleMetrics(r, self.account)  # prop-firm challenge rules

        r.register(AccountLabelled(ProcessCollector(registry=None), self.account))
        r.register(PsutilProcessCollector(self.account))

        # Series that exist from the start, so rate()/absent() work before the first event.
        for metric in (self.cycle_duration, self.last_cycle_timestamp, self.cycles, self.broker_connected,
                       self.broker_reconnects, self.account_balance, self.account_equity, self.account_margin_level,
                       self.log_records_dropped, self.order_queue_depth, self.store_spool_depth,
                       self.orders_replayed, self.broker_deal_conflicts):
            metric.labels(self.account)
        self.account_margin_level.labels(self.account).set(math.nan)
        self.broker_clock_offset.labels(self.account).set(math.nan)
        self.orders_halted.labels(self.account).set(0)
        self.build_info.labels(self.account, version or _package_version()).set(1)

        self._lock = threading.Lock()
        # Labelled children the loop touches every cycle, bound once: labels() validates and locks
        # on each call, which adds up at thousands of cycles a second.
        self._broker_children: dict[str, Any] = {}
        self._signal_children: dict[tuple[str, str, str], Any] = {}
        self._order_children: dict[tuple[str, str, str, str], Any] = {}  # (symbol, strategy, side, outcome)
        self._position_children: dict[str, Any] = {}
        self._cycle_duration = self.cycle_duration.labels(self.account)
        self._last_cycle_at = 0.0
        self.last_cycle_timestamp.labels(self.account).set_function(lambda: self._last_cycle_at)
        self._cycles = self.cycles.labels(self.account)
        # What the loop reports many times a cycle waits in these (one C-level append each) and is
        # folded into its series before every read and once FOLD_EVERY wait (bot.telemetry.deferred).
        #: Successful broker calls as (call, seconds): the gateway appends to it directly.
        self.broker_calls = Deferred(self._fold_broker_calls)
        self.broker_request_duration.fold_first(self.broker_calls)
        self._cycle_durations = Deferred(self._fold_cycles)  # seconds of each finished cycle
        self.cycle_duration.fold_first(self._cycle_durations)
        self.cycles.fold_first(self._cycle_durations)
        self._signal_keys = Deferred(self._fold_signals)  # (symbol, strategy, signal) of each signal
        self.signals.fold_first(self._signal_keys)
        self._deferred = tuple((d.items, d) for d in (self.broker_calls, self._cycle_durations, self._signal_keys))
        # Balance, equity, margin level: read by their gauges at scrape time. The loop holds the cycle's
        # AccountState (hold_account: one attribute store a cycle), converted when read (account_figures).
        self._account_figures = AccountFigures()
        #: The loop's way in: the cycle's AccountState, exported when read (bot.telemetry.account_figures).
        self.hold_account = self._account_figures.hold
        for index, gauge in enumerate((self.account_balance, self.account_equity, self.account_margin_level)):
            gauge.labels(self.account).set_function(lambda index=index: self._account_figures.now()[index])
        self._connected = self.broker_connected.labels(self.account)
        self._queue_depth = self.order_queue_depth.labels(self.account)  # set on every queue change
        self._spool_depth = self.store_spool_depth.labels(self.account)  # set on every spool change
        self._circuit_states: dict[str, str] = {}
        self._last_positions: dict[str, int] | None = None  # what set_positions last set (None: nothing yet)
        self._halt_reasons: set[str] = set()
        self._halts: dict[str, str] = {}  # source -> the reason it halts new orders for now

    # -- cycle ---------------------------------------------------------------------------

    def observe_cycle(self, duration_s: float, finished_at_epoch: float) -> None:
        """Record one finished cycle: its duration, its end time, and the count (the first two folded
        into their series when read, bot.telemetry.deferred)."""
        duration = duration_s if type(duration_s) is float and math.isfinite(duration_s) else \
            _number("cycle duration", duration_s)
        finished = finished_at_epoch if type(finished_at_epoch) is float and math.isfinite(finished_at_epoch) else \
            _number("cycle finish time", finished_at_epoch)
        self._cycle_durations.append(duration)
        self._last_cycle_at = finished  # read by the gauge at scrape time (set_function in __init__)

    def observe_cycles(self, durations: list[float], finished_at_epoch: float) -> None:
        """`observe_cycle` for several finished cycles at once: their durations in order, the last one's
        end time. A value that is not a finite number raises (as observe_cycle) and nothing is recorded."""
        if not all(type(d) is float for d in durations) or not math.isfinite(sum(durations)):
            # Checked one by one: raises on the first bad one (finite ones whose sum overflows all pass).
            durations = [_number("cycle duration", d) for d in durations]
        finished = finished_at_epoch if type(finished_at_epoch) is float and math.isfinite(finished_at_epoch) else \
            _number("cycle finish time", finished_at_epoch)
        self._cycle_durations.extend(durations)
        self._last_cycle_at = finished

    def fold_before_reads(self, pending: Deferred) -> None:
        """Fold `pending` (the loop's finished cycles, bot.instrumentation) before every read of a series
        it feeds, ahead of their own pending lists (its fold appends to them)."""
        for family in (self.cycle_duration, self.cycles, self.signals):
            family.fold_first(pending, ahead=True)
        for gauge in (self.last_cycle_timestamp, self.open_positions, self.account_balance, self.account_equity,
                      self.account_margin_level):
            gauge.fold_first(pending)

    def _fold_cycles(self, durations: list[float]) -> None:
        self._cycle_duration.observe_many(durations)
        self._cycles.inc(len(durations))

    def keep_bounded(self) -> None:
        """Fold what waits once there is enough of it: the loop calls this regularly (bot.instrumentation),
        so memory stays bounded when nobody scrapes (bot.telemetry.deferred)."""
        for items, pending in self._deferred:
            if len(items) >= pending.fold_every:
                pending.fold_pending()

    # -- broker --------------------------------------------------------------------------

    def observe_broker_call(self, call: str, duration_s: float, error_kind: str | None = None,
                            exemplar: Mapping[str, str] | None = None) -> None:
        """Record one broker call's latency and, if it failed, its error kind.

        ``exemplar`` defaults to ``{"correlation_id": <current id>}`` for ``order_send``
        when a correlation id is set, so a slow order links to its logs in Grafana.
        """
        child = self._broker_children.get(call)
        if child is None:  # first call of this name: validate once, then reuse the labelled child
            child = self._broker_child(call)
        # A finite float (what perf_counter differences are) needs no more checking than this.
        duration = duration_s if type(duration_s) is float and math.isfinite(duration_s) else \
            _number("broker call duration", duration_s)
        if exemplar is None and call == "order_send":
            current = correlation_id.get()
            exemplar = {"correlation_id": current} if current else None
        if exemplar:
            child.observe(duration, exemplar=dict(exemplar))
        else:
            child.observe(duration)
        if error_kind is not None:
            self.broker_errors.labels(self.account, call, _label("error_kind", error_kind)).inc()

    def set_connected(self, connected: bool) -> None:
        self._connected.set(1 if connected else 0)

    def count_reconnect(self) -> None:
        self.broker_reconnects.labels(self.account).inc()

    def _broker_child(self, call: str) -> Any:
        child = self._broker_children.get(call)
        if child is None:
            child = self._broker_children[call] = self.broker_request_duration.labels(self.account, _label("call", call))
        return child

    def _fold_broker_calls(self, calls: list[tuple[str, float]]) -> None:
        """Successful calls appended to `broker_calls` (by the gateway: a float of seconds each, and a
        call name that was observed through observe_broker_call first, so already validated)."""
        by_call: dict[str, list[float]] = {}
        for call, seconds in calls:
            seen = by_call.get(call)
            if seen is None:
                by_call[call] = [seconds]
            else:
                seen.append(seconds)
        for call, seconds in by_call.items():
            self._broker_child(call).observe_many(seconds)

    # -- trading -------------------------------------------------------------------------

    def count_signal(self, symbol: str, strategy: str, signal: str) -> None:
        """Count one signal (folded into its series when read; a new label set is checked here, at once)."""
        self.count_signals([(symbol, strategy, signal)])

    def count_signals(self, keys: list[tuple[str, str, str]]) -> None:
        """Count a cycle's signals, (symbol, strategy, signal) each (see count_signal)."""
        children = self._signal_children
        for key in keys:
            if key not in children:
                symbol, strategy, signal = key
                children[key] = self.signals.labels(
                    self.account, _label("symbol", symbol), _label("strategy", strategy), _label("signal", signal))
        self._signal_keys.extend(keys)

    def _fold_signals(self, keys: list[tuple[str, str, str]]) -> None:
        for key, count in Tally(keys).items():
            self._signal_children[key].inc(count)

    def count_order(self, symbol: str, strategy: str, side: str, outcome: str) -> None:
        key = (symbol, strategy, side, outcome)
        child = self._order_children.get(key)
        if child is None:  # a new label set: checked once, its child kept (as the signals' are)
            child = self._order_children[key] = self.orders.labels(
                self.account, _label("symbol", symbol), _label("strategy", strategy), _label("side", side),
                _label("outcome", outcome))
        child.inc()

    def set_positions(self, counts: Mapping[str, int]) -> None:
        """Open positions per symbol; a symbol seen before but absent now is set to 0 (not removed).

        Called every cycle with counts that rarely change: the same counts as last time set nothing."""
        if counts == self._last_positions:
            return
        values = {_label("symbol", symbol): int(_number(f"position count for {symbol}", n))
                  for symbol, n in counts.items()}
        with self._lock:
            for symbol in values.keys() - self._position_children.keys():
                self._position_children[symbol] = self.open_positions.labels(self.account, symbol)
            for symbol, child in self._position_children.items():
                child.set(values.get(symbol, 0))
            self._last_positions = dict(counts)

    def set_account(self, balance: float | Decimal, equity: float | Decimal,
                    margin_level_percent: float | Decimal | None) -> None:
        """Balance, equity and margin level (MT5 percent; exported as a ratio; see AccountFigures.set)."""
        self._account_figures.set(balance, equity, margin_level_percent)

    # -- plumbing health -----------------------------------------------------------------

    def count_log_drops(self, count: int = 1) -> None:
        """The ``on_drop`` callback for :class:`bot.telemetry.loki.LokiHandler`."""
        self.log_records_dropped.labels(self.account).inc(count)

    def set_order_queue_depth(self, depth: int) -> None:
        self._queue_depth.set(_number("order queue depth", depth))

    def set_store_spool_depth(self, depth: int) -> None:
        self._spool_depth.set(_number("store spool depth", depth))

    def set_circuit_state(self, breaker: str, state: str) -> None:
        """Set a breaker's state (closed | half_open | open); a change also counts a transition."""
        breaker = _label("breaker", breaker)
        name = _circuit_state(state)
        with self._lock:
            previous = self._circuit_states.get(breaker)
            self._circuit_states[breaker] = name
        self.circuit_state.labels(self.account, breaker).set(CIRCUIT_STATES[name])
        if previous is not None and previous != name:
            self.circuit_transitions.labels(self.account, breaker, name).inc()

    def count_replayed(self, count: int = 1) -> None:
        self.orders_replayed.labels(self.account).inc(count)

    def count_expired(self, reason: str, count: int = 1) -> None:
        self.orders_expired.labels(self.account, _label("reason", reason)).inc(count)

    # -- broker data -----------------------------------------------------------------------

    def count_rejected_record(self, kind: str, reason: str) -> None:
        self.broker_records_rejected.labels(self.account, _label("kind", kind), _label("reason", reason)).inc()

    def count_symbol_skipped(self, symbol: str, reason: str) -> None:
        self.symbol_cycles_skipped.labels(self.account, _label("symbol", symbol), _label("reason", reason)).inc()

    def count_deal_conflict(self) -> None:
        self.broker_deal_conflicts.labels(self.account).inc()

    def set_prop_rules(self, statuses: list) -> None:
        """One series per rule of the rules file (bot.engine.proprules.RuleStatus)."""
        self.prop_rules.set(statuses)

    def set_new_orders_halted(self, reason: str | None, source: str = "equity") -> None:
        """1 for every reason a source halts new orders for now, 0 for every reason seen before.

        Kept per source (equity guard, prop rules): both can halt at once, and one lifting its halt
        must leave the other's series at 1."""
        with self._lock:
            if reason is None:
                self._halts.pop(source, None)
            else:
                self._halts[source] = _label("reason", reason)
                self._halt_reasons.add(self._halts[source])
            active = set(self._halts.values())
            reasons = sorted(self._halt_reasons)
        for name in reasons:
            self.new_orders_halted.labels(self.account, name).set(1 if name in active else 0)

    def set_broker_clock_offset(self, seconds: float | None) -> None:
        self.broker_clock_offset.labels(self.account).set(math.nan if seconds is None else _number("offset", seconds))

    def count_skipped(self, symbol: str, reason: str) -> None:
        self.orders_skipped.labels(self.account, _label("symbol", symbol), _label("reason", reason)).inc()

    def set_orders_halted(self, halted: bool) -> None:
        self.orders_halted.labels(self.account).set(1 if halted else 0)
