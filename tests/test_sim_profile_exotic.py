"""request-exotic: a EUR account on a fixed GMT+3 clock with Request execution (price required,
requotes), 0.001 lot steps, an index CFD moving in 0.25 ticks with unleveraged margin, a
futures-style gold contract and a triple swap on Friday.
"""

import pytest
from sim_profile_helpers import buy, terminal, utc

from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

PROFILE = "request-exotic"
TUESDAY = utc(2026, 1, 6, 10, 0)  # 13:00 server time


@pytest.fixture
def term():
    term = terminal(PROFILE, TUESDAY)
    term.set_price("EURUSDi", 1.25000, 1.25010)
    return term


def test_fixed_gmt3_clock_in_winter_and_summer_and_a_eur_account():
    for start in (TUESDAY, utc(2026, 7, 7, 10, 0)):
        term = terminal(PROFILE, start)
        assert term.symbol_info_tick("EURUSDi").time == start.timestamp() + 3 * 3600
    assert term.account_info().currency == "EUR"


def test_request_execution_needs_a_price_and_requotes(term):
    assert term.symbol_info("EURUSDi").trade_exemode == mt5.SYMBOL_TRADE_EXECUTION_REQUEST
    assert buy(term, "EURUSDi", 0.01).retcode == mt5.TRADE_RETCODE_INVALID_PRICE  # no price
    assert buy(term, "EURUSDi", 0.01, price=1.25000, deviation=5).retcode == mt5.TRADE_RETCODE_REQUOTE
    # at the quoted price the dealer still requotes a seeded share of requests (25 %)
    codes = [buy(term, "EURUSDi", 0.01, price=1.2501, deviation=5).retcode for _ in range(40)]
    requoted = codes.count(mt5.TRADE_RETCODE_REQUOTE)
    assert set(codes) == {mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_REQUOTE} and 3 <= requoted <= 20
    replay = terminal(PROFILE, TUESDAY)
    replay.set_price("EURUSDi", 1.25000, 1.25010)
    buy(replay, "EURUSDi", 0.01)
    buy(replay, "EURUSDi", 0.01, price=1.25000, deviation=5)
    assert [buy(replay, "EURUSDi", 0.01, price=1.2501, deviation=5).retcode for _ in range(40)] == codes


@pytest.mark.parametrize(
    ("volume", "retcode"),
    [(0.001, mt5.TRADE_RETCODE_DONE), (0.123, mt5.TRADE_RETCODE_DONE), (0.0015, mt5.TRADE_RETCODE_INVALID_VOLUME)],
)
def test_volume_steps_of_a_thousandth_lot(term, volume, retcode):
    codes = {buy(term, "EURUSDi", volume, price=1.2501).retcode for _ in range(6)}  # some are requoted
    assert retcode in codes and codes <= {retcode, mt5.TRADE_RETCODE_REQUOTE}


def test_index_moves_in_quarter_ticks_and_off_grid_prices_are_refused():
    term = terminal(PROFILE, TUESDAY)
    info = term.symbol_info("#US500")
    assert (info.point, info.trade_tick_size, info.digits) == (0.01, 0.25, 2)
    for _ in range(50):
        tick = term.symbol_info_tick("#US500")
        assert (tick.bid * 4) % 1 == 0 and (tick.ask * 4) % 1 == 0, tick
        term.advance(37)
    bars = term.copy_rates_from_pos("#US500", mt5.TIMEFRAME_M1, 0, 30)
    assert all((bar[field] * 4) % 1 == 0 for bar in bars for field in ("open", "high", "low", "close"))
    term.set_price("#US500", 6850.00, 6850.50)
    assert buy(term, "#US500", 1.0, price=6850.10).retcode == mt5.TRADE_RETCODE_INVALID_PRICE
    assert buy(term, "#US500", 1.0, price=6850.50, sl=6800.10).retcode == mt5.TRADE_RETCODE_INVALID_STOPS
    assert buy(term, "#US500", 1.0, price=6850.50, sl=6800.25).retcode == mt5.TRADE_RETCODE_DONE


