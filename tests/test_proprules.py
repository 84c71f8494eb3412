"""Prop-firm rules: each rule computed by hand, the rules file validated, the live halt."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bot.config import ConfigError, Settings
from bot.engine.account_policy import AccountPolicy
from bot.engine.proprules import Figures, PropRules, RulesError, evaluate, halts_entries, parse_rules
from bot.telemetry.metrics import BotMetrics
from db.records import DealRecord
from mt5bridge import constants as mt5

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)

RULES = parse_rules({"max_daily_loss": "5%", "max_loss": "10%", "profit_target": "10%", "min_trading_days": 4,
                     "consistency": "40%"})
BASE = Figures(balance=D("101000.00"), equity=D("98500.00"), initial_balance=D("100000.00"),
               day_start=D("102000.00"), trading_days=3, day_profits=(D("500.00"), D("1500.00"), D("-1000.00")))


def _by_rule(figures, rules=RULES):
    return {s.rule: s for s in evaluate(rules, figures)}


def test_each_rule_by_hand():
    got = _by_rule(BASE)
    # Daily: 5 % of the day's starting balance 102 000 = 5 100; floor 96 900; equity 98 500 -> 1 600 left.
    assert (got["max_daily_loss"].limit, got["max_daily_loss"].headroom) == (D("5100.00"), D("1600.00"))
    assert round(got["max_daily_loss"].used, 4) == D("0.6863") and not got["max_daily_loss"].breached
    # Max loss: 10 % of the initial 100 000 = 10 000; floor 90 000 -> 8 500 left (15 % used).
    assert (got["max_loss"].limit, got["max_loss"].headroom, got["max_loss"].used) == (D("10000.00"), D("8500.00"), D("0.15"))
    # Target: 10 000 on the balance; 1 000 made -> 10 % of the way, 9 000 to go.
    assert (got["profit_target"].progress, got["profit_target"].headroom) == (D("0.1"), D("9000.00"))
    # Trading days: 3 of 4.
    assert (got["min_trading_days"].progress, got["min_trading_days"].headroom) == (D("0.75"), D(1))
    # Consistency 40 %: total 1 000, allowed best day 400, best day 1 500 -> breached by 1 100.
    assert (got["consistency"].limit, got["consistency"].headroom, got["consistency"].breached) == \
        (D("400.00"), D("-1100.00"), True)
    assert halts_entries(RULES, list(got.values())) is None  # consistency never halts entries


def test_near_breach_and_breach_halt_entries():
    near = _by_rule(Figures(**{**BASE.__dict__, "equity": D("97800.00")}))  # 900 of 5 100 left: 82.4 % used
    assert near["max_daily_loss"].headroom == D("900.00") and not near["max_daily_loss"].breached
    assert halts_entries(RULES, list(near.values())) == "max_daily_loss"
    at_floor = _by_rule(Figures(**{**BASE.__dict__, "equity": D("96900.00")}))
    assert at_floor["max_daily_loss"].headroom == 0 and at_floor["max_daily_loss"].breached
    below = _by_rule(Figures(**{**BASE.__dict__, "equity": D("89999.99"), "day_start": D("90500.00")}))
    assert below["max_loss"].headroom == D("-0.01") and below["max_loss"].breached
    # 7 725 of 10 000 lost, daily well inside: below the 80 % default, halts at a stricter halt_at.
    loose = _by_rule(Figures(**{**BASE.__dict__, "equity": D("92275.00"), "day_start": D("92275.00")}))
    assert halts_entries(RULES, list(loose.values())) is None
    strict = parse_rules({"max_loss": "10%", "halt_at": "75%"})
    assert halts_entries(strict, evaluate(strict, Figures(**{**BASE.__dict__, "equity": D("92275.00")}))) == "max_loss"


def test_money_amounts_and_a_target_reached():
    rules = parse_rules({"max_daily_loss": "2500", "profit_target": "8000"})
    got = _by_rule(Figures(balance=D("108500.00"), equity=D("108000.00"), initial_balance=D("100000.00"),
                           day_start=D("109000.00")), rules)
    assert (got["max_daily_loss"].limit, got["max_daily_loss"].headroom) == (D("2500"), D("1500.00"))
    assert got["profit_target"].progress == D("1.0625") and got["profit_target"].headroom == D("-500.00")


@pytest.mark.parametrize("data, message", [
    ({"max_daily_loss": "5 percent"}, "max_daily_loss: not an amount"),
    ({"max_loss": "150%"}, "at most 100%"),
    ({"max_loss": "-3%"}, "above 0"),
    ({"min_trading_days": 0}, "min_trading_days"),
    ({"min_trading_days": "four"}, "min_trading_days"),
    ({"consistency": "300"}, "consistency: must be a percentage"),
    ({"daily_loss_basis": "margin", "max_loss": "10%"}, "daily_loss_basis"),
    ({"max_drawdown": "10%"}, "unknown key 'max_drawdown'"),
    ({"initial_balance": 100000}, "no rule"),
    ([], "expected a mapping"),
])
def test_bad_rules_are_refused_with_one_line(data, message):
    with pytest.raises(RulesError, match=message):
        parse_rules(data)


def test_rules_file_setting_is_validated(tmp_path):
    good, bad = tmp_path / "ftmo.yml", tmp_path / "bad.yml"
    good.write_text("max_daily_loss: 5%\nmax_loss: 10%\nprofit_target: 10%\nmin_trading_days: 4\n")
    bad.write_text("max_daily_loss: [5\n")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    assert Settings.from_env({**env, "RULES_FILE": str(good)}, dotenv_path=None).rules_file == str(good)
    for path, why in ((bad, "not YAML"), (tmp_path / "missing.yml", "cannot read")):
        with pytest.raises(ConfigError, match=f"RULES_FILE.*{why}"):
            Settings.from_env({**env, "RULES_FILE": str(path)}, dotenv_path=None)


class Repo:
    def __init__(self, deals):
        self.deals = deals

    def deals_since(self, account, since):
        return [d for d in self.deals if d.time >= since]


def _deal(ticket, when, kind, entry, profit, commission="0.00"):
    return DealRecord(account="1", ticket=ticket, order_ticket=ticket, position_id=ticket // 2, symbol="" if kind > 1 else "EURUSD",
                      type=kind, entry=entry, volume=D("0.00") if kind > 1 else D("1.00"), price=D("1.1"),
                      profit=D(profit), commission=D(commission), swap=D("0.00"), magic=0, comment="", reason=0,
                      time=when)


class Observer:
    def __init__(self):
        self.halts, self.rules = [], []

    def prop_rules(self, statuses):
        self.rules.append(statuses)

    def new_orders_halted(self, reason, source):
        self.halts.append(reason)


def test_live_figures_from_the_store_and_the_halt(tmp_path):
    """Deposit 100 000 (the initial balance), two earlier trading days, today's closed loss of 3 000:
    the day started at the balance now plus today's loss, 99 000 + 3 000 = 102 000."""
    day1, day2, today = (datetime(2026, 3, d, 10, tzinfo=UTC) for d in (2, 3, 4))
    deals = [
        _deal(1, datetime(2026, 3, 1, tzinfo=UTC), mt5.DEAL_TYPE_BALANCE, mt5.DEAL_ENTRY_IN, "100000.00"),
        _deal(2, day1, mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, "0.00", "-5.00"),
        _deal(3, day1, mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, "1005.00", "-5.00"),  # day 1: +995
        _deal(4, day2, mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, "0.00"),
        _deal(5, day2, mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, "1005.00"),  # day 2: +1 005
        _deal(6, today, mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, "0.00"),
        _deal(7, today, mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, "-3000.00"),  # today: -3 000
    ]
    observer = Observer()
    live = PropRules(RULES, Repo(deals), "1", observer)
    state = SimpleNamespace(balance=D("99000.00"), equity=D("98500.00"))
    got = {s.rule: s for s in live.evaluate(state, today)}
    # The day started at 99 000 + 3 000 = 102 000: limit 5 100, floor 96 900, equity 98 500 -> 1 600.
    assert got["max_daily_loss"].headroom == D("1600.00")
    assert got["max_loss"].headroom == D("8500.00")  # initial = the first deposit, 100 000
    assert got["min_trading_days"].progress == D("0.75")  # days 1, 2 and today
    assert got["profit_target"].progress == 0  # the balance is below the initial: no progress
    assert observer.rules[-1] == live.last and live.halt is None
    # The policy halts new entries at 80 % used and lets them go again when equity recovers.
    policy = AccountPolicy(SimpleNamespace(trading=True, rules_file="", history_import=False))
    policy.prop = live
    engine = SimpleNamespace(observer=observer)
    account = SimpleNamespace(balance=D("99000.00"), equity=D("97500.00"))  # 600 of 5 100 left
    assert policy.gate(account, engine, today) is None and observer.halts == ["prop_rule"]
    recovered = SimpleNamespace(balance=D("99000.00"), equity=D("99000.00"))
    assert policy.gate(recovered, engine, today) is recovered and observer.halts == ["prop_rule", None]


