"""Every analytics figure equals a plain-Python recomputation from the raw trades, on SQLite and PostgreSQL.

The store is filled through Repository.close_trade (so the rollups are the ones kept
current by the closing transactions, including closes recorded out of order); the
expected figures come from tests/test_analytics_reference.py, which shares no code with
db.analytics.  Amounts must match to the cent, ratios to 1e-9.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from test_analytics_reference import (
    closed_rows,
    expected_base,
    expected_buckets,
    expected_correlation,
    expected_day,
    expected_drawdown,
    expected_strategies,
    expected_symbols,
    in_selection,
    load,
    random_book,
    same,
)

from db import Repository, init_db, rollups
from db.analytics import (
    BUCKETS,
    Selection,
    correlation,
    drawdown,
    pearson_matrix,
    strategy_performance,
    symbol_performance,
    time_performance,
)
from db.daily_results import daily_performance, daily_summaries
from db.ledger import Tally
from db.models import trade_rollups

ACCOUNTS = {"1001": "10000.00", "1002": "2500.00", "1003": None}  # 1003: no snapshot, base 0
SELECTIONS = [
    {},
    {"start": date(2025, 2, 10), "end": date(2025, 4, 20)},  # partial months around whole ones
    {"start": date(2025, 3, 1), "end": date(2025, 3, 31)},  # exactly one month
    {"start": date(2025, 2, 3), "end": date(2025, 2, 20)},  # inside one month
    {"end": date(2025, 3, 15)},
    {"start": date(2025, 3, 15)},
    {"start": date(2025, 4, 1)},
    {"symbol": "USDJPY"},
    {"strategy": "breakout", "start": date(2025, 2, 10), "end": date(2025, 4, 20)},
    {"symbol": "XAUUSD", "strategy": "ma_crossover"},
    {"start": date(2024, 1, 1), "end": date(2024, 12, 31)},  # no trades at all
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    name = f"analytics_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('analytics')}/store.db"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(name)
    database = init_db(url)
    repo = Repository(database)
    book = random_book(seed=42, accounts=ACCOUNTS, trades=160)
    load(repo, book)
    yield database, repo, book
    database.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(name)


def rows_of(repo, account, **selection):
    return [r for r in closed_rows(repo, account) if in_selection(r, **selection)]


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_performance_by_strategy_and_symbol(store, account):
    database, repo, _ = store
    for selection in SELECTIONS:
        rows = rows_of(repo, account, **selection)
        chosen = Selection(account, **selection)
        same(strategy_performance(database, chosen), expected_strategies(rows), f"strategies {selection}")
        same(symbol_performance(database, chosen), expected_symbols(rows), f"symbols {selection}")


@pytest.mark.parametrize("bucket", BUCKETS)
def test_time_buckets(store, bucket):
    database, repo, _ = store
    for account in ACCOUNTS:
        for selection in SELECTIONS:
            expected = expected_buckets(rows_of(repo, account, **selection), bucket)
            got = [(b.key, b.trades, b.profit) for b in time_performance(database, Selection(account, **selection), bucket)]
            same(got, expected, f"{account} {bucket} {selection}")


@pytest.mark.parametrize("by", ["symbol", "strategy"])
def test_correlation_matrices(store, by):
    database, repo, _ = store
    for account in ACCOUNTS:
        for selection in SELECTIONS:
            names, days, matrix = expected_correlation(rows_of(repo, account, **selection), by)
            got = correlation(database, Selection(account, **selection), by)
            assert (got.names, got.days) == (names, days), selection
            for got_line, line in zip(got.matrix, matrix, strict=True):
                for g, e in zip(got_line, line, strict=True):
                    assert (g is None) == (e is None), selection
                    if e is not None:
                        same(g, e, f"correlation {by} {selection}")


def test_a_series_that_does_not_vary_has_no_correlation():
    assert pearson_matrix([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]) == [[None, None], [None, 1.0]]
    assert pearson_matrix([[5.0]]) == [[None]]


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_drawdown_exact_per_trade(store, account):
    database, repo, book = store
    everything = closed_rows(repo, account)
    base = expected_base(book.snapshots, everything, account)
    for selection in SELECTIONS:
        expected = expected_drawdown(everything, base, **selection)
        same(drawdown(database, Selection(account, **selection)), expected, f"drawdown {selection}")


def test_the_account_without_a_snapshot_has_ratios_only_above_its_start(store):
    database, _, _ = store
    result = drawdown(database, Selection("1003"))
    assert result.initial_balance == Decimal("0.00")
    if result.peak_equity == 0:
        assert result.current_drawdown_ratio is None


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_daily_performance_of_every_day(store, account):
    database, repo, book = store
    rows = closed_rows(repo, account)
    days = sorted({r.exit_time.date() for r in rows}) + [date(2025, 1, 1)]  # plus a day without trades
    for day in days:
        result = daily_performance(database, account, day)
        assert (result.account, result.date) == (account, day)
        same(result, expected_day(rows, book.snapshots, account, day), f"day {day}")


def test_daily_summaries_return_what_the_bot_stored(store):
    database, repo, _ = store
    days = [date(2025, 2, 3), date(2025, 2, 4), date(2025, 3, 10)]
    for day in days:
        repo.upsert_daily_performance(daily_performance(database, "1001", day))
    stored = daily_summaries(database, "1001", date(2025, 2, 4), date(2025, 12, 31))
    assert [s.date for s in stored] == days[1:]
    assert stored[0] == daily_performance(database, "1001", days[1])


def test_rollups_kept_by_the_closes_equal_a_rebuild_from_raw_rows(store):
    database, _, _ = store
    with database.engine.connect() as connection:
        for account in ACCOUNTS:
            assert rollups.verify(connection, account) == []
        before = stored_rollups(connection)
        rollups.rebuild(connection)
        after = stored_rollups(connection)
        connection.rollback()
    assert before.keys() == after.keys()
    for key, tally in before.items():
        same(tally.values(), after[key].values(), str(key))


def stored_rollups(connection) -> dict:
    rows = connection.execute(select(trade_rollups))
    return {(r.account, r.span, r.period_start, r.strategy, r.symbol): Tally.from_row(r._mapping) for r in rows}


def test_a_selection_is_validated():
    with pytest.raises(ValueError, match="start"):
        Selection("1001", date(2025, 3, 2), date(2025, 3, 1))
    with pytest.raises(ValueError, match="account"):
        Selection("")
    with pytest.raises(ValueError, match="symbol"):
        Selection("1001", symbol="*")
    with pytest.raises(TypeError, match="start"):
        Selection("1001", start="2025-01-01")
