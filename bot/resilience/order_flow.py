"""The way every order takes: durable queue -> gate (terminal up, breaker closed) -> claim -> send.

Why every order, not only those decided during an outage: one path means one guarantee. The order
is committed to the queue before anything else, `claim` hands each client order id to the sender
at most once, and an order that cannot go now simply stays queued. After a reconnection `replay`
sends what is still valid (inside its TTL, price within its deviation, strategy still agreeing,
no trace at the broker) and expires the rest with a recorded reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from db import OrderIntent, OrderOutcome, Repository
from mt5bridge import constants as mt5

from ..engine.execution import Decision
from ..engine.orders import OrderSender, SendOutcome, order_comment
from ..gateway import GatewayError
from .order_queue import QUEUED, SENDING, OrderQueue, QueuedOrder

log = logging.getLogger("bot.orders.flow")

#: Broker answers that say the sending path itself is unhealthy (they count against the breaker).
#: Other rejections (no money, invalid stops, market closed...) mean the broker answered normally.
_PATH_FAILURE_RETCODES = frozenset({
    mt5.TRADE_RETCODE_REJECT, mt5.TRADE_RETCODE_ERROR, mt5.TRADE_RETCODE_TOO_MANY_REQUESTS,
    mt5.TRADE_RETCODE_TRADE_DISABLED, mt5.TRADE_RETCODE_SERVER_DISABLES_AT, mt5.TRADE_RETCODE_CONNECTION,
    mt5.TRADE_RETCODE_TIMEOUT,
})

_DECISIONS_KEPT = 10_000


class Freshness(NamedTuple):
    """Whether a decided order may still go: broker time now, why it is stale (None: fresh), the price now."""

    now: datetime
    stale: str | None
    price: Decimal


class OrderFlow:
    """Queue, gate and send orders; replay or expire what waited.

    `can_send()` says whether the terminal is usable now; `breaker` is a
    `bot.store.breaker.CircuitBreaker` (allow / record_success / record_failure).
    `on_replayed()` and `on_expired(reason)` feed the metrics.
    """

    def __init__(
        self,
        queue: OrderQueue,
        sender: OrderSender,
        repo: Repository,
        *,
        can_send: Callable[[], bool],
        breaker=None,
        on_replayed: Callable[[], None] | None = None,
        on_expired: Callable[[str], None] | None = None,
        freshness: Callable[[QueuedOrder], Freshness] | None = None,
    ):
        self.queue = queue
        # Asked right before every send and again before resending a requoted order: a decision
        # can age between the intent and the send (a slow store write, a long replay loop, an
        # accelerated clock), so TTL and deviation are judged again at the last moment.
        self.freshness = freshness
        self.sender = sender
        self.repo = repo
        self.can_send = can_send
        self.breaker = breaker
        self.on_replayed = on_replayed
        self.on_expired = on_expired
        # When each order was decided (bot.engine.execution), by client order id: kept in memory
        # only (a monotonic time means nothing to another process), dropped once sent or expired.
        self._decisions: dict[str, Decision] = {}

    def _mine(self, state: str) -> list[QueuedOrder]:
        """This account's entries in a state (one queue file may outlive an account switch)."""
        return [o for o in self.queue.in_state(state) if o.account == self.sender.account]

    # -- the normal path ----------------------------------------------------------------------

    def submit(self, order: QueuedOrder, price: Decimal, decision: Decision | None = None) -> SendOutcome:
        """Commit the order to the queue, then send it now at `price` if the gate is open."""
        self.queue.put(order)
        if decision is not None:
            self._decisions[order.client_order_id] = decision
            if len(self._decisions) > _DECISIONS_KEPT:  # bounded: an order never sent loses its stamp
                self._decisions.pop(next(iter(self._decisions)))
        outcome = self._dispatch(order, price)
        if outcome.status == "queued":
            log.warning("order %s %s %s queued: %s", order.purpose, order.side, order.symbol, self.blocked_reason(),
                        extra={"client_order_id": order.client_order_id, "outcome": "queued",
                               "correlation_id": order.correlation_id})
        return outcome

    def blocked_reason(self) -> str | None:
        if not self.can_send():
            return "terminal unavailable"
        if self.breaker is not None and self.breaker.state == "open":
            return "order circuit open"
        return None

    def _dispatch(self, order: QueuedOrder, price: Decimal) -> SendOutcome:
        queued = SendOutcome(order.client_order_id, "queued", None, None, None)
        if not self.can_send():
            return queued
        quote_at_send: Decimal | None = None
        if self.freshness is not None:
            try:
                now, stale, quote_at_send = self.freshness(order)
            except GatewayError:
                return queued  # cannot tell: keep it queued, the replay judges it later
            if stale is not None:
                self._expire(order, now, stale)
                return SendOutcome(order.client_order_id, "expired", None, None, None)
        if not self.queue.claim(order.client_order_id):
            # Already claimed (sent or being sent) or expired: never a second send.
            return SendOutcome(order.client_order_id, "duplicate", None, None, None)
        if self.breaker is not None and not self.breaker.allow():
            self.queue.release(order.client_order_id)  # nothing was sent
            return queued
        outcome = self.sender.send(
            now=order.decided_at, correlation_id=order.correlation_id, signal_id=order.signal_id,
            symbol=order.symbol, strategy=order.strategy, side=order.side, purpose=order.purpose,
            volume=order.volume, price=price, sl=order.sl, tp=order.tp, position_ticket=order.position_ticket,
            client_order_id=order.client_order_id, decided_price=order.price, decided_at=order.decided_at,
            reprice=None if self.freshness is None else lambda: self._price_if_fresh(order),
            decision=self._decisions.get(order.client_order_id), quote_at_send=quote_at_send,
        )
        if outcome.status == "not_sent":
            self.queue.release(order.client_order_id)  # nothing left the process: it may go later
            self._breaker_result(False)
            return queued
        self.queue.finish(order.client_order_id, outcome.status)
        self._decisions.pop(order.client_order_id, None)
        self._breaker_result(outcome.status == "filled"
                             or (outcome.status == "rejected" and outcome.retcode not in _PATH_FAILURE_RETCODES
                                 and outcome.retcode is not None))
        return outcome

    def _price_if_fresh(self, order: QueuedOrder) -> Decimal | None:
        """The price to resend a requoted order at, or None when the decision no longer holds."""
        try:
            _, stale, price = self.freshness(order)
        except GatewayError as exc:
            log.info("requoted order %s not resent: no quote (%s)", order.client_order_id, exc,
                     extra={"client_order_id": order.client_order_id})
            return None
        if stale is not None:
            log.info("requoted order %s not resent: %s", order.client_order_id,
                     "older than its TTL" if stale == "ttl" else "price moved past its deviation",
                     extra={"client_order_id": order.client_order_id, "reason": stale})
            return None
        return price

    def _breaker_result(self, ok: bool) -> None:
        if self.breaker is None:
            return
        if ok:
            self.breaker.record_success()
        else:
            self.breaker.record_failure()

    # -- after an outage ----------------------------------------------------------------------

    def waiting_ids(self) -> set[str]:
        """Client ids that have certainly not been sent (queued): not to be resolved at the broker."""
        return {o.client_order_id for o in self._mine(QUEUED)}

    def settle_in_flight(self) -> int:
        """Entries a crash left in `sending`: finish those the store has settled or never recorded.

        No intent in the store means the send never happened (the intent is written first), so the
        entry goes back to the queue; a final outcome means it is done; otherwise it waits for the
        unknown-outcome resolution. Returns how many were settled.
        """
        settled = 0
        for order in self._mine(SENDING):
            row = self.repo.get_order(order.client_order_id)
            if row is None:
                settled += self.queue.release(order.client_order_id)
            elif row.status not in ("pending", "unknown"):
                settled += self.queue.finish(order.client_order_id, f"settled after restart: {row.status}")
        return settled

    def replay(
        self,
        now: datetime,
        judge: Callable[[QueuedOrder], tuple[Decimal | None, str | None]],
        at_broker: Callable[[set[str]], set[str]],
        on_sent: Callable[[QueuedOrder, SendOutcome], None] | None = None,
    ) -> tuple[int, int]:
        """Send or expire every queued order. Returns (replayed, expired).

        `judge(order)` gives the current price to send at and, if the order must not go, why
        (deviation, strategy, position_closed...); `at_broker(ids)` the ids the broker knows.
        """
        waiting = self._mine(QUEUED)
        if not waiting or not self.can_send():
            return 0, 0
        known = at_broker({o.client_order_id for o in waiting})
        replayed = expired = 0
        for order in waiting:
            if not self.can_send() or (self.breaker is not None and self.breaker.state == "open"):
                break
            reason: str | None = None
            price: Decimal | None = None
            if now > order.expires_at:
                reason = "ttl"
            elif order.client_order_id in known:
                reason = "at_broker"
            else:
                price, reason = judge(order)
            if reason is not None:
                expired += self._expire(order, now, reason)
                continue
            outcome = self._dispatch(order, price)
            if outcome.status == "expired":
                expired += 1
                continue
            if outcome.status in ("queued", "duplicate"):
                continue
            replayed += 1
            if on_sent is not None:
                on_sent(order, outcome)
            if self.on_replayed is not None:
                self.on_replayed()
            log.info("queued order replayed: %s", outcome.status,
                     extra={"client_order_id": order.client_order_id, "outcome": outcome.status,
                            "correlation_id": order.correlation_id, "price": str(price)})
        return replayed, expired

    def _expire(self, order: QueuedOrder, now: datetime, reason: str) -> int:
        self._decisions.pop(order.client_order_id, None)
        if not self.queue.expire(order.client_order_id, reason):
            return 0
        self.repo.record_order_intent(_intent(order, self.sender.magic))
        self.repo.record_order_outcome(OrderOutcome(
            client_order_id=order.client_order_id, status="expired", retcode=None, broker_order=None,
            broker_deal=None, fill_price=None, fill_volume=None, message=f"expired unsent: {reason}",
            resolved_at=now,
        ))
        if self.on_expired is not None:
            self.on_expired(reason)
        log.warning("queued order expired: %s", reason,
                    extra={"client_order_id": order.client_order_id, "reason": reason,
                           "correlation_id": order.correlation_id})
        return 1


def _intent(order: QueuedOrder, magic: int) -> OrderIntent:
    return OrderIntent(
        client_order_id=order.client_order_id, account=order.account, correlation_id=order.correlation_id,
        signal_id=order.signal_id, symbol=order.symbol, strategy=order.strategy, side=order.side,
        purpose=order.purpose, position_ticket=order.position_ticket, volume=order.volume,
        requested_price=order.price, sl=order.sl, tp=order.tp, deviation=order.deviation_points, magic=magic,
        comment=order_comment(order.client_order_id, order.strategy), created_at=order.decided_at,
    )
