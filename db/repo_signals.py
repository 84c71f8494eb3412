"""Signals in the store: one per (account, cycle, symbol, strategy), their ids, and the counters
(db.signal_counts) moved in the same transaction. A mixin of db.repository.Repository.
"""

from contextlib import suppress
from dataclasses import fields
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import Connection, select

from db import signal_counts, sqlite_rows
from db.errors import DuplicateSignal, UnknownSignal
from db.models import SignalModel
from db.records import SignalRecord
from db.rows import differences as _differences
from db.rows import fields_of as _fields
from db.rows import table_of as _table
from db.rows import values_of as _values

_SIGNAL_KEY = ("account", "cycle_id", "symbol", "strategy")
_SIGNAL_ROWS = sqlite_rows.signal_rows(SignalModel.__table__, _SIGNAL_KEY)  # statements.record_signals on SQLite
_NUMBERED_ROWS = sqlite_rows.ignoring_rows(SignalModel.__table__, _SIGNAL_KEY)  # the same, with the ids given
_KEY_OF = attrgetter(*_SIGNAL_KEY)
_KEY_COLUMNS = [[field.name for field in fields(SignalRecord)].index(name) for name in _SIGNAL_KEY]
_COUNTER_OF = attrgetter("account", "strategy", "signal")  # a new signal's counter, with executed=False
_RETURNED_ID, _RETURNED_KEY = itemgetter(0), itemgetter(1, 2, 3, 4)  # RETURNING id and the natural key


class SignalWrites:
    """Repository methods for signals (mixed into Repository, whose database and statements they use)."""

    # -- signals -------------------------------------------------------------------------

    def record_signal(self, rec: SignalRecord, assign_id: int | None = None) -> int:
        """Store a signal, returning its id (the existing id when repeated).

        `assign_id`: the id it must get, when replaying a signal whose id was already handed out
        in a transaction that did not commit (bot.store.spool keeps such a cycle's writes).
        """
        values = _values(rec)
        with self._db.connection(savepoint=True) as connection:  # Core: none of the ORM's execute path
            inserted = connection.execute(
                self._sql.record_signal, values if assign_id is None else {**values, "id": assign_id}
            ).scalar_one_or_none()
            if inserted is not None:
                signal_counts.bump(connection, rec.account, rec.strategy, rec.signal, executed=False)
                return inserted
            return _stored_signal_id(connection, rec, values)

    def record_signals(self, recs: list[SignalRecord]) -> list[int]:
        """Store a cycle's signals, returning their ids in order: what `record_signal` on each would store.

        Why: a cycle records one signal per (symbol, strategy), HOLD included, and one statement
        (plus one savepoint) per signal was most of a cycle's store cost; here it is one multi-row
        INSERT and one counter upsert for the lot.  The rows are inserted in the given order, so
        they get the ids one call each would give (on PostgreSQL every row takes its sequence
        value, a repeat's too, as one call each does).  A repeat (a replay) gets the stored id.
        A repeat with other content is refused where one call each would refuse it: the batch is
        undone and the signals go one by one, those before it stored, it raising DuplicateSignal.
        """
        if not recs:
            return []
        # SQLite undoes a failed statement by itself, so the batch needs no SAVEPOINT (two statements
        # of its four): should anything after the INSERT fail, its rows are deleted here instead
        # (and with them their ids: SQLite hands out max(id) + 1 again, as if never inserted).
        undo_by_hand = self._sqlite
        try:
            with self._db.connection(savepoint=not undo_by_hand) as connection:
                if undo_by_hand:  # db.sqlite_rows, the records' fields as columns (no dict per signal)
                    inserted = _sqlite_insert(connection, recs)
                else:
                    inserted = connection.execute(self._sql.record_signals, [_values(rec) for rec in recs]).all()
                new = dict(zip(map(_RETURNED_KEY, inserted), map(_RETURNED_ID, inserted), strict=True))  # natural key -> id
                try:
                    ids = self._batch_ids(connection, recs, dict(new))
                except BaseException:
                    if undo_by_hand and new:
                        with suppress(Exception):  # a connection gone: the unit is rolled back as a whole
                            connection.execute(_table(SignalModel).delete().where(
                                _table(SignalModel).c.id.in_(list(new.values()))))
                    raise
                return ids
        except DuplicateSignal:
            return [self.record_signal(rec) for rec in recs]

    def _batch_ids(self, connection: Connection, recs: list[SignalRecord], new: dict[tuple, int]) -> list[int]:
        """The ids of a batch just inserted (`new`: natural key -> id of each row it inserted); counters moved."""
        ids = list(map(new.pop, map(_KEY_OF, recs), repeat(None)))  # popped: a key twice is a repeat
        fresh = recs
        if None in ids:  # repeats (a replay): the stored id, in order, or DuplicateSignal (the batch is undone)
            fresh = [rec for rec, id_ in zip(recs, ids, strict=True) if id_ is not None]
            for index, id_ in enumerate(ids):
                if id_ is None:
                    ids[index] = _stored_signal_id(connection, recs[index], _values(recs[index]))
        signal_counts.bump_many(connection, ((*key, False) for key in map(_COUNTER_OF, fresh)))
        return ids

    def mark_signal_executed(self, signal_id: int) -> None:
        """Flag a signal as acted upon (a repeat is a no-op)."""
        table = _table(SignalModel)
        with self._db.session() as session:
            flagged = session.execute(self._sql.mark_signal, {"signal_id": signal_id}).first()
            if flagged is not None:
                connection = session.connection()
                signal_counts.bump(connection, *flagged, executed=False, by=-1)
                signal_counts.bump(connection, *flagged, executed=True)
                return
            if session.scalar(select(table.c.id).where(table.c.id == signal_id)) is None:
                raise UnknownSignal(f"no signal with id {signal_id}")


