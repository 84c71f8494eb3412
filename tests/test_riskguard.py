"""The account risk guard (bot/engine/riskguard.py) against the simulated terminal's own margin rules,
on every shipped broker profile (leverage, account currency, volume step, symbol names): the volumes
the cases expect are derived from what the profile's terminal says (margin and profit per lot)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from sim_profile_helpers import broker_name, market_deal, shipped_profiles

from bot.config import Settings
from bot.engine.riskguard import Entry, RiskGuard, RiskLimits
from bot.gateway import AccountState, GatewayError, OrderRequest
from bot.gateway.factory import make_gateway
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

DAY = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MAGIC = 20260101


def limits(**changes) -> RiskLimits:
    base = RiskLimits(max_margin_usage=Decimal(30), margin_check=True, daily_loss=Decimal(3), daily_loss_percent=True,
                      max_drawdown=Decimal(10), max_open_positions=8, max_total_risk=Decimal(6))
    return replace(base, **changes)


def account(equity: str, margin: str = "0", balance: str | None = None) -> AccountState:
    equity_d, margin_d = Decimal(equity), Decimal(margin)
    return AccountState(login=1, currency="USD", balance=Decimal(balance or equity), equity=equity_d,
                        profit=Decimal(0), margin=margin_d, free_margin=equity_d - margin_d,
                        margin_level=equity_d / margin_d * 100 if margin_d else None, leverage=100)


@pytest.fixture(params=shipped_profiles())
def gateway(request):
    symbol = broker_name(request.param, "EURUSD")
    settings = Settings.from_env({"DATABASE_URL": "sqlite://", "gateway.symS": symbol}, dotenv_path=None)
    sim = SimTerminal(seed=3, stepped=True, profile=request.param)
    gw = make_gateway(settings, sim=sim)
    gw.connect()
    gw.sim, gw.sym = sim, symbol  # the profile's terminal and its name of EURUSD, for the cases below
    yield gw
    gw.close()


def guard_for(gateway, **changes) -> tuple[RiskGuard, dict]:
    specs = {gateway.sym: gateway.symbol(gateway.sym)}
    return RiskGuard(limits(**changes), gateway, specs, MAGIC), specs


def entry(gateway, specs, volume, sl_points: int = 200) -> Entry:
    spec = specs[gateway.sym]
    ask = gateway.quote(gateway.sym).ask
    return Entry(spec, "BUY", Decimal(volume), ask, ask - spec.point * sl_points, ask + spec.point * 300)


def lots_for_margin(gateway, spec, money: Decimal) -> Decimal:
    """The volume (on the volume step) whose margin is about `money`, by the terminal's own figure."""
    per_lot = gateway.order_calc_margin("BUY", gateway.sym, Decimal(1), gateway.quote(gateway.sym).ask)
    steps = (money / per_lot / spec.volume_step).to_integral_value(rounding=ROUND_DOWN)
    return min(steps * spec.volume_step, spec.volume_max)


def test_margin_cap_shrinks_an_entry_to_the_volume_step(gateway):
    guard, specs = guard_for(gateway, max_total_risk=Decimal(1000))
    state = gateway.account()
    guard.observe(DAY, state)
    cap = state.equity * Decimal("0.30")
    wanted = entry(gateway, specs, lots_for_margin(gateway, specs[gateway.sym], cap * 2))  # twice the cap's margin
    volume = guard.vet(wanted)
    assert volume is not None and specs[gateway.sym].volume_min <= volume < wanted.volume
    assert volume == volume.quantize(specs[gateway.sym].volume_step)
    assert gateway.order_calc_margin("BUY", gateway.sym, volume, wanted.price) <= cap
    one_step_more = volume + specs[gateway.sym].volume_step
    assert gateway.order_calc_margin("BUY", gateway.sym, one_step_more, wanted.price) > cap
    assert guard.refusals[("margin_usage", "resized")] == 1


