"""Keep the store's books in step with the broker: deals, trades and unknown order outcomes.

The broker is the source of truth. Trades are derived from deals (an IN deal opens a trade, the
OUT deals of a position that is no longer open close it), so a position opened and stopped out
between two cycles is still recorded, and replaying the same deals changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from db import DealConflict, DealRecord, OrderOutcome, Repository, TradeClose, TradeOpen
from mt5bridge import constants as mt5

from ..gateway import Deal, Gateway
from ..pips import profit_in_pips
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


def _direction(deal_type: int) -> str:
    return "BUY" if deal_type == mt5.DEAL_TYPE_BUY else "SELL"


def attributed_strategy(magic: int) -> str:
    """Who made a trade this bot did not: `manual` (magic 0, a person at a terminal) or `ea:<magic>`."""
    return "manual" if magic == 0 else f"ea:{magic}"


def is_trade_deal(deal: Deal) -> bool:
    return deal.type in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL)


class Books:
    def __init__(self, gateway: Gateway, repo: Repository, account: str, magic: int, digits: dict[str, int],
                 on_conflict=None, whole_account: bool = False):
        self.gateway = gateway
        # Whole account: every deal of the account is booked (balance operations as deals only,
        # other magics' and manual positions as trades attributed by `attributed_strategy`).
        self.whole_account = whole_account
        self.position_deals: dict[int, list[Deal]] | None = None  # filled by the history import
        self.on_conflict = on_conflict  # called once per deal ticket the store holds with other content
        self._conflicts: set[int] = set()
        self.repo = repo
        self.account = account
        self.magic = magic
        self.digits = digits
        self._deals_since: datetime | None = None
        self._our_positions: set[int] = {t.ticket for t in repo.open_trades(account)}
        # Deal tickets already in the store, with their time: only the fetch window's worth is kept,
        # so months of trading do not grow this (or `_our_positions`, pruned as trades close).
        self._recorded: dict[int, datetime] | None = None

    def sync(self, now: datetime, history_days: int, open_tickets: set[int]) -> tuple[int, int]:
        """Record new deals, open and close trades. Returns (trades opened, trades closed)."""
        since = (self._deals_since or (now - timedelta(days=history_days))) - DEAL_WINDOW_OVERLAP
        if self._recorded is None:
            self._recorded = dict.fromkeys(self.repo.known_deal_tickets(self.account, since), now)
        fetch = self.gateway.account_deals if self.whole_account else self.gateway.deals
        opened, closed = self.book(fetch(since, now + FAR_AHEAD), self._open_tickets(open_tickets))
        self._deals_since = now
        horizon = since - DEAL_WINDOW_OVERLAP  # older deals are never fetched again
        for ticket in [t for t, at in self._recorded.items() if at < horizon]:
            del self._recorded[ticket]
        return opened, closed

    def book(self, deals: list[Deal], open_tickets: set[int]) -> tuple[int, int]:
        """Record `deals` (oldest first), open their trades, close those whose position is no longer open."""
        if self._recorded is None:
            self._recorded = {}
        deals = sorted(deals, key=lambda d: (d.time, d.ticket))
        opened = closed = 0
        closing: set[int] = set()
        for deal in deals:
            if deal.entry == mt5.DEAL_ENTRY_IN and deal.magic == self.magic:
                self._our_positions.add(deal.position_id)
            if deal.ticket in self._recorded:
                continue
            if deal.position_id not in self._our_positions and deal.magic != self.magic and not self.whole_account:
                continue
            stored = self._store_deal(deal)
            self._recorded[deal.ticket] = deal.time
            if not stored or not is_trade_deal(deal):
                continue  # a balance operation is a deal, never a trade
            if deal.entry == mt5.DEAL_ENTRY_IN:
                opened += self._open_trade(deal)
            elif deal.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY):
                closing.add(deal.position_id)
        for position_id in sorted(closing - open_tickets):
            closed += self._close_trade(position_id)
            self._our_positions.discard(position_id)
        return opened, closed

    def _cached_deals(self, position_id: int) -> list[Deal] | None:
        """A position's deals as the history import collected them, when they are all there (its
        volume in equals its volume out); else None and the broker is asked (a partial exit seen
        before the rest of the history must not close the trade on part of its deals)."""
        if self.position_deals is None:
            return None
        deals = self.position_deals.get(position_id)
        if not deals:
            return None
        inside = sum((d.volume for d in deals if d.entry == mt5.DEAL_ENTRY_IN), Decimal(0))
        outside = sum((d.volume for d in deals if d.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY)), Decimal(0))
        if inside == 0 or inside != outside:
            return None
        return self.position_deals.pop(position_id)

    def _open_tickets(self, ours: set[int]) -> set[int]:
        """Positions still open: with the whole account, every open position (not only this bot's)."""
        if not self.whole_account:
            return ours
        return set(ours) | {p.ticket for p in self.gateway.positions()}

    def _deal_record(self, deal: Deal) -> DealRecord:
        return DealRecord(
            account=self.account,
            ticket=deal.ticket,
            order_ticket=deal.order,
            position_id=deal.position_id,
            symbol=deal.symbol,
            type=deal.type,
            entry=deal.entry,
            volume=deal.volume,
            price=deal.price,
            profit=deal.profit,
            commission=deal.commission,
            swap=deal.swap,
            magic=deal.magic,
            comment=deal.comment,
            reason=deal.reason,
            time=deal.time,
        )

    def _store_deal(self, deal: Deal) -> bool:
        """Record a deal; False when the store holds its ticket with other content (said once, counted)."""
        try:
            self.repo.record_deal(self._deal_record(deal))
            return True
        except DealConflict as exc:
            if deal.ticket not in self._conflicts:
                self._conflicts.add(deal.ticket)
                log.error("broker deal ticket conflict with the store: %s", exc, extra={"ticket": deal.ticket})
                if self.on_conflict is not None:
                    self.on_conflict()
            return False

    def _open_trade(self, deal: Deal) -> int:
        opening = self.trade_open(deal)
        inserted = self.repo.open_trade(opening)
        if inserted:
            log.info(
                "trade opened",
                extra={"ticket": deal.position_id, "symbol": deal.symbol, "price": str(deal.price),
                       "correlation_id": opening.correlation_id},
            )
        return int(inserted)

    def trade_open(self, deal: Deal) -> TradeOpen:
        """The trade an IN deal opens: strategy from the bot's order intent, else `attributed_strategy`."""
        client_order_id = client_order_id_from(deal.comment) if deal.magic == self.magic else None
        intent = self.repo.get_order(client_order_id) if client_order_id else None
        strategy = intent.strategy if intent else None if deal.magic == self.magic else attributed_strategy(deal.magic)
        return (
            TradeOpen(
                account=self.account,
                ticket=deal.position_id,
                symbol=deal.symbol,
                direction=_direction(deal.type),
                volume=deal.volume,
                entry_price=deal.price,
                entry_time=deal.time,
                stop_loss=intent.sl if intent else None,
                take_profit=intent.tp if intent else None,
                strategy_name=strategy,
                ml_confidence=None,
                client_order_id=client_order_id,
                magic=deal.magic,
                correlation_id=intent.correlation_id if intent else None,
            )
        )

    def _close_trade(self, position_id: int, deals: list[Deal] | None = None) -> int:
        """Close a trade from its position's deals (fetched unless given: the history import has them)."""
        if deals is None:
            deals = self._cached_deals(position_id) or self.gateway.deals_for_position(position_id)
        entries = [d for d in deals if d.entry == mt5.DEAL_ENTRY_IN]
        exits = [d for d in deals if d.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY)]
        if not entries or not exits:
            return 0
        for deal in deals:
            if deal.ticket not in (self._recorded or ()) and not self._store_deal(deal):
                return 0  # the store holds one of its deals with other content: not closed from it
        entry = entries[0]
        trade = self.repo.get_trade(self.account, position_id)
        if trade is None:
            self._open_trade(entry)
            trade = self.repo.get_trade(self.account, position_id)
        if trade is None or trade.is_closed:
            return 0
        self.repo.close_trade(self.trade_close(position_id, deals))
        closed = self.repo.get_trade(self.account, position_id)
        log.info(
            "trade closed",
            extra={"ticket": position_id, "symbol": entry.symbol, "profit": str(closed.profit) if closed else None,
                   "correlation_id": closed.correlation_id if closed else None},
        )
        return 1

    def trade_close(self, position_id: int, deals: list[Deal]) -> TradeClose:
        """How a position's deals (its entries and exits, all of them) close its trade."""
        entry = next(d for d in deals if d.entry == mt5.DEAL_ENTRY_IN)
        exits = [d for d in deals if d.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY)]
        exit_volume = sum((d.volume for d in exits), Decimal(0))
        exit_price = sum((d.price * d.volume for d in exits), Decimal(0)) / exit_volume
        digits = self.digits.get(entry.symbol, 5)
        exit_price = exit_price.quantize(Decimal(1).scaleb(-digits))
        direction = _direction(entry.type)
        return TradeClose(
            account=self.account,
            ticket=position_id,
            exit_price=exit_price,
            exit_time=max(d.time for d in exits),
            gross_profit=sum((d.profit for d in exits), Decimal(0)),
            commission=sum((d.commission for d in deals), Decimal(0)),
            swap=sum((d.swap for d in deals), Decimal(0)),
            profit_pips=profit_in_pips(entry.symbol, digits, direction, entry.price, exit_price),
        )

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
            log.info(
                "unknown order resolved",
                extra={"client_order_id": intent.client_order_id, "outcome": outcome.status,
                       "correlation_id": intent.correlation_id, "resolution": outcome.message},
            )
        return resolved

    # -- start-up reconciliation --------------------------------------------------------------

    def reconcile(self, now: datetime, history_days: int, open_positions: list) -> tuple[int, int, int]:
        """Bring the store in line with the broker before any new order.

        Deals since the last known state are recorded (trades opened/closed from them), positions
        with our magic the store does not know are adopted, and trades the store holds open but the
        broker has closed are closed out. Returns (opened, closed, adopted).
        """
        last = self.repo.last_deal_time(self.account)
        if last is not None:
            last = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
            self._deals_since = min(last, now - timedelta(days=history_days))
        open_tickets = {p.ticket for p in open_positions}
        opened, closed = self.sync(now, history_days, open_tickets)
        open_tickets = self._open_tickets(open_tickets)
        adopted = 0
        for position in open_positions:
            if self.repo.get_trade(self.account, position.ticket) is None:
                entries = [d for d in self.gateway.deals_for_position(position.ticket)
                           if d.entry == mt5.DEAL_ENTRY_IN]
                if entries:
                    self._our_positions.add(position.ticket)
                    if any(not self._store_deal(d) for d in entries if d.ticket not in (self._recorded or ())):
                        continue
                    adopted += self._open_trade(entries[0])
                    log.warning("position adopted", extra={"ticket": position.ticket, "symbol": position.symbol})
        for trade in self.repo.open_trades(self.account):
            if trade.ticket not in open_tickets:
                closed += self._close_trade(trade.ticket)
        return opened, closed, adopted
