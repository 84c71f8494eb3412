"""Execution-quality histograms: slippage, spread and latency of fills, requotes, by symbol.

Why a module of its own: these series belong to bot.engine.execution (which defines the figures,
the slippage sign - positive = worse for the trader - and the latency stages) and live on
BotMetrics' registry without growing that shared class.

Cardinality stays bounded: labels are account, symbol (the configured symbols; past
``MAX_SYMBOLS`` distinct names further ones are folded into ``symbol="other"``), and a fixed
``reference`` (decision | send) or ``stage`` (decision_to_send | send_to_fill). Strategy is
deliberately not a label: per-strategy figures come from the order rows (exporter
/api/v1/execution), which cost no series.

Buckets are in points, chosen for both FX and gold: on a 5-digit FX pair a point is 0.1 pip and
market fills slip a few points (0-20, an ECN spread is 1-20 points); on XAUUSD (2 digits) a point
is 0.01 and slippage or spread run to tens or hundreds of points. Slippage buckets are signed:
negative buckets hold price improvement, and histogram_quantile() handles them; the price of that
is no ``_sum`` series for the slippage histogram (prometheus_client omits it when a bucket is
negative, as OpenMetrics asks), so mean slippage comes from the order rows (the Grafana SQL panels,
/api/v1/execution).
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from bot.engine.execution import ExecutionQuality

SLIPPAGE_BUCKETS = (-100.0, -50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
                    200.0, 500.0)
SPREAD_BUCKETS = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_SYMBOLS = 50
OTHER = "other"


class ExecutionMetrics:
    def __init__(self, registry: CollectorRegistry, account: str) -> None:
        self.account = account
        acct = ["account", "symbol"]
        self.slippage = Histogram(
            "tradewatch_order_slippage_points", "Fill price against the decision price or the quote at send, in "
            "points; positive = worse for the trader.", acct + ["reference"], registry=registry,
            buckets=SLIPPAGE_BUCKETS)
        self.latency = Histogram(
            "tradewatch_order_fill_latency_seconds", "Filled orders: strategy decision to first order_send "
            "(decision_to_send) and first order_send to the fill (send_to_fill, requotes included).",
            acct + ["stage"], registry=registry, buckets=LATENCY_BUCKETS)
        self.spread = Histogram(
            "tradewatch_order_spread_points", "Spread (ask - bid) at the decision of filled orders, in points.",
            acct, registry=registry, buckets=SPREAD_BUCKETS)
        self.requotes = Counter(
            "tradewatch_order_requotes_total", "Orders resent after a requote (10004/10020/10021), any outcome.",
            acct, registry=registry)
        self._lock = threading.Lock()
        self._symbols: set[str] = set()
        # Per symbol: its requotes child, and its five (child, ExecutionQuality field) of a fill, labelled
        # once - prometheus_client's labels() takes a lock and several frames each time (issue 16).
        self._requotes: dict[str, Any] = {}
        self._fills: dict[str, tuple[tuple[Any, str], ...]] = {}

    def _symbol(self, symbol: str) -> str:
        with self._lock:
            if symbol in self._symbols:
                return symbol
            if len(self._symbols) >= MAX_SYMBOLS:
                return OTHER
            self._symbols.add(symbol)
            return symbol

    def observe(self, symbol: str, outcome: str, quality: ExecutionQuality) -> None:
        """One sent order: requotes always; slippage, latencies and spread when it filled."""
        requotes = self._requotes.get(symbol)
        if requotes is None:
            requotes = self._keep(self._requotes, symbol, self.requotes.labels(self.account, self._symbol(symbol)))
        if quality.requotes:
            requotes.inc(quality.requotes)
        if outcome != "filled":
            return
        fill = self._fills.get(symbol)
        if fill is None:  # labelled at its first fill: no fill series before one
            name, account = self._symbol(symbol), self.account
            fill = self._keep(self._fills, symbol, (
                (self.slippage.labels(account, name, "decision"), "slippage_decision_points"),
                (self.slippage.labels(account, name, "send"), "slippage_send_points"),
                (self.latency.labels(account, name, "decision_to_send"), "decision_to_send_seconds"),
                (self.latency.labels(account, name, "send_to_fill"), "send_to_fill_seconds"),
                (self.spread.labels(account, name), "spread_points"),
            ))
        for child, figure in fill:
            value = getattr(quality, figure)
            if value is not None:
                child.observe(float(value))

    @staticmethod
    def _keep(kept: dict[str, Any], symbol: str, children: Any) -> Any:
        if len(kept) < MAX_SYMBOLS:  # bounded like the names (past it a symbol is labelled "other" each time)
            kept[symbol] = children
        return children
