"""Metrics history (per minute, in the store), its export, and the daily report with day rollover."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import event, text

from bot import history as bot_history
from bot import instrumentation
from bot.app import BotApp
from bot.config import Settings
from bot.history import MinuteRollup
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parents[1]
MONDAY = date(2026, 1, 5)


def _figures(at: float, **kw):
    base = dict(finished_at=at, duration_seconds=0.01, signals=2, orders=1, trades_executed=1, broker_calls=10,
                broker_latency_seconds=0.002, memory_rss_bytes=1000, cpu_percent=5.0, ok=True, broker_time=None)
    base.update(kw)
    return SimpleNamespace(**base)


class FakeRepo:
    def __init__(self):
        self.minutes = []
        self.pruned = []

    def record_metrics_minute(self, m):
        self.minutes.append(m)

    def prune_metrics_history(self, account, older_than):
        self.pruned.append(older_than)


def test_minute_rollup_sums_per_minute_and_rolls_the_day():
    repo = FakeRepo()
    closed_days = []
    rollup = MinuteRollup(repo, "42", on_day_closed=closed_days.append, clock=lambda: 10_000.0)
    start = datetime(2026, 1, 5, 10, 0, 5, tzinfo=UTC).timestamp()
    for i in range(5):
        rollup.add(_figures(start + i, duration_seconds=0.01 * (i + 1), broker_time=datetime(2026, 1, 5, 23, 59, tzinfo=UTC)))
    rollup.add(_figures(start + 60, broker_time=datetime(2026, 1, 6, 0, 1, tzinfo=UTC)))  # next minute, next day
    assert len(repo.minutes) == 1
    first = repo.minutes[0]
    assert first.cycles == 5 and first.signals == 10 and first.broker_calls == 50
    assert abs(first.cycle_seconds_sum - 0.15) < 1e-9 and first.cycle_seconds_max == 0.05
    assert first.minute == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert closed_days == [MONDAY]
    rollup.flush()
    assert [m.cycles for m in repo.minutes] == [5, 1]
    assert repo.pruned  # retention ran


def _run_app(tmp_path, cycles, **env):
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/h.db", "METRICS_PORT": "0",
                                  "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", **env}, dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=21, stepped=True), stepped=True)
    app.run(cycles=cycles, serve=False)
    return app


def _cli(tmp_path, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{tmp_path}/h.db",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_history_is_stored_and_exported(tmp_path):
    _run_app(tmp_path, 300)
    out_json, out_csv = tmp_path / "m.json", tmp_path / "m.csv"
    proc = _cli(tmp_path, "metrics", "export", "--format", "json", "--out", str(out_json))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out_json.read_text())
    assert sum(r["cycles"] for r in rows) == 300
    assert all(r["account"] == "5001234" for r in rows)
    proc = _cli(tmp_path, "metrics", "export", "--format", "csv", "--out", str(out_csv))
    assert proc.returncode == 0, proc.stderr
    with out_csv.open() as handle:
        assert sum(int(r["cycles"]) for r in csv.DictReader(handle)) == 300
    proc = _cli(tmp_path, "metrics", "export", "--since", "not-a-date", "--out", str(out_csv))
    assert proc.returncode == 2 and "not an ISO date" in proc.stderr
    proc = _cli(tmp_path, "metrics", "export", "--since", "2100-01-01", "--out", "-")
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_daily_report_written_at_rollover_and_on_demand(tmp_path):
    # 120 s cycles x 800 = 26.7 simulated hours: Monday rolls over into Tuesday during the run.
    app = _run_app(tmp_path, 800, CYCLE_SECONDS="120")
    with app.database.engine.connect() as conn:
        row = conn.execute(text("select trades, winners, losers, profit from daily_performance "
                                "where date = :d"), {"d": MONDAY}).one()
        trades = conn.execute(text("select profit from trades where is_closed = :t and exit_time >= :a "
                                   "and exit_time < :b"), {"t": True, "a": datetime(2026, 1, 5, tzinfo=UTC),
                                                          "b": datetime(2026, 1, 6, tzinfo=UTC)}).all()
    app.database.dispose()
    profits = [Decimal(str(t.profit)).quantize(Decimal("0.01")) for t in trades]
    assert row.trades == len(profits) > 0
    assert row.winners == sum(p > 0 for p in profits) and row.losers == sum(p < 0 for p in profits)
    assert Decimal(str(row.profit)).quantize(Decimal("0.01")) == sum(profits)

    proc = _cli(tmp_path, "report", "daily", "--date", MONDAY.isoformat())
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(None, 1) if " " in line else (line, "") for line in proc.stdout.splitlines())
    assert lines["trades"].strip() == str(len(profits))
    assert Decimal(lines["profit"].strip()) == sum(profits)
    assert _cli(tmp_path, "report", "daily", "--date", "2026-13-01").returncode == 2


def test_deferred_rollup_writes_a_closed_minute_only_when_asked_and_never_holds_many():
    repo = FakeRepo()
    rollup = MinuteRollup(repo, "42", clock=lambda: 10_000.0, defer_writes=True)
    start = datetime(2026, 1, 5, 10, 0, 5, tzinfo=UTC).timestamp()
    rollup.add(_figures(start))
    rollup.add(_figures(start + 60))  # minute 10:00 closed, not written yet
    assert repo.minutes == []
    rollup.write_closed()
    assert [(m.minute.minute, m.cycles) for m in repo.minutes] == [(0, 1)]
    rollup.write_closed()  # nothing closed since
    assert len(repo.minutes) == 1
    for i in range(2, 2 + bot_history.MAX_DEFERRED_MINUTES):  # nobody calls write_closed: the bound writes
        rollup.add(_figures(start + 60 * i))
    assert len(repo.minutes) == 1 + bot_history.MAX_DEFERRED_MINUTES
    rollup.flush()  # shutdown: the closed and the current minute
    assert sum(m.cycles for m in repo.minutes) == 2 + bot_history.MAX_DEFERRED_MINUTES


def test_a_cycle_crossing_a_wall_clock_minute_still_commits_once(tmp_path, monkeypatch):
    """The minute's history row goes in the next cycle's one commit (issue 16: 1 commit a cycle)."""
    wall = [datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(instrumentation, "time", SimpleNamespace(time=lambda: wall[0], monotonic=time.monotonic))
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/h.db", "METRICS_PORT": "0",
                                  "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "CYCLE_SECONDS": "5"},
                                 dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=21, stepped=True), stepped=True)
    app.connect()
    app.start_telemetry(serve=False)
    commits = []
    event.listen(app.database.engine, "commit", lambda _conn: commits.append(1))
    try:
        app.engine.run_cycle()  # the first cycle: start-up writes
        per_cycle = []
        for _ in range(7):  # 10:00:11 ... 10:01:11: minute 10:00 closes at the 6th
            wall[0] += 10
            before = len(commits)
            report = app.engine.run_cycle()
            assert report.error is None, report.error
            per_cycle.append(len(commits) - before - report.orders.get("filled", 0))
            app.pacer.wait()
        assert max(per_cycle) == 1, per_cycle
        with app.database.engine.connect() as conn:
            rows = conn.execute(text("select minute, cycles from metrics_history")).all()
        assert [r.cycles for r in rows] == [6]  # 10:00 (the first cycle and five more); 10:01 still open
    finally:
        app.close()
