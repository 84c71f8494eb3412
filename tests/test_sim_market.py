"""The simulated market: seeded determinism, realistic prices, bars that agree with ticks,
weekends, SL/TP on the natural path independent of polling, and speed."""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mt5bridge.constants import (
    DEAL_ENTRY_OUT,
    DEAL_REASON_SL,
    DEAL_REASON_TP,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TIMEFRAME_H1,
    TIMEFRAME_H4,
    TIMEFRAME_M1,
    TIMEFRAME_M5,
    TIMEFRAME_M15,
    TIMEFRAME_M30,
    TIMEFRAME_SECONDS,
    TRADE_ACTION_DEAL,
    TRADE_RETCODE_DONE,
)
from mt5bridge.sim import SimTerminal

SYMBOLS = ["EURUSD", "GBPUSD", "AUDUSD", "USDJPY", "USDCHF", "XAUUSD"]
START = datetime(2026, 1, 5, tzinfo=UTC)


def make_terminal(**kwargs) -> SimTerminal:
    kwargs.setdefault("stepped", True)
    terminal = SimTerminal(**kwargs)
    assert terminal.initialize()
    return terminal


def snapshot(term: SimTerminal) -> list:
    """Ticks and recent bars of every symbol and timeframe."""
    out = []
    for symbol in SYMBOLS:
        out.append(term.symbol_info_tick(symbol))
        for timeframe in TIMEFRAME_SECONDS:
            out.append(term.copy_rates_from_pos(symbol, timeframe, 0, 50).tolist())
    return out


def test_default_start_is_the_fixed_monday():
    term = make_terminal()
    assert term.now() == START
    assert term.symbol_info_tick("EURUSD").time == int(START.timestamp())


def test_same_seed_same_prices_regardless_of_call_pattern():
    quiet, busy = make_terminal(seed=7), make_terminal(seed=7)
    for _ in range(37):  # busy is polled all the way, quiet jumps
        busy.advance(97)
        snapshot(busy)
    quiet.advance(37 * 97)
    assert snapshot(quiet) == snapshot(busy)


def test_different_seed_different_prices():
    one, other = make_terminal(seed=1), make_terminal(seed=2)
    one.advance(3600)
    other.advance(3600)
    assert not np.array_equal(
        one.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, 0, 60),
        other.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, 0, 60),
    )
    assert one.symbol_info_tick("XAUUSD") != other.symbol_info_tick("XAUUSD")


def test_realistic_levels_and_spreads():
    term = make_terminal()
    term.advance(8 * 3600)  # 08:00 UTC, London session
    expectations = {  # (low, high) plausible price, (low, high) typical spread in points
        "EURUSD": ((1.10, 1.25), (5, 20)),
        "USDJPY": ((145, 168), (8, 30)),
        "XAUUSD": ((4000, 4700), (12, 50)),
    }
    for symbol, ((low, high), (spread_low, spread_high)) in expectations.items():
        info = term.symbol_info(symbol)
        assert low < info.bid < high
        assert info.ask > info.bid
        rates = term.copy_rates_from_pos(symbol, TIMEFRAME_M1, 0, 600)
        assert spread_low <= np.median(rates["spread"]) <= spread_high
        assert info.spread == round((info.ask - info.bid) / info.point)


def test_symbol_specifications():
    term = make_terminal()
    eurusd, usdjpy, gold = (term.symbol_info(s) for s in ("EURUSD", "USDJPY", "XAUUSD"))
    assert (eurusd.digits, eurusd.point, eurusd.trade_contract_size, eurusd.trade_tick_value) == (
        5,
        1e-05,
        1e5,
        1.0,
    )
    assert (usdjpy.digits, usdjpy.currency_profit, usdjpy.currency_margin) == (3, "JPY", "USD")
    assert usdjpy.trade_tick_value == pytest.approx(0.001 * 100000 / usdjpy.bid, rel=1e-5)
    assert (gold.digits, gold.trade_contract_size, gold.trade_tick_value, gold.volume_max) == (
        2,
        100.0,
        1.0,
        50.0,
    )
    assert (eurusd.volume_min, eurusd.volume_max, eurusd.volume_step) == (0.01, 100.0, 0.01)
    # gold is margined with leverage, so its calc mode is CFD-leverage (4), not CFD (2): issue 11
    assert gold.trade_calc_mode == 4 and eurusd.trade_calc_mode == 0
    assert {s.name for s in term.symbols_get()} == set(SYMBOLS)
    assert {s.name for s in term.symbols_get(group="USD*")} == {"USDJPY", "USDCHF"}
    assert term.symbols_total() == 6
    assert term.symbol_info("NOPE") is None and term.last_error()[0] == -4
    assert term.symbol_select("EURUSD", True) is True