def test_cfd_margin_has_no_leverage_and_converts_to_eur(term):
    term.set_price("#US500", 6850.00, 6850.50)
    # CFD: 1 lot * 1 * 6850.00 = 6850.00 USD, / EURUSDi bid 1.25000 = 5480.00 EUR (leverage ignored)
    assert term.order_calc_margin(mt5.ORDER_TYPE_BUY, "#US500", 1.0, 6850.0) == 5480.00
    # profit: (6860.00 - 6850.50) * 1 * 2 lots = 19.00 USD = 15.20 EUR
    assert term.order_calc_profit(mt5.ORDER_TYPE_BUY, "#US500", 2.0, 6850.5, 6860.0) == 15.20


def test_futures_margin_and_profit_use_initial_margin_and_tick_value(term):
    info = term.symbol_info("GOLD.f")
    assert (info.trade_calc_mode, info.trade_tick_size) == (mt5.SYMBOL_CALC_MODE_FUTURES, 0.1)
    assert info.trade_tick_value == pytest.approx(10 / 1.25)  # 10 USD per tick in EUR
    # 2 lots * 4000 USD initial margin = 8000 USD = 6400.00 EUR
    assert term.order_calc_margin(mt5.ORDER_TYPE_BUY, "GOLD.f", 2.0, 4000.0) == 6400.00
    # (4010.0 - 4000.0) / 0.1 ticks * 10 USD * 1 lot = 1000 USD = 800.00 EUR
    assert term.order_calc_profit(mt5.ORDER_TYPE_BUY, "GOLD.f", 1.0, 4000.0, 4010.0) == 800.00


def test_eur_account_books_forex_profit_and_commission_in_eur(term):
    opened = buy(term, "EURUSDi", 0.5, price=1.2501)
    while opened.retcode == mt5.TRADE_RETCODE_REQUOTE:
        opened = buy(term, "EURUSDi", 0.5, price=1.2501)
    term.set_price("EURUSDi", 1.26000, 1.26010)
    # (1.26000 - 1.25010) * 100000 * 0.5 = 495.00 USD, at the close price 1.26000 = 392.86 EUR
    assert term.positions_get(ticket=opened.order)[0].profit == 392.86
    assert term.history_deals_get(ticket=opened.order)[0].commission == -2.5  # 0.5 lot * -5.00


def test_index_triple_swap_is_on_friday_in_account_currency():
    term = terminal(PROFILE, utc(2026, 1, 8, 10, 0))  # Thursday 13:00 server
    term.set_price("EURUSDi", 1.25000, 1.25010)
    term.set_price("#US500", 6850.00, 6850.50)
    ticket = buy(term, "#US500", 1.0, price=6850.50).order
    term.advance(12 * 3600)  # past Thursday's server midnight (21:00 UTC): one day, -1.20 EUR per lot
    assert term.positions_get(ticket=ticket)[0].swap == -1.2
    term.advance(24 * 3600)  # past Friday's: three days (the weekend), -3.60
    assert term.positions_get(ticket=ticket)[0].swap == pytest.approx(-4.8)


def test_index_trade_session_opens_at_0105_server_time():
    term = terminal(PROFILE, utc(2026, 1, 6, 22, 2))  # Wednesday 01:02 server
    term.set_price("#US500", 6850.00, 6850.50)
    assert buy(term, "#US500", 1.0, price=6850.50).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED  # opens 01:05
    term.advance(180)
    assert buy(term, "#US500", 1.0, price=6850.50).retcode == mt5.TRADE_RETCODE_DONE


def test_state_file_remembers_the_profile(tmp_path):
    state = str(tmp_path / "sim.json")
    SimTerminal(profile=PROFILE, stepped=True, start=TUESDAY, state_file=state)
    with pytest.raises(ValueError, match="belongs to broker profile 'request-exotic', not 'demo'"):
        SimTerminal(stepped=True, state_file=state)
