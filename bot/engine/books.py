"""Keep the store's books in step with the broker: deals, trades and unknown order outcomes.

The broker is the source of truth. Trades are derived from each position's deals
(`trades_from_deals`: IN opens, OUT / OUT_BY reduce and close, INOUT closes one trade and opens
the reversed one on a netting account), so a position opened and stopped out between two cycles
is still recorded, and replaying the same deals changes nothing. A stop-out deal
(DEAL_REASON_SO) is logged once, counted (`on_stop_out`) and closes its trade with reason
"stop_out": every closed trade stores the reason of its last exit deal (`trades.close_reason`).
On a netting account an IN deal on an open position adds to its trade: the stored trade's volume
and entry price follow (the volume-weighted average of its IN deals, as MT5 reports the netted
position's price_open), also when the add and the close fall between two cycles. Unknown order
outcomes are settled at the broker by the `UnknownOrders` mixin (bot.engine.unknown_orders).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from db import DealConflict, DealRecord, Repository, TradeClose, TradeOpen
from mt5bridge import constants as mt5

from ..gateway import Deal, Gateway
from ..pips import profit_in_pips
from ..store.errors import StoreUnavailable
from .orders import client_order_id_from
from .trades_from_deals import STOP_OUT, Segment, segments, stored_close_reason
from .unknown_orders import DEAL_WINDOW_OVERLAP, FAR_AHEAD, UnknownOrders

log = logging.getLogger("bot.books")

#: Longest the window's deals go without a full fetch while the broker's count says nothing changed
#: (well inside DEAL_WINDOW_OVERLAP: a deal the count cannot show is still fetched in its window).
FULL_FETCH = timedelta(minutes=10)


def position_id_of(position) -> int:
    """The identifier a position's deals carry (its ticket, unless a netting reversal renewed it)."""
    return getattr(position, "identifier", 0) or position.ticket


def open_ids(positions) -> set[int]:
    """The position identifiers of open positions: what `Books.sync` takes as still open."""
    return {position_id_of(p) for p in positions}


def attributed_strategy(magic: int) -> str:
    """Who made a trade this bot did not: `manual` (magic 0, a person at a terminal) or `ea:<magic>`."""
    return "manual" if magic == 0 else f"ea:{magic}"


def is_trade_deal(deal: Deal) -> bool:
    """BUY/SELL deals make trades; balance operations (deposits, credit, charges...) are deals only."""
    return deal.type in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL)


