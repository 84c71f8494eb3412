"""Per account, how many deals are stored and the newest one's time, kept in step with the deals table.

Why: the exporter's MT5 board (db.mt5board) asks on every scrape which accounts got deals since the
last one; counting the deals table for that (GROUP BY account) was seconds at 20 M deals, against a
50 ms scrape.  Every writer of deals moves its account's mark in the same transaction as the deals,
so the two always agree (as db.signal_counts does for signals):
- db.repository.record_deal, db.history_store.store_window, db.report_import.store_report: `added`
  with the rows their INSERT really inserted (a deal already stored inserts nothing);
- bulk loads that do not know what they inserted (bench/fleet.py, tests): `remark` / `recount`.
Deals are only ever inserted, never changed or deleted: a writer that ever deletes deals must
`remark` the account in that transaction too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Connection, Delete, Insert, bindparam, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from db.models import DealMarkModel, DealModel

_MARKS = DealMarkModel.__table__
_DEALS = DealModel.__table__
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True)
class _Statements:
    added: Insert  # upsert: deals + :deals, newest the later of the two
    forget: Delete  # one account's mark
    remark: Insert  # one account's mark from its deals (no row when it has none)


@cache
def _statements(dialect: str) -> _Statements:
    """Built once per backend (db.statements says why)."""
    if dialect not in _INSERTS:
        raise ValueError(f"no upsert support for database backend {dialect!r}")
    upsert = _INSERTS[dialect](_MARKS)
    later = upsert.excluded.newest
    account = bindparam("account")
    counted = (select(_DEALS.c.account, func.count(), func.max(_DEALS.c.time))
               .where(_DEALS.c.account == account).group_by(_DEALS.c.account))
    return _Statements(
        # CASE, not max()/GREATEST(): one spelling for both backends (SQLite compares its fixed-width UTC text).
        added=upsert.on_conflict_do_update(index_elements=["account"], set_={
            "deals": _MARKS.c.deals + upsert.excluded.deals,
            "newest": case((later > _MARKS.c.newest, later), else_=_MARKS.c.newest)}),
        forget=delete(_MARKS).where(_MARKS.c.account == account),
        remark=insert(_MARKS).from_select(["account", "deals", "newest"], counted),
    )


def added(connection: Connection, account: str, count: int, newest: datetime) -> None:
    """`count` deals of `account` were just inserted, the newest of them at `newest`."""
    if count:
        connection.execute(_statements(connection.dialect.name).added,
                           {"account": account, "deals": count, "newest": newest})


def remark(connection: Connection, account: str) -> None:
    """Recompute one account's mark from its deals: after a bulk write that does not know how many rows
    it inserted.  Counts the account's deals: not for a writer that knows (call `added`)."""
    made = _statements(connection.dialect.name)
    connection.execute(made.forget, {"account": account})
    connection.execute(made.remark, {"account": account})


def recount(connection: Connection) -> None:
    """Rebuild every account's mark from the deals table (after a bulk load)."""
    connection.execute(delete(_MARKS))
    grouped = select(_DEALS.c.account, func.count(), func.max(_DEALS.c.time)).group_by(_DEALS.c.account)
    connection.execute(insert(_MARKS).from_select(["account", "deals", "newest"], grouped))


def marks(connection: Connection) -> list[tuple[str, int, datetime]]:
    """(account, deals stored, newest deal's time) of every account with deals, by account."""
    rows = connection.execute(select(_MARKS.c.account, _MARKS.c.deals, _MARKS.c.newest).order_by(_MARKS.c.account))
    return [tuple(row) for row in rows]
