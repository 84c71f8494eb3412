"""Migrations on SQLite and PostgreSQL: head matches the models, constraints hold, downgrade works, CLI works."""

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db import Database, deal_marks, init_db, migrate
from db.models import Base
from db.types import Money

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "signals",
    "orders",
    "deals",
    "trades",
    "position_snapshots",
    "account_snapshots",
    "daily_performance",
    "trade_rollups",
    "equity_bases",
    "signal_counts",
    "alerts",
    "metrics_history",
    "quarantine",
    "operator_actions",
    "broker_offsets",
    "deal_marks",
}
HEAD = "0009"
UNIQUE = {
    "signals": {("account", "cycle_id", "symbol", "strategy")},
    "orders": {("client_order_id",)},
    "deals": {("account", "ticket")},
    "trades": {("account", "ticket")},
    "position_snapshots": {("account", "time", "ticket")},
    "account_snapshots": {("account", "time")},
    "daily_performance": {("account", "date")},
    "alerts": {("fingerprint", "starts_at")},
    "metrics_history": {("account", "minute")},
    "quarantine": {("account", "record_kind", "fingerprint")},
}
INDEXES = {
    "signals": {("correlation_id",), ("account", "time")},
    "orders": {("correlation_id",), ("account", "status")},
    "deals": {("account", "time"), ("account", "position_id")},
    "trades": {("account", "is_closed"), ("account", "exit_time"), ("correlation_id",)},
}
DEAL = (
    "INSERT INTO deals (account, ticket, order_ticket, position_id, symbol, type, entry, volume, price, profit,"
    " commission, swap, magic, comment, reason, time)"
    " VALUES ('1', :ticket, 1, 1, 'EURUSD', 0, 0, 0.1, 1.1, 0, 0, 0, 1, '', 0, '2025-01-01 00:00:00')"
)
TRADE = (
    "INSERT INTO trades (account, ticket, symbol, direction, volume, entry_price, entry_time, is_closed, magic)"
    " VALUES ('1', :ticket, 'EURUSD', :direction, 0.1, 1.1, '2025-01-01 00:00:00', :closed, 1)"
)
ORDER = (
    "INSERT INTO orders (client_order_id, account, correlation_id, signal_id, symbol, strategy, side, purpose,"
    " volume, requested_price, deviation, magic, comment, created_at, status)"
    " VALUES (:cid, '1', 'c', :signal_id, 'EURUSD', 's', 'BUY', 'open', 0.1, 1.1, 10, 1, '',"
    " '2025-01-01 00:00:00', :status)"
)


@pytest.fixture
def empty_db(url):
    handle = Database(url)
    yield handle
    handle.dispose()


def drift(database: Database, metadata: MetaData = Base.metadata) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, metadata)


def test_upgrade_head_creates_the_schema_of_the_models(empty_db):
    assert migrate.current_revision(empty_db.engine) is None
    migrate.upgrade(empty_db.engine)
    assert migrate.current_revision(empty_db.engine) == migrate.head_revision() == HEAD
    inspector = inspect(empty_db.engine)
    assert set(inspector.get_table_names()) == TABLES | {"alembic_version"}
    for table, expected in UNIQUE.items():
        found = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        assert found == expected, table
    for table, expected in INDEXES.items():
        assert {tuple(i["column_names"]) for i in inspector.get_indexes(table)} >= expected, table
    (foreign_key,) = inspector.get_foreign_keys("orders")
    assert (foreign_key["referred_table"], foreign_key["constrained_columns"]) == ("signals", ["signal_id"])
    # The hand-written revision describes exactly what the models describe.
    assert drift(empty_db) == []


def test_drift_check_notices_a_difference(empty_db):
    """Guard for the test above: a model change without a migration must show up."""
    migrate.upgrade(empty_db.engine)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["trades"].append_column(Column("leverage", Integer))
    assert any(diff[0] == "add_column" and diff[3].name == "leverage" for diff in drift(empty_db, changed))