def test_volatility_is_realistic():
    """About a month of H1 closes: hourly moves annualise near the symbols' 7% / 15% targets."""
    term = make_terminal(start=START + timedelta(days=30))
    for symbol, target in (("EURUSD", 0.07), ("XAUUSD", 0.15)):
        closes = term.copy_rates_from_pos(symbol, TIMEFRAME_H1, 0, 500)["close"]
        annualised = np.diff(np.log(closes)).std() * np.sqrt(24 * 260)
        assert target * 0.5 < annualised < target * 1.5, (symbol, annualised)


def test_trend_regimes_give_moving_average_crossovers():
    term = make_terminal(start=START + timedelta(days=30))
    closes = term.copy_rates_from_pos("EURUSD", TIMEFRAME_M15, 0, 2000)["close"]
    fast = np.convolve(closes, np.ones(10) / 10, "valid")[-len(closes) + 49 :]
    slow = np.convolve(closes, np.ones(50) / 50, "valid")
    crossings = np.count_nonzero(np.diff(np.sign(fast - slow)))
    assert 5 < crossings < 300


@pytest.mark.parametrize(
    "timeframe", [TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M15, TIMEFRAME_M30, TIMEFRAME_H1]
)
def test_bars_agree_with_ticks(timeframe):
    term = make_terminal()
    seconds = TIMEFRAME_SECONDS[timeframe]
    term.advance(3 * 86400 + 5 * 3600 + 17)
    for _ in range(5):
        term.advance(seconds // 3 + 1)
        tick = term.symbol_info_tick("EURUSD")
        bar = term.copy_rates_from_pos("EURUSD", timeframe, 0, 1)[0]
        assert bar["time"] == tick.time - tick.time % seconds
        assert bar["close"] == tick.bid
        assert bar["low"] <= tick.bid <= bar["high"]
        assert bar["low"] <= bar["open"] <= bar["high"]


def test_bars_across_timeframes_are_consistent():
    term = make_terminal()
    term.advance(2 * 86400 + 3600 * 7 + 123)
    m1 = term.copy_rates_from_pos("GBPUSD", TIMEFRAME_M1, 0, 600)
    h1 = term.copy_rates_from_pos("GBPUSD", TIMEFRAME_H1, 0, 10)
    for bar in h1[:-1]:
        inside = m1[(m1["time"] >= bar["time"]) & (m1["time"] < bar["time"] + 3600)]
        if len(inside) < 60:
            continue
        assert bar["open"] == inside["open"][0] and bar["close"] == inside["close"][-1]
        assert bar["high"] == inside["high"].max() and bar["low"] == inside["low"].min()
        assert bar["spread"] == inside["spread"].min()
        assert bar["tick_volume"] >= inside["tick_volume"].max()


def test_history_before_start_and_no_weekend_bars():
    term = make_terminal()
    h1 = term.copy_rates_from_pos("USDJPY", TIMEFRAME_H1, 0, 600)
    assert len(h1) == 600 and h1.dtype.names == (
        "time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"
    )  # fmt: skip
    times = h1["time"]
    assert np.all(np.diff(times) > 0) and np.all(times % 3600 == 0)
    assert times[0] < START.timestamp() - 500 * 3600
    weekdays = {datetime.fromtimestamp(int(t), UTC).weekday() for t in times}
    assert weekdays == {0, 1, 2, 3, 4}
    assert np.all(h1["low"] <= np.minimum(h1["open"], h1["close"]))
    assert np.all(h1["high"] >= np.maximum(h1["open"], h1["close"]))
    older = term.copy_rates_from_pos("USDJPY", TIMEFRAME_H1, 100, 500)
    assert np.array_equal(older, h1[:500])


def test_copy_rates_bad_arguments():
    term = make_terminal()
    assert term.copy_rates_from_pos("EURUSD", TIMEFRAME_H4, 0, 10) is None  # not simulated
    assert term.copy_rates_from_pos("EURUSD", 12345, 0, 10) is None
    assert term.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, -1, 10) is None
    assert term.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, 0, 0) is None
    assert term.copy_rates_from_pos("NOPE", TIMEFRAME_M1, 0, 10) is None
    assert term.last_error()[0] == -4


def test_weekend_freezes_prices():
    term = make_terminal(start=datetime(2026, 1, 9, 23, 58, tzinfo=UTC))  # Friday
    friday = term.symbol_info_tick("EURUSD")
    term.advance(120)  # Saturday 00:00
    saturday = term.symbol_info_tick("EURUSD")
    assert saturday.time == int(datetime(2026, 1, 9, 23, 59, 59, tzinfo=UTC).timestamp())
    term.advance(36 * 3600)  # Sunday noon
    assert term.symbol_info_tick("EURUSD") == saturday
    assert term.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, 0, 1)[0]["time"] == saturday.time - 59
    term.advance(12 * 3600 + 30)  # Monday 00:00:30
    monday = term.symbol_info_tick("EURUSD")
    assert monday.time == int(datetime(2026, 1, 12, 0, 0, 30, tzinfo=UTC).timestamp())
    assert friday.time < saturday.time < monday.time