class HalfMargin:
    """The terminal's order_calc_margin says half of what order_check then requires (they can disagree)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def order_calc_margin(self, side, symbol, volume, price):
        return self.real.order_calc_margin(side, symbol, volume, price) / 2


def test_an_order_the_terminal_refuses_for_money_is_shrunk_until_it_would_pass(gateway):
    specs = {gateway.sym: gateway.symbol(gateway.sym)}
    guard = RiskGuard(limits(max_margin_usage=Decimal(100), max_total_risk=Decimal(1000)), HalfMargin(gateway),
                      specs, MAGIC)
    state = gateway.account()
    guard.observe(DAY, state)
    # 1.5 times the free margin: the cap, believing half of it, finds it within 100 %
    wanted = entry(gateway, specs, lots_for_margin(gateway, specs[gateway.sym], state.free_margin * Decimal("1.5")))
    refused = gateway.order_check(OrderRequest(gateway.sym, "BUY", wanted.volume, wanted.price, None, None, 20, MAGIC, "x"))
    assert refused.retcode == 10019  # the sim's strict stand-in says "No money" for this one
    volume = guard.vet(wanted)
    assert volume is not None and volume < wanted.volume
    check = gateway.order_check(OrderRequest(gateway.sym, "BUY", volume, wanted.price, wanted.sl, wanted.tp, 20, MAGIC, "x"))
    assert check.retcode == 0 and check.margin_free >= 0
    assert guard.refusals[("no_money", "resized")] == 1


def test_an_account_without_free_margin_skips_the_entry(gateway):
    guard, specs = guard_for(gateway)
    guard.observe(DAY, account("10000", margin="3000"))  # already at the 30 % cap
    assert guard.vet(entry(gateway, specs, "0.10")) is None
    assert guard.refusals[("margin_usage", "skipped")] == 1


def test_daily_loss_halts_new_entries_until_the_next_broker_day(gateway):
    guard, specs = guard_for(gateway)
    guard.observe(DAY, account("10000"))
    guard.observe(DAY + timedelta(hours=1), account("9750"))  # -2.5 %: within 3 %
    assert guard.halted_reason is None
    guard.observe(DAY + timedelta(hours=2), account("9690"))  # -3.1 %
    assert guard.halted_reason == "daily_loss"
    assert guard.vet(entry(gateway, specs, "0.01")) is None
    assert guard.refusals[("daily_loss", "skipped")] == 1
    guard.observe(DAY + timedelta(hours=3), account("9800"))  # latched: a partial recovery does not lift it
    assert guard.halted_reason == "daily_loss"
    guard.observe(DAY + timedelta(days=1), account("9800"))  # the next broker day
    assert guard.halted_reason is None and guard.day_start_equity == Decimal("9800")
    assert guard.vet(entry(gateway, specs, "0.01")) == Decimal("0.01")


def test_a_money_daily_loss_limit(gateway):
    guard, _ = guard_for(gateway, daily_loss=Decimal(250), daily_loss_percent=False)
    guard.observe(DAY, account("10000"))
    guard.observe(DAY, account("9751"))
    assert guard.halted_reason is None
    guard.observe(DAY, account("9750"))
    assert guard.halted_reason == "daily_loss"


def test_drawdown_from_the_peak_halts_and_an_operator_resume_lifts_it(gateway):
    guard, specs = guard_for(gateway, daily_loss=Decimal(100))
    guard.observe(DAY, account("10000"))
    guard.observe(DAY + timedelta(hours=1), account("12000"))  # new peak
    guard.observe(DAY + timedelta(days=1), account("11000"))  # -8.3 % from the peak
    assert guard.halted_reason is None
    guard.observe(DAY + timedelta(days=1, hours=1), account("10790"))  # -10.1 %
    assert guard.halted_reason == "max_drawdown"
    assert guard.resume() == ["max_drawdown"]
    assert guard.peak_equity == Decimal("10790")  # rebased: it does not latch again at once
    guard.observe(DAY + timedelta(days=1, hours=2), account("10790"))
    assert guard.halted_reason is None
    assert guard.vet(entry(gateway, specs, "0.01")) == Decimal("0.01")


def test_pause_refuses_entries_until_resume(gateway):
    guard, specs = guard_for(gateway)
    guard.observe(DAY, gateway.account())
    assert guard.pause() and not guard.pause()
    assert guard.vet(entry(gateway, specs, "0.01")) is None
    guard.observe(DAY + timedelta(days=1), gateway.account())  # a day roll does not lift a pause
    assert guard.halted_reason == "operator_pause"
    assert guard.resume() == ["operator_pause"]
    assert guard.vet(entry(gateway, specs, "0.01")) == Decimal("0.01")


def test_open_positions_cap_and_total_risk_at_stops(gateway):
    guard, specs = guard_for(gateway, max_open_positions=1, max_total_risk=Decimal("1"))
    state = gateway.account()
    guard.observe(DAY, state)
    # 1 % of equity at risk; the terminal's own value of a losing tick (trade_tick_value_loss, in the
    # account currency) prices a 200-point stop (on the demo: 100 of 10 000, 200 per lot: 0.50 lots).
    spec = specs[gateway.sym]
    ask = gateway.quote(gateway.sym).ask
    info = gateway.sim.symbol_info(gateway.sym)
    per_lot = Decimal(str(info.trade_tick_value_loss)) * 200 * spec.point / Decimal(str(info.trade_tick_size))
    expected = (state.equity / 100 / per_lot / spec.volume_step).to_integral_value(rounding=ROUND_DOWN) * spec.volume_step
    assert guard.vet(entry(gateway, specs, "2.00", sl_points=200)) == expected
    assert guard.refusals[("total_risk", "resized")] == 1
    opened = market_deal(gateway.sim, gateway.sym, "BUY", 0.10, magic=MAGIC, comment="tw0000000001 t", deviation=20)
    assert opened.retcode == mt5.TRADE_RETCODE_DONE, opened
    gateway.sim.order_send({"action": mt5.TRADE_ACTION_SLTP, "symbol": gateway.sym, "position": opened.order,
                            "sl": float(ask - spec.point * 200), "tp": 0.0})
    assert guard.vet(entry(gateway, specs, "0.10")) is None
    assert guard.refusals[("max_open_positions", "skipped")] == 1


def test_a_halt_survives_a_restart_through_the_state_file(gateway, tmp_path):
    path = str(tmp_path / "risk_state.json")
    guard, _ = guard_for(gateway)
    guard.use_state_file(path)
    guard.observe(DAY, account("10000"))
    guard.observe(DAY, account("9600"))
    assert guard.halted_reason == "daily_loss"
    again, _ = guard_for(gateway)
    again.use_state_file(path)
    assert again.halted_reason == "daily_loss"  # from the first cycle on, before any entry
    again.observe(DAY + timedelta(hours=1), account("9650"))  # the same broker day: still halted
    assert again.halted_reason == "daily_loss" and again.day_start_equity == Decimal("10000")
    other, _ = guard_for(gateway)
    other.use_state_file(path)
    other.observe(DAY + timedelta(hours=1), replace(account("9650"), login=2))  # another account's file
    assert other.halted_reason is None and other.day_start_equity == Decimal("9650")


class NoChecks:
    """A gateway whose terminal cannot answer order_check / order_calc_margin (the base Gateway's default)."""

    def __init__(self, real):
        self.real = real

    def positions(self):
        return self.real.positions()

    def account(self):
        return self.real.account()

    def order_check(self, request):
        raise GatewayError("order_check: not supported by this gateway")

    def order_calc_margin(self, *args):
        raise GatewayError("order_calc_margin: not supported by this gateway")


def test_a_terminal_that_cannot_check_lets_the_entry_go_and_counts_it(gateway):
    specs = {gateway.sym: gateway.symbol(gateway.sym)}
    guard = RiskGuard(limits(), NoChecks(gateway), specs, MAGIC)
    guard.observe(DAY, gateway.account())
    assert guard.vet(entry(gateway, specs, "0.10")) == Decimal("0.10")
    assert guard.refusals[("check_unavailable", "unchecked")] >= 1


def test_an_unreadable_state_file_is_said_and_the_guard_starts_afresh(gateway, tmp_path, caplog):
    path = tmp_path / "risk_state.json"
    path.write_text('{"day": "not a date"', encoding="utf-8")
    guard, _ = guard_for(gateway)
    guard.use_state_file(str(path))
    assert guard.halted_reason is None and guard.day is None
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    guard.observe(DAY, account("10000"))
    guard.close()
    assert '"day_start_equity": "10000"' in path.read_text(encoding="utf-8")