class Books(UnknownOrders):
    def __init__(self, gateway: Gateway, repo: Repository, account: str, magic: int, digits: dict[str, int],
                 on_conflict=None, whole_account: bool = False):
        self.gateway = gateway
        # Whole account: every deal of the account is booked (balance operations as deals only,
        # other magics' and manual positions as trades attributed by `attributed_strategy`).
        self.whole_account = whole_account
        self.on_conflict = on_conflict  # called once per deal ticket the store holds with other content
        self._conflicts: set[int] = set()
        self.repo = repo
        self.account = account
        self.magic = magic
        self.digits = digits
        self._deals_since: datetime | None = None
        # Trades open in the store, with the (volume, entry price) stored: a netting add updates them.
        self._stored_entry: dict[int, tuple[Decimal, Decimal]] = {
            t.ticket: (t.volume, t.entry_price) for t in repo.open_trades(account)}
        self._open_known: set[int] = set(self._stored_entry)
        self._our_positions: set[int] = set(self._open_known)
        self._closed_known: set[int] = set()  # closed trades of positions still held (netting reversals)
        # Deal tickets already in the store, with their time: only the fetch window's worth is kept,
        # so months of trading do not grow this (or `_our_positions`, pruned as trades close).
        self._recorded: dict[int, datetime] | None = None
        self._look_for_unbooked = True  # positions_without_trade not answered yet this run
        self.on_stop_out = None  # called with the symbol once per stop-out deal stored (DEAL_REASON_SO)
        self._segment_position: dict[int, int] = {}  # trade ticket -> position identifier (netting reversals)
        #: Positions with new deals whose trades are not settled yet (an ordered set).
        self._unsettled: dict[int, None] = {}
        #: Orders left without a known outcome by the last `resolve_unknown_orders` (None: not looked yet).
        self.unresolved: int | None = None
        #: Ticket -> time of every deal the last full fetch returned, and that fetch's broker time.
        self._fetched: dict[int, datetime] = {}
        self._fetched_at: datetime | None = None

    def sync(self, now: datetime, history_days: int, open_tickets: set[int],
             account_open: set[int] | None = None) -> tuple[int, int]:
        """Record new deals, open and close trades. Returns (trades opened, trades closed).

        `open_tickets`: the identifiers of our positions open at the broker (see `open_ids`);
        `account_open`: those of every open position of the account, when the caller has just read
        them (the cycle's one positions read); else the whole-account books read them here.
        """
        since = (self._deals_since or (now - timedelta(days=history_days))) - DEAL_WINDOW_OVERLAP
        if self._recorded is None:
            self._recorded = dict.fromkeys(self.repo.known_deal_tickets(self.account, since), now)
            self._look_for_unbooked = True
        if self._look_for_unbooked:
            # Deals a failed or killed run stored without their trades: fetched as known from now on.
            # A database away at start cannot say (the spool knows only this run's writes): asked
            # again each sync until it answers, while the bot trades on (the spool keeps its writes).
            try:
                self._unsettled.update(dict.fromkeys(self.repo.positions_without_trade(self.account, since)))
                self._look_for_unbooked = False
            except StoreUnavailable:
                pass
        deals = sorted(self._window_deals(since, now + FAR_AHEAD, now), key=lambda d: (d.time, d.ticket))
        open_tickets = self._open_tickets(open_tickets, account_open)
        for deal in deals:
            if deal.entry in (mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_INOUT) and deal.magic == self.magic:
                self._our_positions.add(deal.position_id)
            if deal.ticket in self._recorded:
                continue
            if deal.position_id not in self._our_positions and deal.magic != self.magic and not self.whole_account:
                continue
            if not is_trade_deal(deal):
                self._store_deal(deal)  # a balance operation is a deal, never a trade
                continue
            if self._store_deal(deal):
                self._unsettled[deal.position_id] = None
        opened = closed = 0
        # A position leaves `_unsettled` only once settled: a cycle failing in between (the store
        # gone mid-cycle) settles it in the next one, although its deals are then known.
        for position_id in list(self._unsettled):
            o, c = self._settle(position_id, position_id in open_tickets)
            opened, closed = opened + o, closed + c
            del self._unsettled[position_id]
        self._deals_since = now
        horizon = since - DEAL_WINDOW_OVERLAP  # older deals are never fetched again
        for ticket in [t for t, at in self._recorded.items() if at < horizon]:
            del self._recorded[ticket]
        return opened, closed

    def _window_deals(self, since: datetime, until: datetime, now: datetime) -> list[Deal]:
        """The window's deals, or none when the broker's count of them says none is new.

        Why: every cycle fetched (and the gateway judged and converted) the whole overlap window,
        an hour of deals, to find none new in almost every cycle.  The steady state now asks the
        broker how many deals the window holds (`deals_total`, history_deals_total): the same
        number as the last full fetch returned within this window means nothing to fetch.  A
        deal is never missed: any new deal makes the counts differ unless as many known deals
        vanished from the broker's history at the same moment, and even then the window is
        fetched in full at least every FULL_FETCH of broker time (well inside the overlap), as
        it is whenever the count cannot be had or differs (a deal the gateway refused makes it
        differ: fetched every cycle, as before).
        """
        count = getattr(self.gateway, "deals_total", None)
        if count is not None and self._fetched_at is not None and timedelta(0) <= now - self._fetched_at < FULL_FETCH:
            total = count(since, until)
            if total is not None and total == sum(since <= at <= until for at in self._fetched.values()):
                return []
        fetch = self.gateway.account_deals if self.whole_account else self.gateway.deals
        deals = fetch(since, until)
        self._fetched, self._fetched_at = {d.ticket: d.time for d in deals}, now
        return deals

    def _open_tickets(self, ours: set[int], account_open: set[int] | None = None) -> set[int]:
        """Positions still open: with the whole account, every open position (not only this bot's)."""
        if not self.whole_account:
            return ours
        return set(ours) | (account_open if account_open is not None else open_ids(self.gateway.positions()))

    def _settle(self, position_id: int, still_open: bool) -> tuple[int, int]:
        """Open and close the trades of one position from all its deals (see trades_from_deals).

        The last trade of a position the broker still holds open is never closed from its deals.
        Returns (trades opened, trades closed).
        """
        deals = self.gateway.deals_for_position(position_id)
        for deal in deals:
            if deal.ticket not in (self._recorded or {}) and not self._store_deal(deal):
                return 0, 0  # the store holds one of its deals with other content: not built from it
        found = segments(deals)
        opened = closed = 0
        for index, segment in enumerate(found):
            ticket = segment.ticket
            self._segment_position[ticket] = position_id
            if ticket in self._closed_known:
                continue
            last = index == len(found) - 1
            # A position the broker no longer holds is closed even if rounded volumes do not add to zero.
            done = segment.closed or (last and not still_open and segment.exit_volume > 0)
            if not done or (last and still_open):
                if ticket not in self._open_known:  # no store read for a trade this run opened or loaded
                    opened += self._open_trade(segment)
                    self._open_known.add(ticket)
                else:
                    self._follow_adds(segment)
                continue
            trade = self.repo.get_trade(self.account, ticket)
            if trade is None:
                opened += self._open_trade(segment)
                trade = self.repo.get_trade(self.account, ticket)
            if trade is not None and not trade.is_closed:
                self._stored_entry.setdefault(ticket, (trade.volume, trade.entry_price))
                self._follow_adds(segment)
                closed += self._close_trade(segment)
            self._open_known.discard(ticket)
            self._stored_entry.pop(ticket, None)
            self._closed_known.add(ticket)
        if not still_open and all(s.closed or s.ticket in self._closed_known for s in found):
            self._our_positions.discard(position_id)
            for segment in found:  # its trades are settled: nothing about them is kept
                self._closed_known.discard(segment.ticket)
                self._segment_position.pop(segment.ticket, None)
        return opened, closed

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
        except DealConflict as exc:
            if deal.ticket not in self._conflicts:
                self._conflicts.add(deal.ticket)
                log.error("broker deal ticket conflict with the store: %s", exc, extra={"ticket": deal.ticket})
                if self.on_conflict is not None:
                    self.on_conflict()
            return False
        if self._recorded is not None:
            self._recorded[deal.ticket] = deal.time
        if deal.reason == mt5.DEAL_REASON_SO:
            # Said once per deal (a deal is stored once); counted and alerted (BrokerStopOut).
            log.warning("stop-out: the broker closed %s %s of position %d (%s)", deal.volume, deal.symbol,
                        deal.position_id, deal.comment, extra={"ticket": deal.ticket, "symbol": deal.symbol,
                                                                "close_reason": "stop_out"})
            if self.on_stop_out is not None:
                self.on_stop_out(deal.symbol)
        return True

    def _open_trade(self, segment: Segment) -> int:
        deal = segment.entry_deal
        opening = self.trade_open(segment)
        inserted = self.repo.open_trade(opening)
        self._stored_entry[segment.ticket] = (opening.volume, opening.entry_price)
        if inserted:
            log.info(
                "trade opened",
                extra={"ticket": segment.ticket, "symbol": deal.symbol, "price": str(deal.price),
                       "position_id": segment.position_id, "correlation_id": opening.correlation_id},
            )
        return int(inserted)

    def _follow_adds(self, segment: Segment) -> None:
        """A netting add (IN on an open position): the stored trade takes the segment's volume and price."""
        stored = self._stored_entry.get(segment.ticket)
        wanted = (segment.volume, segment.entry_price(self.digits.get(segment.symbol, 5)))
        if stored is None or stored == wanted:
            return
        if self.repo.record_trade_volume(self.account, segment.ticket, *wanted):
            log.info("trade volume added: %s -> %s %s at %s", stored[0], wanted[0], segment.symbol, wanted[1],
                     extra={"ticket": segment.ticket, "symbol": segment.symbol, "volume": str(wanted[0]),
                            "price": str(wanted[1]), "position_id": segment.position_id})
        self._stored_entry[segment.ticket] = wanted

    def trade_open(self, segment: Segment) -> TradeOpen:
        """The trade a segment opens: strategy from the bot's order intent, else `attributed_strategy`
        of its entry deal's magic (another EA's or a person's trade, booked with the whole account)."""
        deal = segment.entry_deal
        ours = deal.magic == self.magic
        client_order_id = client_order_id_from(deal.comment) if ours else None
        intent = self.repo.get_order(client_order_id) if client_order_id else None
        strategy = intent.strategy if intent else (None if ours else attributed_strategy(deal.magic))
        return (
            TradeOpen(
                account=self.account,
                ticket=segment.ticket,
                symbol=deal.symbol,
                direction=segment.direction,
                volume=segment.volume,
                entry_price=segment.entry_price(self.digits.get(deal.symbol, 5)),
                entry_time=segment.entry_time,
                stop_loss=intent.sl if intent else None,
                take_profit=intent.tp if intent else None,
                strategy_name=strategy,
                ml_confidence=None,
                client_order_id=client_order_id,
                magic=deal.magic,
                correlation_id=intent.correlation_id if intent else None,
            )
        )

    def trade_close(self, segment: Segment) -> TradeClose:
        """How a segment's exits close its trade."""
        digits = self.digits.get(segment.symbol, 5)
        entry_price, exit_price = segment.entry_price(digits), segment.exit_price(digits)
        return (
            TradeClose(
                account=self.account,
                ticket=segment.ticket,
                exit_price=exit_price,
                exit_time=segment.exit_time,
                gross_profit=segment.gross_profit,
                commission=segment.commission,
                swap=segment.swap,
                profit_pips=profit_in_pips(segment.symbol, digits, segment.direction, entry_price, exit_price),
                close_reason=stored_close_reason(segment.reason),
            )
        )

    def _close_trade(self, segment: Segment) -> int:
        self.repo.close_trade(self.trade_close(segment))
        closed = self.repo.get_trade(self.account, segment.ticket)
        log.log(
            logging.WARNING if segment.reason == STOP_OUT else logging.INFO,
            "trade closed (%s)", segment.reason,
            extra={"ticket": segment.ticket, "symbol": segment.symbol, "close_reason": segment.reason,
                   "position_id": segment.position_id, "profit": str(closed.profit) if closed else None,
                   "correlation_id": closed.correlation_id if closed else None},
        )
        return 1

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
        open_tickets = self._open_tickets(open_ids(open_positions))
        opened, closed = self.sync(now, history_days, open_tickets)
        adopted = 0
        for position in open_positions:
            if self.repo.get_trade(self.account, position.ticket) is None:
                self._our_positions.add(position_id_of(position))
                new, done = self._settle(position_id_of(position), True)
                adopted, closed = adopted + new, closed + done
                if new:
                    log.warning("position adopted", extra={"ticket": position.ticket, "symbol": position.symbol})
        tickets = {p.ticket for p in (self.gateway.positions() if self.whole_account else open_positions)}
        for trade in self.repo.open_trades(self.account):
            position_id = self._segment_position.get(trade.ticket, trade.ticket)
            if position_id not in open_tickets or trade.ticket not in tickets:
                closed += self._settle(position_id, position_id in open_tickets)[1]
        return opened, closed, adopted
