"""Trading semantics of the simulated terminal, against hand-computed values.

Prices are pinned with the test-only ``set_price`` and orders use ``deviation=0`` (no
slippage), so every fill price and every cent below can be worked out on paper.
"""

from datetime import UTC, datetime, timedelta

import pytest

from mt5bridge.constants import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_OUT,
    DEAL_REASON_EXPERT,
    DEAL_REASON_SL,
    DEAL_REASON_TP,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    ORDER_REASON_SL,
    ORDER_STATE_FILLED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    POSITION_TYPE_SELL,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_INVALID_VOLUME,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REQUOTE,
)
from mt5bridge.sim import SimTerminal

MONDAY_10 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def make_terminal(**kwargs) -> SimTerminal:
    kwargs.setdefault("stepped", True)
    kwargs.setdefault("start", MONDAY_10)
    terminal = SimTerminal(**kwargs)
    assert terminal.initialize()
    return terminal


@pytest.fixture
def term() -> SimTerminal:
    return make_terminal()


def deal(term, symbol, order_type, volume, **extra):
    request = {"action": TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "type": order_type}
    request.update(extra)
    result = term.order_send(request)
    assert result is not None, term.last_error()
    return result


def buy(term, symbol, volume, **extra):
    return deal(term, symbol, ORDER_TYPE_BUY, volume, **extra)


def sell(term, symbol, volume, **extra):
    return deal(term, symbol, ORDER_TYPE_SELL, volume, **extra)


def close(term, ticket, volume=None, **extra):
    position = term.positions_get(ticket=ticket)[0]
    opposite = ORDER_TYPE_SELL if position.type == ORDER_TYPE_BUY else ORDER_TYPE_BUY
    return deal(term, position.symbol, opposite, volume or position.volume, position=ticket, **extra)


def done(result):
    assert result.retcode == TRADE_RETCODE_DONE, result
    return result


# ---------------------------------------------------------------- P&L


@pytest.mark.parametrize(
    ("symbol", "side", "volume", "open_quote", "close_quote", "fill_open", "fill_close", "expected"),
    [
        # EURUSD long 1 lot 1.10000 -> 1.10100 = +100.00 USD
        ("EURUSD", ORDER_TYPE_BUY, 1.0, (1.09990, 1.10000), (1.10100, 1.10110), 1.10000, 1.10100, 100.00),
        # EURUSD short 0.5 lot 1.10000 -> 1.10230: -0.0023 * 50000 = -115.00
        ("EURUSD", ORDER_TYPE_SELL, 0.5, (1.10000, 1.10010), (1.10220, 1.10230), 1.10000, 1.10230, -115.00),
        # USDJPY long 1 lot 150.000 -> 150.150: 15000 JPY / 150.150 = 99.9000999 -> 99.90
        ("USDJPY", ORDER_TYPE_BUY, 1.0, (149.985, 150.000), (150.150, 150.165), 150.000, 150.150, 99.90),
        # USDJPY short 0.5 lot 150.000 -> 149.700: 15000 JPY / 149.700 = 100.2004 -> 100.20
        ("USDJPY", ORDER_TYPE_SELL, 0.5, (150.000, 150.015), (149.685, 149.700), 150.000, 149.700, 100.20),
        # USDCHF long 0.3 lot 0.80000 -> 0.79500: -150 CHF / 0.795 = -188.679 -> -188.68
        ("USDCHF", ORDER_TYPE_BUY, 0.3, (0.79985, 0.80000), (0.79500, 0.79515), 0.80000, 0.79500, -188.68),
        # XAUUSD long 0.1 lot 2000.00 -> 2010.50: 10.50 * 100 oz * 0.1 = +105.00
        ("XAUUSD", ORDER_TYPE_BUY, 0.1, (1999.75, 2000.00), (2010.50, 2010.75), 2000.00, 2010.50, 105.00),
        # XAUUSD short 0.2 lot 2000.00 -> 2005.25: -5.25 * 100 * 0.2 = -105.00
        ("XAUUSD", ORDER_TYPE_SELL, 0.2, (2000.00, 2000.25), (2005.00, 2005.25), 2000.00, 2005.25, -105.00),
    ],
)
def test_round_trip_profit_is_exact(
    term, symbol, side, volume, open_quote, close_quote, fill_open, fill_close, expected
):
    term.set_price(symbol, *open_quote)
    opened = done(deal(term, symbol, side, volume))
    assert opened.price == fill_open
    term.set_price(symbol, *close_quote)
    position = term.positions_get(ticket=opened.order)[0]
    assert position.profit == expected
    assert position.price_current == fill_close

    closed = done(close(term, opened.order))
    assert closed.price == fill_close
    commission = round(-3.50 * volume, 2)
    out_deal = term.history_deals_get(ticket=closed.order)[0]
    assert (out_deal.entry, out_deal.profit, out_deal.commission) == (DEAL_ENTRY_OUT, expected, commission)
    assert term.positions_get() == ()
    assert term.account_info().balance == pytest.approx(10000 + expected + 2 * commission, abs=1e-9)
    assert term.account_info().equity == term.account_info().balance