def _open(term, order_type, **stops):
    request = {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0, "type": order_type, **stops}
    result = term.order_send(request)
    assert result.retcode == TRADE_RETCODE_DONE, result
    return result.order


def _close_deals(term):
    deals = term.history_deals_get(0, 2**40)
    return [(d.position_id, d.time, d.price, d.reason, d.profit) for d in deals if d.entry == DEAL_ENTRY_OUT]


def test_stops_on_the_seeded_path_are_independent_of_polling():
    jumper, poller = make_terminal(seed=11), make_terminal(seed=11)
    for term in (jumper, poller):
        tick = term.symbol_info_tick("EURUSD")
        point = 0.00001
        _open(term, ORDER_TYPE_BUY, sl=round(tick.bid - 40 * point, 5), tp=round(tick.bid + 60 * point, 5))
        _open(term, ORDER_TYPE_SELL, sl=round(tick.ask + 45 * point, 5), tp=round(tick.ask - 35 * point, 5))
        _open(term, ORDER_TYPE_BUY, sl=round(tick.bid - 300 * point, 5))
    jumper.advance(2 * 86400)
    for _ in range(2 * 24 * 6):
        poller.advance(600)
        poller.positions_get()
    assert _close_deals(jumper) == _close_deals(poller)
    assert jumper.account_info() == poller.account_info()
    closes = _close_deals(jumper)
    assert len(closes) >= 2 and {c[3] for c in closes} <= {DEAL_REASON_SL, DEAL_REASON_TP}

    # Each close is at exactly its level, on the first tick that reached it.
    m1 = jumper.copy_rates_from_pos("EURUSD", TIMEFRAME_M1, 0, 3000)
    probe = make_terminal(seed=11)
    for position_id, close_time, price, reason, _ in closes:
        opened = jumper.history_orders_get(ticket=position_id)[0]
        level = opened.sl if reason == DEAL_REASON_SL else opened.tp
        assert price == level
        long_ = opened.type == ORDER_TYPE_BUY

        def reached(tick, long_=long_, reason=reason, level=level):
            watched = tick.bid if long_ else tick.ask
            if reason == DEAL_REASON_SL:
                return watched <= level if long_ else watched >= level
            return watched >= level if long_ else watched <= level

        probe.advance(close_time - 1 - probe.now().timestamp())
        assert not reached(probe.symbol_info_tick("EURUSD"))
        probe.advance(1)
        assert reached(probe.symbol_info_tick("EURUSD"))
        if long_:  # bars are built from bids: no earlier minute may have reached a long's level
            before = m1[(m1["time"] >= opened.time_setup) & (m1["time"] < close_time - close_time % 60)]
            assert (
                len(before)
                and not (
                    before["low"] <= level if reason == DEAL_REASON_SL else before["high"] >= level
                ).any()
            )


def test_real_time_clock_runs_at_speed():
    term = make_terminal(stepped=False, speed=3600.0)
    before = term.now()
    time.sleep(0.05)
    elapsed = (term.now() - before).total_seconds()
    assert 150 <= elapsed <= 3600  # 0.05 s wall at 3600x = 180 s, generous upper bound for slow CI
    term.advance(86400)
    assert (term.now() - before).total_seconds() >= 86400


def test_a_polling_bot_makes_each_day_of_ticks_and_bars_once(monkeypatch):
    """What keeps polling cheap, counted rather than timed (a wall-time bound fails on a loaded
    machine): 500 polls of every symbol's bars and tick make each symbol's day of ticks and its
    M15 bars once, however many calls read them (the cost itself is `make bench`'s)."""
    from mt5bridge.sim import pricepath

    made: Counter = Counter()
    real_day, real_bars = pricepath.generate_day, pricepath.aggregate_bars

    def generate_day(levels, spec, seed, key, day):
        made[("ticks", spec.name, day)] += 1
        return real_day(levels, spec, seed, key, day)

    def aggregate_bars(spec, bid, spread, start, seconds):
        made[("bars", spec.name, start, seconds)] += 1
        return real_bars(spec, bid, spread, start, seconds)

    monkeypatch.setattr(pricepath, "generate_day", generate_day)
    monkeypatch.setattr(pricepath, "aggregate_bars", aggregate_bars)
    term = make_terminal()
    for _ in range(500):
        term.advance(1)
        for symbol in SYMBOLS:
            assert len(term.copy_rates_from_pos(symbol, TIMEFRAME_M15, 0, 100)) == 100
            assert term.symbol_info_tick(symbol) is not None
    assert made and max(made.values()) == 1, made.most_common(3)
    assert {name for _, name, *_ in made} >= set(SYMBOLS)
