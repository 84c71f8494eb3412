"""The store's per-cycle write statements, built once per backend.

Why: building an INSERT ... ON CONFLICT statement (and SQLAlchemy's cache key for it) on every
call cost more than running it, and a cycle makes a dozen of these writes.  The same statement
object executed with fresh parameters goes straight to SQLAlchemy's compiled cache; a list of
parameter sets runs as one executemany.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Insert, Update, bindparam, false, update

from db.models import (
    AccountSnapshotModel,
    DealModel,
    OrderModel,
    PositionSnapshotModel,
    SignalCountModel,
    SignalModel,
    TradeModel,
)
from db.upsert import insert_for_dialect

_SIGNALS = SignalModel.__table__
_COUNTS = SignalCountModel.__table__


@dataclass(frozen=True)
class Statements:
    record_signal: Insert  # ON CONFLICT (natural key) DO NOTHING RETURNING id
    record_signals: Insert  # the same, executemany: RETURNING the natural key too (rows may come in any order)
    mark_signal: Update  # executed = true WHERE id = :signal_id AND NOT executed RETURNING the counter key
    bump_count: Insert  # signal_counts upsert: count = count + :count
    order_intent: Insert
    deal: Insert
    open_trade: Insert
    account_snapshot: Insert
    position_snapshots: Insert


@cache
def statements(dialect: str) -> Statements:
    """The statements for a backend ('sqlite' or 'postgresql')."""
    def insert(table):
        return insert_for_dialect(dialect, table)

    bump = insert(_COUNTS)
    positions = PositionSnapshotModel.__table__
    position_snapshots = insert(positions).on_conflict_do_nothing(index_elements=["account", "time", "ticket"])
    return Statements(
        record_signal=insert(_SIGNALS).on_conflict_do_nothing(
            index_elements=["account", "cycle_id", "symbol", "strategy"]).returning(_SIGNALS.c.id),
        record_signals=insert(_SIGNALS).on_conflict_do_nothing(
            index_elements=["account", "cycle_id", "symbol", "strategy"]).returning(
                _SIGNALS.c.id, _SIGNALS.c.account, _SIGNALS.c.cycle_id, _SIGNALS.c.symbol, _SIGNALS.c.strategy),
        mark_signal=(update(_SIGNALS)
                     .where(_SIGNALS.c.id == bindparam("signal_id"), _SIGNALS.c.executed == false())
                     .values(executed=True)
                     .returning(_SIGNALS.c.account, _SIGNALS.c.strategy, _SIGNALS.c.signal)),
        bump_count=bump.on_conflict_do_update(
            index_elements=["account", "strategy", "signal", "executed"],
            set_={"count": _COUNTS.c["count"] + bump.excluded["count"]}),
        order_intent=insert(OrderModel.__table__).on_conflict_do_nothing(index_elements=["client_order_id"]),
        deal=insert(DealModel.__table__).on_conflict_do_nothing(index_elements=["account", "ticket"]),
        open_trade=insert(TradeModel.__table__).on_conflict_do_nothing(index_elements=["account", "ticket"]),
        account_snapshot=insert(AccountSnapshotModel.__table__).on_conflict_do_nothing(
            index_elements=["account", "time"]),
        position_snapshots=position_snapshots,
    )
