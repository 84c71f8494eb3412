"""Prop-firm challenge rules, evaluated live on equity (floating P&L included) every cycle.

A rules file (YAML, RULES_FILE) per account, as the firms state them (FTMO, The5ers, ...):

    max_daily_loss: 5%        # of the broker day's starting value (see daily_loss_basis)
    daily_loss_basis: balance # balance (FTMO: the balance at the server's midnight) | equity
    max_loss: 10%             # of the initial balance; equity may never go below initial - 10 %
    profit_target: 10%        # of the initial balance, on the balance (closed trades, as firms count it)
    min_trading_days: 4       # broker days with at least one position opened
    consistency: 50%          # optional: no single day's profit above this share of the total profit
    initial_balance: 100000   # optional: default the account's first deposit (balance deal)
    halt_at: 80%              # share of a loss limit used at which a trading bot stops new entries

Amounts are a share ("5%") or money ("5000"). Headroom is the money left before a breach:
daily: equity - (day start - daily limit); max loss: equity - (initial - limit); consistency:
share x total profit - best day's profit. The day's starting value with basis `balance` is the
balance now minus the day's closed P&L in the store's deals (right after a restart too); with
basis `equity` it is the first equity read that broker day (a restart mid-day starts it again).
Broker day: from the trade server's midnight (db.brokerday; `day_of` gives it, the engine passes
bot.gateway.broker_day_of with the measured server offset; UTC days while it is unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from db.brokerday import BrokerDay, broker_date
from mt5bridge import constants as mt5

log = logging.getLogger("bot.proprules")

CENT = Decimal("0.01")
RULE_NAMES = ("max_daily_loss", "max_loss", "profit_target", "min_trading_days", "consistency")
_KEYS = frozenset(RULE_NAMES) | {"daily_loss_basis", "initial_balance", "halt_at"}
LOSS_RULES = ("max_daily_loss", "max_loss")


class RulesError(ValueError):
    """A rules file that cannot be used: one line saying which key and why."""


@dataclass(frozen=True)
class Amount:
    """A share of a base ("5%") or money ("5000")."""

    value: Decimal
    share: bool

    def of(self, base: Decimal) -> Decimal:
        return (base * self.value / 100).quantize(CENT) if self.share else self.value


@dataclass(frozen=True)
class Rules:
    max_daily_loss: Amount | None = None
    daily_loss_basis: str = "balance"
    max_loss: Amount | None = None
    profit_target: Amount | None = None
    min_trading_days: int | None = None
    consistency: Decimal | None = None  # percent
    initial_balance: Decimal | None = None
    halt_at: Decimal = Decimal(80)  # percent of a loss limit used


def _amount(key: str, raw: Any, share_only: bool = False) -> Amount:
    text = str(raw).strip()
    share = text.endswith("%")
    try:
        value = Decimal(text.rstrip("%").strip())
    except InvalidOperation:
        raise RulesError(f"{key}: not an amount or a percentage: {text[:40]!r}") from None
    if not value.is_finite() or value <= 0 or (share and value > 100) or value > Decimal(10) ** 12:
        raise RulesError(f"{key}: must be above 0 (a percentage at most 100%), got {text[:40]!r}")
    if share_only and not share:
        raise RulesError(f"{key}: must be a percentage, got {text[:40]!r}")
    return Amount(value, share)


def parse_rules(data: Any) -> Rules:
    if not isinstance(data, dict) or not data:
        raise RulesError("rules file: expected a mapping of rules (max_daily_loss, max_loss, ...)")
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise RulesError(f"rules file: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    out: dict[str, Any] = {}
    for key in ("max_daily_loss", "max_loss", "profit_target"):
        if data.get(key) is not None:
            out[key] = _amount(key, data[key])
    if "daily_loss_basis" in data:
        basis = str(data["daily_loss_basis"]).strip().lower()
        if basis not in ("balance", "equity"):
            raise RulesError(f"daily_loss_basis: balance or equity, got {basis[:20]!r}")
        out["daily_loss_basis"] = basis
    if data.get("min_trading_days") is not None:
        days = data["min_trading_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            raise RulesError(f"min_trading_days: a whole number of days 1..365, got {days!r}")
        out["min_trading_days"] = days
    if data.get("consistency") is not None:
        out["consistency"] = _amount("consistency", data["consistency"], share_only=True).value
    if data.get("halt_at") is not None:
        out["halt_at"] = _amount("halt_at", data["halt_at"], share_only=True).value
    if data.get("initial_balance") is not None:
        initial = _amount("initial_balance", data["initial_balance"])
        if initial.share:
            raise RulesError("initial_balance: money, not a percentage")
        out["initial_balance"] = initial.value
    if not any(key in out for key in RULE_NAMES):
        raise RulesError("rules file: no rule in it (max_daily_loss, max_loss, profit_target, min_trading_days, consistency)")
    return Rules(**out)


def load_rules(path: str) -> Rules:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise RulesError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path} is not YAML: {' '.join(str(exc).split())[:200]}") from None
    return parse_rules(data)


@dataclass(frozen=True)
class Figures:
    """What the rules are judged on, at one moment."""

    balance: Decimal
    equity: Decimal
    initial_balance: Decimal
    day_start: Decimal  # the day's starting balance or equity (see daily_loss_basis)
    trading_days: int = 0
    day_profits: tuple[Decimal, ...] = ()  # closed P&L per broker day (for consistency)


@dataclass(frozen=True)
class RuleStatus:
    rule: str
    limit: Decimal | None  # money the rule allows to lose (loss rules) or to reach (target)
    headroom: Decimal | None  # money left before the breach (loss rules, consistency)
    breached: bool
    progress: Decimal | None = None  # share of a target reached (profit_target, min_trading_days)

    @property
    def used(self) -> Decimal:
        """Share of a loss limit used (0..1+); 0 for rules without one."""
        if self.limit is None or self.headroom is None or self.limit <= 0:
            return Decimal(0)
        return max(Decimal(0), 1 - self.headroom / self.limit)


def evaluate(rules: Rules, f: Figures) -> list[RuleStatus]:
    """Every rule of `rules` judged on `f` (pure: the tests compute each case by hand)."""
    out = []
    if rules.max_daily_loss is not None:
        limit = rules.max_daily_loss.of(f.day_start)
        headroom = f.equity - (f.day_start - limit)
        out.append(RuleStatus("max_daily_loss", limit, headroom, headroom <= 0))
    if rules.max_loss is not None:
        limit = rules.max_loss.of(f.initial_balance)
        headroom = f.equity - (f.initial_balance - limit)
        out.append(RuleStatus("max_loss", limit, headroom, headroom <= 0))
    if rules.profit_target is not None:
        target = rules.profit_target.of(f.initial_balance)
        gained = f.balance - f.initial_balance
        out.append(RuleStatus("profit_target", target, target - gained, False, max(Decimal(0), gained / target)))
    if rules.min_trading_days is not None:
        progress = Decimal(f.trading_days) / rules.min_trading_days
        out.append(RuleStatus("min_trading_days", Decimal(rules.min_trading_days),
                              Decimal(max(0, rules.min_trading_days - f.trading_days)), False, progress))
    if rules.consistency is not None:
        total = sum(f.day_profits, Decimal(0))
        best = max(f.day_profits, default=Decimal(0))
        if total <= 0:
            out.append(RuleStatus("consistency", None, None, False))
        else:
            allowed = (total * rules.consistency / 100).quantize(CENT)
            headroom = allowed - best
            out.append(RuleStatus("consistency", allowed, headroom, headroom < 0))
    return out


def halts_entries(rules: Rules, statuses: list[RuleStatus]) -> str | None:
    """Which loss rule stops new entries (breached, or `halt_at` of its limit used), or None."""
    for status in statuses:
        if status.rule in LOSS_RULES and (status.breached or status.used * 100 >= rules.halt_at):
            return status.rule
    return None


@dataclass
class _Day:
    day: date
    start_equity: Decimal | None = None


class PropRules:
    """The live side: the figures from the account state and the store's deals, once per cycle."""

    def __init__(self, rules: Rules, repo: Any, account: str, observer: Any,
                 day_of: Callable[[datetime], BrokerDay] | None = None):
        self.rules = rules
        self.day_of = day_of or (lambda moment: BrokerDay.of(moment, None))
        self.repo = repo
        self.account = account
        self.observer = observer
        self._day: _Day | None = None
        self._initial: Decimal | None = rules.initial_balance
        self._history: tuple[date, int, tuple[Decimal, ...]] | None = None  # (as of day, days, profits)
        self._first_deposit: Decimal | None = None
        self.last: list[RuleStatus] = []
        self.halt: str | None = None

    def evaluate(self, state: Any, now: datetime) -> list[RuleStatus]:
        broker_day = self.day_of(now)
        today = broker_day.date
        if self._day is None or self._day.day != today:
            self._day = _Day(today, state.equity)
        deals = [d for d in self.repo.deals_since(self.account, broker_day.start) if d.time < broker_day.end]
        closed_today = sum((d.profit + d.commission + d.swap for d in deals if _is_trade(d.type)), Decimal(0))
        days, profits = self._trading_history(broker_day)
        day_start = self._day.start_equity if self.rules.daily_loss_basis == "equity" else state.balance - closed_today
        opened_today = any(_is_trade(d.type) and d.entry == mt5.DEAL_ENTRY_IN for d in deals)
        figures = Figures(balance=state.balance, equity=state.equity, initial_balance=self._initial_balance(state),
                          day_start=day_start, trading_days=days + int(opened_today),
                          day_profits=(*profits, closed_today) if deals else profits)
        self.last = evaluate(self.rules, figures)
        halt = halts_entries(self.rules, self.last)
        if halt != self.halt:
            if halt:
                log.warning("prop rule %s: new entries halted (exits go on)", halt,
                            extra={"rule": halt, "equity": str(state.equity)})
            else:
                log.info("prop rules: new entries allowed again")
            self.halt = halt
        self.observer.prop_rules(self.last)
        return self.last

    def _initial_balance(self, state: Any) -> Decimal:
        if self._initial is None:  # the account's first deposit, else the balance first seen
            self._initial = self._first_deposit if self._first_deposit is not None else state.balance
        return self._initial

    def _trading_history(self, broker_day: BrokerDay) -> tuple[int, tuple[Decimal, ...]]:
        """Trading days and closed P&L per broker day before today: read from the store once a broker day."""
        today = broker_day.date
        if self._history is None or self._history[0] != today:
            days: set[date] = set()
            profits: dict[date, Decimal] = {}
            for d in self.repo.deals_since(self.account, datetime(2000, 1, 1, tzinfo=UTC)):
                if d.type == mt5.DEAL_TYPE_BALANCE and d.profit > 0 and self._first_deposit is None:
                    self._first_deposit = d.profit
                day = broker_date(d.time, broker_day.offset_seconds)
                if not _is_trade(d.type) or day >= today:
                    continue
                if d.entry == mt5.DEAL_ENTRY_IN:
                    days.add(day)
                profits[day] = profits.get(day, Decimal(0)) + d.profit + d.commission + d.swap
            self._history = (today, len(days), tuple(profits[k] for k in sorted(profits)))
        return self._history[1], self._history[2]


def _is_trade(deal_type: int) -> bool:
    return deal_type in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL)

