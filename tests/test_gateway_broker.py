"""The gateway against a strict broker: filling per symbol, Market Watch, server clock, grid, -8.

Runs on the default simulator wrapped by `strict_broker.StrictBroker` (the behaviours it does not
have yet), and on every broker profile once those exist (`broker_profiles()`, the conformance
test's hook).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from strict_broker import StrictBroker
from test_mt5_conformance import broker_profiles, make_terminal

from bot.gateway import NotExpressible, OrderRejected, OrderRequest, SymbolSpec, TradingDisabled, grid
from bot.gateway.filling import FILLING_TABLE, allowed_fillings, next_filling
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

FOK, IOC, RETURN = mt5.ORDER_FILLING_FOK, mt5.ORDER_FILLING_IOC, mt5.ORDER_FILLING_RETURN
BITS_FOK, BITS_IOC = mt5.SYMBOL_FILLING_FOK, mt5.SYMBOL_FILLING_IOC


# --- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize(("exemode", "bits", "expected"), [
    (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, BITS_FOK | BITS_IOC, (FOK,)),
    (mt5.SYMBOL_TRADE_EXECUTION_REQUEST, BITS_IOC, (FOK,)),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, BITS_FOK | BITS_IOC, (IOC, FOK)),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, BITS_FOK, (FOK,)),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, BITS_IOC, (IOC,)),
    (mt5.SYMBOL_TRADE_EXECUTION_MARKET, 0, (RETURN,)),
    (mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE, BITS_IOC, (IOC, RETURN)),
    (mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE, 0, (RETURN,)),
])
def test_filling_modes_follow_execution_mode_and_bits(exemode, bits, expected):
    assert allowed_fillings(exemode, bits) == expected


def test_the_table_covers_every_execution_mode_and_the_next_mode_skips_what_was_tried():
    assert set(FILLING_TABLE) == {mt5.SYMBOL_TRADE_EXECUTION_REQUEST, mt5.SYMBOL_TRADE_EXECUTION_INSTANT,
                                  mt5.SYMBOL_TRADE_EXECUTION_MARKET, mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE}
    assert next_filling(mt5.SYMBOL_TRADE_EXECUTION_MARKET, BITS_FOK | BITS_IOC, {IOC}) == FOK
    assert next_filling(mt5.SYMBOL_TRADE_EXECUTION_INSTANT, BITS_FOK, {FOK}) is None


# --- the grid --------------------------------------------------------------------------------


def spec(step="0.001", vmin="0.001", tick="0.25", digits=2) -> SymbolSpec:
    return SymbolSpec(name="US500", digits=digits, point=Decimal("0.01"), contract_size=Decimal(1),
                      tick_size=Decimal(tick), tick_value=Decimal("0.25"), volume_min=Decimal(vmin),
                      volume_max=Decimal(100), volume_step=Decimal(step), stops_level=0, currency_profit="USD")


def test_volumes_keep_every_decimal_of_the_step():
    assert grid.exact(0.001) == Decimal("0.001")  # rounding to 2 places made this 0
    assert grid.to_step(Decimal("0.0379"), spec()) == Decimal("0.037")
    with pytest.raises(NotExpressible) as below:
        grid.to_step(Decimal("0.0009"), spec())
    assert below.value.reason == "volume_below_min"


def test_prices_land_on_the_tick_size_not_the_point():
    assert grid.to_tick(Decimal("4512.37"), spec()) == Decimal("4512.25")
    assert grid.to_tick(Decimal("4512.38"), spec()) == Decimal("4512.50")
    with pytest.raises(NotExpressible) as unknown:
        grid.to_tick(Decimal("4512.37"), spec(tick="0"))
    assert unknown.value.reason == "tick_size_unknown"


def test_risk_sizing_with_a_thousandth_step_and_coarse_ticks():
    from bot.engine.risk import position_volume, stops_from_atr

    s = spec()
    # 1 % of 1 000 = 10 USD; a 20-point stop = 80 ticks of 0.25 USD = 20 USD a lot -> 0.5 lot
    assert position_volume(s, Decimal(1000), Decimal(1), Decimal(20)) == Decimal("0.5")
    # 10 / (7.3 / 0.25 * 0.25) = 1.3698.. -> 1.369 (three decimals kept)
    assert position_volume(s, Decimal(1000), Decimal(1), Decimal("7.3")) == Decimal("1.369")
    stops = stops_from_atr(s, "BUY", Decimal("4512.25"), Decimal("3.1"), Decimal(1), Decimal(1))
    assert stops.sl == Decimal("4509.00") and stops.tp == Decimal("4515.50")  # away from the entry


# --- against a strict broker -----------------------------------------------------------------


def strict(offset=7200, **options):
    terminal = SimTerminal(seed=5, stepped=True)
    terminal.advance(3600)
    broker = StrictBroker(Mt5Module(terminal), offset=offset, **options)
    return terminal, broker, Mt5ApiGateway(lambda: broker, name="strict")


def request(gateway, name, side="BUY", volume="0.10", comment="tw0123456789 test"):
    quote = gateway.quote(name)
    return OrderRequest(symbol=name, side=side, volume=Decimal(volume), price=quote.ask if side == "BUY" else quote.bid,
                        sl=None, tp=None, deviation=20, magic=7, comment=comment)


def test_fok_only_instant_symbol_gets_fok_at_once():
    _, broker, gateway = strict()
    gateway.connect()
    result = gateway.order_send(request(gateway, "EURUSD.m"))
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    assert broker.fillings == [("EURUSD.m", FOK)]


def test_10030_rereads_the_symbol_and_retries_once_with_the_next_mode_under_the_same_id():
    _, broker, gateway = strict(fill_bits={"XAUUSD": BITS_IOC | BITS_FOK})
    gateway.connect()
    order = request(gateway, "XAUUSD.m", volume="0.01")
    broker.fill_bits["XAUUSD"] = BITS_FOK  # the broker changed the symbol since it was read
    result = gateway.order_send(order)
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    assert broker.fillings == [("XAUUSD.m", IOC), ("XAUUSD.m", FOK)]
    deals = broker.module.history_deals_get(position=broker.module.positions_get()[0].ticket)
    assert [d.comment for d in deals] == ["tw0123456789 test"]  # one order, the same client order id


def test_10030_with_no_other_mode_is_a_rejection_after_one_retry_at_most():
    _, broker, gateway = strict(fill_bits={"XAUUSD": BITS_IOC})
    gateway.connect()
    order = request(gateway, "XAUUSD.m", volume="0.01")
    broker.fok_only.add("XAUUSD")  # now Instant/FOK; but the broker refuses FOK too
    broker.fill_bits["XAUUSD"] = 0
    original = broker.order_send

    def refuse_everything(req):
        broker.fillings.append((req["symbol"], req["type_filling"]))
        return broker._result(req, mt5.TRADE_RETCODE_INVALID_FILL, "Unsupported filling mode")

    broker.order_send = refuse_everything
    with pytest.raises(OrderRejected) as refused:
        gateway.order_send(order)
    broker.order_send = original
    assert refused.value.retcode == mt5.TRADE_RETCODE_INVALID_FILL
    assert broker.fillings == [("XAUUSD.m", IOC), ("XAUUSD.m", FOK)]


def test_symbols_outside_market_watch_are_selected_before_the_first_quote_and_after_a_reconnect():
    _, broker, gateway = strict()
    gateway.connect()
    assert gateway.quote("XAUUSD.m").bid > 0
    gateway.quote("XAUUSD.m")
    gateway.quote("EURUSD.m")  # visible: never selected
    assert broker.select_calls == ["XAUUSD.m"]
    broker.selected.clear()  # a terminal restart forgets Market Watch
    gateway.reconnect()
    assert gateway.quote("XAUUSD.m").bid > 0
    assert broker.select_calls == ["XAUUSD.m", "XAUUSD.m"]


def test_every_time_from_the_gateway_is_true_utc_and_history_ranges_go_in_server_time():
    terminal, broker, gateway = strict(offset=3 * 3600)
    gateway.connect()
    now = terminal.now()
    quote = gateway.quote("EURUSD.m")
    assert abs((quote.time - now).total_seconds()) <= 1
    assert gateway.clock.offset == 3 * 3600
    gateway.order_send(request(gateway, "EURUSD.m"))
    (position,) = gateway.positions()
    assert abs((position.time - now).total_seconds()) <= 1
    deals = gateway.deals(now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert len(deals) == 1 and abs((deals[0].time - now).total_seconds()) <= 1
    # A range that ends before the deal in UTC finds nothing (it would, read as server time).
    assert gateway.deals(now - timedelta(hours=2), now - timedelta(minutes=1)) == []
    orders = gateway.history_orders(now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert len(orders) == 1 and abs((orders[0].time_done - now).total_seconds()) <= 1
    bars = gateway.bars("EURUSD.m", mt5.TIMEFRAME_M1, 5)
    last = datetime.fromtimestamp(int(bars.time[-1]), UTC)
    assert timedelta(0) <= now - last < timedelta(minutes=1)


def test_api_trading_disabled_is_a_configuration_fault_not_an_unknown_outcome():
    _, broker, gateway = strict()
    gateway.connect()
    order = request(gateway, "EURUSD.m")
    broker.trading_disabled = True
    with pytest.raises(TradingDisabled) as disabled:
        gateway.order_send(order)
    assert "Algo Trading" in str(disabled.value)
    assert broker.module.positions_get() == ()


def test_a_request_off_the_grid_is_never_sent():
    _, broker, gateway = strict()
    gateway.connect()
    with pytest.raises(NotExpressible):
        gateway.order_send(request(gateway, "EURUSD.m", volume="0.001"))  # step 0.01, min 0.01
    assert broker.fillings == []


# --- on the real profiles, once they exist ------------------------------------------------------


@pytest.mark.parametrize("profile", broker_profiles(), ids=lambda p: p or "default")
def test_every_symbol_fills_with_the_mode_the_gateway_picks(profile):
    """No 10030 on any symbol the profile offers; every time converted to within 1 s of UTC."""
    terminal = make_terminal(profile)
    terminal.advance(3600)
    gateway = Mt5ApiGateway(lambda: Mt5Module(terminal), name="profile")
    gateway.connect()
    filled = 0
    for name in gateway.symbol_names():
        quote = gateway.quote(name)
        if quote.time < terminal.now() - timedelta(seconds=60):
            continue  # this symbol's market is closed now (a session break): nothing to fill
        assert abs((quote.time - terminal.now()).total_seconds()) <= 1
        spec = gateway.symbol(name)
        volume = max(spec.volume_min, spec.volume_step)
        order = OrderRequest(symbol=name, side="BUY", volume=volume, price=quote.ask, sl=None, tp=None,
                             deviation=50, magic=7, comment="tw00000000aa fill")
        try:
            result = gateway.order_send(order)
        except OrderRejected as exc:
            assert exc.retcode != mt5.TRADE_RETCODE_INVALID_FILL, f"{name}: {exc}"
            continue
        assert result.retcode in (mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_DONE_PARTIAL)
        filled += 1
    assert filled > 0, "no symbol was open to trade: the test proved nothing"
