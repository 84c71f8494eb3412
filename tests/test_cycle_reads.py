"""terminal_info / account_info read once per cycle until an order is sent (bot.gateway.cycle_reads)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from bot.gateway import OrderRequest
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module


def _gateway():
    calls: Counter = Counter()
    sim = SimTerminal(seed=4, stepped=True)
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim), observer=lambda call, seconds, error: calls.update([call]))
    gateway.connect()
    return gateway, sim, calls


def test_a_cycle_reads_the_terminal_and_the_account_once_until_an_order_is_sent():
    gateway, sim, calls = _gateway()
    calls.clear()
    with gateway.cycle_reads():
        assert gateway.terminal().connected and gateway.read_info("terminal_info")["connected"]
        before = gateway.account()
        assert gateway.read_info("account_info")["balance"] == float(before.balance)
        assert (calls["terminal_info"], calls["account_info"]) == (1, 1)
        ask = gateway.quote("EURUSD").ask
        gateway.order_send(OrderRequest(symbol="EURUSD", side="BUY", volume=Decimal("0.10"), price=ask, sl=None,
                                        tp=None, deviation=20, magic=1, comment="tw-cycle-reads"))
        after = gateway.account()  # the order moved the margin: read again
        assert calls["account_info"] == 2 and after.margin > before.margin
        gateway.account()
        assert calls["account_info"] == 2
        symbol_reads = calls["symbol_info"]
        gateway.read_info("symbol_info", "EURUSD")
        gateway.read_info("symbol_info", "EURUSD")
        assert calls["symbol_info"] == symbol_reads + 2  # only the two whole-terminal reads are kept
    gateway.terminal()
    gateway.terminal()
    assert calls["terminal_info"] == 3  # outside a cycle every read is made


def test_each_cycle_reads_afresh():
    gateway, sim, calls = _gateway()
    with gateway.cycle_reads():
        gateway.account()
    calls.clear()
    with gateway.cycle_reads():
        gateway.account()
        gateway.account()
    assert calls["account_info"] == 1
