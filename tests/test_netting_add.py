"""A netting account adding to a position (IN on an open position): the stored trade follows.

On the ecn-netting profile a second BUY on a symbol nets into the open position; MT5 then
reports the position's volume as the sum and its price_open as the volume-weighted average of the
IN deals. The stored trade must say the same, whether the bot sees the add while the position is
open or only once the add and the close both happened between two cycles. The closing deal's
reason is stored as the trade's close reason.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from bot.app import BotApp
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal
from tests.test_netting_run import _cycles, _position, _send, _settings

SYMBOL = "EURGBP"  # of ours, but no strategy owns it: only the test trades it


@pytest.fixture
def bot(tmp_path):
    sim = SimTerminal(seed=5, stepped=True, profile="ecn-netting")
    app = BotApp(_settings(tmp_path, "EURUSD,GBPUSD,USDJPY"), sim=sim, stepped=True)
    app.connect()
    app.start_telemetry(serve=False)
    try:
        yield app, sim
    finally:
        app.close()


def _trade(app, ticket):
    with app.database.engine.connect() as conn:
        return conn.execute(text("SELECT volume, entry_price, is_closed, close_reason FROM trades "
                                 "WHERE ticket = :t"), {"t": ticket}).one()


def _walk(sim, pips):
    bid = sim.symbol_info_tick(SYMBOL).bid
    sim.set_price(SYMBOL, round(bid + pips * 0.0001, 5))


def test_an_add_updates_the_open_trades_volume_and_weighted_price(bot):
    app, sim = bot
    magic = app.settings.magic
    _cycles(app, 2)
    _send(sim, magic, SYMBOL, "BUY", 0.10)
    _cycles(app, 2)
    ticket = _position(sim, SYMBOL).ticket
    first = _trade(app, ticket)
    assert Decimal(str(first.volume)) == Decimal("0.10")
    _walk(sim, 40)
    _send(sim, magic, SYMBOL, "BUY", 0.05)  # IN on the open position: nets into it
    position = _position(sim, SYMBOL)
    assert position.ticket == ticket and position.volume == pytest.approx(0.15)
    assert position.price_open != pytest.approx(float(first.entry_price))  # the add moved the average
    _cycles(app, 2)
    added = _trade(app, ticket)
    assert Decimal(str(added.volume)) == Decimal("0.15")
    assert Decimal(str(added.entry_price)) == Decimal(str(position.price_open)).quantize(Decimal("0.00001"))
    assert not added.is_closed and added.close_reason is None


def test_an_add_and_a_close_between_two_cycles_store_the_whole_trade(bot):
    app, sim = bot
    magic = app.settings.magic
    _cycles(app, 2)
    _send(sim, magic, SYMBOL, "BUY", 0.10)
    _cycles(app, 2)
    ticket = _position(sim, SYMBOL).ticket
    _walk(sim, -30)
    _send(sim, magic, SYMBOL, "BUY", 0.20)
    weighted = Decimal(str(_position(sim, SYMBOL).price_open)).quantize(Decimal("0.00001"))
    _send(sim, magic, SYMBOL, "SELL", 0.30, position=ticket)  # closed before the bot looks again
    assert not sim.positions_get(symbol=SYMBOL)
    _cycles(app, 2)
    closed = _trade(app, ticket)
    assert Decimal(str(closed.volume)) == Decimal("0.30")
    assert Decimal(str(closed.entry_price)) == weighted
    assert closed.is_closed and closed.close_reason == "expert"  # the sim stamps API orders DEAL_REASON_EXPERT
    out = [d for d in sim.history_deals_get(position=ticket) if d.entry == mt5.DEAL_ENTRY_OUT]
    assert [d.reason for d in out] == [mt5.DEAL_REASON_EXPERT]
