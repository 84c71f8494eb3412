"""`make run` twice: the in-process simulator keeps its books beside the store, so the second run
continues the same broker history; a broker whose history went back in time is refused at start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Settings
from bot.engine.history_guard import BrokerHistoryRewound
from bot.gateway.factory import sim_state_file
from db.models import AccountSnapshotModel, DealModel, OrderModel

ROOT = Path(__file__).resolve().parents[1]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
CYCLES = 240  # two simulated hours at 30 s a cycle


def _settings(store: Path | str, **extra: str) -> Settings:
    url = store if isinstance(store, str) else f"sqlite:///{store}"
    env = {"DATABASE_URL": url, "SIM_SEED": "7", "SYMBOLS": "EURUSD,GBPUSD,USDJPY,XAUUSD",
           "TIMEFRAME": "M1", "CYCLE_SECONDS": "30", "LOG_LEVEL": "WARNING",
           # the broker's state across runs is under test: a bad first day must not halt the second run
           "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100", **extra}
    return Settings.from_env(env, dotenv_path=None)


def _run(settings: Settings, cycles: int = CYCLES) -> BotApp:
    app = BotApp(settings, stepped=True)  # the simulator as `make run` builds it (stepped, to be exact)
    assert app.run(cycles=cycles, serve=False) == 0
    return app


def _deal_tickets(app: BotApp) -> set[int]:
    with app.database.session() as session:
        return set(session.scalars(select(DealModel.ticket)))


def _count(app: BotApp, model) -> int:
    with app.database.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _newest_snapshot(app: BotApp) -> datetime:
    with app.database.session() as session:
        newest = session.scalar(select(func.max(AccountSnapshotModel.time)))
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)


def test_default_state_file_sits_beside_the_store(tmp_path):
    assert sim_state_file("", f"sqlite:///{tmp_path}/data/tradewatch.db") == f"{tmp_path}/data/tradewatch.db.sim_state.json"
    assert sim_state_file("", "sqlite:///data/tradewatch.db") == "data/tradewatch.db.sim_state.json"
    assert sim_state_file("", "sqlite:///:memory:") is None  # a store that keeps nothing
    assert sim_state_file("", "postgresql+psycopg2://u@h/db") == "data/sim_state.json"
    assert sim_state_file("/srv/sim.json", "sqlite:///x.db") == "/srv/sim.json"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """A SQLite store where `make run` puts it, or a PostgreSQL one (its state file named explicitly)."""
    if request.param == "sqlite":
        (tmp_path / "data").mkdir()  # a configured store's folder must exist (make run's default is created)
        return tmp_path / "data" / "tradewatch.db", {}
    return request.getfixturevalue("postgres_url"), {"SIM_STATE_PATH": str(tmp_path / "sim_state.json")}


def test_two_runs_in_a_row_record_deals_both_times(store):
    store, extra = store
    first = _run(_settings(store, **extra))
    state = Path(extra.get("SIM_STATE_PATH") or f"{store}.sim_state.json")
    assert state.is_file(), "the simulator's state is kept beside the store by default"
    first_deals, first_newest = _deal_tickets(first), _newest_snapshot(first)
    assert first_deals, "the first run trades"
    first.database.dispose()

    second = BotApp(_settings(store, **extra), stepped=True)
    assert second.sim.now() >= first_newest, "the broker's clock continues where the first run ended"
    assert second.run(cycles=CYCLES, serve=False) == 0
    try:
        second_deals = _deal_tickets(second)
        assert first_deals < second_deals, "the second run records new deals (not 0, as with a reset broker)"
        second.sim.initialize()
        broker = {d.ticket for d in second.sim.history_deals_get(EPOCH, FAR) if d.symbol}
        assert broker == second_deals, "one broker history, every deal of it in the store"
    finally:
        second.database.dispose()


def test_a_broker_with_other_deals_under_known_tickets_is_refused(tmp_path):
    store = tmp_path / "store.db"
    first = _run(_settings(store, SIM_STATE_PATH=str(tmp_path / "a.json")))
    assert _deal_tickets(first)
    first.database.dispose()
    # Another broker history over the same hours (other symbols traded): the same tickets, other deals.
    other = _run(_settings(tmp_path / "other.db", SIM_STATE_PATH=str(tmp_path / "b.json"), SYMBOLS="GBPUSD,USDJPY"))
    assert _deal_tickets(other) & _deal_tickets(first)
    other.database.dispose()

    app = BotApp(_settings(store, SIM_STATE_PATH=str(tmp_path / "b.json")), stepped=True)
    orders_before = _count(app, OrderModel)
    with pytest.raises(BrokerHistoryRewound, match=r"deal ticket \d+ is at the broker as .* but stored as"):
        app.run(cycles=5, serve=False)
    assert app.engine.halted_reason.startswith("broker history rewound") and not app.engine.reconciled
    app = BotApp(_settings(store, SIM_STATE_PATH=str(tmp_path / "b.json")), stepped=True)
    try:
        assert _count(app, OrderModel) == orders_before, "nothing was sent before the refusal"
    finally:
        app.database.dispose()


def test_a_broker_clock_hours_behind_the_store_stops_the_bot_with_exit_2(tmp_path):
    store = tmp_path / "store.db"
    first = _run(_settings(store, SIM_STATE_PATH=str(tmp_path / "kept.json"), CYCLE_SECONDS="120"), cycles=130)
    first.database.dispose()
    # The state file is gone (a fresh simulator starts over, four simulated hours before the store's end).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{store}",
           "SIM_SEED": "7", "SIM_STATE_PATH": str(tmp_path / "lost.json"), "METRICS_PORT": "0",
           "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "INFO"}
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--cycles", "3"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("error: broker history rewound for account ")
    assert "h behind the newest record in the store" in errors[0] and "SIM_STATE_PATH" in errors[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    halted = [line for line in proc.stdout.splitlines() if '"trading halted: broker history rewound' in line]
    assert len(halted) == 1, proc.stdout[-3000:]  # said once in the log too (what Loki receives), and alerted
    assert '"message": "reconciled with the broker"' not in proc.stdout
