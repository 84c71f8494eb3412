"""ecn-netting: one position per symbol (IN / OUT / INOUT), Market execution with IOC or RETURN,
commission per lot on every deal, UTC server clock.

Figures use a copy of the profile without seeded slippage (Market execution would otherwise
slip whatever the deviation), so every fill is exactly the pinned quote.
"""

import pytest
from sim_profile_helpers import buy, sell, terminal, utc, variant

from mt5bridge import constants as mt5

PROFILE = "ecn-netting"
TUESDAY = utc(2026, 1, 6, 10, 0)


@pytest.fixture
def term(tmp_path):
    exact = variant(tmp_path, PROFILE, {"max_slippage = 6": "max_slippage = 0", "max_slippage = 20": "max_slippage = 0"})
    return terminal(exact, TUESDAY)


def test_account_is_netting_on_utc_time():
    term = terminal(PROFILE, TUESDAY)
    account = term.account_info()
    assert (account.margin_mode, account.leverage, account.margin_so_so) == (
        mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING, 30, 50.0,
    )  # fmt: skip
    assert term.symbol_info_tick("EURUSD").time == TUESDAY.timestamp()


def test_fillings_ioc_and_return_are_accepted_fok_is_refused(term):
    info = term.symbol_info("EURUSD")
    assert (info.trade_exemode, info.filling_mode) == (mt5.SYMBOL_TRADE_EXECUTION_MARKET, mt5.SYMBOL_FILLING_IOC)
    assert buy(term, "EURUSD", 0.1, type_filling=mt5.ORDER_FILLING_FOK).retcode == mt5.TRADE_RETCODE_INVALID_FILL
    assert buy(term, "EURUSD", 0.1, type_filling=mt5.ORDER_FILLING_IOC).retcode == mt5.TRADE_RETCODE_DONE
    assert buy(term, "EURUSD", 0.1, type_filling=mt5.ORDER_FILLING_RETURN).retcode == mt5.TRADE_RETCODE_DONE


def test_netting_adds_reduces_and_reverses_with_inout(term):
    ioc = {"type_filling": mt5.ORDER_FILLING_IOC}
    term.set_price("EURUSD", 1.10000, 1.10010)
    first = buy(term, "EURUSD", 1.0, **ioc)
    assert first.price == 1.10010
    # the same side again: still one position, volume 1.5 at the volume-weighted price
    term.set_price("EURUSD", 1.10040, 1.10050)
    buy(term, "EURUSD", 0.5, **ioc)
    (position,) = term.positions_get(symbol="EURUSD")
    # (1.10010 * 1.0 + 1.10050 * 0.5) / 1.5 = 1.100233..., kept in whole points: 1.10023
    assert (position.ticket, position.volume, position.price_open) == (first.order, 1.5, 1.10023)
    # an opposite 2.0 closes the 1.5 and opens 0.5 short, in one INOUT deal
    term.set_price("EURUSD", 1.10100, 1.10110)
    reverse = sell(term, "EURUSD", 2.0, **ioc)
    deal = term.history_deals_get(ticket=reverse.order)[0]
    # profit on the 1.5 closed: (1.10100 - 1.10023) * 100000 * 1.5 = 115.50; commission 2.0 * -3.00
    assert (deal.entry, deal.volume, deal.profit, deal.commission) == (mt5.DEAL_ENTRY_INOUT, 2.0, 115.5, -6.0)
    (position,) = term.positions_get()
    assert (position.type, position.volume, position.price_open) == (mt5.POSITION_TYPE_SELL, 0.5, 1.101)
    assert position.identifier == first.order and position.ticket == reverse.order  # id kept, ticket new
    assert deal.position_id == first.order
    # a smaller opposite deal reduces it: buy 0.2 at 1.10050 -> (1.10100 - 1.10050) * 100000 * 0.2 = 10.00
    term.set_price("EURUSD", 1.10040, 1.10050)
    reduce = buy(term, "EURUSD", 0.2, **ioc)
    deal = term.history_deals_get(ticket=reduce.order)[0]
    assert (deal.entry, deal.profit, deal.commission) == (mt5.DEAL_ENTRY_OUT, 10.0, -0.6)
    assert term.positions_get()[0].volume == 0.3
    # exactly the rest closes it (OUT)
    done = buy(term, "EURUSD", 0.3, **ioc)
    assert term.history_deals_get(ticket=done.order)[0].entry == mt5.DEAL_ENTRY_OUT
    assert term.positions_get() == ()
    # commission: -3.00 (1.0) - 1.50 (0.5) - 6.00 (2.0) - 0.60 (0.2) - 0.90 (0.3) = -12.00
    # profit: 115.50 + 10.00 + (1.10100 - 1.10050) * 100000 * 0.3 = 15.00 -> 140.50
    assert term.account_info().balance == 10000 + 140.50 - 12.00
    entries = [d.entry for d in term.history_deals_get(position=first.order)]
    assert entries == [mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_INOUT, mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT]


