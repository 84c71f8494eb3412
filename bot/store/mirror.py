"""The store as last seen, plus the writes made since: how reads are answered while the database is away.

Fed by every successful database read and by every write (direct or
spooled), applying the same rules as `db.Repository` (an intent is inserted
once, an outcome only settles an open order, a trade opens once and closes
once).  It answers only what it knows completely; anything else is a miss
(`None` from the `*_known` methods) and the caller raises StoreUnavailable.

Bounded: settled orders and closed trades are evicted oldest first; open
orders and open trades (what the engine needs) are kept, they are few.  The
bot is assumed to be the store's only writer, as it is.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from db.models import OrderModel, TradeModel
from db.records import (
    EXECUTION_FIELDS,
    AccountSnapshot,
    DealRecord,
    OrderIntent,
    OrderOutcome,
    OrderRow,
    TradeClose,
    TradeOpen,
    TradeRow,
)
from db.types import Money
from db.vocabulary import OPEN_ORDER_STATUSES

# Settled orders and closed trades are read back only within a cycle or two of settling (the deal
# that settles an order arrives in the next history sync; a close is re-checked once), and deal
# tickets only when the books start: a few hundred rows cover any outage, and keep the bot's memory
# flat over months (each mirrored row is about 1.5 KB).
MAX_SETTLED_ORDERS = 256
MAX_CLOSED_TRADES = 256
MAX_DEALS_PER_ACCOUNT = 5_000
_TICK = timedelta(microseconds=1)


def _as_stored(model: type, values: dict[str, Any]) -> dict[str, Any]:
    """Values rounded as the model's Money columns would store them, so mirror rows equal database rows."""
    table = model.__table__
    out = {}
    for name, value in values.items():
        column_type = table.c[name].type if name in table.c else None
        if isinstance(column_type, Money) and value is not None:
            value = column_type.quantize(value)
        out[name] = value
    return out


