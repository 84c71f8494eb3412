"""Metrics of the broker-safety checks: preflight results and stop-outs, on the bot's registry.

A module of its own (like durability_metrics) so the preflight and netting work does not grow the
shared BotMetrics; the series carry ``account`` first, as every tradewatch series does.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge


class BrokerSafetyMetrics:
    def __init__(self, registry: CollectorRegistry, account: str) -> None:
        self.account = account
        self.preflight_ok = Gauge(
            "tradewatch_preflight_ok",
            "1 when the preflight check passes, 0 while it fails (no order is sent; see /readyz).",
            ["account", "check"], registry=registry)
        self.stop_outs = Counter(
            "tradewatch_stop_outs_total", "Deals the broker made to stop the account out (DEAL_REASON_SO).",
            ["account", "symbol"], registry=registry)
        self._checks: dict[str, int] = {}  # check -> the value last set
        self._lock = threading.Lock()
        # No series before the first preflight read: a 0 there would claim AutoTrading is off while
        # the terminal is merely unreachable (BrokerDisconnected says that). CHECK_NAMES lists them.

    def set_check(self, check: str, ok: bool) -> None:
        """Called for every check on every preflight run (each cycle): the gauge is set when its value changes."""
        value = 1 if ok else 0
        if self._checks.get(check) == value:  # unchanged (nearly always): no lock (a dict read is atomic)
            return
        with self._lock:  # the check and the set together: a racing caller cannot leave the cache wrong
            if self._checks.get(check) == value:
                return
            self.preflight_ok.labels(self.account, check).set(value)
            self._checks[check] = value

    def count_stop_out(self, symbol: str) -> None:
        self.stop_outs.labels(self.account, symbol or "unknown").inc()
