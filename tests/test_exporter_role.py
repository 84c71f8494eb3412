"""The exporter's PostgreSQL role: with deploy/postgres/initdb/10-tradewatch-roles.sql applied and the
migrations run by the bot's role, `tradewatch_exporter` reads everything, writes the alerts (the
migration grants them), and is refused any write to the trading tables.

Runs its own throwaway cluster: the roles script changes cluster-wide roles.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime

import psycopg2
import pytest
from pgcluster import PgCluster, PgClusterError, find_bin_dir
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ProgrammingError
from test_analytics_reference import load, random_book

from db import Database, Repository, TradeClose, init_db
from exporter.app import create_app

ROLES_SQL = os.path.join(os.path.dirname(__file__), "..", "deploy", "postgres", "initdb", "10-tradewatch-roles.sql")
EXPORTER_PASSWORD = "exporter-pw-1"


@pytest.fixture(scope="module")
def cluster():
    server = PgCluster(tempfile.mkdtemp(prefix="tradewatch-exporter-role-pg-"))
    try:
        server.start()
    except PgClusterError as exc:
        server.destroy()
        pytest.fail(f"cannot start the throwaway PostgreSQL: {exc}", pytrace=False)
    passwords = {"TRADEWATCH_DB_PASSWORD": server.password, "EXPORTER_DB_PASSWORD": EXPORTER_PASSWORD,
                 "GRAFANA_DB_PASSWORD": "grafana-pw-1"}
    result = subprocess.run(
        [str(find_bin_dir() / "psql"), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-h", str(server.socket_dir),
         "-p", str(server.port), "-U", "postgres", "-d", "tradewatch", "-f", ROLES_SQL],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **passwords}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def exporter_db(cluster):
    bot_db = init_db(cluster.url)  # the bot's role migrates, after the roles exist
    repo = Repository(bot_db)
    load(repo, random_book(seed=4, accounts={"1001": "5000.00"}, trades=20, left_open=2))
    bot_db.dispose()
    url = URL.create("postgresql+psycopg2", username="tradewatch_exporter", password=EXPORTER_PASSWORD,
                     host="127.0.0.1", port=cluster.port, database="tradewatch")
    database = Database(url)
    yield database
    database.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO trades (account, ticket, symbol, direction, volume, entry_price, entry_time, magic)"
        " VALUES ('x', 1, 'EURUSD', 'BUY', 1, 1, now(), 1)",
        "UPDATE trades SET profit = 0",
        "DELETE FROM trades",
        "UPDATE trade_rollups SET profit_cents = 0",
        "INSERT INTO signal_counts VALUES ('x', 's', 'BUY', true, 1)",
        "DELETE FROM alerts",
        "CREATE TABLE mine (x int)",
    ],
)
def test_the_exporter_role_cannot_write_the_trading_tables(exporter_db, statement):
    with pytest.raises(ProgrammingError) as refused, exporter_db.engine.begin() as connection:
        connection.execute(text(statement))
    assert isinstance(refused.value.orig, psycopg2.errors.InsufficientPrivilege)


def test_the_repository_cannot_close_a_trade_as_the_exporter(exporter_db):
    repo = Repository(exporter_db)
    (open_trade, *_) = Repository(exporter_db).open_trades("1001")
    close = TradeClose(account="1001", ticket=open_trade.ticket, exit_price=open_trade.entry_price,
                       exit_time=datetime(2025, 6, 1, tzinfo=UTC), gross_profit=0, commission=0, swap=0,
                       profit_pips=0)
    with pytest.raises(ProgrammingError, match="permission denied"):
        repo.close_trade(close)


def test_the_exporter_serves_everything_as_its_role_and_writes_alerts(exporter_db):
    token = "role-test-sink-token-0123456789"
    client = create_app(exporter_db, sink_token=token).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    health = client.get("/healthz")
    assert health.status_code == 200, health.get_json()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "tradewatch_exporter_database_up 1.0" in metrics and "tradewatch_realized_profit{" in metrics
    assert client.get("/api/v1/drawdown?account=1001").status_code == 200
    assert client.get("/api/v1/report?account=1001&convention=mt5").status_code == 200  # reads the deals
    assert client.get("/api/v1/trades?account=1001&limit=5").status_code == 200
    payload = {"version": "4", "alerts": [
        {"status": "firing", "labels": {"alertname": "RoleTest", "severity": "warning", "account": "1001"},
         "annotations": {"summary": "s"}, "startsAt": "2026-02-01T00:00:00Z", "fingerprint": "r1"}]}
    for _ in range(2):
        assert client.post("/api/v1/alerts", json=payload).status_code == 200
    payload["alerts"][0].update(status="resolved", endsAt="2026-02-01T01:00:00Z")
    assert client.post("/api/v1/alerts", json=payload).status_code == 200
    (stored,) = client.get("/api/v1/alerts").get_json()["items"]
    assert (stored["fingerprint"], stored["status"], stored["ends_at"]) == ("r1", "resolved", "2026-02-01T01:00:00+00:00")
