"""Prop-firm challenge rules on /metrics (bot.engine.proprules), judged every cycle on equity.

A small collector set of its own (as strategy_metrics.py) so BotMetrics stays one concept: one series
per rule of the rules file, labelled with the account. Alerts: prometheus/rules (PropRule*).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from bot.telemetry.values import label as _label


class PropRuleMetrics:
    def __init__(self, registry: CollectorRegistry, account: str) -> None:
        self.account = account
        labels = ["account", "rule"]
        self.headroom = Gauge("tradewatch_rule_headroom", "Money left before the prop-firm rule is breached "
                              "(account currency).", labels, registry=registry)
        self.limit = Gauge("tradewatch_rule_limit", "Money the prop-firm rule allows (loss limit, profit "
                           "target or consistency allowance; trading days for min_trading_days).",
                           labels, registry=registry)
        self.breached = Gauge("tradewatch_rule_breached", "1 while the prop-firm rule is breached.",
                              labels, registry=registry)
        self.target_progress = Gauge("tradewatch_rule_target_progress", "Share of a prop-firm target reached "
                                     "(profit_target, min_trading_days; 1 = reached).", labels, registry=registry)

    def set(self, statuses: list) -> None:
        """One series per rule (bot.engine.proprules.RuleStatus); a figure a rule lacks is left as it was."""
        for st in statuses:
            rule = _label("rule", st.rule)
            if st.headroom is not None:
                self.headroom.labels(self.account, rule).set(float(st.headroom))
            if st.limit is not None:
                self.limit.labels(self.account, rule).set(float(st.limit))
            self.breached.labels(self.account, rule).set(1 if st.breached else 0)
            if st.progress is not None:
                self.target_progress.labels(self.account, rule).set(float(st.progress))
