"""The spool's read mirror stays bounded over months of trading and never answers wrongly after evicting.

What it must keep: open orders and open trades (the engine reads them every cycle while the database
is away). What it may forget: settled orders, closed trades, old deal tickets - a forgotten row is a
miss (`None`), never a wrong answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.store import mirror as mirror_module
from bot.store.mirror import Mirror
from db import DealRecord, OrderIntent, OrderOutcome, TradeClose, TradeOpen

ACCOUNT = "5012345"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def intent(k: int) -> OrderIntent:
    return OrderIntent(f"tw-{k:05d}", ACCOUNT, f"corr-{k}", k, "EURUSD", "ma_cross", "BUY", "open", None,
                       Decimal("0.10"), Decimal("1.08453"), Decimal("1.08000"), Decimal("1.09500"), 20, 240001,
                       f"tw-{k:05d}", T0 + timedelta(minutes=k))


def filled(k: int) -> OrderOutcome:
    return OrderOutcome(f"tw-{k:05d}", "filled", 10009, 7000 + k, 8000 + k, Decimal("1.08455"), Decimal("0.10"),
                        "done", T0 + timedelta(minutes=k, seconds=1))


def opened(k: int) -> TradeOpen:
    return TradeOpen(ACCOUNT, 9000 + k, "EURUSD", "BUY", Decimal("0.10"), Decimal("1.08455"),
                     T0 + timedelta(minutes=k), Decimal("1.08000"), Decimal("1.09500"), "ma_cross", 0.731,
                     f"tw-{k:05d}", 240001, f"corr-{k}")


def closed(k: int) -> TradeClose:
    return TradeClose(ACCOUNT, 9000 + k, Decimal("1.09500"), T0 + timedelta(minutes=k, hours=3), Decimal("104.50"),
                      Decimal("-0.70"), Decimal("-1.23"), Decimal("104.5"))


def deal(k: int) -> DealRecord:
    return DealRecord(ACCOUNT, 8000 + k, 7000 + k, 9000 + k, "EURUSD", 0, 0, Decimal("0.10"), Decimal("1.08455"),
                      Decimal("0.00"), Decimal("-0.35"), Decimal("0.00"), 240001, f"tw-{k:05d}", 3,
                      T0 + timedelta(minutes=k))


def test_settled_orders_and_closed_trades_are_bounded_open_ones_are_kept(monkeypatch):
    monkeypatch.setattr(mirror_module, "MAX_SETTLED_ORDERS", 50)
    monkeypatch.setattr(mirror_module, "MAX_CLOSED_TRADES", 50)
    mirror = Mirror()
    mirror.saw_orders_by_status(ACCOUNT, "pending", [])
    mirror.saw_open_trades(ACCOUNT, [])
    still_open = {3, 777, 1999}
    for k in range(2000):
        mirror.wrote_intent(intent(k), row_id=k + 1)
        mirror.wrote_open(opened(k), row_id=k + 1, inserted=True)
        if k not in still_open:
            mirror.wrote_outcome(filled(k))
            mirror.wrote_close(closed(k))

    assert len(mirror._orders) <= 50 + len(still_open)
    assert len(mirror._trades) <= 50 + len(still_open)
    # Open ones are all there, however old: the engine's per-cycle reads are still answered.
    assert [r.client_order_id for r in mirror.orders_by_status_known(ACCOUNT, "pending")] == [
        "tw-00003", "tw-00777", "tw-01999"]
    assert [t.ticket for t in mirror.open_trades_known(ACCOUNT)] == [9003, 9777, 10999]
    # The newest settled rows are answered exactly; evicted ones are misses, not stale answers.
    newest = mirror.order_known("tw-01998")
    assert newest.status == "filled" and newest.fill_price == Decimal("1.08455")
    assert mirror.trade_known(ACCOUNT, 10998).is_closed
    assert mirror.order_known("tw-00010") is None
    assert mirror.trade_known(ACCOUNT, 9010) is None


def test_deal_tickets_are_bounded_and_old_windows_become_misses(monkeypatch):
    monkeypatch.setattr(mirror_module, "MAX_DEALS_PER_ACCOUNT", 100)
    mirror = Mirror()
    mirror.saw_deal_tickets(ACCOUNT, T0 - timedelta(days=7), set())
    for k in range(1000):
        mirror.wrote_deal(deal(k))

    assert len(mirror._deals[ACCOUNT]) <= 100
    recent_since = T0 + timedelta(minutes=990)
    assert mirror.deal_tickets_known(ACCOUNT, recent_since) == {8000 + k for k in range(990, 1000)}
    # The start of the run was evicted: asking for it must go to the database.
    assert mirror.deal_tickets_known(ACCOUNT, T0) is None
    assert mirror.deal_tickets_known(ACCOUNT, None) is None

