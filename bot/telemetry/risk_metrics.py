"""The risk guard's series on /metrics, read from the guard at scrape time.

Why a collector rather than counters the guard bumps: the guard (bot.engine.riskguard) keeps its
own counts and state for /status and its state file anyway; reading them when Prometheus scrapes
keeps one truth and needs no telemetry import in the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class RiskGuardCollector(Collector):
    """`status` is RiskGuard.status-like: halted, orders, ratios; `known_reasons` always exported."""

    def __init__(self, account: str, guard: Callable[[], Any], known_reasons: tuple[str, ...]):
        self.account = account
        self.guard = guard
        self.known_reasons = known_reasons

    def collect(self) -> Iterator[Any]:
        guard = self.guard()
        halted = GaugeMetricFamily("tradewatch_risk_halted", "1 while the risk guard halts new entries for this "
                                   "reason (daily_loss, max_drawdown, operator_pause, ...); exits still go out.",
                                   labels=["account", "reason"])
        adjusted = CounterMetricFamily("tradewatch_risk_orders_adjusted", "New entries the risk guard resized, "
                                       "skipped (never sent) or could not check with the terminal, by limit.",
                                       labels=["account", "reason", "action"])
        ratios = {
            "daily_loss": GaugeMetricFamily("tradewatch_risk_daily_loss_ratio", "Loss since the broker day began, "
                                            "as a share of the day's opening equity.", labels=["account"]),
            "drawdown": GaugeMetricFamily("tradewatch_risk_drawdown_ratio", "Equity below its peak, as a share "
                                          "of the peak.", labels=["account"]),
        }
        if guard is None:
            return
        latched = set(guard.status()["halted"])
        for reason in sorted(set(self.known_reasons) | latched):
            halted.add_metric([self.account, reason], 1.0 if reason in latched else 0.0)
        for (reason, action), count in sorted(guard.counts().items()):
            adjusted.add_metric([self.account, reason, action], float(count))
        daily, drawdown = guard.daily_loss_ratio(), guard.drawdown_ratio()
        ratios["daily_loss"].add_metric([self.account], math.nan if daily is None else float(daily))
        ratios["drawdown"].add_metric([self.account], math.nan if drawdown is None else float(drawdown))
        yield halted
        yield adjusted
        yield from ratios.values()


class ControlCollector(Collector):
    """`tradewatch_operator_actions_total{account,action,result}` from the control desk's counts
    (result ok | refused | failed | not_recorded; action auth, result unauthorized: a wrong token)."""

    def __init__(self, account: str, desk: Any):
        self.account = account
        self.desk = desk

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily("tradewatch_operator_actions", "Operator control commands by action and "
                                     "result (auth/unauthorized: a request with a missing or wrong token).",
                                     labels=["account", "action", "result"])
        for (action, result), count in sorted(self.desk.counted().items()):
            family.add_metric([self.account, action, result], float(count))
        yield family