class Mirror:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def clear(self) -> None:
        """Forget everything (after the database refused a spooled write the mirror had assumed)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._orders: OrderedDict[str, OrderRow] = OrderedDict()
        self._complete_statuses: set[tuple[str, str]] = set()  # (account, open status) fully mirrored
        self._trades: OrderedDict[tuple[str, int], TradeRow] = OrderedDict()
        self._open_complete: set[str] = set()  # accounts whose open trades are all mirrored
        self._deals: dict[str, dict[int, datetime | None]] = {}
        self._deal_cover: dict[str, datetime | None] = {}  # all deals at/after this are mirrored (None: all)
        self._untimed_floor: dict[str, datetime | None] = {}  # tickets without a time are >= this
        self._last_deal: dict[str, datetime | None] = {}
        self._last_snapshot: dict[str, AccountSnapshot | None] = {}

    # -- a checkpoint for the next start -------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Everything the mirror knows, as plain values for bot.store.codec (kept across a clean stop).

        Why: a bot that starts while the database is away must answer the engine's first reads
        (open trades, pending orders, known deals) exactly as the database would; the mirror at a
        clean stop is that answer, the spool holds the rest.
        """
        with self._lock:
            return {
                "orders": list(self._orders.values()),
                "complete_statuses": sorted([a, s] for a, s in self._complete_statuses),
                "trades": list(self._trades.values()),
                "open_complete": sorted(self._open_complete),
                "deals": {a: [[t, time] for t, time in d.items()] for a, d in self._deals.items()},
                "deal_cover": dict(self._deal_cover),
                "untimed_floor": dict(self._untimed_floor),
                "last_deal": dict(self._last_deal),
                "last_snapshot": dict(self._last_snapshot),
            }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace what the mirror knows with an `export_state()` result."""
        with self._lock:
            self._reset()
            for row in state["orders"]:
                self._orders[row.client_order_id] = row
            self._complete_statuses = {(a, s) for a, s in state["complete_statuses"]}
            for row in state["trades"]:
                self._trades[(row.account, row.ticket)] = row
            self._open_complete = set(state["open_complete"])
            self._deals = {a: {int(t): time for t, time in pairs} for a, pairs in state["deals"].items()}
            self._deal_cover = dict(state["deal_cover"])
            self._untimed_floor = dict(state["untimed_floor"])
            self._last_deal = dict(state["last_deal"])
            self._last_snapshot = dict(state["last_snapshot"])

    # -- learning from database reads ------------------------------------------------------

    def saw_order(self, row: OrderRow | None, client_order_id: str) -> None:
        with self._lock:
            if row is None:
                self._orders.pop(client_order_id, None)
            else:
                self._put_order(row)

    def saw_orders_by_status(self, account: str, status: str, rows: list[OrderRow]) -> None:
        with self._lock:
            seen = {row.client_order_id for row in rows}
            for key, row in list(self._orders.items()):
                if row.account == account and row.status == status and key not in seen:
                    del self._orders[key]  # stale: the database moved on
            for row in rows:
                self._put_order(row)
            if status in OPEN_ORDER_STATUSES:
                self._complete_statuses.add((account, status))

    def saw_trade(self, account: str, ticket: int, row: TradeRow | None) -> None:
        with self._lock:
            if row is None:
                self._trades.pop((account, ticket), None)
            else:
                self._put_trade(row)

    def saw_open_trades(self, account: str, rows: list[TradeRow]) -> None:
        with self._lock:
            seen = {row.ticket for row in rows}
            for key, row in list(self._trades.items()):
                if row.account == account and not row.is_closed and key[1] not in seen:
                    del self._trades[key]
            for row in rows:
                self._put_trade(row)
            self._open_complete.add(account)

    def saw_deal_tickets(self, account: str, since: datetime | None, tickets: set[int]) -> None:
        with self._lock:
            deals = self._deals.setdefault(account, {})
            for ticket in tickets:
                deals.setdefault(ticket, None)
            if account not in self._deal_cover:
                self._deal_cover[account] = since
                self._untimed_floor[account] = since
            else:
                self._deal_cover[account] = _earlier(self._deal_cover[account], since)
                self._untimed_floor[account] = _earlier(self._untimed_floor[account], since)
            self._bound_deals(account)

    def saw_last_deal_time(self, account: str, value: datetime | None) -> None:
        with self._lock:
            self._last_deal[account] = value

    def saw_last_snapshot(self, account: str, value: AccountSnapshot | None) -> None:
        with self._lock:
            self._last_snapshot[account] = value

    # -- applying writes -------------------------------------------------------------------

    def wrote_intent(self, intent: OrderIntent, row_id: int) -> None:
        with self._lock:
            if intent.client_order_id in self._orders:
                return
            values = _as_stored(OrderModel, {f.name: getattr(intent, f.name) for f in dataclasses.fields(intent)})
            self._put_order(OrderRow(
                id=row_id, status="pending", retcode=None, broker_order=None, broker_deal=None,
                fill_price=None, fill_volume=None, message="", resolved_at=None, **values,
            ))

    def wrote_outcome(self, outcome: OrderOutcome) -> None:
        with self._lock:
            row = self._orders.get(outcome.client_order_id)
            if row is None:
                # Some order we never saw changed status: no status list can be trusted complete now.
                self._complete_statuses.clear()
                return
            if row.status not in OPEN_ORDER_STATUSES:
                return
            values = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)
                      if getattr(outcome, f.name) is not None or f.name not in EXECUTION_FIELDS}
            values.pop("client_order_id")
            self._put_order(dataclasses.replace(row, **_as_stored(OrderModel, values)))

    def wrote_deal(self, deal: DealRecord) -> None:
        with self._lock:
            self._deals.setdefault(deal.account, {})[deal.ticket] = deal.time
            if deal.account in self._last_deal:
                self._last_deal[deal.account] = _later(self._last_deal[deal.account], deal.time)
            self._bound_deals(deal.account)

    def wrote_open(self, trade: TradeOpen, row_id: int, inserted: bool | None) -> None:
        """`inserted`: the database's answer, or None when spooled (then assumed new unless mirrored)."""
        with self._lock:
            key = (trade.account, trade.ticket)
            if key in self._trades or inserted is False:
                return
            values = _as_stored(TradeModel, {f.name: getattr(trade, f.name) for f in dataclasses.fields(trade)})
            self._put_trade(TradeRow(
                id=row_id, exit_price=None, exit_time=None, profit=None, gross_profit=None, commission=None,
                swap=None, profit_pips=None, sentiment_score=None, is_closed=False, **values,
            ))

    def wrote_close(self, close: TradeClose) -> None:
        with self._lock:
            row = self._trades.get((close.account, close.ticket))
            if row is None or row.is_closed:
                return
            parts = _as_stored(TradeModel, {
                "gross_profit": close.gross_profit, "commission": close.commission, "swap": close.swap,
                "exit_price": close.exit_price, "exit_time": close.exit_time, "profit_pips": close.profit_pips,
            })
            profit: Decimal = parts["gross_profit"] + parts["commission"] + parts["swap"]
            self._put_trade(dataclasses.replace(row, is_closed=True, profit=profit, **parts))

    def wrote_snapshot(self, snapshot: AccountSnapshot) -> None:
        with self._lock:
            if snapshot.account not in self._last_snapshot:
                return
            current = self._last_snapshot[snapshot.account]
            if current is None or snapshot.time > current.time:
                self._last_snapshot[snapshot.account] = snapshot

    # -- answering (None: not known) -------------------------------------------------------

    def order_known(self, client_order_id: str) -> OrderRow | None:
        with self._lock:
            return self._orders.get(client_order_id)

    def orders_by_status_known(self, account: str, status: str) -> list[OrderRow] | None:
        with self._lock:
            if (account, status) not in self._complete_statuses:
                return None
            rows = [r for r in self._orders.values() if r.account == account and r.status == status]
        return sorted(rows, key=lambda r: (r.created_at, _id_order(r.id)))

    def trade_known(self, account: str, ticket: int) -> TradeRow | None:
        with self._lock:
            return self._trades.get((account, ticket))

    def open_trades_known(self, account: str) -> list[TradeRow] | None:
        with self._lock:
            if account not in self._open_complete:
                return None
            rows = [r for r in self._trades.values() if r.account == account and not r.is_closed]
        return sorted(rows, key=lambda r: (r.entry_time, _id_order(r.id)))

    def deal_tickets_known(self, account: str, since: datetime | None) -> set[int] | None:
        with self._lock:
            if account not in self._deal_cover:
                return None
            cover, floor = self._deal_cover[account], self._untimed_floor[account]
            if cover is not None and (since is None or since < cover):
                return None
            deals = self._deals.get(account, {})
            untimed_ok = since is None or floor is None or since <= floor
            if not untimed_ok and any(time is None for time in deals.values()):
                return None  # tickets read without their time: cannot tell which are before `since`
            return {t for t, time in deals.items() if since is None or (time if time else since) >= since}

    def last_deal_time_known(self, account: str) -> tuple[bool, datetime | None]:
        with self._lock:
            return (account in self._last_deal, self._last_deal.get(account))

    def last_snapshot_known(self, account: str) -> tuple[bool, AccountSnapshot | None]:
        with self._lock:
            return (account in self._last_snapshot, self._last_snapshot.get(account))

    # -- internals (lock held) -------------------------------------------------------------

    def _put_order(self, row: OrderRow) -> None:
        self._orders[row.client_order_id] = row
        self._orders.move_to_end(row.client_order_id)
        if len(self._orders) > MAX_SETTLED_ORDERS:  # amortised: trim to 90% of the cap at once
            settled = [k for k, r in self._orders.items() if r.status not in OPEN_ORDER_STATUSES]
            for key in settled[: max(0, len(settled) - MAX_SETTLED_ORDERS * 9 // 10)]:
                del self._orders[key]

    def _put_trade(self, row: TradeRow) -> None:
        key = (row.account, row.ticket)
        self._trades[key] = row
        self._trades.move_to_end(key)
        if len(self._trades) > MAX_CLOSED_TRADES:
            closed = [k for k, r in self._trades.items() if r.is_closed]
            for key in closed[: max(0, len(closed) - MAX_CLOSED_TRADES * 9 // 10)]:
                del self._trades[key]

    def _bound_deals(self, account: str) -> None:
        deals = self._deals.get(account, {})
        if len(deals) <= MAX_DEALS_PER_ACCOUNT:
            return
        timed = sorted((time, t) for t, time in deals.items() if time is not None)
        keep = timed[len(timed) // 2:]
        self._deals[account] = {t: time for time, t in keep}
        # Dropped: every untimed ticket and the older half; what is kept covers everything after the cut.
        self._deal_cover[account] = (timed[len(timed) // 2 - 1][0] + _TICK) if len(timed) > 1 else None
        self._untimed_floor[account] = None
        if not keep:
            self._deal_cover.pop(account, None)


def _id_order(row_id: int) -> int:
    """Stored rows (positive ids) before spooled ones (negative provisional ids), as the database will."""
    return row_id if row_id > 0 else 10**18 - row_id


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else min(a, b)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None else max(a, b)