def test_netting_close_by_position_ticket_and_partial_close(term):
    ioc = {"type_filling": mt5.ORDER_FILLING_IOC}
    term.set_price("EURUSD", 1.10000, 1.10010)
    ticket = buy(term, "EURUSD", 1.0, **ioc).order
    assert sell(term, "EURUSD", 1.5, position=ticket, **ioc).retcode == mt5.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    partial = sell(term, "EURUSD", 0.4, position=ticket, **ioc)
    assert partial.retcode == mt5.TRADE_RETCODE_DONE and term.positions_get()[0].volume == 0.6
    # (1.10000 - 1.10010) * 100000 * 0.4 = -4.00, commission 0.4 * -3.00 = -1.20
    deal = term.history_deals_get(ticket=partial.order)[0]
    assert (deal.profit, deal.commission) == (-4.0, -1.2)


def test_commission_per_lot_on_in_and_out_deals_and_margin_at_leverage_30(term):
    ioc = {"type_filling": mt5.ORDER_FILLING_IOC}
    term.set_price("EURUSD", 1.10000, 1.10010)
    # 1.5 lots * 100000 EUR / 30 = 5000 EUR at 1.10010 (the fill) = 5500.50 USD
    assert term.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.5, 1.1001) == 5500.50
    opened = buy(term, "EURUSD", 1.5, **ioc)
    assert term.account_info().margin == 5500.50
    closed = sell(term, "EURUSD", 1.5, position=opened.order, **ioc)
    deals = term.history_deals_get(position=opened.order)
    assert [d.commission for d in deals] == [-4.5, -4.5]  # 1.5 lots * -3.00 on IN and on OUT
    assert term.history_deals_get(ticket=closed.order)[0].profit == -15.0  # 10 points * 1.5 lots
    assert term.account_info().balance == 10000 - 9.0 - 15.0


def test_cross_profit_converts_through_gbpusd(term):
    ioc = {"type_filling": mt5.ORDER_FILLING_IOC}
    term.set_price("GBPUSD", 1.25000, 1.25010)
    term.set_price("EURGBP", 0.86990, 0.87000)
    opened = buy(term, "EURGBP", 1.0, **ioc)
    term.set_price("EURGBP", 0.87200, 0.87210)
    # (0.87200 - 0.87000) * 100000 = 200 GBP, * GBPUSD bid 1.25000 = 250.00 USD
    assert term.positions_get(ticket=opened.order)[0].profit == 250.0
    # EURGBP margin: 100000 EUR / 30 in USD via EURUSD; EURUSD not pinned here, so compare with it
    eurusd_bid = term.symbol_info_tick("EURUSD").bid
    assert term.account_info().margin == pytest.approx(100000 / 30 * eurusd_bid, abs=0.01)


def test_shipped_market_execution_slips_whatever_the_deviation():
    term = terminal(PROFILE, TUESDAY)
    term.set_price("EURUSD", 1.10000, 1.10002)
    prices = {buy(term, "EURUSD", 0.01, deviation=0, type_filling=mt5.ORDER_FILLING_IOC).price for _ in range(30)}
    assert len(prices) > 1 and all(abs(p - 1.10002) <= 0.00006 + 1e-12 for p in prices)
