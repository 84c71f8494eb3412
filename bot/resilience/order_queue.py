"""The durable order queue: every order the engine decides on is written here before it is sent.

Why a queue of our own: an order decided while the terminal is unreachable (or while the order
breaker is open) must survive a bot restart, and an order must never reach the broker twice.
Both follow from one small state machine kept in a SQLite file (WAL, synchronous=FULL, so a
committed row survives a SIGKILL or a power cut):

    queued  --claim-->  sending  --finish-->  sent
       |                   |  (nothing left the process: release)  --> queued
       +-----------------------------------------------------------> expired (with a reason)

`claim` is a single conditional UPDATE (queued -> sending), so a client order id is handed to the
sender at most once, whatever the timing of failures; an entry left in `sending` by a crash is never
sent again: it is resolved at the broker instead. It is kept out of the trade store on purpose:
the store may be down exactly when an order has to be parked.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path

QUEUED, SENDING, SENT, EXPIRED = "queued", "sending", "sent", "expired"

_SCHEMA = """
create table if not exists order_queue (
    seq integer primary key autoincrement,
    client_order_id text not null unique,
    account text not null,
    correlation_id text not null,
    signal_id integer,
    symbol text not null,
    strategy text not null,
    side text not null,
    purpose text not null,
    volume text not null,
    price text not null,
    sl text,
    tp text,
    position_ticket integer,
    deviation_points integer not null,
    max_deviation text not null,
    decided_at text not null,
    expires_at text not null,
    state text not null default 'queued',
    reason text
)
"""


@dataclass(frozen=True)
class QueuedOrder:
    """An order as decided: what, at which price, until when, and how far the price may move."""

    client_order_id: str
    account: str
    correlation_id: str
    signal_id: int | None
    symbol: str
    strategy: str
    side: str
    purpose: str  # open | close
    volume: Decimal
    price: Decimal  # the price it was decided at
    sl: Decimal | None
    tp: Decimal | None
    position_ticket: int | None
    deviation_points: int  # slippage allowed at the broker
    max_deviation: Decimal  # how far the market may move (price units) before the order is stale
    decided_at: datetime  # broker time
    expires_at: datetime  # broker time
    state: str = QUEUED
    reason: str | None = None


_DECIMALS = {"volume", "price", "sl", "tp", "max_deviation"}
_TIMES = {"decided_at", "expires_at"}
_COLUMNS = [f.name for f in fields(QueuedOrder)]


def _to_row(order: QueuedOrder) -> dict:
    row = asdict(order)
    for name in _DECIMALS:
        row[name] = None if row[name] is None else str(row[name])
    for name in _TIMES:
        row[name] = row[name].isoformat()
    return row


def _from_row(row: sqlite3.Row) -> QueuedOrder:
    values = {name: row[name] for name in _COLUMNS}
    for name in _DECIMALS:
        values[name] = None if values[name] is None else Decimal(values[name])
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name])
    return QueuedOrder(**values)


class OrderQueue:
    """SQLite-backed queue; thread-safe; `on_depth(n)` is told the number of queued orders."""

    def __init__(self, path: str | Path, on_depth: Callable[[int], None] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.on_depth = on_depth
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.execute(_SCHEMA)
        self._report_depth()

    # -- writes: each one a committed transaction before it returns -----------------------

    def put(self, order: QueuedOrder) -> bool:
        """Park an order; False if that client order id is already known (idempotent)."""
        row = _to_row(order)
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        with self._lock:
            cursor = self._db.execute(
                f"insert or ignore into order_queue ({names}) values ({marks})", row  # noqa: S608 - fixed names
            )
        self._report_depth()
        return cursor.rowcount == 1

    def claim(self, client_order_id: str) -> bool:
        """queued -> sending. True for exactly one caller, once: only then may the order be sent."""
        return self._move(client_order_id, QUEUED, SENDING)

    def release(self, client_order_id: str) -> bool:
        """sending -> queued: only when it is certain that nothing reached the broker."""
        return self._move(client_order_id, SENDING, QUEUED)

    def finish(self, client_order_id: str, reason: str | None = None) -> bool:
        """sending -> sent (whatever the broker answered: the order is out of our hands)."""
        return self._move(client_order_id, SENDING, SENT, reason)

    def expire(self, client_order_id: str, reason: str) -> bool:
        """queued -> expired: dropped unsent, with the reason recorded."""
        return self._move(client_order_id, QUEUED, EXPIRED, reason)

    def _move(self, client_order_id: str, src: str, dst: str, reason: str | None = None) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "update order_queue set state = ?, reason = coalesce(?, reason) "
                "where client_order_id = ? and state = ?",
                (dst, reason, client_order_id, src),
            )
        self._report_depth()
        return cursor.rowcount == 1

    # -- reads ------------------------------------------------------------------------------

    def in_state(self, state: str) -> list[QueuedOrder]:
        with self._lock:
            rows = self._db.execute("select * from order_queue where state = ? order by seq", (state,)).fetchall()
        return [_from_row(r) for r in rows]

    def get(self, client_order_id: str) -> QueuedOrder | None:
        with self._lock:
            row = self._db.execute("select * from order_queue where client_order_id = ?", (client_order_id,)).fetchone()
        return None if row is None else _from_row(row)

    @property
    def depth(self) -> int:
        """Orders waiting to be sent (queued)."""
        with self._lock:
            return self._db.execute("select count(*) from order_queue where state = ?", (QUEUED,)).fetchone()[0]

    def _report_depth(self) -> None:
        if self.on_depth is not None:
            self.on_depth(self.depth)

    def close(self) -> None:
        with self._lock:
            self._db.close()
