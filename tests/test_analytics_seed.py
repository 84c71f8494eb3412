"""`python -m db seed-demo`: realistic demo trades whose rollups agree with the raw rows, on SQLite
and PostgreSQL; a second run on the same store is refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import Database, Repository, rollups
from db.analytics import Selection, strategy_performance
from db.daily_results import daily_performance, daily_summaries
from db.models import SignalCountModel
from db.seed import demo_accounts, seed_demo

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_seed(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "db", "seed-demo", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_seed_demo_fills_a_store_whose_rollups_agree(backend, request, tmp_path):
    url = f"sqlite:///{tmp_path}/demo.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    result = run_seed(url, tmp_path, "--trades", "1500", "--accounts", "2", "--years", "2")
    assert result.returncode == 0, result.stderr
    assert "1500 closed and 6 open trades" in result.stderr
    with Database(url) as database:
        repo = Repository(database)
        accounts = demo_accounts(2)
        with database.engine.connect() as connection:
            for account in accounts:
                assert rollups.verify(connection, account) == []
            signals = connection.execute(select(func.sum(SignalCountModel.count))).scalar_one()
        assert signals == 150
        rows = repo.closed_trades_between(accounts[0], datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        assert len(rows) == 750
        assert all(r.profit == r.gross_profit + r.commission + r.swap for r in rows)
        nets = Counter((r.profit > 0) - (r.profit < 0) for r in rows)
        assert nets[1] > 200 and nets[-1] > 200 and nets[0] > 0  # winners, losers and breakevens
        assert {"USDJPY", "EURJPY", "XAUUSD", "EURUSD"} <= {r.symbol for r in rows}
        assert (max(r.exit_time for r in rows) - min(r.exit_time for r in rows)).days > 600
        assert {line.strategy for line in strategy_performance(database, Selection(accounts[0]))} == {
            "breakout", "carry", "ma_crossover", "rsi_reversion"}
        stored = daily_summaries(database, accounts[0])
        assert len(stored) == len({r.exit_time.date() for r in rows})
        for summary in stored[:: max(1, len(stored) // 20)]:
            assert summary == daily_performance(database, accounts[0], summary.date)
        assert len(repo.open_trades(accounts[1])) == 3
    again = run_seed(url, tmp_path, "--trades", "10")
    assert again.returncode == 1
    (error,) = [line for line in again.stderr.splitlines() if " ERROR " in line]
    assert error.endswith("seed-demo failed: the demo accounts 9000001..9000002 already have trades: use a fresh database")


def test_seed_demo_refuses_nonsense(tmp_path):
    with Database(f"sqlite:///{tmp_path}/x.db") as database, pytest.raises(ValueError, match="--years"):
        seed_demo(database, 10, 1, years=0)
    result = run_seed(f"sqlite:///{tmp_path}/y.db", tmp_path, "--trades", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr
