"""retail-hedging: GMT+2/+3 server clock, ".m" names, Instant FOK-only forex, Market gold with IOC,
freeze and stops levels, gold outside Market Watch with a daily break, stop-out largest loss first.

Every figure is worked out by hand in the comments next to it; prices are pinned with set_price
and Instant-execution orders use deviation=0 (no slippage), so fills are exactly the quote.
"""

import pytest
from sim_profile_helpers import buy, modify, sell, terminal, utc, variant

from mt5bridge import constants as mt5

PROFILE = "retail-hedging"
TUESDAY = utc(2026, 1, 6, 10, 0)  # 12:00 server time (GMT+2 in winter)


@pytest.fixture
def term():
    return terminal(PROFILE, TUESDAY)


def test_times_are_the_server_wall_clock_gmt2_in_winter_gmt3_after_the_us_dst_date():
    winter = terminal(PROFILE, utc(2026, 3, 6, 12, 0))
    tick = winter.symbol_info_tick("EURUSD.m")
    assert tick.time == utc(2026, 3, 6, 14, 0).timestamp()  # 12:00 UTC + 2 h
    assert tick.time_msc == tick.time * 1000
    bar = winter.copy_rates_from_pos("EURUSD.m", mt5.TIMEFRAME_M1, 0, 1)[0]
    assert bar["time"] == tick.time  # the forming M1 bar opened this very minute
    order = buy(winter, "EURUSD.m", 0.1).order
    deal = winter.history_deals_get(ticket=order)[0]
    assert deal.time == tick.time and deal.time_msc == tick.time * 1000
    assert winter.history_orders_get(ticket=order)[0].time_setup == tick.time
    assert winter.positions_get(ticket=order)[0].time == tick.time
    # history arguments are read as server time too
    assert winter.history_deals_get(tick.time - 1, tick.time + 1) == (deal,)
    # US daylight saving starts Sunday 2026-03-08 07:00 UTC: the server clock becomes GMT+3.
    summer = terminal(PROFILE, utc(2026, 3, 9, 12, 0))
    assert summer.symbol_info_tick("EURUSD.m").time == utc(2026, 3, 9, 15, 0).timestamp()
    # ... and GMT+2 again after the first Sunday of November (2026-11-01 06:00 UTC).
    autumn = terminal(PROFILE, utc(2026, 11, 2, 12, 0))
    assert autumn.symbol_info_tick("EURUSD.m").time == utc(2026, 11, 2, 14, 0).timestamp()


def test_week_edges_follow_the_server_clock_across_the_dst_change():
    # Friday 2026-03-06 21:59:59 UTC is 23:59:59 server time (GMT+2): still open.
    term = terminal(PROFILE, utc(2026, 3, 6, 21, 59, 59))
    assert buy(term, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_DONE
    term.advance(1)  # 22:00 UTC = Saturday 00:00 server: the week is over
    assert buy(term, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED
    # Sunday 2026-03-08 20:59:59 UTC is Sunday 23:59:59 server time, now GMT+3: still closed.
    term.advance(utc(2026, 3, 8, 20, 59, 59).timestamp() - utc(2026, 3, 6, 22, 0).timestamp())
    assert buy(term, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED
    term.advance(1)  # 21:00 UTC = Monday 00:00 server: one hour earlier in UTC than a week before
    assert buy(term, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_DONE
    assert term.symbol_info_tick("EURUSD.m").time == utc(2026, 3, 9, 0, 0).timestamp()
    # the week before, Monday 00:00 server was 22:00 UTC on Sunday
    before = terminal(PROFILE, utc(2026, 3, 1, 21, 59, 59))
    assert buy(before, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED
    before.advance(1)
    assert buy(before, "EURUSD.m", 0.1).retcode == mt5.TRADE_RETCODE_DONE


def test_gold_starts_outside_market_watch_until_symbol_select(term):
    assert term.symbol_info("XAUUSD.m").select is False
    assert term.symbol_info_tick("XAUUSD.m") is None
    assert term.last_error() == (mt5.RES_E_NOT_FOUND, "Terminal: Not found")
    assert term.symbol_select("XAUUSD.m", True) is True
    assert term.symbol_info("XAUUSD.m").select is True
    assert term.symbol_info_tick("XAUUSD.m").bid > 0
    assert term.symbol_info_tick("XAUUSD") is None  # names are matched as the broker spells them


@pytest.mark.parametrize(
    ("start", "open_"),
    [
        (utc(2026, 3, 3, 21, 30), True),  # Tuesday 23:30 server (GMT+2): trading
        (utc(2026, 3, 3, 22, 30), False),  # 00:30 server: gold's daily break
        (utc(2026, 3, 3, 23, 0), True),  # 01:00 server: open again
        (utc(2026, 3, 10, 21, 30), False),  # after the DST change 21:30 UTC is already 00:30 server
        (utc(2026, 3, 10, 22, 0), True),  # 01:00 server (GMT+3)
    ],
)
def test_gold_daily_break_is_in_server_time(start, open_):
    term = terminal(PROFILE, start)
    term.symbol_select("XAUUSD.m", True)
    result = buy(term, "XAUUSD.m", 0.01, type_filling=mt5.ORDER_FILLING_IOC)
    assert result.retcode == (mt5.TRADE_RETCODE_DONE if open_ else mt5.TRADE_RETCODE_MARKET_CLOSED)
    assert buy(term, "EURUSD.m", 0.01).retcode == mt5.TRADE_RETCODE_DONE  # forex has no break


def test_instant_execution_forex_accepts_fok_only_and_market_gold_ioc_only(term):
    info = term.symbol_info("EURUSD.m")
    assert (info.trade_exemode, info.filling_mode) == (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, mt5.SYMBOL_FILLING_FOK)
    assert buy(term, "EURUSD.m", 0.1, type_filling=mt5.ORDER_FILLING_IOC).retcode == mt5.TRADE_RETCODE_INVALID_FILL
    assert buy(term, "EURUSD.m", 0.1, type_filling=mt5.ORDER_FILLING_FOK).retcode == mt5.TRADE_RETCODE_DONE
    term.symbol_select("XAUUSD.m", True)
    gold = term.symbol_info("XAUUSD.m")
    assert (gold.trade_exemode, gold.filling_mode) == (mt5.SYMBOL_TRADE_EXECUTION_MARKET, mt5.SYMBOL_FILLING_IOC)
    assert buy(term, "XAUUSD.m", 0.1, type_filling=mt5.ORDER_FILLING_FOK).retcode == mt5.TRADE_RETCODE_INVALID_FILL
    assert buy(term, "XAUUSD.m", 0.1, type_filling=mt5.ORDER_FILLING_IOC).retcode == mt5.TRADE_RETCODE_DONE


def test_instant_execution_requotes_outside_deviation(term):
    term.set_price("EURUSD.m", 1.20000, 1.20010)
    stale = buy(term, "EURUSD.m", 0.1, price=1.19995, deviation=10)  # 15 points from the ask
    assert (stale.retcode, stale.ask) == (mt5.TRADE_RETCODE_REQUOTE, 1.2001)
    assert buy(term, "EURUSD.m", 0.1, price=1.19995, deviation=15).retcode == mt5.TRADE_RETCODE_DONE


def test_market_execution_ignores_deviation(term):
    term.symbol_select("XAUUSD.m", True)
    term.set_price("XAUUSD.m", 4000.00, 4000.30)
    fills = []
    for _ in range(30):  # a price 10.00 away with deviation 0: no requote, the market decides
        result = buy(term, "XAUUSD.m", 0.01, price=3990.00, deviation=0, type_filling=mt5.ORDER_FILLING_IOC)
        assert result.retcode == mt5.TRADE_RETCODE_DONE
        fills.append(result.price)
    assert all(abs(price - 4000.30) <= 0.05 + 1e-9 for price in fills)  # within the symbol's max slippage
    assert any(price != 4000.30 for price in fills)  # and it does slip although deviation is 0


def test_stops_level_is_measured_from_the_closing_side_and_freeze_level_blocks_changes(term):
    term.set_price("EURUSD.m", 1.20000, 1.20010)
    # a buy closes on the Bid: SL must be at least 20 points (stops level) below 1.20000
    assert buy(term, "EURUSD.m", 0.1, sl=1.19981).retcode == mt5.TRADE_RETCODE_INVALID_STOPS  # 19 points
    opened = buy(term, "EURUSD.m", 0.1, sl=1.19980)  # exactly 20 points
    assert opened.retcode == mt5.TRADE_RETCODE_DONE
    # a sell closes on the Ask: SL 20 points above 1.20010, not above the Bid
    assert sell(term, "EURUSD.m", 0.1, sl=1.20020).retcode == mt5.TRADE_RETCODE_INVALID_STOPS
    assert sell(term, "EURUSD.m", 0.1, sl=1.20030).retcode == mt5.TRADE_RETCODE_DONE
    # the market falls to 9 points above the SL: within the 10-point freeze level
    term.set_price("EURUSD.m", 1.19989, 1.19999)
    assert modify(term, opened.order, "EURUSD.m", sl=1.19900).retcode == mt5.TRADE_RETCODE_FROZEN
    close = sell(term, "EURUSD.m", 0.1, position=opened.order)
    assert close.retcode == mt5.TRADE_RETCODE_FROZEN
    term.set_price("EURUSD.m", 1.19990, 1.20000)  # 10 points away: no longer frozen
    assert modify(term, opened.order, "EURUSD.m", sl=1.19900).retcode == mt5.TRADE_RETCODE_DONE


def test_unnormalised_prices_are_refused_not_rounded(term):
    term.set_price("EURUSD.m", 1.20000, 1.20010)
    assert buy(term, "EURUSD.m", 0.1, sl=1.199001).retcode == mt5.TRADE_RETCODE_INVALID_STOPS
    assert buy(term, "EURUSD.m", 0.1, price=1.200101).retcode == mt5.TRADE_RETCODE_INVALID_PRICE


def test_cross_profit_and_margin_convert_through_other_symbols(term):
    term.set_price("EURUSD.m", 1.20000, 1.20010)
    term.set_price("USDJPY.m", 150.000, 150.015)
    term.set_price("EURJPY.m", 182.990, 183.000)
    # margin: 1 lot * 100000 EUR / leverage 200 = 500 EUR, at EURUSD.m's bid 1.20000 = 600.00 USD
    assert term.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURJPY.m", 1.0, 183.0) == 600.00
    opened = buy(term, "EURJPY.m", 1.0)
    assert opened.price == 183.000 and term.account_info().margin == 600.00
    term.set_price("EURJPY.m", 183.500, 183.510)
    # profit: (183.500 - 183.000) * 100000 = 50000 JPY, / USDJPY.m bid 150.000 = 333.33 USD
    assert term.positions_get(ticket=opened.order)[0].profit == 333.33
    closed = sell(term, "EURJPY.m", 1.0, position=opened.order)
    deal = term.history_deals_get(ticket=closed.order)[0]
    assert (deal.profit, deal.commission, deal.entry) == (333.33, 0.0, mt5.DEAL_ENTRY_OUT)
    assert term.account_info().balance == 10333.33


def test_gold_margin_is_cfd_leverage_and_profit_is_in_dollars(term):
    term.symbol_select("XAUUSD.m", True)
    assert term.symbol_info("XAUUSD.m").trade_calc_mode == mt5.SYMBOL_CALC_MODE_CFDLEVERAGE
    # 0.5 lot * 100 oz * 4000.00 / 200 = 1000.00
    assert term.order_calc_margin(mt5.ORDER_TYPE_BUY, "XAUUSD.m", 0.5, 4000.0) == 1000.00
    # (4010.00 - 4000.00) * 100 oz * 0.5 lot = 500.00
    assert term.order_calc_profit(mt5.ORDER_TYPE_BUY, "XAUUSD.m", 0.5, 4000.0, 4010.0) == 500.00


def test_triple_swap_on_wednesday_is_charged_at_server_midnight():
    term = terminal(PROFILE, utc(2026, 1, 7, 10, 0))  # Wednesday 12:00 server
    term.set_price("EURUSD.m", 1.20000, 1.20010)
    ticket = buy(term, "EURUSD.m", 1.0).order
    term.advance(utc(2026, 1, 7, 21, 59).timestamp() - utc(2026, 1, 7, 10, 0).timestamp())
    assert term.positions_get(ticket=ticket)[0].swap == 0.0  # 23:59 server: not yet
    term.advance(120)  # 22:01 UTC = Thursday 00:01 server: the Wednesday rollover
    # swap_long -8 points * 1.00 USD per point per lot * 1 lot * 3 days = -24.00
    assert term.positions_get(ticket=ticket)[0].swap == -24.0
    term.advance(86_400)  # Thursday's rollover: one day
    assert term.positions_get(ticket=ticket)[0].swap == -32.0


def test_stop_out_closes_the_largest_loss_first_and_stops_when_the_level_recovers(term):
    term.set_price("EURUSD.m", 1.19990, 1.20000)
    term.set_price("GBPUSD.m", 1.29990, 1.30000)
    eur = buy(term, "EURUSD.m", 1.0).order  # margin 100000 * 1.20000 / 200 = 600.00
    gbp = buy(term, "GBPUSD.m", 1.0).order  # margin 100000 * 1.30000 / 200 = 650.00
    term.set_price("GBPUSD.m", 1.25000, 1.25010)  # GBP: (1.25000 - 1.30000) * 100000 = -5000.00
    term.set_price("EURUSD.m", 1.16000, 1.16010)  # EUR: -4000.00; equity 1000.00 / 1250.00 = 80 %
    assert term.account_info().margin_level == 80.0 and len(term.positions_get()) == 2
    assert term.margin_state()["margin_call"] is True  # below 100 %, above the 50 % stop-out
    term.set_price("EURUSD.m", 1.15600, 1.15610)  # EUR -4400.00: equity 600.00, level 48 %
    assert [p.ticket for p in term.positions_get()] == [eur]  # GBP, the larger loss, went first
    deal = term.history_deals_get(position=gbp)[-1]
    assert (deal.reason, deal.entry, deal.price, deal.profit) == (mt5.DEAL_REASON_SO, mt5.DEAL_ENTRY_OUT, 1.25, -5000.0)
    assert deal.comment == "[so 48.00%/600.00/1250.00]"
    order = term.history_orders_get(ticket=deal.order)[0]
    assert order.reason == mt5.ORDER_REASON_SO
    # balance 10000 - 5000 = 5000.00, equity 5000 - 4400 = 600.00, margin 600.00: level 100 %
    account = term.account_info()
    assert (account.balance, account.equity, account.margin_level) == (5000.0, 600.0, 100.0)
    assert term.margin_state()["margin_call"] is False


def test_stop_out_happens_on_the_price_path_whatever_the_polling():
    def run(polls: int, hours: float = 12):
        term = terminal(PROFILE, TUESDAY, balance=600)
        ticket = buy(term, "EURUSD.m", 1.0).order  # about 589.50 margin on 600 equity: level ~101 %
        for _ in range(polls):
            term.advance(hours * 3600 / polls)
        return term, term.history_deals_get(position=ticket)

    (term, few), (_, many) = run(1), run(48)
    assert [d.reason for d in few] == [mt5.DEAL_REASON_EXPERT, mt5.DEAL_REASON_SO]  # this seed's path falls
    assert [(d.time_msc, d.price, d.profit) for d in few] == [(d.time_msc, d.price, d.profit) for d in many]
    assert term.positions_get() == () and term.account_info().balance == 600 + few[1].profit
    # the stop-out is the first second below 50 %: one second earlier the position was still open
    stopped_after = few[1].time - few[0].time
    before, _ = run(1, hours=(stopped_after - 1) / 3600)
    assert before.positions_get()[0].volume == 1.0 and before.account_info().margin_level >= 50.0


def test_gold_quotes_stand_still_during_the_daily_break():
    term = terminal(PROFILE, utc(2026, 1, 6, 21, 59, 50))  # Tuesday 23:59:50 server
    term.symbol_select("XAUUSD.m", True)
    term.advance(9)
    last = term.symbol_info_tick("XAUUSD.m")  # 23:59:59, the last quote of the day
    assert last.time == utc(2026, 1, 6, 23, 59, 59).timestamp()
    for _ in range(6):  # every ten minutes of the break: the same quote, with its own time
        term.advance(600)
        assert term.symbol_info_tick("XAUUSD.m") == last
    assert term.symbol_info_tick("EURUSD.m").time == utc(2026, 1, 7, 0, 59, 59).timestamp()  # forex moves on
    term.advance(1)  # 01:00 server: quotes again
    assert term.symbol_info_tick("XAUUSD.m").time == utc(2026, 1, 7, 1, 0, 0).timestamp()


def test_no_stop_loss_fires_during_the_break_and_the_reopening_gap_fills_at_the_worse_price(tmp_path):
    # seed 42: gold's last quote on Tuesday is 4436.93; during Wednesday's 00:00-01:00 break the
    # underlying path dips to 4432.47, and the first quote at 01:00 is 4432.52.
    def run(profile):
        term = terminal(profile, utc(2026, 1, 6, 21, 59, 59))  # 23:59:59 server
        term.symbol_select("XAUUSD.m", True)
        assert term.symbol_info_tick("XAUUSD.m").bid == 4436.93
        opened = buy(term, "XAUUSD.m", 0.01, sl=4434.00, type_filling=mt5.ORDER_FILLING_IOC)
        assert opened.retcode == mt5.TRADE_RETCODE_DONE
        term.advance(3600)  # 00:59:59 server
        return term, opened.order

    term, ticket = run(PROFILE)
    assert term.positions_get(ticket=ticket)[0].sl == 4434.0  # the frozen quote never reached the SL
    term.advance(1)
    deal = term.history_deals_get(position=ticket)[-1]
    assert (deal.reason, deal.price) == (mt5.DEAL_REASON_SL, 4432.52)  # gapped through: the worse price
    assert deal.time == utc(2026, 1, 7, 1, 0).timestamp()
    # the same account with gold quoted through the night is stopped during the dip, at the SL
    quoted = variant(tmp_path, PROFILE, {'quote_sessions = ["Mon-Fri 01:00-24:00"]': ""})
    night, ticket = run(quoted)
    deal = night.history_deals_get(position=ticket)[-1]
    assert (deal.reason, deal.price) == (mt5.DEAL_REASON_SL, 4434.0)
    assert deal.time < utc(2026, 1, 7, 1, 0).timestamp()
