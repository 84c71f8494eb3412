"""The rollups never disagree with the raw rows: after random mixes of opens and closes (in and out of
order, repeated, tied), under concurrent closes, after a migration of an existing store, and the
signal counters likewise.  Also: the ledger's folding arithmetic, and verify-rollups catching drift.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from test_analytics_reference import START, random_book, snapshot

from db import Database, Repository, SignalRecord, init_db, migrate, rollups
from db.analytics import Selection, drawdown
from db.ledger import ClosedTrade, CurvePoint, Tally, fold
from db.models import SignalCountModel, SignalModel, TradeModel, trade_rollups

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def database(url):
    handle = init_db(url)
    yield handle
    handle.dispose()


def assert_consistent(database: Database, accounts) -> None:
    with database.engine.connect() as connection:
        for account in accounts:
            assert rollups.verify(connection, account) == [], account


def test_random_mix_of_opens_and_closes_keeps_rollups_equal_to_raw_rows(database):
    repo = Repository(database)
    accounts = {"2001": "5000.00", "2002": None}
    book = random_book(seed=7, accounts=accounts, trades=90, days=75, left_open=5)
    for s in book.snapshots:
        repo.record_account_snapshot(s)
    rng = random.Random(99)
    pending_opens = list(book.opens)
    rng.shuffle(pending_opens)
    opened: set[tuple[str, int]] = set()
    waiting = list(book.closes)
    done = []
    steps = 0
    while pending_opens or waiting:
        steps += 1
        if pending_opens and (not waiting or rng.random() < 0.45):
            trade = pending_opens.pop()
            assert repo.open_trade(trade) is True
            opened.add((trade.account, trade.ticket))
        else:
            ready = [c for c in waiting if (c.account, c.ticket) in opened]
            if not ready:
                continue
            close = ready[0] if rng.random() < 0.7 else rng.choice(ready)
            waiting.remove(close)
            assert repo.close_trade(close) is True
            done.append(close)
            if rng.random() < 0.1:
                assert repo.close_trade(rng.choice(done)) is False  # a repeat changes nothing
        if steps % 40 == 0:
            assert_consistent(database, accounts)
    assert_consistent(database, accounts)
    with database.engine.connect() as connection:
        counted = connection.execute(
            select(func.sum(trade_rollups.c.trades)).where(trade_rollups.c.span == "all",
                                                            trade_rollups.c.strategy == "*",
                                                            trade_rollups.c.symbol == "*")
        ).scalar_one()
    assert counted == len(book.closes)


def test_a_close_far_in_the_past_recomputes_everything_after_it(database):
    repo = Repository(database)
    book = random_book(seed=5, accounts={"3001": "1000.00"}, trades=40, left_open=1)
    late = book.closes.pop(0)  # will be recorded last ...
    late = replace(late, exit_time=START - timedelta(hours=3), gross_profit=Decimal("-777.00"))  # ... but exited first
    for s in book.snapshots:
        repo.record_account_snapshot(s)
    for o in book.opens:
        repo.open_trade(o)
    for c in book.closes:
        repo.close_trade(c)
    repo.close_trade(late)
    assert_consistent(database, ["3001"])


def test_closes_racing_from_threads_stay_consistent(database):
    repo = Repository(database)
    book = random_book(seed=21, accounts={"4001": "20000.00"}, trades=80, left_open=0)
    for s in book.snapshots:
        repo.record_account_snapshot(s)
    for o in book.opens:
        repo.open_trade(o)
    chunks = [book.closes[i::4] for i in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def close_all(closes):
        barrier.wait()
        try:
            for c in closes:
                repo.close_trade(c)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=close_all, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_consistent(database, ["4001"])


def test_migrating_an_existing_store_backfills_rollups_and_signal_counts(url):
    database = Database(url)
    try:
        migrate.upgrade(database.engine, "0001")
        with database.engine.begin() as connection:
            for k in range(30):
                closed = k < 27
                connection.execute(
                    insert(TradeModel.__table__).values(
                        account="5001", ticket=k, symbol=("EURUSD", "USDJPY", "XAUUSD")[k % 3], direction="BUY",
                        volume=Decimal("0.1"), entry_price=Decimal("1.1"), entry_time=START + timedelta(hours=5 * k),
                        exit_price=Decimal("1.2") if closed else None,
                        exit_time=START + timedelta(hours=5 * k + 3) if closed else None,
                        profit=Decimal((-1) ** k * (k * 7 % 50)) + Decimal("0.25") if closed else None,
                        profit_pips=Decimal(k) / 10 if closed else None,
                        strategy_name=("a", "b", None)[k % 3], is_closed=closed, magic=1,
                    )
                )
                connection.execute(
                    insert(SignalModel.__table__).values(
                        account="5001", time=START + timedelta(minutes=k), cycle_id=f"c{k}", correlation_id="c",
                        symbol="EURUSD", strategy="a", signal=("BUY", "HOLD")[k % 2], confidence=0.5, reason="",
                        executed=k % 4 == 0,
                    )
                )
        migrate.upgrade(database.engine)
        assert_consistent(database, ["5001"])
        assert signal_counts(database) == raw_signal_counts(database)
        with database.engine.connect() as connection:
            total = connection.execute(
                select(trade_rollups.c.trades).where(trade_rollups.c.span == "all", trade_rollups.c.strategy == "*",
                                                     trade_rollups.c.symbol == "*")
            ).scalar_one()
        assert total == 27
    finally:
        database.dispose()


def signal_counts(database) -> dict:
    table = SignalCountModel.__table__
    with database.engine.connect() as connection:
        return {
            (r.account, r.strategy, r.signal, r.executed): r.count
            for r in connection.execute(select(table))
            if r.count
        }


def raw_signal_counts(database) -> dict:
    s = SignalModel.__table__.c
    with database.engine.connect() as connection:
        rows = connection.execute(
            select(s.account, s.strategy, s.signal, s.executed, func.count()).group_by(
                s.account, s.strategy, s.signal, s.executed
            )
        )
        return {(a, st, sig, bool(ex)): n for a, st, sig, ex, n in rows}


def test_signal_counters_follow_records_and_executions(database):
    repo = Repository(database)
    ids = []
    for k in range(12):
        record = SignalRecord(
            account="6001", time=START + timedelta(minutes=k), cycle_id=f"c{k}", correlation_id=f"x{k}",
            symbol="EURUSD", strategy=("a", "b")[k % 2], signal=("BUY", "SELL", "HOLD")[k % 3], confidence=0.5,
            reason="", price=None,
        )
        ids.append(repo.record_signal(record))
        assert repo.record_signal(record) == ids[-1]  # a repeat is not counted twice
    for signal_id in ids[:5]:
        repo.mark_signal_executed(signal_id)
        repo.mark_signal_executed(signal_id)  # nor is a repeated execution
    counts = signal_counts(database)
    assert counts == raw_signal_counts(database)
    assert sum(n for (_, _, _, executed), n in counts.items() if executed) == 5


def test_verify_finds_a_tampered_rollup_and_the_cli_reports_it(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    database = init_db(url)
    try:
        repo = Repository(database)
        repo.record_account_snapshot(snapshot("7001", START - timedelta(days=1), "100.00"))
        book = random_book(seed=3, accounts={"7001": None}, trades=10, left_open=0)
        load_all(repo, book)
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
        command = [sys.executable, "-m", "db", "verify-rollups"]
        ok = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        with database.engine.begin() as connection:
            connection.execute(
                update(trade_rollups).where(trade_rollups.c.span == "month").values(profit_cents=trade_rollups.c.profit_cents + 1)
            )
            problems = rollups.verify(connection, "7001")
        assert problems and all("profit_cents" in p for p in problems)
        bad = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1
        assert "rollups disagree with the trades of 1 account(s): 7001" in bad.stderr
        with database.engine.begin() as connection:
            rollups.rebuild(connection, "7001")
            assert rollups.verify(connection, "7001") == []
    finally:
        database.dispose()


def load_all(repo, book):
    for s in book.snapshots:
        repo.record_account_snapshot(s)
    for o in book.opens:
        repo.open_trade(o)
    for c in book.closes:
        repo.close_trade(c)


def test_folding_tallies_equals_counting_trade_by_trade():
    """Tally.merge (used for months, all-time rows and rebuilds) agrees with Tally.add over any split."""
    rng = random.Random(1)
    for _ in range(200):
        profits = [rng.choice((-1, 1, 0)) * rng.randrange(0, 5000) for _ in range(rng.randrange(1, 30))]
        trades = [
            ClosedTrade(i, "1", "EURUSD", "s", datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i), p, i)
            for i, p in enumerate(profits)
        ]
        whole, parts, current = Tally(), [], Tally()
        cum = peak = 0
        for trade in trades:
            point = CurvePoint.after(cum, peak, trade.profit_cents, 10_000)
            cum, peak = point.cum, point.peak
            whole.add(trade, point)
            current.add(trade, point)
            if rng.random() < 0.3:
                parts.append(current)
                current = Tally()
        parts.append(current)
        assert fold(parts).values() == whole.values()


def test_an_earlier_first_exit_moves_the_initial_balance_and_recomputes_the_ratios(database):
    repo = Repository(database)
    repo.record_account_snapshot(snapshot("9101", START - timedelta(days=2), "1000.00"))
    repo.record_account_snapshot(snapshot("9101", START, "5000.00"))
    book = random_book(seed=17, accounts={"9101": None}, trades=12, left_open=0)
    book.snapshots.clear()
    closes = sorted(book.closes, key=lambda c: c.exit_time)
    early = replace(closes[0], exit_time=START - timedelta(hours=1))  # exits before the 5000.00 snapshot
    for o in book.opens:
        repo.open_trade(o)
    for c in closes[1:]:
        repo.close_trade(c)
    with database.engine.connect() as connection:
        assert rollups.verify(connection, "9101") == []
    before = drawdown_of(database)
    repo.close_trade(early)
    with database.engine.connect() as connection:
        assert rollups.verify(connection, "9101") == []
    after = drawdown_of(database)
    assert (before.initial_balance, after.initial_balance) == (Decimal("5000.00"), Decimal("1000.00"))


def drawdown_of(database):
    return drawdown(database, Selection("9101"))