def test_constraints_are_enforced(empty_db):
    migrate.upgrade(empty_db.engine)
    engine = empty_db.engine
    with engine.begin() as connection:
        connection.execute(text(DEAL), {"ticket": 1})
        connection.execute(text(TRADE), {"ticket": 1, "direction": "BUY", "closed": False})
        connection.execute(text(ORDER), {"cid": "a", "signal_id": None, "status": "pending"})
    refused = [
        (DEAL, {"ticket": 1}),  # unique (account, ticket)
        (TRADE, {"ticket": 1, "direction": "BUY", "closed": False}),  # unique (account, ticket)
        (TRADE, {"ticket": 2, "direction": "buy", "closed": False}),  # direction BUY|SELL
        (TRADE, {"ticket": 3, "direction": "SELL", "closed": True}),  # closed without exit
        (ORDER, {"cid": "a", "signal_id": None, "status": "pending"}),  # unique client_order_id
        (ORDER, {"cid": "b", "signal_id": None, "status": "lost"}),  # status vocabulary
        (ORDER, {"cid": "c", "signal_id": 12345, "status": "pending"}),  # foreign key to signals
    ]
    for statement, params in refused:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text(statement), params)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM orders")).scalar_one() == 1


def test_0007_keeps_existing_rows_refuses_unknown_close_reasons_and_downgrades(empty_db):
    """Trades and daily rows stored before 0007 keep NULL reasons and UTC days; a reason outside the
    vocabulary is refused; 0007 goes down to 0006 and up again."""
    engine = empty_db.engine
    migrate.upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(text(TRADE), {"ticket": 1, "direction": "BUY", "closed": False})
        connection.execute(text("INSERT INTO daily_performance (account, date, trades, winners, losers, profit, pips,"
                                " win_rate, largest_win, largest_loss, max_drawdown) VALUES ('1', '2025-01-01', 0, 0,"
                                " 0, 0, 0, 0, 0, 0, 0)"))
    migrate.upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT close_reason FROM trades")).scalar_one() is None
        assert connection.execute(text("SELECT day_start, server_offset_seconds FROM daily_performance")).one() == (
            None, None)
        connection.execute(text("UPDATE trades SET close_reason = 'stop_out'"))
        connection.execute(text("INSERT INTO broker_offsets (account, since, offset_seconds)"
                                " VALUES ('1', '2025-01-01 00:00:00', 7200)"))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("UPDATE trades SET close_reason = 'margin_call'"))
    with pytest.raises(IntegrityError), engine.begin() as connection:  # one offset per (account, since)
        connection.execute(text("INSERT INTO broker_offsets (account, since, offset_seconds)"
                                " VALUES ('1', '2025-01-01 00:00:00', 10800)"))
    migrate.downgrade(engine, "0006")
    assert "broker_offsets" not in inspect(engine).get_table_names()
    assert "close_reason" not in {c["name"] for c in inspect(engine).get_columns("trades")}
    migrate.upgrade(engine)
    assert drift(empty_db) == []


def test_0008_keeps_stored_volumes_and_stores_fine_volume_steps_exactly(empty_db):
    """Volumes stored under 0007 (two decimals) keep their values; after 0008 a 0.579 / 0.002 lot
    volume (a 0.001 volume step) goes in and comes back exactly through the models, as a Decimal
    showing its own decimals (0.10 stays "0.10"); downgrade goes back to two decimals."""
    engine = empty_db.engine
    migrate.upgrade(engine, "0007")
    with engine.begin() as connection:
        connection.execute(text(TRADE), {"ticket": 1, "direction": "BUY", "closed": False})  # 0.1 lots
        connection.execute(text(DEAL), {"ticket": 1})
        connection.execute(text(ORDER), {"cid": "a", "signal_id": None, "status": "pending"})
        connection.execute(text("UPDATE orders SET fill_volume = 0.1"))
    migrate.upgrade(engine)
    assert drift(empty_db) == []
    trades = Base.metadata.tables["trades"]
    volumes = [Base.metadata.tables[name].c[column] for name, column in
               (("orders", "volume"), ("orders", "fill_volume"), ("deals", "volume"), ("trades", "volume"))]
    with engine.begin() as connection:
        for column in volumes:
            assert str(connection.execute(select(column)).scalar_one()) == "0.10", column
        for ticket, lots in ((2, "0.579"), (3, "0.002"), (4, "123456.12345678")):
            connection.execute(insert(trades).values(
                account="1", ticket=ticket, symbol="EURUSD", direction="BUY", volume=Decimal(lots),
                entry_price=Decimal("1.1"), entry_time=datetime(2025, 1, 1, tzinfo=UTC), is_closed=False, magic=1))
    with engine.connect() as connection:
        stored = connection.execute(select(trades.c.ticket, trades.c.volume).order_by(trades.c.ticket)).all()
    assert [(ticket, str(volume)) for ticket, volume in stored] == [
        (1, "0.10"), (2, "0.579"), (3, "0.002"), (4, "123456.12345678")]
    assert all(isinstance(volume, Decimal) for _, volume in stored)
    migrate.downgrade(engine, "0007")
    # Narrowed again: read as 0007's NUMERIC(12, 2) reads it (PostgreSQL rounds the stored value;
    # SQLite keeps the REAL and the column type rounds it on the way out).
    narrow = text("SELECT volume FROM trades WHERE ticket = 2").columns(volume=Money(12, 2))
    with engine.connect() as connection:
        assert connection.execute(narrow).scalar_one() == Decimal("0.58")
    migrate.upgrade(engine)
    assert drift(empty_db) == []


