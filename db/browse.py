"""Paging through raw trades and signals, newest first, with keyset cursors.

Why keyset and not OFFSET: page 5 000 of a million trades would make the database
walk 500 000 rows; a cursor (the last row's time and id) starts where the page ended,
on the (account, exit_time) and (account, time) indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Generic, TypeVar

from sqlalchemy import and_, false, func, or_, select, true

from db.database import Database
from db.models import SignalModel, TradeModel
from db.reading import reading
from db.records import TradeRow

Item = TypeVar("Item")
MAX_PAGE = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last row's sort time and id, as an opaque 'micros.id' string."""

    moment: datetime
    id: int

    def encode(self) -> str:
        return f"{(self.moment - _EPOCH) // _MICROSECOND}.{self.id}"

    @staticmethod
    def decode(text: str) -> Cursor:
        micros, _, ident = text.partition(".")
        if not (micros.lstrip("-").isdigit() and ident.isdigit()) or len(text) > 40:
            raise ValueError(f"not a cursor from this API: {text[:40]!r}")
        return Cursor(_EPOCH + int(micros) * _MICROSECOND, int(ident))


@dataclass(frozen=True, slots=True)
class Page(Generic[Item]):
    items: list[Item]
    next_cursor: str | None  # pass it back to get the following page; None on the last page


@dataclass(frozen=True, slots=True)
class SignalRow:
    id: int
    account: str
    time: datetime
    cycle_id: str
    correlation_id: str
    symbol: str
    strategy: str
    signal: str
    confidence: float
    reason: str
    price: Decimal | None
    executed: bool


@dataclass(frozen=True, slots=True)
class TradeQuery:
    account: str
    status: str = "closed"  # closed: by exit time | open: by entry time
    symbol: str | None = None
    strategy: str | None = None
    start: date | None = None  # first UTC day (of exit for closed trades, of entry for open ones)
    end: date | None = None  # last UTC day
    limit: int = 100
    cursor: Cursor | None = None

    def __post_init__(self) -> None:
        if self.status not in ("closed", "open"):
            raise ValueError(f"status must be closed or open, got {self.status!r}")
        _check_limit(self.limit)


@dataclass(frozen=True, slots=True)
class SignalQuery:
    account: str
    symbol: str | None = None
    strategy: str | None = None
    signal: str | None = None
    executed: bool | None = None
    start: date | None = None
    end: date | None = None
    limit: int = 100
    cursor: Cursor | None = None

    def __post_init__(self) -> None:
        _check_limit(self.limit)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE}, got {limit!r}")


def trades(database: Database, q: TradeQuery) -> Page[TradeRow]:
    t = TradeModel.__table__.c
    closed = q.status == "closed"
    moment = t.exit_time if closed else t.entry_time
    query = select(*(t[f.name] for f in fields(TradeRow))).where(
        t.account == q.account, t.is_closed == (true() if closed else false())
    )
    if q.symbol is not None:
        query = query.where(t.symbol == q.symbol)
    if q.strategy is not None:
        query = query.where(func.coalesce(t.strategy_name, "") == q.strategy)
    return _page(database, query, moment, t.id, q, lambda row: TradeRow(**row._mapping))


def signals(database: Database, q: SignalQuery) -> Page[SignalRow]:
    s = SignalModel.__table__.c
    query = select(*(s[f.name] for f in fields(SignalRow))).where(s.account == q.account)
    for name in ("symbol", "strategy", "signal", "executed"):
        value = getattr(q, name)
        if value is not None:
            query = query.where(s[name] == value)
    return _page(database, query, s.time, s.id, q, lambda row: SignalRow(**row._mapping))


def _page(database, query, moment, ident, q, build) -> Page:
    if q.start is not None:
        query = query.where(moment >= datetime.combine(q.start, time(), tzinfo=UTC))
    if q.end is not None:
        query = query.where(moment < datetime.combine(q.end + timedelta(days=1), time(), tzinfo=UTC))
    if q.cursor is not None:
        query = query.where(
            or_(moment < q.cursor.moment, and_(moment == q.cursor.moment, ident < q.cursor.id))
        )
    query = query.order_by(moment.desc(), ident.desc()).limit(q.limit + 1)
    with reading(database) as connection:
        rows = connection.execute(query).all()
    items = [build(row) for row in rows[: q.limit]]
    next_cursor = None
    if len(rows) > q.limit:
        last = rows[q.limit - 1]._mapping
        next_cursor = Cursor(last[moment.name], last[ident.name]).encode()
    return Page(items, next_cursor)
