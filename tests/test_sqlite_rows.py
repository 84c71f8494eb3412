"""db.sqlite_rows: the signal rows and counters written through the driver are stored exactly as
SQLAlchemy's own statements (db.statements) store them, conflicts and all."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db import (
    AccountSnapshot,
    PositionSnapshot,
    Repository,
    SignalRecord,
    init_db,
    repo_signals,
    signal_counts,
)
from db.rows import values_of as _values
from db.statements import statements


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
