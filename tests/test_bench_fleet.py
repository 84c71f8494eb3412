"""The fleet benchmark's measuring code on a fleet of three (bench/fleet.py; the 100-account run is `make bench`).

What must hold for its figures to mean anything: the copied accounts are whole accounts (every
table, the same analytics as the seeded one), every read it times answers, and the series count
of exporter/cardinality.py is what /metrics really shows.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

import bench.fleet
from bench._fleet_deals import MT5_EXTENDED, MT5_MARKS, MT5_WHOLE, add_deals, mt5_costs
from bench.analytics import NOW
from bench.fleet import (
    CLOSED_BEFORE,
    SCRAPE,
    SCRAPE_CHANGED,
    SCRAPE_CLOSED,
    Scrape,
    account_tables,
    all_reads,
    changed_reads,
    copy_account,
    first_stage_of,
    fleet_shape,
    misses,
    scrape,
    scrape_costs,
    series_misses,
    series_table,
)
from db import deal_marks, init_db
from db.analytics import Selection, drawdown, strategy_performance, symbol_performance, time_performance
from db.bulk import bulk_insert
from db.history_store import deal_count
from db.models import AccountSnapshotModel, DealModel, TradeModel
from db.mt5report import account_deals, mt5_figures
from db.seed import demo_accounts, seed_demo
from exporter.app import create_app
from exporter.cardinality import FAMILIES, FleetShape, expected_series

TRADES = 2_000  # per account: enough for every (strategy, symbol) pair and every signal kind to occur


@pytest.fixture(scope="module")
def fleet(pg_cluster):
    """Three accounts on PostgreSQL: one seeded, two copied from it in the server."""
    database = init_db(pg_cluster.create_database("bench_fleet_test"))
    accounts = demo_accounts(3)
    seed_demo(database, TRADES, 1, 5.0, now=NOW)
    copied = copy_account(database, accounts[0], accounts[1:])
    yield database, accounts, copied
    database.dispose()


def rows_per_account(database, table) -> Counter:
    with database.engine.connect() as connection:
        return Counter(dict(connection.execute(select(table.c.account, func.count()).group_by(table.c.account)).all()))


def test_copies_are_whole_accounts(fleet):
    database, accounts, copied = fleet
    assert copied == 2 * (TRADES + 3)  # closed and open trades of both copies
    filled = 0
    for table in account_tables():
        counts = rows_per_account(database, table)
        assert {counts[account] for account in accounts} == {counts[accounts[0]]}, table.name
        filled += counts[accounts[0]] > 0
    assert filled >= 7  # trades, rollups, bases, snapshots, signals, their counts, daily rows
    original, copy = Selection(accounts[0]), Selection(accounts[2])
    year = dict(start=date(2024, 3, 17), end=date(2025, 3, 16))
    assert strategy_performance(database, copy) == strategy_performance(database, original)
    assert symbol_performance(database, Selection(accounts[2], **year)) == symbol_performance(
        database, Selection(accounts[0], **year))
    assert time_performance(database, copy, "month") == time_performance(database, original, "month")
    assert drawdown(database, copy) == drawdown(database, original)
    assert sum(line.trades for line in strategy_performance(database, copy)) == TRADES


def test_every_timed_read_answers(fleet):
    database, accounts, _ = fleet
    reads = all_reads(database, accounts[1])
    assert len(reads) >= 30 and any(name.startswith("API ") for name in reads)
    for call in reads.values():
        call()  # a non-200 raises, naming the path
    assert misses({"a query": (1.0, 10.5), SCRAPE: (1.0, 49.0), SCRAPE_CHANGED: (1.0, 51.0)}) == [
        "a query", SCRAPE_CHANGED]


def test_the_changed_store_scrape_writes_before_every_scrape(fleet, monkeypatch):
    """The 'store changed' figure is only honest if each of its scrapes follows a write (untimed)."""
    database, accounts, _ = fleet
    monkeypatch.setattr(bench.fleet, "REPEAT", 4)
    monkeypatch.setattr(bench.fleet, "WARMUP", 1)
    table, trades = AccountSnapshotModel.__table__, TradeModel.__table__
    before, closed = rows_per_account(database, table)[accounts[2]], rows_per_account(database, trades)[accounts[2]]
    costs = scrape_costs(database, accounts[2])
    assert set(costs) == {SCRAPE, SCRAPE_CHANGED, SCRAPE_CLOSED}
    assert rows_per_account(database, table)[accounts[2]] == before + 5
    assert rows_per_account(database, trades)[accounts[2]] == closed + 5  # a trade closed before each
    for p50, p95, cpu in costs.values():
        assert 0 < p50 <= p95 and cpu >= 0


def test_the_changed_reads_follow_a_close_each(fleet, monkeypatch):
    """The correlation figures 'a trade closed before each' are only honest if each follows a close (untimed)."""
    database, accounts, _ = fleet
    monkeypatch.setattr(bench.fleet, "REPEAT", 3)
    monkeypatch.setattr(bench.fleet, "WARMUP", 1)
    trades = TradeModel.__table__
    closed = rows_per_account(database, trades)[accounts[1]]
    costs = changed_reads(database, accounts[1])
    assert len(costs) == 2 and all(name.endswith(CLOSED_BEFORE) for name in costs)
    assert rows_per_account(database, trades)[accounts[1]] == closed + 2 * 4
    for p50, p95 in costs.values():
        assert 0 < p50 <= p95


def test_series_count_formulas_match_the_scrape(fleet):
    database, accounts, _ = fleet
    measured = scrape(database)
    shape = fleet_shape(len(accounts))
    expected = expected_series(shape)
    assert measured.series == {name: count for name, count in expected.items() if count}
    assert sum(measured.series.values()) == 3 * (4 * 8 + 4 * 3 + 4 * 2 + 9 + 3 + 4 * 3 + 4 * 2) + 8
    assert not any(line.endswith("!") for line in series_table(measured, shape))
    # the formulas scale: a fourth of the accounts, a fourth of every per-account family
    quarter = expected_series(FleetShape(accounts=12, strategies=4, symbols=8, open_symbols=3, signal_kinds=3, executed_kinds=2))
    tenfold = expected_series(FleetShape(accounts=120, strategies=4, symbols=8, open_symbols=3, signal_kinds=3, executed_kinds=2))
    for family in FAMILIES:
        if "account" in family.labels:
            assert tenfold[family.name] == 10 * quarter[family.name], family.name


def test_the_newest_snapshot_of_each_account_is_scraped(pg_cluster):
    """db.scoreboard reads every account's newest snapshot in one LATERAL statement on PostgreSQL."""
    database = init_db(pg_cluster.create_database("bench_fleet_snapshots"))
    try:
        accounts = demo_accounts(3)
        seed_demo(database, 200, 1, 1.0, now=NOW)
        copy_account(database, accounts[0], accounts[1:])
        newer = {"account": accounts[1], "time": NOW + timedelta(minutes=1), "balance": Decimal("123456.78"),
                 "equity": Decimal("123400.00"), "profit": Decimal(0), "margin": Decimal(0),
                 "free_margin": Decimal("123400.00"), "margin_level": None, "open_positions": 0}
        older = {**newer, "account": accounts[2], "time": NOW - timedelta(days=400), "balance": Decimal("1.00")}
        with database.engine.begin() as connection:
            bulk_insert(connection, AccountSnapshotModel.__table__, [newer, older])
        body = create_app(database, clock=lambda: NOW).test_client().get("/metrics").get_data(as_text=True)
        balances = {sample.labels["account"]: sample.value
                    for family in text_string_to_metric_families(body)
                    if family.name == "tradewatch_snapshot_balance" for sample in family.samples}
        table = AccountSnapshotModel.__table__
        with database.engine.connect() as connection:
            seeded = connection.execute(
                select(table.c.balance).where(table.c.account == accounts[0]).order_by(table.c.time.desc()).limit(1)
            ).scalar_one()
        assert balances == {accounts[0]: float(seeded), accounts[1]: 123456.78, accounts[2]: float(seeded)}
    finally:
        database.dispose()