def test_floating_profit_and_balance_identity(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    done(buy(term, "EURUSD", 1.0))
    account = term.account_info()
    # one point of spread per 0.00001: (1.09990 - 1.10000) * 100000 = -10.00, commission -3.50
    assert (account.balance, account.profit, account.equity) == (9996.50, -10.00, 9986.50)


# ---------------------------------------------------------------- margin


def test_margin_free_margin_and_margin_level(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    term.set_price("USDJPY", 149.985, 150.000)
    term.set_price("XAUUSD", 1999.75, 2000.00)
    empty = term.account_info()
    assert (empty.margin, empty.margin_level, empty.margin_free) == (0.0, 0.0, 10000.0)

    done(buy(term, "EURUSD", 1.0))  # 100000 EUR / 100 = 1000 EUR at 1.10000 = 1100.00 USD
    done(buy(term, "USDJPY", 1.0))  # base is USD: 1000.00 USD
    done(buy(term, "XAUUSD", 0.1))  # CFD: 0.1 * 100 * 2000.00 / 100 = 200.00 USD
    account = term.account_info()
    assert account.margin == 2300.00
    # floating: EURUSD -10.00; USDJPY (149.985-150)*100000 = -1500 JPY / 149.985 = -10.0010 -> -10.00;
    # gold -0.25 * 10 oz = -2.50; commissions 3 * -3.50 and 0.1 * -3.50 = -0.35
    assert account.balance == 10000 - 3.50 - 3.50 - 0.35
    assert account.profit == -22.50
    assert account.equity == pytest.approx(9970.15, abs=1e-9)
    assert account.margin_free == pytest.approx(9970.15 - 2300.00, abs=1e-9)
    assert account.margin_level == 433.48  # 9970.15 / 2300 * 100 = 433.4848


def test_order_calc_margin_and_profit(term):
    assert term.order_calc_margin(ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1) == 1100.00
    assert term.order_calc_margin(ORDER_TYPE_SELL, "USDJPY", 0.5, 150.0) == 500.00
    assert term.order_calc_margin(ORDER_TYPE_BUY, "XAUUSD", 0.1, 2000.0) == 200.00
    assert term.order_calc_profit(ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1, 1.101) == 100.00
    assert term.order_calc_profit(ORDER_TYPE_SELL, "USDJPY", 0.5, 150.0, 149.7) == 100.20
    assert term.order_calc_margin(ORDER_TYPE_BUY, "NOPE", 1.0, 1.0) is None
    assert term.last_error()[0] == -4


def test_no_money_when_free_margin_would_go_negative():
    term = make_terminal(balance=1000)
    term.set_price("EURUSD", 1.09990, 1.10000)
    result = buy(term, "EURUSD", 1.0)  # needs 1100.00 margin
    assert result.retcode == TRADE_RETCODE_NO_MONEY
    assert (result.deal, result.order) == (0, 0)
    assert term.positions_get() == () and term.history_deals_get(0, 2**31) == ()
    done(buy(term, "EURUSD", 0.5))  # 550.00 fits


def test_leverage_changes_margin():
    term = make_terminal(leverage=500)
    term.set_price("EURUSD", 1.09990, 1.10000)
    done(buy(term, "EURUSD", 1.0))
    assert term.account_info().margin == 220.00


# ---------------------------------------------------------------- SL / TP


def test_long_stop_loss_hit_exactly_closes_at_sl(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    opened = done(buy(term, "EURUSD", 1.0, sl=1.09800, tp=1.10300, magic=77))
    term.advance(30)
    term.set_price("EURUSD", 1.09800, 1.09810)
    assert term.positions_get() == ()
    out = term.history_deals_get(position=opened.order)[-1]
    assert (out.reason, out.price, out.profit, out.magic) == (DEAL_REASON_SL, 1.09800, -200.00, 77)
    assert out.comment == "[sl 1.09800]"
    order = term.history_orders_get(ticket=out.order)[0]
    assert (order.reason, order.state, order.position_id) == (
        ORDER_REASON_SL,
        ORDER_STATE_FILLED,
        opened.order,
    )
    assert term.account_info().balance == 10000 - 7.00 - 200.00


def test_gapped_stop_loss_fills_at_the_worse_price(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    opened = done(buy(term, "EURUSD", 1.0, sl=1.09800))
    term.set_price("EURUSD", 1.09700, 1.09710)  # jumped through the stop
    out = term.history_deals_get(position=opened.order)[-1]
    assert (out.reason, out.price, out.profit) == (DEAL_REASON_SL, 1.09700, -300.00)
    assert out.comment == "[sl 1.09800]"


def test_gapped_take_profit_fills_at_tp(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    opened = done(buy(term, "EURUSD", 1.0, tp=1.10300))
    term.set_price("EURUSD", 1.10400, 1.10410)
    out = term.history_deals_get(position=opened.order)[-1]
    assert (out.reason, out.price, out.profit) == (DEAL_REASON_TP, 1.10300, 300.00)


def test_short_stops_trigger_on_the_ask(term):
    term.set_price("XAUUSD", 2000.00, 2000.25)
    short = done(sell(term, "XAUUSD", 0.1, sl=2010.00, tp=1990.00))
    term.set_price("XAUUSD", 2009.80, 2009.99)  # bid above nothing, ask just under the SL: still open
    assert len(term.positions_get()) == 1
    term.set_price("XAUUSD", 2009.80, 2010.00)  # ask touches the SL
    out = term.history_deals_get(position=short.order)[-1]
    assert (out.reason, out.type, out.price, out.profit) == (DEAL_REASON_SL, DEAL_TYPE_BUY, 2010.00, -100.00)

    term.set_price("XAUUSD", 2000.00, 2000.25)
    short = done(sell(term, "XAUUSD", 0.1, sl=2010.00, tp=1990.00))
    term.set_price("XAUUSD", 1989.90, 1990.00)  # ask touches the TP; bid below is irrelevant
    out = term.history_deals_get(position=short.order)[-1]
    assert (out.reason, out.price, out.profit) == (DEAL_REASON_TP, 1990.00, 100.00)


def test_sltp_modification(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    opened = done(buy(term, "EURUSD", 1.0))
    modify = {"action": TRADE_ACTION_SLTP, "symbol": "EURUSD", "position": opened.order, "sl": 1.09500}
    done(term.order_send(modify))
    assert term.positions_get()[0].sl == 1.09500
    assert term.order_send(modify).retcode == TRADE_RETCODE_NO_CHANGES
    assert term.order_send({**modify, "sl": 1.09985}).retcode == TRADE_RETCODE_INVALID_STOPS
    assert term.order_send({**modify, "position": 999}).retcode == TRADE_RETCODE_POSITION_CLOSED
    term.set_price("EURUSD", 1.09500, 1.09510)
    assert term.history_deals_get(position=opened.order)[-1].reason == DEAL_REASON_SL


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("symbol", "volume"),
    [
        ("EURUSD", 0.001),
        ("EURUSD", 0.015),
        ("EURUSD", 100.01),
        ("EURUSD", 0),
        ("XAUUSD", 51),
        ("USDJPY", 1e9),
    ],
)
def test_invalid_volume(term, symbol, volume):
    assert buy(term, symbol, volume).retcode == TRADE_RETCODE_INVALID_VOLUME


def test_volume_float_noise_is_tolerated(term):
    result = done(buy(term, "EURUSD", 0.1 + 0.2))  # 0.30000000000000004
    assert result.volume == 0.3
    rich = make_terminal(balance=5_000_000)
    done(buy(rich, "XAUUSD", 50))  # the maximum is allowed


@pytest.mark.parametrize(
    ("side", "quote", "stops"),
    [
        (ORDER_TYPE_BUY, (1.10000, 1.10010), {"sl": 1.10005}),  # SL above the bid
        (ORDER_TYPE_BUY, (1.10000, 1.10010), {"sl": 1.09991}),  # 9 points < stops level 10
        (ORDER_TYPE_BUY, (1.10000, 1.10010), {"tp": 1.09000}),  # TP below the bid
        (ORDER_TYPE_BUY, (1.10000, 1.10010), {"tp": 1.10009}),  # 9 points above the bid
        (ORDER_TYPE_SELL, (1.10000, 1.10010), {"sl": 1.10000}),  # SL below the ask
        (ORDER_TYPE_SELL, (1.10000, 1.10010), {"tp": 1.10001}),  # 9 points below the ask
        (ORDER_TYPE_SELL, (1.10000, 1.10010), {"tp": 1.20000}),  # TP above the ask
    ],
)
def test_invalid_stops(term, side, quote, stops):
    term.set_price("EURUSD", *quote)
    assert deal(term, "EURUSD", side, 0.1, **stops).retcode == TRADE_RETCODE_INVALID_STOPS


def test_stops_exactly_at_stops_level_are_accepted(term):
    term.set_price("EURUSD", 1.10000, 1.10010)
    done(buy(term, "EURUSD", 0.1, sl=1.09990, tp=1.10010))
    done(sell(term, "EURUSD", 0.1, sl=1.10020, tp=1.10000))


@pytest.mark.parametrize(
    "request_",
    [
        {"action": TRADE_ACTION_DEAL, "symbol": "NOPE", "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": 99, "symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": 7},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "type": ORDER_TYPE_BUY},
        {"symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": "0.1", "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": float("nan"), "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": None, "type": ORDER_TYPE_BUY},
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY, "sl": "x"},
        {
            "action": TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": ORDER_TYPE_BUY,
            "price": -1.0,
        },
        {
            "action": TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": ORDER_TYPE_BUY,
            "magic": "7",
        },
        {
            "action": TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": ORDER_TYPE_BUY,
            "comment": 5,
        },
        {
            "action": TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": ORDER_TYPE_BUY,
            "deviation": 1.5,
        },
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY, "bogus": 1},
        {"action": TRADE_ACTION_DEAL, "symbol": ["EURUSD"], "volume": 0.1, "type": ORDER_TYPE_BUY},
        {"action": True, "symbol": "EURUSD", "volume": 0.1, "type": ORDER_TYPE_BUY},
    ],
)
def test_malformed_requests_are_invalid_and_never_raise(term, request_):
    result = term.order_send(request_)
    assert result.retcode == TRADE_RETCODE_INVALID, result
    assert result.comment
    assert term.order_check(request_).retcode == TRADE_RETCODE_INVALID
    assert term.positions_get() == ()


def test_non_dict_request_fails_like_the_package(term):
    assert term.order_send(None) is None
    assert term.last_error()[0] == -2
    assert term.order_send(["action", 1]) is None


def test_invalid_filling(term):
    assert buy(term, "EURUSD", 0.1, type_filling=ORDER_FILLING_RETURN).retcode == TRADE_RETCODE_INVALID_FILL
    assert buy(term, "EURUSD", 0.1, type_filling=17).retcode == TRADE_RETCODE_INVALID_FILL
    done(buy(term, "EURUSD", 0.1, type_filling=ORDER_FILLING_IOC))


def test_closing_an_unknown_or_closed_position(term):
    assert sell(term, "EURUSD", 0.1, position=424242).retcode == TRADE_RETCODE_POSITION_CLOSED
    opened = done(buy(term, "EURUSD", 0.1))
    done(close(term, opened.order))
    assert sell(term, "EURUSD", 0.1, position=opened.order).retcode == TRADE_RETCODE_POSITION_CLOSED


def test_close_must_be_opposite_same_symbol_and_not_larger(term):
    opened = done(buy(term, "EURUSD", 0.5))
    assert buy(term, "EURUSD", 0.5, position=opened.order).retcode == TRADE_RETCODE_INVALID
    assert sell(term, "GBPUSD", 0.5, position=opened.order).retcode == TRADE_RETCODE_INVALID
    assert sell(term, "EURUSD", 0.6, position=opened.order).retcode == TRADE_RETCODE_INVALID_CLOSE_VOLUME


def test_requote_when_price_moved_beyond_deviation(term):
    term.set_price("EURUSD", 1.10000, 1.10010)
    stale = buy(term, "EURUSD", 0.1, price=1.09995, deviation=10)  # 15 points from the ask
    assert stale.retcode == TRADE_RETCODE_REQUOTE
    assert (stale.bid, stale.ask, stale.deal, stale.order) == (1.10000, 1.10010, 0, 0)
    assert term.positions_get() == ()
    fine = done(buy(term, "EURUSD", 0.1, price=1.09995, deviation=15))
    assert abs(fine.price - 1.10010) <= 15 * 0.00001 + 1e-12
    assert sell(term, "EURUSD", 0.1, price=1.10021, deviation=20).retcode == TRADE_RETCODE_REQUOTE


def test_slippage_is_seeded_and_bounded_by_deviation(term):
    term.set_price("EURUSD", 1.10000, 1.10010)
    fills = [done(buy(term, "EURUSD", 0.01, deviation=1)).price for _ in range(40)]
    slips = {round((price - 1.10010) / 0.00001) for price in fills}
    assert slips <= {-1, 0, 1} and len(slips) > 1
    zero_deviation = {done(buy(term, "EURUSD", 0.01)).price for _ in range(20)}
    assert zero_deviation == {1.10010}

    replay = make_terminal()
    replay.set_price("EURUSD", 1.10000, 1.10010)
    assert [done(buy(replay, "EURUSD", 0.01, deviation=1)).price for _ in range(40)] == fills


def test_instant_fill_stays_within_deviation_of_the_requested_price(term):
    # the market already 10 points from the asked price, at the edge of the deviation: slippage on
    # top of it must not fill further away (the client accepted 10 points from his price, not 20)
    term.set_price("EURUSD", 1.10000, 1.10010)
    fills = [done(buy(term, "EURUSD", 0.01, price=1.10000, deviation=10)).price for _ in range(60)]
    assert all(1.09990 - 1e-12 <= price <= 1.10010 + 1e-12 for price in fills), fills
    assert any(price < 1.10010 for price in fills)  # it still slips, in the client's favour here
    sells = [done(sell(term, "EURUSD", 0.01, price=1.10010, deviation=10)).price for _ in range(60)]
    assert all(1.10000 - 1e-12 <= price <= 1.10020 + 1e-12 for price in sells), sells


def test_market_closed_at_weekend():
    term = make_terminal(start=datetime(2026, 1, 9, 23, 59, 30, tzinfo=UTC))  # Friday
    done(buy(term, "EURUSD", 0.1))
    term.advance(60)  # Saturday 00:00:30
    assert term.now().weekday() == 5
    assert buy(term, "EURUSD", 0.1).retcode == TRADE_RETCODE_MARKET_CLOSED
    position = term.positions_get()[0]
    assert close(term, position.ticket).retcode == TRADE_RETCODE_MARKET_CLOSED
    term.advance(2 * 86400)  # Monday 00:00:30
    done(buy(term, "EURUSD", 0.1))


def test_order_check_validates_without_executing(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    request = {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0, "type": ORDER_TYPE_BUY}
    check = term.order_check(request)
    assert check.retcode == 0 and check.comment == "Done"
    assert (check.margin, check.balance) == (1100.00, 9996.50)
    assert check.margin_free == pytest.approx(10000 - 3.50 - 1100.00, abs=1e-9)
    assert check.request.symbol == "EURUSD"
    assert term.positions_get() == () and term.account_info().balance == 10000
    assert term.order_check({**request, "volume": 0.001}).retcode == TRADE_RETCODE_INVALID_VOLUME
    poor = make_terminal(balance=100)
    assert poor.order_check(request).retcode == TRADE_RETCODE_NO_MONEY


# ---------------------------------------------------------------- deals, commission, swap


def test_fills_create_orders_and_deals_with_magic_and_comment(term):
    long_comment = "tw:0123456789abcdef-ghijklmnopqrstuvwxyz"
    opened = done(buy(term, "GBPUSD", 0.25, magic=123456, comment=long_comment))
    position = term.positions_get()[0]
    assert (position.ticket, position.identifier, position.magic) == (opened.order, opened.order, 123456)
    assert position.comment == long_comment[:31]

    order = term.history_orders_get(ticket=opened.order)[0]
    assert (order.state, order.magic, order.comment, order.volume_initial) == (
        ORDER_STATE_FILLED, 123456, long_comment[:31], 0.25
    )  # fmt: skip
    entry = term.history_deals_get(ticket=opened.order)[0]
    assert (entry.entry, entry.type, entry.reason, entry.order, entry.position_id) == (
        DEAL_ENTRY_IN, DEAL_TYPE_BUY, DEAL_REASON_EXPERT, opened.order, opened.order
    )  # fmt: skip
    assert (entry.magic, entry.comment, entry.commission, entry.profit) == (
        123456,
        long_comment[:31],
        -0.88,
        0.0,
    )
    # 0.25 lot * -3.50 = -0.875 -> -0.88 (half away from zero)

    closing = done(close(term, opened.order, magic=99, comment="exit"))
    out = term.history_deals_get(ticket=closing.order)[0]
    assert (out.entry, out.type, out.magic, out.comment, out.position_id) == (
        DEAL_ENTRY_OUT, DEAL_TYPE_SELL, 99, "exit", opened.order
    )  # fmt: skip


def test_tickets_are_unique_and_increasing(term):
    results = [done(buy(term, "EURUSD", 0.01)) for _ in range(5)]
    results.append(done(close(term, results[0].order)))
    orders = [r.order for r in results]
    deals = [r.deal for r in results]
    assert orders == sorted(orders) and len(set(orders)) == 6
    assert deals == sorted(deals) and len(set(deals)) == 6


def test_balance_is_the_sum_of_deal_amounts(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    first = done(buy(term, "EURUSD", 0.37))
    second = done(sell(term, "EURUSD", 0.11))
    term.advance(2 * 86400)
    term.set_price("EURUSD", 1.10123, 1.10131)
    done(close(term, first.order, volume=0.2))
    done(close(term, first.order))
    done(close(term, second.order))
    deals = term.history_deals_get(0, datetime(2030, 1, 1))
    assert len(deals) == 5
    total = sum(round(d.profit * 100) + round(d.commission * 100) + round(d.swap * 100) for d in deals)
    assert round(term.account_info().balance * 100) == 1_000_000 + total


def test_swap_charged_at_rollover_triple_on_wednesday(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    long_ = done(buy(term, "EURUSD", 1.0))  # swap_long -8.0 points * 1 USD per point per lot
    short = done(sell(term, "EURUSD", 0.5))  # swap_short 3.0 points -> +1.50 per day
    term.advance(13 * 3600 + 59 * 60)  # Monday 23:59: no rollover yet
    assert [p.swap for p in term.positions_get()] == [0.0, 0.0]
    term.advance(120)  # Tuesday 00:01: Monday's rollover
    assert [p.swap for p in term.positions_get()] == [-8.0, 1.5]
    term.advance(2 * 86400)  # Thursday 00:01: Tuesday (1x) and Wednesday (3x)
    assert [p.swap for p in term.positions_get()] == [-40.0, 7.5]
    account = term.account_info()
    assert account.profit == pytest.approx(-10.0 - 5.0 - 40.0 + 7.5, abs=1e-9)  # floating incl. swap

    out = term.history_deals_get(ticket=done(close(term, long_.order)).order)[0]
    assert (out.swap, out.profit) == (-40.0, -10.0)
    assert term.account_info().balance == pytest.approx(10000 - 3.50 - 1.75 - 3.50 - 40.0 - 10.0, abs=1e-9)
    assert short.order in {p.ticket for p in term.positions_get()}


def test_swap_over_a_whole_week_is_seven_days(term):
    term.set_price("XAUUSD", 1999.75, 2000.00)
    done(buy(term, "XAUUSD", 0.1))  # -55 points * 1 USD * 0.1 lot = -5.50 per day
    term.advance(7 * 86400)
    assert term.positions_get()[0].swap == pytest.approx(-38.50, abs=1e-9)


def test_swap_in_yen_is_converted_at_the_rollover_price(term):
    term.set_price("USDJPY", 150.000, 150.015)
    done(buy(term, "USDJPY", 1.0))  # 15 points * 0.001 * 100000 = 1500 JPY / 150.000 = 10.00 USD
    term.advance(15 * 3600)  # Tuesday 01:00
    assert term.positions_get()[0].swap == 10.00


def test_partial_close_splits_the_swap(term):
    term.set_price("EURUSD", 1.09990, 1.10000)
    opened = done(buy(term, "EURUSD", 1.0))
    term.advance(86400)  # one rollover: -8.00
    out = term.history_deals_get(ticket=done(close(term, opened.order, volume=0.25)).order)[0]
    assert (out.volume, out.swap, out.profit) == (0.25, -2.0, -2.5)
    remaining = term.positions_get()[0]
    assert (remaining.volume, remaining.swap, remaining.ticket) == (0.75, -6.0, opened.order)


# ---------------------------------------------------------------- queries


def test_positions_get_filters(term):
    done(buy(term, "EURUSD", 0.1))
    done(sell(term, "USDJPY", 0.1))
    gold = done(buy(term, "XAUUSD", 0.1))
    assert {p.symbol for p in term.positions_get()} == {"EURUSD", "USDJPY", "XAUUSD"}
    assert [p.symbol for p in term.positions_get(symbol="USDJPY")] == ["USDJPY"]
    assert {p.symbol for p in term.positions_get(group="*USD*,!XAU*")} == {"EURUSD", "USDJPY"}
    assert [p.ticket for p in term.positions_get(ticket=gold.order)] == [gold.order]
    assert term.positions_get(ticket=1) == ()
    assert term.positions_get(symbol="NOPE") == ()
    assert term.positions_get()[1].type == POSITION_TYPE_SELL
    assert term.positions_total() == 3
    assert term.orders_get() == () and term.orders_total() == 0


def test_history_filters_by_date_position_and_ticket(term):
    first = done(buy(term, "EURUSD", 0.1))
    term.advance(3600)
    second = done(buy(term, "AUDUSD", 0.1))
    term.advance(3600)
    closing = done(close(term, first.order))
    t0 = MONDAY_10
    in_first_hour = term.history_deals_get(t0, t0 + timedelta(minutes=59))
    assert [d.order for d in in_first_hour] == [first.order]
    epoch = int(t0.timestamp())
    assert [d.order for d in term.history_deals_get(epoch, epoch + 3600)] == [first.order, second.order]
    assert len(term.history_deals_get(t0, t0 + timedelta(hours=3))) == 3
    assert [d.symbol for d in term.history_deals_get(t0, t0 + timedelta(hours=3), group="AUD*")] == ["AUDUSD"]
    by_position = term.history_deals_get(position=first.order)
    assert [(d.entry, d.order) for d in by_position] == [
        (DEAL_ENTRY_IN, first.order),
        (DEAL_ENTRY_OUT, closing.order),
    ]
    assert [d.ticket for d in term.history_deals_get(ticket=closing.order)] == [closing.deal]
    assert [o.ticket for o in term.history_orders_get(position=first.order)] == [first.order, closing.order]
    assert [o.ticket for o in term.history_orders_get(ticket=second.order)] == [second.order]
    assert [
        o.ticket for o in term.history_orders_get(t0 + timedelta(minutes=30), t0 + timedelta(hours=1))
    ] == [second.order]
    assert term.history_deals_total(t0, t0 + timedelta(hours=3)) == 3
    assert term.history_deals_get(t0 + timedelta(days=1), t0 + timedelta(days=2)) == ()
    assert term.history_deals_get() is None and term.last_error()[0] == -2
    assert term.history_deals_get("yesterday", "today") is None


def test_random_garbage_requests_never_raise(term):
    """A seeded fuzz over field values: every call returns a result tuple, books stay consistent."""
    import random

    values = {
        "action": [TRADE_ACTION_DEAL, TRADE_ACTION_SLTP, 0, -1, 2.5, "1", None, True],
        "symbol": ["EURUSD", "XAUUSD", "USDJPY", "", "eurusd", None, 3, ("EURUSD",)],
        "volume": [0.01, 0.1, 1, 0.005, -1, 1e308, float("inf"), "1", None, 10**30],
        "type": [ORDER_TYPE_BUY, ORDER_TYPE_SELL, 2, -1, 1.0, "0", None],
        "price": [0, 0.0, 1.1, 150.0, 2000.0, -5, float("nan"), "x", 1e300],
        "sl": [0, 1.0, 1.2, 140.0, 5000.0, -1, float("-inf"), "x"],
        "tp": [0, 1.0, 1.2, 160.0, 1000.0, -1, None],
        "deviation": [0, 5, 10**12, -3, 2.0, None],
        "type_filling": [0, 1, 2, 3, -1, None, "FOK"],
        "magic": [0, 1, 2**63, -1, 1.5, "m"],
        "comment": ["", "x" * 100, "ünïcødé", None, 5],
        "position": [0, 1, 1_000_001, -4, 2.2, "p"],
        "expiration": [0, None, "tomorrow"],
    }
    base = {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.01, "type": ORDER_TYPE_BUY}
    rng = random.Random(1234)
    retcodes = set()
    for _ in range(600):
        request = dict(base)
        for key in rng.sample(sorted(values), rng.randint(1, 3)):  # mutate a valid request
            if rng.random() < 0.2:
                request.pop(key, None)
            else:
                request[key] = rng.choice(values[key])
        check = term.order_check(request)
        sent = term.order_send(request)
        assert check is not None and sent is not None, (request, term.last_error())
        assert isinstance(sent.retcode, int) and isinstance(check.retcode, int)
        retcodes.add(sent.retcode)
    assert {TRADE_RETCODE_DONE, TRADE_RETCODE_INVALID, TRADE_RETCODE_INVALID_VOLUME} <= retcodes, retcodes
    deals = term.history_deals_get(0, 2**40)
    booked = sum(round((d.profit + d.commission + d.swap) * 100) for d in deals)
    assert round(term.account_info().balance * 100) == 1_000_000 + booked