def test_0009_marks_the_deals_already_stored_and_downgrades(empty_db):
    """Deals stored under 0008 get their accounts' marks at the upgrade (count and newest deal, as a
    fresh count says); 0009 goes down to 0008 (the marks dropped, the deals kept)."""
    engine = empty_db.engine
    migrate.upgrade(engine, "0008")
    with engine.begin() as connection:
        for ticket, account, time in ((1, "1", "2025-01-01 00:00:00"), (2, "1", "2025-03-01 12:30:00"),
                                      (3, "1", "2025-02-01 00:00:00"), (1, "2", "2024-12-31 23:59:59")):
            connection.execute(text(DEAL.replace("VALUES ('1'", "VALUES (:account").replace(
                "'2025-01-01 00:00:00')", ":time)")), {"ticket": ticket, "account": account, "time": time})
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert deal_marks.marks(connection) == [("1", 3, datetime(2025, 3, 1, 12, 30, tzinfo=UTC)),
                                                ("2", 1, datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC))]
    migrate.downgrade(engine, "0008")
    assert "deal_marks" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM deals")).scalar_one() == 4


def test_downgrade_to_base_and_back(empty_db):
    migrate.upgrade(empty_db.engine)
    migrate.downgrade(empty_db.engine, "base")
    assert migrate.current_revision(empty_db.engine) is None
    assert set(inspect(empty_db.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_db.engine)
    assert set(inspect(empty_db.engine).get_table_names()) == TABLES | {"alembic_version"}


def test_init_db_is_repeatable_and_safe_from_threads(url):
    errors: list[BaseException] = []
    handles: list[Database] = []
    barrier = threading.Barrier(3)

    def start():
        barrier.wait()
        try:
            handles.append(init_db(url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        handles.append(init_db(url))
        with handles[-1].engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
    finally:
        for handle in handles:
            handle.dispose()


def test_processes_starting_together_migrate_one_after_the_other(url, tmp_path):
    env = cli_env(url)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "db", "upgrade"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1
    with Database(url) as database:
        assert drift(database) == []


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "db", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli_env(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO_ROOT)  # importable from any cwd, installed or not
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def test_cli_upgrade_uses_the_default_sqlite_file_from_any_directory(tmp_path):
    result = run_cli("upgrade", env=cli_env(None), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "tradewatch.db").is_file()
    current = run_cli("current", env=cli_env(None), cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == f"{HEAD} (up to date)"


def test_cli_upgrade_and_downgrade_on_postgres_without_leaking_the_password(
    postgres_url, pg_cluster, tmp_path
):
    env = cli_env(postgres_url)
    result = run_cli("upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"upgraded to {HEAD}" in result.stderr
    assert pg_cluster.password not in result.stdout + result.stderr
    assert "***" in result.stderr
    with Database(postgres_url) as database:
        assert drift(database) == []
    result = run_cli("downgrade", "base", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert run_cli("current", env=env, cwd=tmp_path).stdout.strip() == f"base (head is {HEAD})"


def test_cli_reports_a_bad_url_in_one_line(tmp_path):
    result = run_cli("upgrade", env=cli_env("mysql://root:hunter2@db/x"), cwd=tmp_path)
    assert result.returncode == 2  # a bad setting, not a failed migration
    assert "unsupported database backend 'mysql'" in result.stderr
    assert "hunter2" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