def marks_of(database) -> list[tuple]:
    with database.engine.connect() as connection:
        return deal_marks.marks(connection)


def fresh_marks(database) -> list[tuple]:
    """Every account's (account, deals, newest) counted from the deals table."""
    deals = DealModel.__table__
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(deals.c.account, func.count(), func.max(deals.c.time)).group_by(deals.c.account)
            .order_by(deals.c.account))]


def test_the_added_deals_are_the_closed_trades_as_mt5_reports_them(pg_cluster):
    """BENCH_FLEET_DEALS' deals must be an account's real history: a deposit, then per closed trade an
    entry and an exit deal whose balance change is the trade's net profit (MT5 figures = ours)."""
    database = init_db(pg_cluster.create_database("bench_fleet_deals"))
    try:
        accounts = demo_accounts(2)
        seed_demo(database, 200, 1, 1.0, now=NOW)
        copy_account(database, accounts[0], accounts[1:])
        trades = TradeModel.__table__
        with database.engine.connect() as connection:
            closed, net = connection.execute(select(func.count(), func.sum(trades.c.profit))
                                             .where(trades.c.account == accounts[1], trades.c.is_closed)).one()
        assert add_deals(database) == 2 * (2 * closed + 1)
        assert marks_of(database) == fresh_marks(database)  # the board's marks kept with the bulk load
        with database.engine.connect() as connection:
            figures = mt5_figures(account_deals(connection, accounts[1]))
        assert (figures.deals, figures.total_trades, figures.deposits) == (2 * closed + 1, closed, Decimal("100000.00"))
        assert figures.total_net_profit == net and figures.balance == Decimal("100000.00") + net
        costs = mt5_costs(database, accounts[1], repeat=2)
        assert set(costs) == {MT5_MARKS, MT5_WHOLE, MT5_EXTENDED}
        assert all(0 < p50 <= worst for p50, worst in costs.values())
        assert deal_count(database, accounts[1]) == 2 * closed + 1 + 2  # a new deal before each extension
        copy_account(database, accounts[1], demo_accounts(3)[2:])  # an account with deals copied: its mark too
        assert marks_of(database) == fresh_marks(database)
        assert len(marks_of(database)) == 3
    finally:
        database.dispose()


