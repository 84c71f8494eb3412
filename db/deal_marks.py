"""Per account, how many deals are stored and the newest one's time, kept in step with the deals table.

Why: the exporter's MT5 board (db.mt5board) asks on every scrape which accounts got deals since the
last one; counting the deals table for that (GROUP BY account) was seconds at 20 M deals, against a
50 ms scrape.  Every writer of deals moves its account's mark in the same transaction as the deals,
so the two always agree (as db.signal_counts does for signals):
- db.repository.record_deal: `added` when its INSERT inserted (a deal already stored inserts nothing);
- db.history_store.store_window, db.report_import.store_report: `stored` with the rows given to their
  INSERT and its rowcount (`added`, or `remark` when some of them were stored already);
- bulk loads that do not know what they inserted (bench/fleet.py): `remark` / `recount`.
Deals are only ever inserted, never changed or deleted: a writer that ever deletes deals must
`remark` the account in that transaction too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Delete,
    Insert,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from db.models import DealMarkModel, DealModel
from db.upsert import insert_for_dialect

_MARKS = DealMarkModel.__table__
_DEALS = DealModel.__table__


# A mark's time before `remark` sets it (never committed: the same transaction sets or deletes it).
_HELD = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Statements:
    added: Insert  # upsert: deals + :deals, newest the later of the two
    hold: Insert  # the account's mark row locked (created if missing), unchanged
    remark: Update  # one account's mark set from its deals
    drop_empty: Delete  # ... and deleted when it has none


@cache
def _statements(dialect: str) -> _Statements:
    """Built once per backend (db.statements says why)."""
    upsert = insert_for_dialect(dialect, _MARKS)
    later = upsert.excluded.newest
    account = bindparam("of")  # not "account": an UPDATE reserves its columns' names
    own = _DEALS.c.account == account
    return _Statements(
        # CASE, not max()/GREATEST(): one spelling for both backends (SQLite compares its fixed-width UTC text).
        added=upsert.on_conflict_do_update(index_elements=["account"], set_={
            "deals": _MARKS.c.deals + upsert.excluded.deals,
            "newest": case((later > _MARKS.c.newest, later), else_=_MARKS.c.newest)}),
        hold=upsert.on_conflict_do_update(index_elements=["account"], set_={"deals": _MARKS.c.deals}),
        remark=(update(_MARKS).where(_MARKS.c.account == account).values(
            deals=select(func.count()).where(own).scalar_subquery(),
            newest=func.coalesce(select(func.max(_DEALS.c.time)).where(own).scalar_subquery(), _MARKS.c.newest))),
        drop_empty=delete(_MARKS).where(_MARKS.c.account == account, _MARKS.c.deals == 0),
    )


def added(connection: Connection, account: str, count: int, newest: datetime) -> None:
    """`count` deals of `account` were just inserted, the newest of them at `newest`."""
    if count:
        connection.execute(_statements(connection.dialect.name).added,
                           {"account": account, "deals": count, "newest": newest})


def stored(connection: Connection, account: str, rows: Sequence[Mapping[str, Any]], inserted: int) -> None:
    """`rows` (deals of `account`) were given to an INSERT ... ON CONFLICT DO NOTHING that inserted
    `inserted` of them (its rowcount, exact for an executemany on both backends): `added` when every
    row went in; otherwise (a ticket stored meanwhile by another writer, or twice in `rows`) which ones
    did is unknown, and the account is counted again (`remark`).

    Why not RETURNING to know them: on SQLite it made a 300-deal history window 14 % dearer (CPU),
    against 2 % for this; the recount is for the rare window that met a deal already stored."""
    if inserted == len(rows):
        if rows:
            added(connection, account, inserted, max(row["time"] for row in rows))
    else:
        remark(connection, account)


def remark(connection: Connection, account: str) -> None:
    """Recompute one account's mark from its deals: after a bulk write that does not know what it
    inserted.  Counts the account's deals: not for a writer that knows (call `added`).

    The mark row is locked first (created if missing), and counted by the next statement: on PostgreSQL
    (READ COMMITTED) a writer that was adding a deal of the account meanwhile has committed by then, so
    its deal is in the count; one that adds later waits for this transaction and adds its own.  (Counted
    in the statement that takes the lock, its deal could be missed: the snapshot is the statement's.)"""
    made, key = _statements(connection.dialect.name), {"of": account}
    connection.execute(made.hold, {"account": account, "deals": 0, "newest": _HELD})
    connection.execute(made.remark, key)
    connection.execute(made.drop_empty, key)


def recount(connection: Connection) -> None:
    """Rebuild every account's mark from the deals table (after a bulk load)."""
    connection.execute(delete(_MARKS))
    grouped = select(_DEALS.c.account, func.count(), func.max(_DEALS.c.time)).group_by(_DEALS.c.account)
    connection.execute(insert(_MARKS).from_select(["account", "deals", "newest"], grouped))


def marks(connection: Connection) -> list[tuple[str, int, datetime]]:
    """(account, deals stored, newest deal's time) of every account with deals, by account."""
    rows = connection.execute(select(_MARKS.c.account, _MARKS.c.deals, _MARKS.c.newest).order_by(_MARKS.c.account))
    return [tuple(row) for row in rows]
