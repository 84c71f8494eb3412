"""/metrics reuses the figures it read while the store is unchanged, and reads again as soon as it is not.

exporter/figures.py: on PostgreSQL the store's change marker (db.reading.change_marker) says whether
anything was committed since the figures' snapshot; a new broker day reads again too; with
max_age_seconds a changed store's figures are reused for at most that long.  Every scrape says how
old its figures are (tradewatch_exporter_figures_age_seconds).  SQLite has no such marker: read
every time.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bench.analytics import NOW
from db import AccountSnapshot, Repository, TradeClose, TradeOpen, init_db, rollups
from db.reading import change_marker, reading, store_marker
from db.records import SignalRecord
from db.seed import demo_accounts, seed_demo
from exporter.exposition import render
from exporter.figures import Read, Reused
from exporter.metrics import TradingCollector
from exporter.settings import ExporterSettings, SettingsError


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def trading_only(values: dict) -> dict:
    """The samples that must be the same whether read or reused (not the scrape's timings, not the clock's)."""
    return {key: value for key, value in values.items()
            if not key[0].startswith("tradewatch_exporter_") and key[0] != "tradewatch_snapshot_age_seconds"}


@pytest.fixture
def seeded(url):
    database = init_db(url)
    seed_demo(database, 300, 2, 1.0, now=NOW)
    yield database
    database.dispose()


def scraper(database, clock, max_age_seconds=0.0):
    collector = TradingCollector(database, clock, max_age_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return collector, lambda: samples(render(registry))


def snapshot(account: str, moment, balance: str) -> AccountSnapshot:
    amount = Decimal(balance)
    return AccountSnapshot(account=account, time=moment, balance=amount, equity=amount, profit=Decimal(0),
                           margin=Decimal(0), free_margin=amount, margin_level=None, open_positions=0)


def test_an_unchanged_store_is_read_once_and_a_change_is_seen_at_the_next_scrape(seeded):
    clock = Clock(NOW)
    collector, scrape = scraper(seeded, clock)
    first = scrape()
    assert first[("tradewatch_exporter_figures_age_seconds", ())] == 0.0
    clock.now = NOW + timedelta(seconds=30)  # the same broker day
    second = scrape()
    account = demo_accounts(2)[0]
    expected_reads = 1 if seeded.backend == "postgresql" else 2
    assert collector.figures.reads == expected_reads
    age_key = ("tradewatch_snapshot_age_seconds", (("account", account),))
    assert second[age_key] == pytest.approx(first[age_key] + 30)  # the clock's family is always fresh
    assert trading_only(second) == trading_only(first)
    if seeded.backend == "postgresql":
        assert second[("tradewatch_exporter_figures_age_seconds", ())] > 0.0
    Repository(seeded).record_account_snapshot(snapshot(account, NOW + timedelta(seconds=10), "98765.43"))
    third = scrape()
    assert collector.figures.reads == expected_reads + 1
    assert third[("tradewatch_snapshot_balance", (("account", account),))] == 98765.43
    assert third[age_key] == 20.0
    assert third[("tradewatch_exporter_figures_age_seconds", ())] == 0.0


def test_a_new_broker_day_is_read_again(postgres_url):
    database = init_db(postgres_url)
    try:
        seed_demo(database, 300, 1, 1.0, now=NOW)
        clock = Clock(NOW)
        collector, scrape = scraper(database, clock)
        scrape()
        clock.now = NOW + timedelta(days=1)
        scrape()
        assert collector.figures.reads == 2
        clock.now = NOW  # and back (a test clock): that day's figures are read, not the next day's
        scrape()
        assert collector.figures.reads == 3
    finally:
        database.dispose()


def test_max_age_reuses_a_changed_store_for_that_long_and_says_how_old(postgres_url):
    database = init_db(postgres_url)
    try:
        seed_demo(database, 300, 1, 1.0, now=NOW)
        account = demo_accounts(1)[0]
        collector, scrape = scraper(database, Clock(NOW), max_age_seconds=60)
        ticks = iter([100.0, 130.0, 130.0, 161.0, 161.0])
        collector.figures._monotonic = lambda: next(ticks)
        scrape()  # read at 100
        Repository(database).record_account_snapshot(snapshot(account, NOW + timedelta(minutes=1), "11111.11"))
        stale = scrape()  # at 130: 30 s old, reused although the store changed
        assert collector.figures.reads == 1
        assert stale[("tradewatch_exporter_figures_age_seconds", ())] == 30.0
        assert stale[("tradewatch_snapshot_balance", (("account", account),))] != 11111.11
        fresh = scrape()  # at 161: older than 60 s, and the store changed: read again
        assert collector.figures.reads == 2
        assert fresh[("tradewatch_snapshot_balance", (("account", account),))] == 11111.11
    finally:
        database.dispose()


def test_the_marker_moves_with_every_commit_and_only_then(postgres_url):
    database = init_db(postgres_url)
    try:
        before = store_marker(database)
        assert store_marker(database) == before  # reads commit nothing
        Repository(database).record_account_snapshot(snapshot("5001", NOW, "1.00"))
        after = store_marker(database)
        assert after != before
        with reading(database, consistent=True) as connection:
            taken = change_marker(connection)
            Repository(database).record_account_snapshot(snapshot("5001", NOW + timedelta(seconds=1), "2.00"))
            assert change_marker(connection) == taken  # one snapshot for the whole reading
        assert store_marker(database) != taken
    finally:
        database.dispose()


def test_without_a_marker_every_call_reads():
    calls = []

    def read(now, marker):
        calls.append(now)
        return Read(len(calls), None)

    reused = Reused(read)
    assert [reused.get(NOW, lambda: "m")[0] for _ in range(3)] == [1, 2, 3]
    with pytest.raises(ValueError):
        Reused(read, max_age_seconds=-1)


def test_max_age_setting_is_checked():
    base = {"EXPORTER_PORT": "0"}
    assert ExporterSettings.from_env(base).metrics_max_age_seconds == 0.0
    assert ExporterSettings.from_env({**base, "EXPORTER_METRICS_MAX_AGE_SECONDS": "7.5"}).metrics_max_age_seconds == 7.5
    for bad in ("-1", "301", "soon", "nan"):
        with pytest.raises(SettingsError, match="EXPORTER_METRICS_MAX_AGE_SECONDS"):
            ExporterSettings.from_env({**base, "EXPORTER_METRICS_MAX_AGE_SECONDS": bad})


def _close_one(database, account: str, ticket: int, moment, profit: str) -> None:
    repo = Repository(database)
    repo.open_trade(TradeOpen(account=account, ticket=ticket, symbol="EURUSD", direction="BUY",
                              volume=Decimal("0.10"), entry_price=Decimal("1.1"), entry_time=moment,
                              stop_loss=None, take_profit=None, strategy_name="carry", ml_confidence=None,
                              client_order_id=None, magic=1, correlation_id=None))
    repo.close_trade(TradeClose(account=account, ticket=ticket, exit_price=Decimal("1.1010"),
                                exit_time=moment + timedelta(seconds=30), gross_profit=Decimal(profit),
                                commission=Decimal(0), swap=Decimal(0), profit_pips=Decimal("10.0")))


def test_a_changed_account_is_read_again_and_the_others_reused_with_the_same_text(seeded):
    """db.scoreboard reads the totals again only of accounts whose rollups changed (PostgreSQL), the
    exporter reuses the other accounts' lines: the scrape is what a fresh exporter shows, every time."""
    changed, other = demo_accounts(2)
    clock = Clock(NOW)
    collector, scrape = scraper(seeded, clock)
    first = scrape()
    before = {board.account: board for board in collector.figures.last.value.boards}

    def fresh():
        return trading_only(scraper(seeded, clock)[1]())

    _close_one(seeded, changed, 990_001, NOW - timedelta(hours=1), "12.34")  # a trade closes
    Repository(seeded).record_signal(SignalRecord(  # and a signal of the other account is counted
        account=other, time=NOW - timedelta(minutes=5), cycle_id="c-1", correlation_id="k-1", symbol="EURUSD",
        strategy="carry", signal="HOLD", confidence=0.5, reason="test", price=None))
    second = scrape()
    assert trading_only(second) == fresh()
    after = {board.account: board for board in collector.figures.last.value.boards}
    assert after[changed].pairs is not before[changed].pairs
    assert after[other].signals is not before[other].signals
    if seeded.backend == "postgresql":  # the other account's totals: the lists read before, not read again
        assert after[other].pairs is before[other].pairs and after[other].strategies is before[other].strategies
    profit = ("tradewatch_realized_profit", (("account", changed), ("strategy", "carry"), ("symbol", "EURUSD")))
    assert second[profit] == pytest.approx(first[profit] + 12.34)
    with seeded.engine.begin() as connection:  # a rebuild of the other account rewrites its rows: read again
        rollups.rebuild(connection, other)
    _close_one(seeded, other, 990_002, NOW - timedelta(minutes=30), "-5.00")
    third = scrape()
    assert trading_only(third) == fresh()
    assert third != second
    assert collector.figures.last.value.boards[1].pairs is not after[other].pairs
    families = collector.figures.last.value.families  # reused lines keep their rows (samples, generate_latest)
    assert [len(family.samples) for family in families] == [family.text.count("\n") for family in families]
