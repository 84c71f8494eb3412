"""The bot started while its PostgreSQL is away (server stopped, wrong password), against a real server.

With the schema known from an earlier run, the bot trades and spools from its first cycle; when the
database comes back, migrations run first, then the spool drains.  A first-ever start with no
database waits, not ready, with a reason and a log line per backoff step, and recovers by itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

from psycopg2 import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from bot.app import BotApp
from bot.config import Settings
from bot.store.spool import CHECKPOINT_KEY
from bot.store.spool_file import SpoolFile
from db import migrate
from mt5bridge.sim import SimTerminal

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
TIMEOUT_S = 60.0


def _settings(url: str, tmp_path, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": url,
        "STORE_SPOOL_PATH": str(tmp_path / "store_spool.db"),
        "ORDER_QUEUE_PATH": str(tmp_path / "order_queue.db"),
        "SYMBOLS": "EURUSD,GBPUSD,USDJPY,XAUUSD",
        "TIMEFRAME": "M1",
        "CYCLE_SECONDS": "30",
        "LOG_LEVEL": "INFO",
        "RECONNECT_INITIAL_SECONDS": "0.05",
        "RECONNECT_MAX_SECONDS": "0.2",
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": "0",
        **extra,
    }
    return Settings.from_env(env, dotenv_path=None)


def start_again(cluster) -> None:
    """Start a stopped PgCluster on its old port (PgCluster.start would pick a new one)."""
    cluster._pg_ctl("start", "-w", "-t", "60", "-l", str(cluster.log_file), "-o", cluster._server_options())


@contextmanager
def server_stopped(cluster):
    cluster.stop()
    try:
        yield
    finally:
        if not (cluster.data_dir / "postmaster.pid").exists():
            start_again(cluster)


def cycles(app: BotApp, count: int) -> list:
    reports = []
    for _ in range(count):
        reports.append(app.engine.run_cycle())
        app.pacer.wait()
    return reports


def cycle_until(app: BotApp, condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        app.engine.run_cycle()
        app.pacer.wait()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def sim_client_ids(sim: SimTerminal) -> set[str]:
    """Client order ids of every order the simulated broker has seen (the bot's close shuts the sim down)."""
    sim.initialize()
    return {o.comment.split()[0] for o in sim.history_orders_get(EPOCH, FAR) if o.comment.startswith("tw")}


def stored(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def readyz(app: BotApp) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.server.port}/readyz", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_server_stopped_at_start_trades_and_spools_then_migrates_before_draining(pg_cluster, postgres_url,
                                                                                 tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = _settings(postgres_url, tmp_path)
    sim = SimTerminal(seed=7, stepped=True)
    first = BotApp(settings, sim=sim, stepped=True)  # an earlier run: migrates, records the head
    first.run(cycles=40, serve=False)
    assert first.schema.known_head == migrate.head_revision()
    # Make the schema behind the code on purpose: if the spool drained before migrating, the spooled
    # metrics-history writes would hit a missing table and be refused.
    engine = create_engine(postgres_url)
    migrate.downgrade(engine, "0002")
    engine.dispose()
    before = sim_client_ids(sim)

    with server_stopped(pg_cluster):
        caplog.clear()
        second = BotApp(settings, sim=sim, stepped=True)  # no traceback, no exit
        assert not second.schema.ready and second.schema.schema_known
        second.connect()
        second.start_telemetry(serve=False)
        assert second.engine.started
        reports = cycles(second, 200)
        assert [r.error for r in reports if not r.ok] == []
        sent_while_down = sim_client_ids(sim) - before
        assert sent_while_down, "the bot did not trade while the database was down"
        assert second.repo.depth > 0
        ok, details = second.readiness()
        assert ok, details
        assert "unreachable" in details["database_reason"] and pg_cluster.password not in json.dumps(details)
        assert any("trading, writes spooled" in m for m in messages(caplog))

    cycle_until(second, lambda: second.schema.ready and second.repo.depth == 0, "migration and drain")
    text_log = messages(caplog)
    migrated = next(i for i, m in enumerate(text_log) if "at schema revision" in m)
    drained = next(i for i, m in enumerate(text_log) if m == "store spool drained: the database has every write")
    assert migrated < drained
    assert second.repo.rejected() == []
    second.close()
    assert stored(postgres_url, "SELECT version_num FROM alembic_version") == [(migrate.head_revision(),)]
    in_store = {row[0] for row in stored(postgres_url, "SELECT client_order_id FROM orders")}
    assert sent_while_down <= in_store and before <= in_store
    assert stored(postgres_url, "SELECT COUNT(*) FROM metrics_history")[0][0] > 0
    assert pg_cluster.password not in "\n".join(text_log)


def test_first_ever_start_without_a_database_waits_not_ready_then_recovers(pg_cluster, postgres_url,
                                                                           tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = _settings(postgres_url, tmp_path)
    sim = SimTerminal(seed=11, stepped=True)
    with server_stopped(pg_cluster):
        app = BotApp(settings, sim=sim, stepped=True)
        assert app.schema.waiting and app.schema.known_head is None
        runner = threading.Thread(target=app.run, name="bot-under-test", daemon=True)
        runner.start()
        wait_for(lambda: app.server is not None, "the telemetry server")
        steps = lambda: sum("waiting" in m and "before attempt" in m for m in messages(caplog))  # noqa: E731
        wait_for(lambda: steps() >= 3, "three backoff steps logged")
        status, body = readyz(app)
        assert status == 503 and body["checks"]["store_schema_known"] == "failing", body
        assert "unreachable" in body["checks"]["database_reason"]
        assert pg_cluster.password not in json.dumps(body)
        waiting = app.metrics.registry.get_sample_value("tradewatch_store_waiting_for_database",
                                                        {"account": app.metrics.account})
        assert waiting == 1
        assert app.engine.cycles == 0 and sim_client_ids(sim) == set()
    wait_for(lambda: app.engine.cycles >= 30, "cycles after the database came back")
    status, body = readyz(app)
    assert status == 200, body
    assert app.metrics.registry.get_sample_value("tradewatch_store_waiting_for_database",
                                                 {"account": app.metrics.account}) == 0
    app.request_stop()
    runner.join(TIMEOUT_S)
    assert not runner.is_alive()
    assert stored(postgres_url, "SELECT version_num FROM alembic_version") == [(migrate.head_revision(),)]
    assert app.schema.known_head == migrate.head_revision()
    assert stored(postgres_url, "SELECT COUNT(*) FROM account_snapshots")[0][0] >= 30
    assert not any(record.exc_info for record in caplog.records)


def test_wrong_password_is_unreachable_with_a_clear_reason_and_recovers(pg_cluster, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    role, name = f"tw_{uuid.uuid4().hex[:10]}", f"pw_{uuid.uuid4().hex[:10]}"
    old, new = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    pg_cluster.admin_execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(old)))
    pg_cluster.admin_execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))

    def url(password: str) -> str:
        return URL.create("postgresql+psycopg2", username=role, password=password, host="127.0.0.1",
                          port=pg_cluster.port, database=name).render_as_string(hide_password=False)

    try:
        sim = SimTerminal(seed=5, stepped=True)
        BotApp(_settings(url(old), tmp_path), sim=sim, stepped=True).run(cycles=20, serve=False)
        before = sim_client_ids(sim)
        caplog.clear()
        app = BotApp(_settings(url(new), tmp_path), sim=sim, stepped=True)  # the password was rotated
        app.connect()
        app.start_telemetry(serve=False)
        reports = cycles(app, 150)
        assert [r.error for r in reports if not r.ok] == []
        assert sim_client_ids(sim) - before and app.repo.depth > 0
        ok, details = app.readiness()
        assert "password authentication failed" in details["database_reason"], details
        everything = "\n".join(messages(caplog)) + json.dumps(details)
        assert new not in everything and old not in everything
        pg_cluster.admin_execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(new)))
        cycle_until(app, lambda: app.schema.ready and app.repo.depth == 0, "migration and drain")
        assert app.repo.rejected() == []
        app.close()
        in_store = {row[0] for row in stored(url(new), "SELECT client_order_id FROM orders")}
        assert sim_client_ids(sim) <= in_store
    finally:
        pg_cluster.drop_database(name)
        pg_cluster.admin_execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_after_a_crash_with_the_server_stopped_it_waits_without_tracebacks_then_recovers(pg_cluster, postgres_url,
                                                                                        tmp_path, caplog):
    caplog.set_level(logging.INFO)
    settings = _settings(postgres_url, tmp_path)
    sim = SimTerminal(seed=13, stepped=True)
    BotApp(settings, sim=sim, stepped=True).run(cycles=20, serve=False)
    spool = SpoolFile(settings.store_spool_path)
    spool.set_state(CHECKPOINT_KEY, None)  # what a SIGKILL leaves: the head is known, the state is not
    spool.close()
    with server_stopped(pg_cluster):
        caplog.clear()
        app = BotApp(settings, sim=sim, stepped=True)
        assert app.schema.schema_known and not app.schema.ready
        app.connect()
        app.start_telemetry(serve=False)
        reports = cycles(app, 10)
        assert all(r.error and r.error.startswith("StoreUnavailable") for r in reports)
        assert not any(record.exc_info for record in caplog.records)
        ok, details = app.readiness()
        assert not ok and "unreachable" in details["database_reason"]
        assert app.metrics.registry.get_sample_value("tradewatch_store_waiting_for_database",
                                                     {"account": app.metrics.account}) == 1
    cycle_until(app, lambda: app.engine.reconciled and app.repo.depth == 0, "reconciled after the database came back")
    assert app.readiness()[0]
    assert app.metrics.registry.get_sample_value("tradewatch_store_waiting_for_database",
                                                 {"account": app.metrics.account}) == 0
    app.close()
