"""Per-strategy health on /metrics: errors counted, and whether each strategy still trades.

A separate small collector set (like durability_metrics.py) so the shared BotMetrics stays as it
is. Telemetry knows strategy *names* only; it never imports the strategies.
Alert: StrategyDisabled (prometheus/rules/strategies.yml).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge


class StrategyMetrics:
    def __init__(self, registry: CollectorRegistry, account: str, strategies: Iterable[str]):
        self.account = account
        self.errors = Counter("tradewatch_strategy_errors_total",
                              "Exceptions raised inside a strategy (each disables that strategy).",
                              ["account", "strategy"], registry=registry)
        self.enabled = Gauge("tradewatch_strategy_enabled",
                             "1 while the strategy trades, 0 once an exception disabled it.",
                             ["account", "strategy"], registry=registry)
        for name in strategies:
            self.errors.labels(account, name)  # exported as 0 from the start: increase() sees the first error
            self.enabled.labels(account, name).set(1)

    def failed(self, strategy: str) -> None:
        self.errors.labels(self.account, strategy).inc()
        self.enabled.labels(self.account, strategy).set(0)
