"""The gateway's deal cache: a deal row met again is neither judged nor converted again, a changed one is.

The deal sync asks for the same hour of deals (and each position's deals) over and over; only the
first sight of a row may cost the guard's judgement and the conversion, and a row whose content
changed under the same ticket must still reach the guard (a ticket conflict, reported and refused).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.gateway import OrderRequest, convert
from bot.gateway import dealcache as dealcache_module
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module


@pytest.fixture()
def traded():
    """A gateway over a simulated terminal with one opened and closed position (two deals)."""
    terminal = SimTerminal(seed=3, stepped=True)
    terminal.advance(3600)
    gateway = Mt5ApiGateway(lambda: Mt5Module(terminal), name="sim")
    gateway.connect()
    quote = gateway.quote("EURUSD")
    opened = gateway.order_send(OrderRequest(symbol="EURUSD", side="BUY", volume=gateway.symbol("EURUSD").volume_min,
                                             price=quote.ask, sl=None, tp=None, deviation=50, magic=7,
                                             comment="tw00000000aa open"))
    terminal.advance(60)
    (position,) = gateway.positions()
    quote = gateway.quote("EURUSD")
    gateway.order_send(OrderRequest(symbol="EURUSD", side="SELL", volume=position.volume, price=quote.bid, sl=None,
                                    tp=None, deviation=50, magic=7, comment="tw00000000ab close",
                                    position=position.ticket))
    assert opened.deal
    return terminal, gateway


def _window(terminal):
    return terminal.now() - timedelta(hours=2), terminal.now() + timedelta(days=1)


def test_a_deal_row_met_again_is_taken_from_the_cache(traded, monkeypatch):
    terminal, gateway = traded
    conversions = []
    real = convert.deal
    monkeypatch.setattr(convert, "deal", lambda *a, **k: conversions.append(a[0]["ticket"]) or real(*a, **k))
    first = gateway.deals(*_window(terminal))
    judged = []
    monkeypatch.setattr(gateway.guard, "judge", lambda *a: judged.append(a[0]))
    again = gateway.deals(*_window(terminal))
    assert len(first) == 2 and again == first and again[0] is first[0]
    assert gateway.deals_total(*_window(terminal)) == 2  # the sync's probe counts the same window
    assert sorted(conversions) == sorted(d.ticket for d in first)  # converted once each, judged once each
    assert judged == []
    assert gateway.deals_for_position(first[0].position_id) == first  # the position's deals: the same rows


def test_a_changed_row_is_judged_again_and_refused_as_a_ticket_conflict(traded):
    terminal, gateway = traded
    rejections = []
    gateway.set_rejection_sink(rejections.append)
    first = gateway.deals(*_window(terminal))
    real = gateway._call

    def rewritten(call, *args, **kwargs):  # the broker reports the first deal again with another profit
        rows = real(call, *args, **kwargs)
        if call != "history_deals_get":
            return rows
        return [dict(row, profit=row["profit"] + 1.0) if row["ticket"] == first[0].ticket else row for row in rows]

    gateway._call = rewritten
    again = gateway.deals(*_window(terminal))
    assert [d.ticket for d in again] == [first[1].ticket]  # the rewritten one is refused, the other kept
    assert [(r.reason, r.conflict) for r in rejections] == [("ticket_conflict", True)]


def test_the_cache_is_bounded_and_forgets_the_oldest():
    cache = dealcache_module.DealCache(size=2)
    deals = {}
    for ticket in (1, 2, 3):
        row = {"ticket": ticket, "profit": 1.5}
        deals[ticket] = object.__new__(dealcache_module.Deal)
        object.__setattr__(deals[ticket], "ticket", ticket)
        cache.put(cache.content(row), (5, 7200), deals[ticket])
    assert cache.get({"ticket": 1, "profit": 1.5}, cache.content({"ticket": 1, "profit": 1.5}), (5, 7200)) is None
    row = {"ticket": 3, "profit": 1.5}
    assert cache.get(row, cache.content(row), (5, 7200)) is deals[3]
    assert cache.get(row, cache.content(row), (5, 10800)) is None  # another server offset: converted again
    assert cache.content({"ticket": 4, "comment": ["unhashable"]}) is None
