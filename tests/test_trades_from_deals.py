"""Trades cut from one position's deals: IN / OUT / INOUT / OUT_BY, partial closes, netting reversals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.engine.netting import Attribution, margin_mode_name
from bot.engine.preflight import filling_usable
from bot.engine.trades_from_deals import segments
from bot.gateway import Deal
from mt5bridge import constants as mt5

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
D = Decimal
BUY, SELL = mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL
IN, OUT, INOUT, OUT_BY = mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_INOUT, mt5.DEAL_ENTRY_OUT_BY


def deal(n, type_, entry, volume, price, profit="0", commission="0", swap="0", order=None,
         reason=mt5.DEAL_REASON_EXPERT, position=100):
    return Deal(ticket=1000 + n, order=order or 500 + n, position_id=position, symbol="EURUSD", type=type_,
                entry=entry, volume=D(volume), price=D(price), profit=D(profit), commission=D(commission),
                swap=D(swap), magic=7, comment="", reason=reason, time=T0 + timedelta(minutes=n))


def test_hedging_position_with_a_partial_close_is_one_trade_closed_at_the_last_out():
    deals = [deal(0, BUY, IN, "0.10", "1.10000", commission="-0.30", order=100),
             deal(1, SELL, OUT, "0.04", "1.10100", profit="4.00", commission="-0.12"),
             deal(2, SELL, OUT, "0.06", "1.10200", profit="12.00", commission="-0.18", swap="-0.50",
                  reason=mt5.DEAL_REASON_TP)]
    partial = segments(deals[:2])
    assert len(partial) == 1 and not partial[0].closed and partial[0].open_volume == D("0.06")
    (trade,) = segments(deals)
    assert trade.closed and trade.ticket == 100 and trade.direction == "BUY" and trade.volume == D("0.10")
    assert trade.exit_price(5) == D("1.10160")  # volume-weighted: (0.04*1.101 + 0.06*1.102) / 0.10
    assert trade.net_profit == D("16.00") - D("0.60") - D("0.50")
    assert trade.reason == "take_profit"


def test_netting_reversal_closes_one_trade_and_opens_the_other_way_sharing_the_commission():
    deals = [deal(0, BUY, IN, "0.10", "1.10000", commission="-0.30", order=100),
             deal(1, SELL, INOUT, "0.25", "1.09900", profit="-10.00", commission="-0.75", order=777),
             deal(2, BUY, OUT, "0.15", "1.09800", profit="15.00", commission="-0.45", reason=mt5.DEAL_REASON_SO)]
    first, second = segments(deals)
    assert (first.ticket, first.direction, first.volume, first.closed) == (100, "BUY", D("0.10"), True)
    assert first.commission == D("-0.30") + D("-0.30")  # 0.10 of the INOUT's 0.25 lots
    assert (second.ticket, second.direction, second.volume) == (777, "SELL", D("0.15"))
    assert second.entry_price(5) == D("1.09900") and second.commission == D("-0.45") + D("-0.45")
    assert second.closed and second.reason == "stop_out" and second.stop_outs == [1002]
    total = sum(d.profit + d.commission + d.swap for d in deals)
    assert first.net_profit + second.net_profit == total  # to the cent: nothing lost in the split


def test_netting_add_grows_the_trade_and_an_inout_exactly_closing_opens_nothing():
    deals = [deal(0, SELL, IN, "0.10", "1.20000", order=100),
             deal(1, SELL, IN, "0.10", "1.20100"),
             deal(2, BUY, INOUT, "0.20", "1.19900", profit="30.00", order=900)]
    (trade,) = segments(deals)
    assert trade.volume == D("0.20") and trade.entry_price(5) == D("1.20050") and trade.closed


def test_out_by_closes_like_an_out():
    (trade,) = segments([deal(0, BUY, IN, "0.10", "1.1", order=100), deal(1, SELL, OUT_BY, "0.10", "1.2",
                                                                          profit="100")])
    assert trade.closed and trade.net_profit == D("100")


def test_netting_attribution_gives_each_symbol_to_the_first_strategy():
    netting = Attribution.for_account("netting", ["EURUSD", "GBPUSD"], ["ma_crossover", "rsi_reversion"])
    assert netting.allows("EURUSD", "ma_crossover") and not netting.allows("EURUSD", "rsi_reversion")
    assert netting.position_cap(2) == 1
    hedging = Attribution.for_account("hedging", ["EURUSD"], ["ma_crossover", "rsi_reversion"])
    assert hedging.allows("EURUSD", "rsi_reversion") and hedging.position_cap(2) == 2
    assert [margin_mode_name(m) for m in (0, 1, 2, 3, None)] == ["netting", "exchange", "hedging", None, None]


@pytest.mark.parametrize(("exemode", "bits", "usable"), [
    (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, mt5.SYMBOL_FILLING_FOK, True),
    # MQL5 "fill policy": Request and Instant execution always use Fill or Kill for market orders.
    (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, mt5.SYMBOL_FILLING_IOC, True),
    (mt5.SYMBOL_TRADE_EXECUTION_REQUEST, 0, True),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, mt5.SYMBOL_FILLING_IOC, True),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, 0, True),  # RETURN
    (mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE, 0, True),
])
def test_filling_rule(exemode, bits, usable):
    assert filling_usable(exemode, bits) is usable
