"""The calls the stand-in added to the simulator: history by date, ticks, the book, the stand-in module.

They must agree with the reads that already existed (copy_rates_from_pos, symbol_info_tick), never
return the future, and skip the weekend like every other view of the simulated market.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import mt5bridge.sim.mt5module as mt5
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def api():
    terminal = SimTerminal(seed=9, stepped=True)
    api = Mt5Module(terminal)
    assert api.initialize() is True
    terminal.advance(3 * 3600 + 30)  # Monday 03:00:30: three closed hours and a forming M1 bar
    return api


def test_rates_by_date_are_the_bars_by_position(api):
    by_pos = api.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M5, 0, 12)
    now = datetime.fromtimestamp(int(by_pos["time"][-1]) + 30, UTC)
    assert np.array_equal(api.copy_rates_from("EURUSD", mt5.TIMEFRAME_M5, now, 12), by_pos)
    first = datetime.fromtimestamp(int(by_pos["time"][0]), UTC)
    ranged = api.copy_rates_range("EURUSD", mt5.TIMEFRAME_M5, first, now)
    assert np.array_equal(ranged, by_pos)
    # A range that starts one second after a bar opened excludes that bar (open time inside the range).
    later = api.copy_rates_range("EURUSD", mt5.TIMEFRAME_M5, first + timedelta(seconds=1), now)
    assert np.array_equal(later, by_pos[1:])


def test_nothing_from_the_future(api):
    future = MONDAY + timedelta(days=3)
    rates = api.copy_rates_range("EURUSD", mt5.TIMEFRAME_M1, MONDAY, future)
    assert len(rates) == 3 * 60 + 1  # 03:00 is the forming bar, the last one
    assert int(rates["time"][-1]) == int((MONDAY + timedelta(hours=3)).timestamp())
    ticks = api.copy_ticks_range("EURUSD", MONDAY + timedelta(hours=3), future, mt5.COPY_TICKS_ALL)
    assert int(ticks["time"].max()) <= int((MONDAY + timedelta(hours=3, seconds=30)).timestamp())
    assert len(api.copy_rates_from("EURUSD", mt5.TIMEFRAME_M1, future, 5)) == 5


def test_ticks_are_the_changes_inside_the_bars(api):
    [bar] = api.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 1, 1)  # the last closed minute
    opened = datetime.fromtimestamp(int(bar["time"]), UTC)
    ticks = api.copy_ticks_range("EURUSD", opened, opened + timedelta(seconds=59), mt5.COPY_TICKS_ALL)
    assert len(ticks) > 1
    assert ticks["bid"].max() == pytest.approx(bar["high"]) and ticks["bid"].min() >= bar["low"] - 1e-9
    assert ticks["bid"][-1] == pytest.approx(bar["close"])
    assert np.all(np.diff(ticks["time"]) > 0) and np.all(ticks["time_msc"] == ticks["time"] * 1000)
    assert np.all(ticks["flags"] & (mt5.TICK_FLAG_BID | mt5.TICK_FLAG_ASK))
    assert np.all(ticks["ask"] > ticks["bid"])
    five = api.copy_ticks_from("EURUSD", opened, 5, mt5.COPY_TICKS_ALL)
    assert np.array_equal(five, ticks[:5])
    assert len(api.copy_ticks_from("EURUSD", opened, 5, mt5.COPY_TICKS_TRADE)) == 0  # forex: no trades


def test_the_weekend_has_no_bars():
    terminal = SimTerminal(seed=9, stepped=True, start=MONDAY + timedelta(days=7, hours=1))
    api = Mt5Module(terminal)
    api.initialize()
    friday_evening = MONDAY + timedelta(days=4, hours=23)
    rates = api.copy_rates_range(
        "EURUSD", mt5.TIMEFRAME_H1, friday_evening, MONDAY + timedelta(days=7, hours=1)
    )
    opened = [datetime.fromtimestamp(int(t), UTC) for t in rates["time"]]
    assert opened == [friday_evening, MONDAY + timedelta(days=7), MONDAY + timedelta(days=7, hours=1)]


def test_the_book_is_a_ladder_around_the_quote(api):
    assert api.market_book_get("EURUSD") is None and api.last_error()[0] == mt5.RES_E_NOT_FOUND
    assert api.market_book_release("EURUSD") is False
    assert api.market_book_add("EURUSD") is True
    book = api.market_book_get("EURUSD")
    tick = api.symbol_info_tick("EURUSD")
    sells = [level for level in book if level.type == mt5.BOOK_TYPE_SELL]
    buys = [level for level in book if level.type == mt5.BOOK_TYPE_BUY]
    assert book == (*sells, *buys) and len(sells) == len(buys) == 5
    assert [level.price for level in sells] == sorted((level.price for level in sells), reverse=True)
    assert [level.price for level in buys] == sorted((level.price for level in buys), reverse=True)
    assert sells[-1].price == tick.ask and buys[0].price == tick.bid
    assert all(level.volume_dbl > 0 for level in book)
    assert api.market_book_release("EURUSD") is True
    assert api.market_book_get("EURUSD") is None


def test_the_module_acts_on_the_attached_terminal():
    terminal = SimTerminal(seed=4, stepped=True)
    mt5.attach(terminal)
    assert mt5.initialize() is True
    assert mt5.account_info().login == terminal.account_info().login
    assert mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 1) is not None
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1, 1.1) is None  # 1 is not a float
    assert terminal.last_error() == mt5.last_error() == (-2, 'Invalid "volume" argument')
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1) == 1100.0  # 100000 * 1.1 / 100