def test_rule_series_on_metrics():
    metrics = BotMetrics("1001", registry=CollectorRegistry())
    metrics.set_prop_rules(evaluate(RULES, BASE))
    text = generate_latest(metrics.registry).decode()
    assert 'tradewatch_rule_headroom{account="1001",rule="max_daily_loss"} 1600.0' in text
    assert 'tradewatch_rule_limit{account="1001",rule="max_loss"} 10000.0' in text
    assert 'tradewatch_rule_breached{account="1001",rule="consistency"} 1.0' in text
    assert 'tradewatch_rule_target_progress{account="1001",rule="min_trading_days"} 0.75' in text


def test_a_breached_rule_keeps_a_trading_bot_from_opening(tmp_path):
    """Initial balance 20 000 with max loss 10 %: the sim's 10 000 is far below the 18 000 floor."""
    from bot.engine import Engine, EngineObserver
    from bot.engine.strategies import load_strategies
    from bot.gateway.factory import make_gateway
    from db import Repository, init_db
    from mt5bridge.sim import SimTerminal

    rules = tmp_path / "rules.yml"
    rules.write_text("max_loss: 10%\ninitial_balance: 20000\n")
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/p.db", "SYMBOLS": "EURUSD",
                                  "RULES_FILE": str(rules), "HISTORY_IMPORT": "off"}, dotenv_path=None)

    class Seen(EngineObserver):
        def __init__(self):
            self.halts, self.rules, self.signals = [], [], 0

        def new_orders_halted(self, reason, source):
            self.halts.append(reason)

        def prop_rules(self, statuses):
            self.rules = statuses

        def cycle_finished(self, report):
            self.signals += sum(action != "HOLD" for _, _, action in report.signal_keys)

    sim = SimTerminal(seed=4, stepped=True)
    database = init_db(settings.database_url)
    observer = Seen()
    engine = Engine(settings, make_gateway(settings, sim), Repository(database), load_strategies(settings.strategies),
                    observer)
    for _ in range(400):
        sim.advance(60)
        engine.run_cycle()
    database.dispose()
    assert observer.signals > 0  # the strategies were asked and wanted to trade ...
    assert [o for o in sim.history_orders_get(EPOCH, FAR) if o.magic == settings.magic] == []  # ... nothing opened
    assert observer.halts[0] == "prop_rule"
    max_loss = next(s for s in observer.rules if s.rule == "max_loss")
    assert max_loss.breached and max_loss.headroom == D("10000.00") - D("18000.00")
