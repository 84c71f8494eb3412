"""Orders whose outcome is unknown (a timeout, a lost connection mid-send, a crash between the
intent and its outcome) looked up at the broker, never resent.

A market order that executed leaves at least a filled history order and an IN deal; one still
working is a pending order; none of these after UNKNOWN_ORDER_GRACE means it never executed. A
mixin of `bot.engine.books.Books` (whose gateway, store and magic it uses).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from db import OrderOutcome
from mt5bridge import constants as mt5

from .orders import client_order_id_from

log = logging.getLogger("bot.books")

#: How long an order with an unknown outcome may stay untraceable at the broker before we conclude
#: that it never executed (broker time).
UNKNOWN_ORDER_GRACE = timedelta(minutes=5)
#: Deals are fetched with this overlap so a deal stamped a little before the last look is not missed.
DEAL_WINDOW_OVERLAP = timedelta(hours=1)
FAR_AHEAD = timedelta(days=7)


@dataclass(frozen=True)
class BrokerTrace:
    """What the broker knows of one client order id."""

    filled: bool
    ticket: int | None
    price: Decimal | None
    volume: Decimal | None
    what: str
    pending: bool = False


class UnknownOrders:
    """Books methods that settle unknown outcomes at the broker (mixed into Books)."""

    def find_at_broker(self, client_order_ids: set[str], since: datetime, now: datetime) -> dict[str, BrokerTrace]:
        """Every trace of these client order ids at the broker, by magic and comment.

        Looks in order history, deal history, open positions and pending orders: a market order
        that executed leaves at least a filled history order and an IN deal.
        """
        if not client_order_ids:
            return {}
        found: dict[str, BrokerTrace] = {}

        def ours(comment: str, magic: int) -> str | None:
            client_order_id = client_order_id_from(comment)
            return client_order_id if magic == self.magic and client_order_id in client_order_ids else None

        for order in self.gateway.history_orders(since - DEAL_WINDOW_OVERLAP, now + FAR_AHEAD):
            cid = ours(order.comment, order.magic)
            if cid and (cid not in found or order.state == mt5.ORDER_STATE_FILLED):
                filled = order.state == mt5.ORDER_STATE_FILLED
                found[cid] = BrokerTrace(filled, order.ticket, order.price if filled else None,
                                         order.volume if filled else None, f"order in state {order.state}")
        for deal in self.gateway.deals(since - DEAL_WINDOW_OVERLAP, now + FAR_AHEAD):
            cid = ours(deal.comment, deal.magic)
            if cid and (cid not in found or not found[cid].filled):
                found[cid] = BrokerTrace(True, deal.order, deal.price, deal.volume, "deal found")
        for position in self.gateway.positions():
            cid = ours(position.comment, position.magic)
            if cid and cid not in found:
                found[cid] = BrokerTrace(True, None, position.price_open, position.volume, "open position found")
        for order in self.gateway.open_orders():
            cid = ours(order.comment, order.magic)
            if cid and cid not in found:
                found[cid] = BrokerTrace(False, order.ticket, None, None, "pending at the broker", pending=True)
        return found

    def resolve_unknown_orders(self, now: datetime, skip: frozenset[str] | set[str] = frozenset()) -> int:
        """Look up every order whose outcome is unknown (or whose intent has no outcome after a crash)
        at the broker; never resend it. `skip`: ids known not to have been sent. Returns how many were resolved.
        """
        pending = [o for status in ("unknown", "pending") for o in self.repo.orders_by_status(self.account, status)
                   if o.client_order_id not in skip]
        self.unresolved = len(pending)
        if not pending:
            return 0
        oldest = min(o.created_at for o in pending)
        traces = self.find_at_broker({o.client_order_id for o in pending}, oldest, now)
        resolved = 0
        for intent in pending:
            found = traces.get(intent.client_order_id)
            if found is not None and found.pending:
                continue  # still working at the broker: look again next cycle
            if found is not None and found.filled:
                outcome = OrderOutcome(
                    client_order_id=intent.client_order_id, status="filled", retcode=mt5.TRADE_RETCODE_DONE,
                    broker_order=found.ticket, broker_deal=None, fill_price=found.price, fill_volume=found.volume,
                    message=f"resolved: {found.what} at the broker", resolved_at=now,
                )
            elif found is not None:
                outcome = OrderOutcome(
                    client_order_id=intent.client_order_id, status="rejected", retcode=None, broker_order=found.ticket,
                    broker_deal=None, fill_price=None, fill_volume=None,
                    message=f"resolved: broker {found.what}", resolved_at=now,
                )
            elif now - intent.created_at >= UNKNOWN_ORDER_GRACE:
                outcome = OrderOutcome(
                    client_order_id=intent.client_order_id, status="rejected", retcode=None, broker_order=None,
                    broker_deal=None, fill_price=None, fill_volume=None,
                    message="resolved: no trace at the broker", resolved_at=now,
                )
            else:
                continue
            self.repo.record_order_outcome(outcome)
            resolved += 1
            self.unresolved -= 1
            log.info(
                "unknown order resolved",
                extra={"client_order_id": intent.client_order_id, "outcome": outcome.status,
                       "correlation_id": intent.correlation_id, "resolution": outcome.message},
            )
        return resolved