def _sqlite_insert(connection: Connection, recs: list[SignalRecord]) -> list[tuple]:
    """The batch's INSERT on SQLite: (id, *natural key) of each row it inserted.

    Why not RETURNING first: it cost a quarter of the statement in SQLite (the returned rows go
    through an ephemeral table) and the rows through the driver (issue 16). SQLite gives a row
    inserted without an id the largest id + 1 (below MAX_ROWID; sqlite.org/autoinc.html), and the
    unit holds the write lock from its BEGIN IMMEDIATE (db.engine), so rows inserted one by one in
    order get max + 1, max + 2, ...: those ids are given here explicitly, so no row order matters.
    Where not every row was inserted (a repeat: its id stays the stored one, and one by one no id
    would be skipped) the rows it did insert are deleted again (SQLite hands their ids out again)
    and the batch goes with RETURNING as before; so too near MAX_ROWID, where SQLite picks at random.
    """
    names, read = _fields(SignalRecord)
    columns = list(zip(*map(read, recs), strict=True))
    first, count = sqlite_rows.max_id(connection, _table(SignalModel)) + 1, len(recs)
    if first + count - 1 <= sqlite_rows.MAX_ROWID:
        ids = range(first, first + count)
        if _NUMBERED_ROWS.insert_counted(connection, ("id", *names), [ids, *columns]) == count:
            return list(zip(ids, *map(columns.__getitem__, _KEY_COLUMNS), strict=True))
        table = _table(SignalModel)
        connection.execute(table.delete().where(table.c.id.between(first, first + count - 1)))
    return _SIGNAL_ROWS.insert_columns(connection, names, columns, returning=True)


def _stored_signal_id(connection: Connection, rec: SignalRecord, values: dict[str, Any]) -> int:
    """The id of the signal stored under `rec`'s key, or DuplicateSignal if it was stored with other content.

    Read through Core (the row's values through the same column types an ORM load uses): the batch
    has only the unit's connection (db.database.Database.connection), no session."""
    table = _table(SignalModel)
    row = connection.execute(select(table).filter_by(**{k: values[k] for k in _SIGNAL_KEY})).one()
    differing = _differences(row, values, table)
    if differing:
        raise DuplicateSignal(
            f"signal for account {rec.account} cycle {rec.cycle_id!r} {rec.symbol} {rec.strategy!r} "
            f"already recorded with different {', '.join(differing)}"
        )
    return row.id