def test_the_first_stage_holds_the_probe_at_any_fleet_size():
    """close_trade is first timed on the second account: it must be a copy by then (with 5 accounts the
    first stage was the template alone, and the later copy collided with the rows the timing wrote)."""
    assert first_stage_of(1) == 1 and first_stage_of(100) == 10
    for accounts in range(2, 130):
        assert 2 <= first_stage_of(accounts) <= accounts


def test_series_verdict_is_a_bound_below_full_size_and_exact_at_it():
    shape = FleetShape(accounts=3, strategies=4, symbols=8, open_symbols=3, signal_kinds=3, executed_kinds=2)
    expected = {name: n for name, n in expected_series(shape).items() if n}
    sparse = dict(expected, tradewatch_realized_profit=expected["tradewatch_realized_profit"] - 5)
    above = dict(expected, tradewatch_realized_profit=expected["tradewatch_realized_profit"] + 1)
    unknown = dict(expected, tradewatch_something_new=1)
    scraped = lambda series: Scrape(size_bytes=1, series=series)  # noqa: E731
    assert series_misses(scraped(expected), shape, exact=True) == []
    assert series_misses(scraped(sparse), shape, exact=False) == []
    assert series_misses(scraped(sparse), shape, exact=True) == ["series count differs from exporter/cardinality.py"]
    for wrong in (above, unknown):
        for exact in (True, False):
            assert series_misses(scraped(wrong), shape, exact=exact) == ["series count above exporter/cardinality.py"]
