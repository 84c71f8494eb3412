"""The bot's gateway against the package's calling conventions: every call it makes, accepted.

In sim mode the gateway talks to the strict stand-in (mt5bridge.sim.mt5module), and through the
bridge to the same stand-in behind a real server: a call the real MetaTrader5 would refuse (an int
volume, keywords to a positional-only call, an empty **kwargs splat) would fail here.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bridge_thread import connect_bridge, start_bridge, stop_bridge

from bot.gateway.mt5api import Mt5ApiGateway
from bot.gateway.types import OrderRequest
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

TOKEN = "gateway-strict-" + uuid.uuid4().hex
CREDENTIALS = {"login": 5001234, "password": "pw", "server": "TradewatchSim-Demo"}


@pytest.fixture(params=["sim", "bridge"])
def gateway(request):
    terminal = SimTerminal(seed=12, stepped=True, password="pw")
    terminal.advance(3600)
    if request.param == "sim":
        yield Mt5ApiGateway(lambda: Mt5Module(terminal), CREDENTIALS, name="sim")
        return
    server, thread = start_bridge(Mt5Module(terminal), TOKEN)
    try:
        # In bridge mode the broker credentials stay on the terminal side: none are sent.
        yield Mt5ApiGateway(lambda: connect_bridge(server, TOKEN), {})
    finally:
        stop_bridge(server, thread)


def test_every_gateway_call_passes_the_strict_api(gateway):
    gateway.connect()
    try:
        assert gateway.terminal().connected
        assert gateway.account().login == 5001234
        spec = gateway.symbol("EURUSD")
        assert spec.volume_step == Decimal("0.01")
        quote = gateway.quote("EURUSD")
        bars = gateway.bars("EURUSD", mt5.TIMEFRAME_M1, 30)
        assert len(bars.close) == 30
        result = gateway.order_send(
            OrderRequest(
                symbol="EURUSD",
                side="BUY",
                volume=Decimal("0.10"),
                price=quote.ask,
                sl=quote.ask - Decimal("0.00500"),
                tp=quote.ask + Decimal("0.00500"),
                deviation=20,
                magic=4242,
                comment="tw:strict",
            )
        )
        assert result.retcode == mt5.TRADE_RETCODE_DONE and result.volume == Decimal("0.1")
        [position] = gateway.positions("EURUSD")
        assert position.comment == "tw:strict" and position.sl is not None
        week = timedelta(days=7)
        now = datetime(2026, 1, 5, 1, tzinfo=UTC)
        assert [d.order for d in gateway.deals(now - week, now + week)] == [result.order]
        assert [d.order for d in gateway.deals_for_position(position.ticket)] == [result.order]
        assert [o.ticket for o in gateway.history_orders(now - week, now + week)] == [result.order]
        assert gateway.open_orders() == []
        closed = gateway.order_send(
            OrderRequest(
                symbol="EURUSD",
                side="SELL",
                volume=position.volume,
                price=gateway.quote("EURUSD").bid,
                sl=None,
                tp=None,
                deviation=20,
                magic=4242,
                comment="tw:strict-close",
                position=position.ticket,
            )
        )
        assert closed.retcode == mt5.TRADE_RETCODE_DONE and gateway.positions() == []
    finally:
        gateway.close()
