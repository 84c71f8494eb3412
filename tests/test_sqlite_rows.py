"""db.sqlite_rows: the signal rows and counters written through the driver are stored exactly as
SQLAlchemy's own statements (db.statements) store them, conflicts and all."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Boolean, Float, event, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError

from db import (
    AccountSnapshot,
    PositionSnapshot,
    Repository,
    SignalRecord,
    init_db,
    repo_signals,
    signal_counts,
    sqlite_rows,
)
from db.models import AccountSnapshotModel, PositionSnapshotModel, SignalCountModel, SignalModel
from db.rows import values_of as _values
from db.statements import statements
from db.types import Money, UTCDateTime


def _signals():
    east = timezone(timedelta(hours=3))  # stored as UTC, whatever zone it came in
    base = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
    out = []
    for i in range(12):
        out.append(SignalRecord(
            account="5001234", time=(base + timedelta(seconds=i)).astimezone(east if i % 2 else UTC),
            cycle_id=f"c{i // 4}", correlation_id=f"{i:016x}", symbol=("EURUSD", "XAUUSD", "USDJPY")[i % 3],
            strategy=("ma_crossover", "rsi_reversion")[i % 2], signal=("HOLD", "BUY", "SELL")[i % 3],
            confidence=0.1 * i, reason=f"reason {i} \u00e9", price=None if i == 5 else Decimal("1.234565") + i))
    return out


def _dump(database):
    with database.engine.connect() as conn:
        signals = conn.exec_driver_sql("select * from signals order by id").all()
        counts = conn.exec_driver_sql("select * from signal_counts order by account, strategy, signal, executed").all()
    return signals, counts


def test_driver_rows_are_the_rows_sqlalchemy_stores(tmp_path):
    recs = _signals()
    fast = init_db(f"sqlite:///{tmp_path}/fast.db")
    reference = init_db(f"sqlite:///{tmp_path}/reference.db")
    try:
        repo = Repository(fast)
        ids = repo.record_signals(recs[:8])
        assert repo.record_signals(recs[4:]) == ids[4:] + [9, 10, 11, 12]  # a repeat gets its stored id
        sql = statements("sqlite")
        with reference.engine.begin() as conn:  # what SQLAlchemy's statements store for the same calls
            for batch in (recs[:8], recs[8:]):
                conn.execute(sql.record_signals, [_values(r) for r in batch])
                keys = [(r.account, r.strategy, r.signal, False) for r in batch]
                conn.execute(sql.bump_count, [{"account": a, "strategy": s, "signal": g, "executed": e, "count": n}
                                              for (a, s, g, e), n in Counter(keys).items()])
        fast_rows, reference_rows = _dump(fast), _dump(reference)
        assert fast_rows == reference_rows
        assert len(fast_rows[0]) == 12 and fast_rows[0][0][2] == "2026-03-02 09:30:15.123456"
        with fast.engine.begin() as conn:  # and the counters a bump_many of repeats leaves
            signal_counts.bump_many(conn, [("5001234", "x", "HOLD", True)] * 3)
        with fast.engine.connect() as conn:
            assert conn.execute(text("select count from signal_counts where strategy = 'x'")).scalar() == 3
    finally:
        fast.dispose()
        reference.dispose()


def test_a_driver_error_is_the_sqlalchemy_error_it_would_have_been(tmp_path):
    database = init_db(f"sqlite:///{tmp_path}/e.db")
    try:
        row = _values(_signals()[0]) | {"signal": "WAIT"}  # past the record's own check: the CHECK constraint
        with pytest.raises(IntegrityError, match="CHECK constraint failed"), database.engine.begin() as conn:
            repo_signals._SIGNAL_ROWS.insert(conn, [row], returning=True)
    finally:
        database.dispose()


def test_snapshot_rows_are_the_rows_sqlalchemy_stores(tmp_path):
    at = datetime(2026, 3, 2, 9, 30, 15, 500000, tzinfo=UTC)
    account = AccountSnapshot(account="5001234", time=at, balance=Decimal("10000.00"), equity=Decimal("10012.345"),
                              profit=Decimal("12.35"), margin=Decimal("110.00"), free_margin=Decimal("9902.35"),
                              margin_level=None, open_positions=2)
    positions = [PositionSnapshot(ticket=t, symbol="EURUSD", direction="BUY", volume=Decimal("0.10"),
                                  price_open=Decimal("1.10001"), price_current=Decimal("1.10111"), sl=None,
                                  tp=Decimal("1.2"), profit=Decimal("11.00"), swap=Decimal("-0.07")) for t in (7, 8)]
    fast = init_db(f"sqlite:///{tmp_path}/fast.db")
    reference = init_db(f"sqlite:///{tmp_path}/reference.db")
    try:
        repo = Repository(fast)
        for _ in range(2):  # the repeat is ignored
            repo.record_account_snapshot(account)
            repo.record_position_snapshots("5001234", at, positions)
        sql = statements("sqlite")
        with reference.engine.begin() as conn:
            conn.execute(sql.account_snapshot, _values(account))
            conn.execute(sql.position_snapshots,
                         [{"account": "5001234", "time": at, **_values(p)} for p in positions])
        dump = "select * from account_snapshots order by id", "select * from position_snapshots order by id"
        rows = []
        for database in (fast, reference):
            with database.engine.connect() as conn:
                rows.append([conn.exec_driver_sql(q).all() for q in dump])
        assert rows[0] == rows[1] and len(rows[0][0]) == 1 and len(rows[0][1]) == 2
    finally:
        fast.dispose()
        reference.dispose()


def test_a_column_bound_at_once_is_what_each_value_bound_alone_gives():
    """db.sqlite_rows._bound (a value object bound once per column, compiled processors mapped) with
    db.sqlite_rows' processors against each cell through its column's SQLAlchemy processor: repeats near and far, equal Decimals of other exponents,
    zero and minus zero, None, and times in other zones."""
    dialect = sqlite_dialect.dialect()
    price, east = Decimal("1.1000005"), timezone(timedelta(hours=-5))
    at = datetime(2026, 3, 2, 9, 30, 15, 999999, tzinfo=UTC)
    samples = {
        "time": [at, at.astimezone(east), at, None, at + timedelta(microseconds=1), at],
        "decimal": [price, Decimal("1.10"), Decimal("1.1"), price, None, Decimal("0"), Decimal("-0"), price,
                    Decimal("-2.5"), 7],
        "float": [0.5, 0.5, 1e-9, None, 3.0, 0.5],
        "bool": [True, False, None, True, False],
    }
    checked = 0
    for model in (SignalModel, AccountSnapshotModel, PositionSnapshotModel, SignalCountModel):
        for column in model.__table__.c:
            impl = column.type.dialect_impl(dialect)
            process, ours = impl.bind_processor(dialect), sqlite_rows._processor(impl, dialect)
            kind = next((name for name, kinds in (("time", UTCDateTime), ("decimal", Money), ("float", Float),
                                                  ("bool", Boolean)) if isinstance(column.type, kinds)), None)
            if kind is None:
                assert process is None, column  # strings and integers go to the driver as they are
                continue
            values = samples[kind]
            for count in (1, 2, len(values)):
                expected = [process(value) for value in values[:count]]
                got = list(sqlite_rows._bound(ours, values[:count]))
                assert got == expected and [type(v) for v in got] == [type(v) for v in expected], column
                checked += 1
    assert checked >= 3 * 15


def test_more_rows_than_one_statement_takes_are_the_rows_sqlalchemy_stores(tmp_path):
    """Over ROWS_PER_STATEMENT rows: several statements, their RETURNING rows together."""
    base = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    shared_price = Decimal("1.0845")
    rows = [_values(SignalRecord(account="5001234", time=base, cycle_id=f"c{i // 7}", correlation_id=f"k{i}",
                                 symbol=f"S{i % 7}", strategy="ma", signal="HOLD", confidence=i / 1000,
                                 reason="r", price=None if i % 11 == 0 else shared_price + i % 3))
            for i in range(2 * sqlite_rows.ROWS_PER_STATEMENT + 3)]
    fast = init_db(f"sqlite:///{tmp_path}/fast.db")
    reference = init_db(f"sqlite:///{tmp_path}/reference.db")
    try:
        executed = []
        event.listen(fast.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_a: executed.append(sql) if "INSERT INTO signals" in sql else None)
        with fast.engine.begin() as conn:
            returned = repo_signals._SIGNAL_ROWS.insert(conn, rows, returning=True)
        with reference.engine.begin() as conn:
            expected = conn.execute(statements("sqlite").record_signals, rows).all()
        assert len(executed) == 3
        assert sorted(returned) == sorted(tuple(row) for row in expected) and len(returned) == len(rows)
        assert _dump(fast) == _dump(reference)
    finally:
        fast.dispose()
        reference.dispose()


def test_a_unit_asks_its_session_for_the_connection_once_per_transaction(tmp_path):
    """db.database.Database.connection: in a unit without a SAVEPOINT, the unit session's own
    connection (one BEGIN per unit transaction); with one, or outside a unit, a session block's."""
    database = init_db(f"sqlite:///{tmp_path}/c.db")
    try:
        begins, dialect = [], database.engine.dialect
        event.listen(database.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_a: begins.append(sql) if sql.startswith(("BEGIN", "SAVEPOINT")) else None)
        do_begin = dialect.do_begin  # BEGIN IMMEDIATE (db.engine): not a cursor execution of SQLAlchemy's
        dialect.do_begin = lambda dbapi_connection: (begins.append("BEGIN"), do_begin(dbapi_connection))
        with database.unit():
            with database.connection(savepoint=False) as first:
                pass
            with database.session() as session:
                assert session.connection() is first
            with database.connection(savepoint=False) as again:
                assert again is first
            with database.connection(savepoint=True) as nested:
                assert nested is first
            database.commit()
            with database.connection(savepoint=False) as after:
                after.exec_driver_sql("select 1")
            assert database._local.unit_connection.connection is after
        assert begins == ["BEGIN", "SAVEPOINT sa_savepoint_1", "SAVEPOINT sa_savepoint_2", "BEGIN"]
        with database.connection(savepoint=False) as outside:
            assert outside.in_transaction()
            # ... BEGIN IMMEDIATE: the write lock is held from the start, before anything was written
            other = sqlite3.connect(str(tmp_path / "c.db"), timeout=0, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
    finally:
        database.dispose()


def test_every_column_binds_through_the_driver_path_what_sqlalchemy_binds():
    """db.sqlite_rows._processor (db.types.Money.driver_bind_processor: kept per Decimal) against
    SQLAlchemy's bind processor, value by value, twice (the second time from what was kept), and
    the same refusal for what the column refuses."""
    dialect = sqlite_dialect.dialect()
    values = [Decimal("1.1000005"), Decimal("1.10"), Decimal("1.1"), Decimal("-0"), Decimal("0"), Decimal("0.000"),
              Decimal("-2.5"), Decimal("12345678901.123456"), Decimal("1E+3"), Decimal("0.0000000049"), 3, None,
              Decimal("NaN"), Decimal("Infinity"), Decimal("1E+20"), Decimal("1.23456789012345678"), True, 1.5, "1"]
    compared = 0
    for model in (SignalModel, AccountSnapshotModel, PositionSnapshotModel):
        for column in model.__table__.c:
            if not isinstance(column.type, Money):
                continue
            impl = column.type.dialect_impl(dialect)
            ours, theirs = sqlite_rows._processor(impl, dialect), impl.bind_processor(dialect)
            assert ours is not theirs
            for _ in range(2):
                for value in values:
                    outcomes = []
                    for process in (ours, theirs):
                        try:
                            bound = process(value)
                            outcomes.append((type(bound), bound))
                        except (TypeError, ValueError, ArithmeticError) as exc:
                            outcomes.append((type(exc), str(exc)))
                    assert outcomes[0] == outcomes[1], (column, value)
                    compared += 1
    assert compared > 10 * 2 * len(values)


def test_batch_ids_given_by_the_store_are_the_ids_sqlite_would_give_and_repeats_and_the_top_fall_back(tmp_path):
    """db.repo_signals._sqlite_insert: the ids given explicitly (largest + 1, ...) are the rows' ids
    as SQLite would have made them; a batch with a repeat, or one reaching the largest rowid (where
    SQLite picks at random), goes with RETURNING instead and still gets each row's own id."""
    recs = _signals()
    database = init_db(f"sqlite:///{tmp_path}/ids.db")
    try:
        repo = Repository(database)
        statements_seen = []
        event.listen(database.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_a: statements_seen.append(sql))
        assert repo.record_signals(recs[:4]) == [1, 2, 3, 4]
        assert "RETURNING" not in " ".join(statements_seen)
        with database.engine.begin() as conn:  # a gap: SQLite goes on from the largest id, not the count
            conn.exec_driver_sql("DELETE FROM signals WHERE id = 2")
        assert repo.record_signals(recs[4:6]) == [5, 6]
        statements_seen.clear()
        assert repo.record_signals([recs[5], recs[6], recs[6], recs[7]]) == [6, 7, 7, 8]  # repeats
        assert [sql.split(" ")[0] + (" RETURNING" if "RETURNING" in sql else "") for sql in statements_seen
                if "signals " in sql and not sql.startswith("SELECT")] == ["INSERT", "DELETE", "INSERT RETURNING"]
        with database.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE signals SET id = {sqlite_rows.MAX_ROWID - 1} WHERE id = 8")
        top = repo.record_signals(recs[8:12])
        with database.engine.connect() as conn:
            stored = dict(conn.exec_driver_sql("SELECT correlation_id, id FROM signals").all())
        assert top == [stored[rec.correlation_id] for rec in recs[8:12]] and len(set(top)) == 4
        assert sqlite_rows.MAX_ROWID in top  # the first took largest + 1; the rest were picked at random
        assert len(stored) == 11
    finally:
        database.dispose()
