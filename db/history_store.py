"""Store a window of account history in one transaction: deals, trades opened, trades closed.

Why not the Repository's one-call-one-commit methods: a year of account history is 100 000 deals
and ~50 000 trades; on SQLite a commit is an fsync (db.walsync), and the per-close rollup
update re-reads twelve rollup rows. Call by call that is half an hour; here a broker-day window
is three executemany statements, and the rollups are rebuilt once at the end (`finish`, the
path db.rollups documents for bulk loads). The rows are the same records (`DealRecord`,
`TradeOpen`, `TradeClose`, built by the live books) and the same rules as the Repository's:
a deal ticket stored with other content is kept and reported, never overwritten; a trade
already open or closed is left as it is; net profit is the sum of the stored parts; the account's
deal mark (db.deal_marks) moves with the deals inserted, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, false, func, select, update

from db import deal_marks, rollups
from db.models import DealModel, TradeModel
from db.records import DealRecord, TradeClose, TradeOpen
from db.upsert import insert_for

_DEALS = DealModel.__table__
_TRADES = TradeModel.__table__
_SAME = ("time", "symbol", "type", "entry", "volume", "price", "profit", "commission", "swap", "position_id", "magic")


@dataclass
class WindowStored:
    deals: int = 0
    opened: int = 0
    closed: int = 0
    conflicts: tuple[int, ...] = ()


def _values(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _quantize(column: str, value: Any) -> Any:
    return _TRADES.c[column].type.quantize(value)


def store_window(database: Any, account: str, deals: list[DealRecord], opens: list[TradeOpen],
                 closes: list[TradeClose]) -> WindowStored:
    """Write one window; returns what was new. Deals whose ticket is stored with other content are
    left out (and named in `conflicts`); a close of a trade already closed changes nothing."""
    out = WindowStored()
    with database.session() as session:
        if deals:
            tickets = [d.ticket for d in deals]
            stored = {row.ticket: row for row in session.execute(
                select(_DEALS).where(_DEALS.c.account == account, _DEALS.c.ticket.in_(tickets)))}
            fresh, conflicts, inserted = [], [], 0
            for deal in deals:
                known = stored.get(deal.ticket)
                if known is None:
                    fresh.append(_values(deal))
                elif any(_differs(known, deal, name) for name in _SAME):
                    conflicts.append(deal.ticket)
            if fresh:
                inserted = session.execute(insert_for(session, _DEALS).on_conflict_do_nothing(
                    index_elements=["account", "ticket"]), fresh).rowcount
                # Another writer may have stored a ticket since the read above: the mark moves by what
                # the INSERT really inserted, in this transaction.
                deal_marks.stored(session.connection(), account, fresh, inserted)
            out.deals, out.conflicts = inserted, tuple(conflicts)  # what went in: not a ticket stored meanwhile
        if opens:
            before = _trade_count(session, account)
            session.execute(insert_for(session, _TRADES).on_conflict_do_nothing(
                index_elements=["account", "ticket"]), [_values(t) for t in opens])
            out.opened = _trade_count(session, account) - before
        if closes:
            rows = []
            for c in closes:
                gross, commission, swap = (_quantize("profit", c.gross_profit), _quantize("profit", c.commission),
                                           _quantize("profit", c.swap))
                rows.append({"a": c.account, "t": c.ticket, "exit_price": c.exit_price, "exit_time": c.exit_time,
                             "gross_profit": gross, "commission": commission, "swap": swap,
                             "profit": gross + commission + swap, "profit_pips": c.profit_pips,
                             "close_reason": c.close_reason})
            open_before = _open_count(session, account)
            statement = (update(_TRADES)
                         .where(_TRADES.c.account == bindparam("a"), _TRADES.c.ticket == bindparam("t"),
                                _TRADES.c.is_closed == false())
                         .values(is_closed=True, exit_price=bindparam("exit_price"), exit_time=bindparam("exit_time"),
                                 gross_profit=bindparam("gross_profit"), commission=bindparam("commission"),
                                 swap=bindparam("swap"), profit=bindparam("profit"),
                                 profit_pips=bindparam("profit_pips"), close_reason=bindparam("close_reason")))
            session.connection().execute(statement, rows)
            out.closed = open_before - _open_count(session, account)
    return out


def finish(database: Any, account: str) -> int:
    """Rebuild the account's rollups from its trades (once, after a bulk import); rows written."""
    with database.session() as session:
        return rollups.rebuild(session.connection(), account)


def deal_count(database: Any, account: str) -> int:
    """How many deals the store holds for `account` (balance operations included)."""
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(_DEALS).where(_DEALS.c.account == account)))


def _trade_count(session: Any, account: str) -> int:
    return int(session.scalar(select(func.count()).select_from(_TRADES).where(_TRADES.c.account == account)))


def _open_count(session: Any, account: str) -> int:
    return int(session.scalar(select(func.count()).select_from(_TRADES)
                              .where(_TRADES.c.account == account, _TRADES.c.is_closed == false())))


def _differs(row: Any, deal: DealRecord, name: str) -> bool:
    value, stored = getattr(deal, name), getattr(row, name)
    column_type = _DEALS.c[name].type
    if hasattr(column_type, "quantize") and value is not None:
        value = column_type.quantize(value)
    if name == "time" and stored.tzinfo is None:
        value = value.replace(tzinfo=None)
    return stored != value

