"""SQLite durability through db.walsync: every commit that wrote is fsynced, the cycle's end off its thread."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from db import walsync
from mt5bridge.sim import SimTerminal

CYCLES = 7  # seed 5 on two symbols sends orders in some of them (tests/test_group_commit.py)


@pytest.fixture
def database(scratch_sqlite):
    return scratch_sqlite  # tests/conftest.py


@pytest.fixture
def fsyncs(monkeypatch):
    """The fds fsynced and the thread that did it (os.fsync as db.walsync calls it)."""
    seen: list[tuple[str, str]] = []
    real = os.fsync

    def recording(fd):
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread().name))
        real(fd)

    monkeypatch.setattr(walsync.os, "fsync", recording)
    return seen


def _bot(tmp_path, symbols, strategies):
    """The bot on a SQLite store in `tmp_path`, stepped simulator seed 5, connected."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/store.db", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
           "CYCLE_SECONDS": "60", "SYMBOLS": symbols, "STRATEGIES": strategies,
           "STORE_SPOOL_PATH": str(tmp_path / "spool.db"), "ORDER_QUEUE_PATH": str(tmp_path / "queue.db")}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=5, stepped=True), stepped=True)
    app.connect()
    return app


def _insert(database, value, durable=True):
    with database.unit():
        with database.session() as session:
            session.execute(text("insert into t values (:x)"), {"x": value})
        database.commit(durable)


def test_the_connection_syncs_normal_and_a_durable_commit_fsyncs_the_wal_on_its_thread(database, fsyncs):
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: the fsync is ours
    _insert(database, 1)
    wal = str(database.engine.wal_sync.wal_path)
    assert fsyncs == [(wal, threading.current_thread().name)]


def test_a_commit_that_changed_no_row_fsyncs_nothing(database, fsyncs):
    with database.session() as session:  # a read: BEGIN IMMEDIATE ... COMMIT
        assert session.execute(text("select count(*) from t")).scalar() == 0
    with database.engine.begin() as conn:
        conn.execute(text("update t set x = 2 where x = 99"))  # no row matched
    assert fsyncs == []


def test_a_deferred_commit_is_fsynced_by_the_background_thread_before_the_next_durable_one_returns(database, fsyncs):
    sync = database.engine.wal_sync
    _insert(database, 1, durable=False)
    assert sync.wait_idle(30)
    assert [thread for _, thread in fsyncs] == ["sqlite-wal-sync"]
    before = sync.syncs
    _insert(database, 2)  # durable: fsynced on this thread, whatever the background thread does
    assert sync.syncs >= before + 1 and fsyncs[-1][1] == threading.current_thread().name


def test_dispose_flushes_a_pending_deferred_fsync(database, monkeypatch):
    sync = database.engine.wal_sync
    release = threading.Event()
    started = threading.Event()
    real = os.fsync

    def slow(fd):  # the background fsync is held until the test says so
        if threading.current_thread().name == "sqlite-wal-sync":
            started.set()
            release.wait(30)
        real(fd)

    monkeypatch.setattr(walsync.os, "fsync", slow)
    before = sync.syncs
    _insert(database, 1, durable=False)
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    database.dispose()  # waits for the fsync under way, then syncs once more
    assert sync.syncs >= before + 2


def test_a_failed_background_fsync_is_said_once_per_streak(database, monkeypatch, caplog):
    caplog.set_level(logging.INFO, "db.walsync")
    sync = database.engine.wal_sync

    def failing(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(walsync.os, "fsync", failing)
    sync.flush()
    sync.flush()
    assert sync.failures == 2
    assert [r.message for r in caplog.records if "fsync failed" in r.message] == [
        "store WAL fsync failed: [Errno 5] Input/output error: the last cycle's writes may not be on disk"]
    monkeypatch.setattr(walsync.os, "fsync", lambda fd: None)
    sync.flush()
    assert any(r.message == "store WAL fsync works again" for r in caplog.records)
    with pytest.raises(OSError):  # a durable commit raises it itself
        monkeypatch.setattr(walsync.os, "fsync", failing)
        _insert(database, 3)


def test_a_bot_cycle_fsyncs_on_its_thread_only_before_an_order_leaves(tmp_path, fsyncs):
    """The bot on its spooled store: the loop thread waits for an fsync only at a pre-send commit."""
    app = _bot(tmp_path, "EURUSD,GBPUSD", "ma_crossover,rsi_reversion")
    wal = app.database.engine.wal_sync.wal_path
    loop = threading.current_thread().name
    try:
        app.engine.run_cycle()  # start-up: reconciliation, history import
        app.database.engine.wal_sync.flush()
        fsyncs.clear()
        sent, on_loop, background = [], [], 0
        for _ in range(CYCLES):
            report = app.engine.run_cycle()
            assert report.error is None, report.error
            sent.append(sum(n for status, n in report.orders.items() if status not in ("queued", "duplicate", "expired")))
            on_loop.append(sum(1 for path, thread in fsyncs if path == wal and thread == loop))
            assert app.database.engine.wal_sync.wait_idle(30)  # this cycle's end is on disk
            background += sum(1 for path, thread in fsyncs if path == wal and thread == "sqlite-wal-sync")
            fsyncs.clear()
            app.pacer.wait()
        assert sum(sent) >= 1 and on_loop == sent, (sent, on_loop)  # one wait per order, none at a cycle's end
        assert background >= 1  # the cycles' ends were fsynced, off the loop thread
    finally:
        app.close()


def test_dispose_stops_the_sync_thread_and_a_later_deferred_commit_starts_one_again(database):
    _insert(database, 1, durable=False)
    threads = [t for t in threading.enumerate() if t.name == "sqlite-wal-sync"]
    mine = database.engine.wal_sync._thread
    assert mine in threads and mine.is_alive()
    database.dispose()
    assert not mine.is_alive()
    _insert(database, 2, durable=False)  # the engine is usable after dispose, as SQLAlchemy's is
    assert database.engine.wal_sync.wait_idle(30) and database.engine.wal_sync._thread.is_alive()
    database.dispose()


def test_the_bot_counts_a_failed_background_fsync_on_its_metrics(tmp_path, monkeypatch):
    app = _bot(tmp_path, "EURUSD", "ma_crossover")
    app.start_telemetry(serve=False)
    sync = app.database.engine.wal_sync
    real = os.fsync

    def failing_in_the_background(fd):
        if threading.current_thread().name == "sqlite-wal-sync":
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(walsync.os, "fsync", failing_in_the_background)
    sample = lambda: app.metrics.registry.get_sample_value(  # noqa: E731
        "tradewatch_store_fsync_failures_total", {"account": app.metrics.account})
    try:
        assert sample() == 0
        for _ in range(3):
            assert app.engine.run_cycle().error is None
            assert sync.wait_idle(30)
            app.pacer.wait()
        assert sample() == sync.failures >= 1
    finally:
        monkeypatch.setattr(walsync.os, "fsync", real)
        app.close()
